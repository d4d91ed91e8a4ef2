"""The view the HTML and Markdown reports render: built from the JSON dict only (`Profile.to_dict()`).

Reading the contract rather than engine objects means a report shows exactly what `--format json`
says, and keys other stages add later (training `phases`, more backends) appear without touching
this module's callers. Everything here aggregates: a model's nodes become at most a bounded number of
tree rows, table rows and chart segments, so a 200k-node model gives a report of a few hundred KiB.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hawkeye_onnx.network import DEFAULT_NETWORKS, Network, human_bandwidth

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
PHASE_ORDER = ("forward", "loss", "backward", "update")
#: Colour-blind-safe palette (Okabe-Ito plus greys) for operator types in the charts.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#8c564b", "#7f7f7f")
OTHER_COLOUR = "#c7c7c7"


def human_bytes(n: int | float) -> str:
    """1536 -> '1.50 KiB' (binary units)."""
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{sign}{int(value)} {unit}" if unit == "B" else f"{sign}{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def templates_dir() -> Path:
    """The Jinja templates: inside the installed package, or the source tree's top-level `templates/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("templates/ not found beside the package")


def exact(n: int) -> str:
    return f"{int(n):,}"


def cost_of(d: Mapping[str, Any] | None, phase: str) -> tuple[int, int]:
    """(bytes, rounds) of a JSON totals dict's phase ('online'/'offline'), (0, 0) when absent."""
    c = (d or {}).get(phase) or {}
    return int(c.get("bytes", 0)), int(c.get("rounds", 0))


@dataclass
class Row:
    """One row of the merged module tree: the same path in every backend's tree."""

    name: str
    kind: str
    op_type: str | None
    cells: list[Mapping[str, Any] | None]  # per backend: the JSON subtree (totals) or None
    children: list[Row] = field(default_factory=list)
    hidden: int = 0  # children left out by the row limits
    hidden_cells: list[tuple[int, int, int, int]] | None = None  # their summed totals per backend
    truncated: bool = False  # has children, not expanded (depth / row budget)


def _child_key(c: Mapping[str, Any]) -> tuple[str, str]:
    return (c.get("kind", ""), c.get("name", ""))


def _merge_children(cells: Sequence[Mapping[str, Any] | None]) -> list[Row]:
    order: dict[tuple[str, str], Row] = {}
    for bi, tree in enumerate(cells):
        if tree is None:
            continue
        for c in tree.get("children", ()):
            if c.get("kind") == "primitive":
                continue
            key = _child_key(c)
            row = order.get(key)
            if row is None:
                row = order[key] = Row(c.get("name", ""), c.get("kind", ""), c.get("op_type"), [None] * len(cells))
            if row.cells[bi] is None:  # duplicate node names: the first one keeps the row
                row.cells[bi] = c
    return list(order.values())


def _weight(row: Row) -> int:
    return max((cost_of(c, "online")[0] + cost_of(c, "offline")[0] for c in row.cells if c), default=0)


def merged_tree(trees: Sequence[Mapping[str, Any]], max_rows: int = 500, max_children: int = 40,
                max_depth: int | None = None) -> tuple[Row, int]:
    """Merge the backends' module trees (breadth first, so shallow levels are kept when the budget runs out).

    Each level keeps at most `max_children` children (the costliest, in model order); the rest become
    one "N more" row with their summed totals. Returns the root and the number of rows emitted.
    """
    root = Row("model", "module", None, list(trees))
    queue: list[tuple[Row, int]] = [(root, 0)]
    rows = 1
    head = 0
    while head < len(queue):
        row, level = queue[head]
        head += 1
        has_kids = any(c and any(k.get("kind") != "primitive" for k in c.get("children", ())) for c in row.cells)
        if not has_kids:
            continue
        if (max_depth is not None and level >= max_depth) or rows >= max_rows:
            row.truncated = True
            continue
        kids = _merge_children(row.cells)
        budget = min(max_children, max_rows - rows)
        if len(kids) > budget:
            keep = set(map(id, heapq.nlargest(budget, kids, key=_weight)))
            dropped = [k for k in kids if id(k) not in keep]
            kids = [k for k in kids if id(k) in keep]
            row.hidden = len(dropped)
            row.hidden_cells = [
                tuple(sum(v) for v in zip(*[(*cost_of(k.cells[b], "online"), *cost_of(k.cells[b], "offline"))
                                            for k in dropped if k.cells[b]], strict=False)) or (0, 0, 0, 0)
                for b in range(len(trees))
            ]
        row.children = kids
        rows += len(kids) + (1 if row.hidden else 0)
        queue.extend((k, level + 1) for k in kids)
    return root, rows


def modules_at_depth(tree: Mapping[str, Any], depth: int) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """(path, subtree) of the modules `depth` levels below the root, and of costed nodes above that level."""
    out: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []

    def walk(node: Mapping[str, Any], path: tuple[str, ...], level: int) -> None:
        for c in node.get("children", ()):
            kind = c.get("kind")
            if kind == "module" and level + 1 < depth and any(g.get("kind") != "primitive" for g in c["children"]):
                walk(c, (*path, c["name"]), level + 1)
            elif kind in ("module", "node"):
                out.append(((*path, c["name"]), c))

    walk(tree, (), 0)
    return out


def innermost_modules(tree: Mapping[str, Any]) -> dict[tuple[str, ...], list[int]]:
    """Path -> summed totals of the nodes directly in that module: a partition of the model's cost."""
    out: dict[tuple[str, ...], list[int]] = {}
    stack: list[tuple[Mapping[str, Any], tuple[str, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        for c in node.get("children", ()):
            kind = c.get("kind")
            if kind == "module":
                stack.append((c, (*path, c["name"])))
            elif kind == "node":
                acc = out.setdefault(path, [0, 0, 0, 0])
                for i, v in enumerate((*cost_of(c, "online"), *cost_of(c, "offline"))):
                    acc[i] += v
    return out


def all_nodes(tree: Mapping[str, Any]) -> Iterable[tuple[tuple[str, ...], Mapping[str, Any]]]:
    stack: list[tuple[Mapping[str, Any], tuple[str, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        for c in node.get("children", ()):
            if c.get("kind") == "module":
                stack.append((c, (*path, c["name"])))
            elif c.get("kind") == "node":
                yield path, c


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def bottlenecks(b: Mapping[str, Any], top: int) -> dict[str, list[dict[str, Any]]]:
    """The costliest innermost modules and nodes of one backend, by online bytes (rounds shown beside)."""
    tb, tr = cost_of(b.get("total"), "online")
    mods = innermost_modules(b.get("tree", {}))
    best_mods = heapq.nlargest(top, mods.items(), key=lambda kv: (kv[1][0], kv[1][1]))
    best_nodes = heapq.nlargest(top, all_nodes(b.get("tree", {})),
                                key=lambda pn: cost_of(pn[1], "online"))
    return {
        "modules": [{"path": "/".join(p) or "(top level)", "bytes": v[0], "rounds": v[1],
                     "bytes_share": _share(v[0], tb), "rounds_share": _share(v[1], tr)}
                    for p, v in best_mods if v[0] or v[1]],
        "nodes": [{"name": n.get("name", ""), "op_type": n.get("op_type", ""), "module": "/".join(p),
                   "bytes": cost_of(n, "online")[0], "rounds": cost_of(n, "online")[1],
                   "bytes_share": _share(cost_of(n, "online")[0], tb),
                   "rounds_share": _share(cost_of(n, "online")[1], tr)}
                  for p, n in best_nodes if any(cost_of(n, "online"))],
    }


METRICS = (("online", 0, "online bytes"), ("online", 1, "online rounds"), ("offline", 0, "offline bytes"))


def op_colours(backends: Mapping[str, Mapping[str, Any]], max_ops: int = len(PALETTE)) -> dict[str, str]:
    """One colour per op type for every chart: the `max_ops` costliest (online + offline bytes, then rounds)."""
    weight: dict[str, tuple[int, int]] = {}
    for b in backends.values():
        for op, s in b.get("ops", {}).items():
            (ob, orr), (fb, fr) = cost_of(s, "online"), cost_of(s, "offline")
            w = weight.get(op, (0, 0))
            weight[op] = (w[0] + ob + fb, w[1] + orr + fr)
    ranked = [op for op, w in sorted(weight.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0])) if any(w)]
    return {op: PALETTE[i] for i, op in enumerate(ranked[:max_ops])}


def op_chart(backends: Mapping[str, Mapping[str, Any]], phase: str, idx: int,
             colours: Mapping[str, str]) -> dict[str, Any]:
    """Stacked bars: one per backend, one segment per op type that has a colour, the rest as 'other'."""
    weight: dict[str, int] = {}
    for b in backends.values():
        for op, s in b.get("ops", {}).items():
            weight[op] = weight.get(op, 0) + cost_of(s, phase)[idx]
    ranked = [op for op, w in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0])) if w > 0]
    shown = [op for op in ranked if op in colours]
    bars = []
    for name, b in backends.items():
        segs = []
        other = 0
        for op, s in b.get("ops", {}).items():
            v = cost_of(s, phase)[idx]
            if op in colours and v:
                segs.append((op, v, colours[op]))
            else:
                other += v
        segs.sort(key=lambda s: shown.index(s[0]))
        if other:
            segs.append(("other", other, OTHER_COLOUR))
        bars.append({"backend": name, "total": sum(s[1] for s in segs), "segments": segs})
    legend = [(op, colours[op]) for op in shown] + ([("other", OTHER_COLOUR)] if len(ranked) > len(shown) else [])
    return {"bars": bars, "legend": legend, "max": max((b["total"] for b in bars), default=0)}


def phases_of(backends: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Training phases present in any backend, in pipeline order then any others."""
    seen: list[str] = []
    for b in backends.values():
        for ph in (b.get("phases") or {}):
            if ph not in seen:
                seen.append(ph)
    return [p for p in PHASE_ORDER if p in seen] + [p for p in seen if p not in PHASE_ORDER]


def time_rows(backends: Mapping[str, Mapping[str, Any]], nets: Sequence[Network]) -> list[dict[str, Any]]:
    rows = []
    for name, b in backends.items():
        ob, orr = cost_of(b.get("total"), "online")
        fb, fr = cost_of(b.get("total"), "offline")
        rows.append({"backend": name, "cells": [
            {"online": n.seconds(ob, orr), "offline": n.seconds(fb, fr)} for n in nets]})
    return rows


def module_table(backends: Mapping[str, Mapping[str, Any]], depth: int, top: int) -> list[tuple[str, list]]:
    """(path label, per-backend subtree or None) for the modules at `depth`, costliest first (max over backends)."""
    found: dict[tuple[str, ...], list[Mapping[str, Any] | None]] = {}
    names = list(backends)
    for i, n in enumerate(names):
        for p, sub in modules_at_depth(backends[n].get("tree", {}), depth):
            found.setdefault(p, [None] * len(names))[i] = sub
    order = sorted(found, key=lambda p: (-max(cost_of(s, "online")[0] for s in found[p] if s), p))
    return [("/".join(p), found[p]) for p in order[:top]]


def op_table(backends: Mapping[str, Mapping[str, Any]], top: int | None = None) -> list[str]:
    ops = {o for b in backends.values() for o in b.get("ops", {})}
    order = sorted(ops, key=lambda o: (-max(cost_of(b.get("ops", {}).get(o), "online")[0]
                                              for b in backends.values()), o))
    return order if top is None else order[:top]


def build_view(data: Mapping[str, Any], nets: Sequence[Network] = DEFAULT_NETWORKS, depth: int = 1,
               top: int = 15, max_rows: int = 500, max_children: int = 40,
               tree_depth: int | None = None) -> dict[str, Any]:
    """Everything a report template needs, from the JSON dict of a profile."""
    backends = data.get("backends", {})
    names = list(backends)
    tree, tree_rows = merged_tree([backends[n].get("tree", {}) for n in names], max_rows, max_children, tree_depth)
    colours = op_colours(backends)
    used_ops = {n: sorted(set(b.get("ops", {})) | {u["op_type"] for u in b.get("unsupported", ())})
                for n, b in backends.items()}
    return {
        "d": data,
        "model": data.get("model", {}),
        "mode": data.get("mode", "inference"),
        "names": names,
        "backends": backends,
        "networks": [{"name": n.name, "bandwidth": human_bandwidth(n.bandwidth_bps), "bandwidth_bps": n.bandwidth_bps,
                      "rtt": f"{n.rtt_s * 1e3:g} ms", "rtt_s": n.rtt_s} for n in nets],
        "times": time_rows(backends, nets),
        "charts": [{"label": label, "phase": ph, "idx": idx, **op_chart(backends, ph, idx, colours)}
                   for ph, idx, label in METRICS],
        "tree": tree,
        "tree_rows": tree_rows,
        "max_rows": max_rows,
        "bottlenecks": {n: bottlenecks(b, min(top, 10)) for n, b in backends.items()},
        "phases": phases_of(backends),
        "modules": module_table(backends, depth, top),
        "op_types": op_table(backends),
        "depth": depth,
        "top": top,
        "used_ops": used_ops,
    }
