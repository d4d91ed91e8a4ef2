"""The cost stage: price every node of a graph under one backend's rules, one op type at a time.

Nodes are grouped by op type; their shape variables become numpy arrays; each rule formula is then
evaluated once per group (not once per node). The result keeps, for every node, its total and its
breakdown into the primitives its rule calls, which the aggregation stage folds into the module tree.

A node whose inputs are all public costs nothing (every party can compute it locally). An op with no
rule, or a rule marked unsupported, is reported as unsupported by node name, never priced as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hawkeye_onnx.domains import non_default_reason
from hawkeye_onnx.errors import ModelError, RuleError
from hawkeye_onnx.ir import Graph, node_names, op_key, op_keys, paused_gc
from hawkeye_onnx.opvars import REGISTRY, generic_columns
from hawkeye_onnx.rules import Backend, Primitive, Step, node_in_set, node_set_var

#: Four quantities per node: online bytes, online rounds, offline bytes, offline rounds.
QUANTITIES = ("online_bytes", "online_rounds", "offline_bytes", "offline_rounds")

#: `_group_env`'s entry for each node's class of equal shape-variable rows (not a name a rule can spell).
ROW_CLASS = "#rows"
#: From this many nodes, a rule variant is evaluated once per distinct row of variables (`_row_classes`).
DEDUP_MIN = 64
#: Odd 64-bit multipliers of the row hash (fixed: the same classes on every run).
_HASH = np.random.default_rng(0x4A57).integers(1, 2**62, 256, dtype=np.int64) | 1


@dataclass(frozen=True)
class StepCost:
    """One primitive call of a rule, priced for a set of nodes (parallel arrays)."""

    prim: str
    nodes: np.ndarray  # node indices into Graph.nodes
    calls: np.ndarray  # how many times the primitive runs for each node
    cost: np.ndarray  # shape (len(nodes), 4), int64, see QUANTITIES
    batch: int = 0  # steps of one rule variant on one set of nodes share it (their `nodes` are equal)


@dataclass(frozen=True)
class Unsupported:
    op_type: str
    reason: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class BackendCost:
    """Everything the cost stage knows about one backend on one graph."""

    backend: Backend
    node_cost: np.ndarray  # (num_nodes, 4) int64
    steps: tuple[StepCost, ...]
    unsupported: tuple[Unsupported, ...]


def _as_int(value: np.ndarray | int | float, count: int, what: str, where: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value), (count,))
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise RuleError(f"{where}: {what} is not a finite number for some node")
        rounded = np.rint(arr)
        if np.any(np.abs(arr - rounded) > 1e-9 * np.maximum(1.0, np.abs(arr))):
            raise RuleError(f"{where}: {what} is not a whole number (use ceil/floor/ceil_div)")
        arr = rounded
    if arr.dtype.kind == "f" and np.any(arr >= 2.0**62):
        raise RuleError(f"{where}: {what} exceeds 2^62 for some node (absurd dims or parameters)")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise RuleError(f"{where}: {what} is negative for some node (overflow, absurd dims or a rule bug)")
    return arr


class _Evaluator:
    """Evaluates primitives (recursively for composite ones) over arrays of arguments."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.params = {k: v for k, v in backend.param_values.items() if isinstance(v, (int, float))}

    def primitive(self, prim: Primitive, args: Mapping[str, np.ndarray], count: int) -> np.ndarray:
        env: dict[str, object] = dict(self.params)
        env.update(args)
        for name, expr in prim.lets:
            env[name] = _call(expr, env, self.backend, f"primitive {prim.name}")
        out = np.zeros((count, 4), dtype=np.int64)
        if prim.steps:
            for step in prim.steps:
                calls, cost = self.step(step, env, count, f"primitive {prim.name}")
                out += calls[:, None] * cost
            return out
        where = f"{self.backend.path}: primitive {prim.name}"
        for col, formula in ((0, prim.online), (2, prim.offline)):
            if formula is None:
                continue
            out[:, col] = _as_int(_call(formula.bytes, env, self.backend, where), count, "bytes", where)
            out[:, col + 1] = _as_int(_call(formula.rounds, env, self.backend, where), count, "rounds", where)
        return out

    def step(self, step: Step, env: Mapping[str, object], count: int, ctx: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{self.backend.path}: {ctx}, step {step.prim}"
        args = {a: np.broadcast_to(np.asarray(_call(e, env, self.backend, where)), (count,))
                for a, e in step.args.items()}
        calls = _as_int(_call(step.times, env, self.backend, where), count, "times", where)
        cost = self.primitive(self.backend.primitives[step.prim], args, count)
        if step.levels is not None:
            levels = _as_int(_call(step.levels, env, self.backend, where), count, "levels", where)
            cost[:, 1] *= levels
            cost[:, 3] *= levels
        return calls, cost


def _call(expr, env, backend: Backend, where: str):
    try:
        with np.errstate(all="ignore"):
            return expr(env)
    except ZeroDivisionError:
        raise RuleError(f"{where}: division by zero in {expr.text!r}") from None
    except KeyError as exc:
        raise RuleError(f"{where}: unknown variable {exc.args[0]!r} in {expr.text!r}") from None


@paused_gc()
def price(graph: Graph, backend: Backend) -> BackendCost:
    """Price every node of `graph` under `backend`."""
    groups: list[str] = []
    unsupported: dict[str, tuple[str, list[str]]] = {}
    # a node the framework cannot load at all (CrypTen: one tensor in two input slots), public or not
    repeated = repeated_input_nodes(graph) if backend.repeated_input else frozenset()
    for i in sorted(repeated):
        node = graph.nodes[i]
        unsupported.setdefault(op_key(node), (backend.repeated_input, []))[1].append(node.name or op_key(node))
    repeated_idx = np.fromiter(repeated, dtype=np.int64, count=len(repeated))
    for key, idx in graph.columns.groups.items():  # only nodes with a secret input cost anything
        rule = backend.ops.get(key)
        if rule is not None and rule.unsupported is None:
            if not rule.free:
                groups.append(key)
            continue
        if rule is not None:
            reason = rule.unsupported
        elif "::" in key:
            reason = non_default_reason(graph.nodes[int(idx[0])].domain, key, backend.title)
        else:
            reason = backend.unknown_op or f"no {backend.name} rule for {key}"
        unsupported.setdefault(key, (reason, []))[1].extend(
            name or key for name in node_names(graph.nodes, [i for i in idx.tolist() if i not in repeated]))

    evaluator = _Evaluator(backend)
    node_cost = np.zeros((len(graph.nodes), 4), dtype=np.int64)
    steps: list[StepCost] = []
    batch = 0
    for key in groups:
        rule = backend.ops[key]
        env = _group_env(graph, key)
        env.update(evaluator.params)
        indices = graph.columns.groups[key]
        for param in backend.node_sets:
            spec = str(backend.param_values[param])
            env[node_set_var(param)] = (np.array([int(node_in_set(name, spec))
                                                  for name in node_names(graph.nodes, indices.tolist())],
                                                 dtype=np.int64) if spec.strip(", ")
                                        else np.zeros(len(indices), dtype=np.int64))  # the default: no node named
        remaining = np.ones(len(indices), dtype=bool)
        if len(repeated_idx):
            remaining &= ~np.isin(indices, repeated_idx)
        for v_i, variant in enumerate(rule.variants):
            ctx = f"op {key} variant {v_i + 1}"
            mask = remaining.copy()
            if variant.when is not None:
                cond = np.broadcast_to(np.asarray(_call(variant.when, env, backend, ctx), dtype=bool), mask.shape)
                mask &= cond
            if not mask.any():
                continue
            remaining &= ~mask
            if variant.unsupported is not None:
                names = [name or key for name in node_names(graph.nodes, indices[mask].tolist())]
                unsupported.setdefault(key, (variant.unsupported, []))[1].extend(names)
                continue
            sub = {k: (v[mask] if isinstance(v, np.ndarray) and v.shape == mask.shape else v) for k, v in env.items()}
            count = int(mask.sum())
            chosen = indices[mask]
            # Formulas are functions of a node's variables alone: a big model repeats a few rows of them
            # thousands of times, so each distinct row is evaluated once and the results spread back.
            n, spread = count, None
            classes = sub.get(ROW_CLASS)
            if isinstance(classes, np.ndarray) and count >= DEDUP_MIN:
                for param in backend.node_sets:  # 0 or 1 per node, this backend's own
                    flag = sub.get(node_set_var(param))
                    if isinstance(flag, np.ndarray) and flag.shape == classes.shape:
                        classes = classes * 2 + flag
                _, first, spread = np.unique(classes, return_index=True, return_inverse=True)
                if len(first) < count:
                    sub = {k: (v[first] if isinstance(v, np.ndarray) and v.shape == (count,) else v)
                           for k, v in sub.items()}
                    n = len(first)
                else:
                    spread = None
            for name, expr in variant.lets:
                sub[name] = _call(expr, sub, backend, ctx)
            for step in variant.steps:
                calls, cost = evaluator.step(step, sub, n, ctx)
                if spread is not None:
                    calls, cost = calls[spread], cost[spread]
                total = calls[:, None] * cost
                node_cost[chosen] += total
                steps.append(StepCost(step.prim, chosen, calls, total, batch))
            batch += 1
        if remaining.any():
            names = [name or key for name in node_names(graph.nodes, indices[remaining].tolist())]
            reason = f"no variant of the {backend.name} rule for {key} matches these nodes"
            unsupported.setdefault(key, (reason, []))[1].extend(names)
    return BackendCost(backend, node_cost, tuple(steps),
                       tuple(Unsupported(k, r, tuple(n)) for k, (r, n) in sorted(unsupported.items())))


def repeated_input_nodes(graph: Graph) -> frozenset[int]:
    """Indices of the nodes that read one tensor in two or more input slots (``Mul(x, x)``,
    ``Concat(f, f)``, tf2onnx's ``Slice(x, axes, ends, axes)``). An ``Identity`` output counts as its
    source: a harness that strips Identity nodes (CrypTen's) joins the two names. Only the span
    ``graph.extra["onnx_nodes"]`` (default: every node) is what the framework loads from the ONNX file; a
    training graph's loss, backward and optimizer nodes are the expander's, run by the framework's autograd."""
    col = graph.columns
    lo, hi = graph.extra.get("onnx_nodes", (0, len(graph.nodes)))
    # Identity outputs take their source's tensor id (Identity nodes are few: a loop over them is cheap); the
    # nodes are in topological order, so no node after the span writes what a node in it reads
    canon = np.arange(len(col.size), dtype=np.int64)
    identities = [i for i, key in enumerate(op_keys(graph.nodes, 0, hi))
                  if key == "Identity" or key.endswith("::Identity")]
    is_identity = np.zeros(len(graph.nodes), dtype=bool)
    is_identity[identities] = True
    for i in identities:
        a, out = int(col.node_in[i, 0]), int(col.node_out[i])
        if a >= 0 and out >= 0:
            canon[out] = canon[a]
    span = col.node_in[lo:hi]
    ins = np.where(span >= 0, canon[span], -1)
    a, b, c = ins[:, 0], ins[:, 1], ins[:, 2]
    dup = ((a == b) & (a >= 0)) | ((a == c) & (a >= 0)) | ((b == c) & (b >= 0))
    out = set((np.flatnonzero(dup & ~is_identity[lo:hi]) + lo).tolist())
    wide = [n for n in graph.nodes[lo:hi] if len(n.inputs) > 3 and n.op_type != "Identity"]  # Concat, ...
    if wide:  # by name
        for node in wide:
            read = [int(canon[graph.tensor_id(x)]) for x in node.inputs if x]
            if len(set(read)) < len(read):
                out.add(node.index)
    return frozenset(out)


def _group_env(graph: Graph, key: str) -> dict[str, object]:
    """Shape variables of the op group `key` (every node of that op type with a secret input) as columns,
    one numpy array per variable; computed once per graph and shared by every backend."""
    cache = graph.opvars_cache
    env = cache.get(key)
    if env is None:
        idx = graph.columns.groups[key]
        env = generic_columns(graph, idx)
        extra = REGISTRY.get(key)
        found = extra.columns(graph, idx) if extra is not None and extra.columns is not None else None
        if found is not None:
            env.update(found)
        elif extra is not None:
            rows = []
            for i in idx.tolist():
                node = graph.nodes[i]
                try:
                    rows.append(extra.compute(node, graph))
                except (IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
                    raise ModelError(f"{key} node {node.name!r}: its attributes do not fit its input shapes "
                                     f"({type(exc).__name__}: {str(exc)[:80]}); check the export") from None
            table = np.asarray(rows, dtype=object).reshape(len(rows), len(extra.names))
            for j, name in enumerate(extra.names):
                col = table[:, j]
                env[name] = col.astype(np.float64) if any(isinstance(x, float) for x in col) else col.astype(np.int64)
        classes = _row_classes(env, len(idx))
        if classes is not None:
            env[ROW_CLASS] = classes
        cache[key] = env
    return dict(env)


def _row_classes(env: Mapping[str, object], m: int) -> np.ndarray | None:
    """Per node of a group of `m`, a class number shared exactly by the nodes whose variables in `env` are all
    equal (floats by their bits); None where a variable is not a plain number per node."""
    cols = []
    for v in env.values():
        if not isinstance(v, np.ndarray):
            continue  # a scalar: the same for every node
        if v.shape != (m,) or v.dtype.kind not in "biuf" or v.dtype.itemsize > 8:
            return None
        cols.append(v.astype(np.float64, copy=False).view(np.int64) if v.dtype.kind == "f"
                    else v.astype(np.int64, copy=False))
    if not cols:
        return np.zeros(m, dtype=np.int64)
    if len(cols) > len(_HASH):
        return None
    table = np.column_stack(cols)
    with np.errstate(over="ignore"):
        hashed = table @ _HASH[:len(cols)]  # wraps around mod 2^64
    _, first, classes = np.unique(hashed, return_index=True, return_inverse=True)
    if not np.array_equal(table[first[classes]], table):  # two different rows hashed alike: compare rows
        keys = np.ascontiguousarray(table).view(np.dtype((np.void, 8 * len(cols)))).ravel()
        _, classes = np.unique(keys, return_inverse=True)
    return classes.reshape(m)
