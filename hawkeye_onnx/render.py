"""Rendering of a Profile for people: rich terminal tables and Markdown (Jinja template).

Rendering reads only the Profile (the JSON contract), never the graph, so every view shows the
same numbers as `--format json`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jinja2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hawkeye_onnx.network import DEFAULT_NETWORKS, Network, human_seconds
from hawkeye_onnx.report_data import build_view, exact, human_bytes, templates_dir
from hawkeye_onnx.result import Profile, TreeNode


def modules_at_depth(tree: TreeNode, depth: int) -> list[tuple[tuple[str, ...], TreeNode]]:
    """(path, subtree) for the modules `depth` levels below the root, and costed nodes above that."""
    out: list[tuple[tuple[str, ...], TreeNode]] = []

    def walk(node: TreeNode, path: tuple[str, ...], level: int) -> None:
        for c in node.children:
            if c.kind == "module" and level + 1 < depth and any(g.kind != "primitive" for g in c.children):
                walk(c, (*path, c.name), level + 1)
            elif c.kind in ("module", "node"):
                out.append(((*path, c.name), c))

    walk(tree, (), 0)
    return out


def path_label(path: tuple[str, ...]) -> str:
    return "/".join(path)


def render_table(profile: Profile, console: Console, depth: int = 1, top: int = 10) -> None:
    """The default terminal view: totals per backend, then top modules and operators."""
    m = profile.model
    console.print(Text(f"{m.name}: {m.nodes} nodes, {m.parameters:,} parameters, opset {m.opset}, "
                       f"inputs " + ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in m.inputs.items())))
    what = "one inference" if profile.mode == "inference" else "one training step"
    totals = Table(title=f"Communication per backend (all parties, {what})", title_justify="left")
    for col in ("backend", "online bytes", "online rounds", "offline bytes", "offline rounds", "unsupported"):
        totals.add_column(col, justify="left" if col in ("backend", "unsupported") else "right")
    for b in profile.backends.values():
        unsupported = ", ".join(f"{u.op_type}×{len(u.nodes)}" for u in b.unsupported) or "-"
        totals.add_row(b.name, human_bytes(b.total.online.bytes),
                       f"{b.total.online.rounds:,}", human_bytes(b.total.offline.bytes),
                       f"{b.total.offline.rounds:,}", Text(unsupported, style="red" if b.unsupported else ""))
    console.print(totals)
    names = list(profile.backends)
    mods = Table(title=f"Top modules (depth {depth}), online bytes / rounds", title_justify="left")
    mods.add_column("module")
    for n in names:
        mods.add_column(n, justify="right")
    first = profile.backends[names[0]]
    rows = {p: [] for p, _ in modules_at_depth(first.tree, depth)}
    for n in names:
        for p, _node in modules_at_depth(profile.backends[n].tree, depth):
            rows.setdefault(p, [])
    for p in rows:
        cells = []
        for n in names:
            found = _find_path(profile.backends[n].tree, p)
            cells.append(f"{human_bytes(found.totals.online.bytes)} / {found.totals.online.rounds:,}" if found else "-")
        rows[p] = cells
    order = sorted(rows, key=lambda p: -_sort_key(profile, names[0], p))[:top]
    for p in order:
        mods.add_row(Text(path_label(p)), *rows[p])
    console.print(mods)
    ops = Table(title="Operators, online bytes / rounds", title_justify="left")
    ops.add_column("op type")
    for n in names:
        ops.add_column(n, justify="right")
    op_types = sorted({o for b in profile.backends.values() for o in b.ops},
                      key=lambda o: -max(b.ops[o].totals.online.bytes if o in b.ops else 0
                                         for b in profile.backends.values()))
    for o in op_types[:top]:
        ops.add_row(Text(o), *(f"{human_bytes(b.ops[o].totals.online.bytes)} / {b.ops[o].totals.online.rounds:,} "
                         f"(×{b.ops[o].count})" if o in b.ops else "-" for b in profile.backends.values()))
    console.print(ops)
    for b in profile.backends.values():
        for u in b.unsupported:
            shown = ", ".join(u.nodes[:3]) + (f" and {len(u.nodes) - 3} more" if len(u.nodes) > 3 else "")
            console.print(Text(f"unsupported on {b.name}: {u.op_type} ({shown}): {u.reason}", style="red"))


def _find_path(tree: TreeNode, path: tuple[str, ...]) -> TreeNode | None:
    return tree.find(*path)


def _sort_key(profile: Profile, backend: str, path: tuple[str, ...]) -> int:
    found = _find_path(profile.backends[backend].tree, path)
    return found.totals.online.bytes if found else 0


def _md_escape(value: object) -> str:
    """Escape text from the model for a Markdown table cell (pipes, HTML, backticks, newlines)."""
    s = str(value)
    for a, b in (("\\", "\\\\"), ("|", "\\|"), ("`", "\\`"), ("*", "\\*"), ("_", "\\_"),
                 ("<", "&lt;"), (">", "&gt;"), ("[", "\\["), ("]", "\\]")):
        s = s.replace(a, b)
    return " ".join(s.split())


def render_markdown(profile: Profile, depth: int = 1, top: int = 15, nets: Sequence[Network] = DEFAULT_NETWORKS) -> str:
    """Paper-pasteable Markdown tables, rendered from the JSON dict (so training phases show when present)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=False,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["md"] = _md_escape
    env.filters["hb"] = human_bytes
    env.filters["ex"] = exact
    env.filters["hs"] = human_seconds
    data = profile.to_dict() if hasattr(profile, "to_dict") else profile
    view = build_view(data, nets, depth=depth, top=top, max_rows=1)
    view["any_unsupported"] = any(b.get("unsupported") for b in view["backends"].values())
    return env.get_template("report.md.j2").render(**view)
