"""Aggregation stage: fold per-node costs into the module tree, per op type and per primitive.

The tree is module prefix -> node -> primitive call, with totals at every level. Module totals are
computed with one `np.add.at` into each node's deepest module and one pass that adds every module
into its parent (deepest first), so the cost is linear in nodes plus modules. Subtrees that cost
nothing are left out of the tree (plumbing such as Reshape); the totals are unaffected.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from hawkeye_onnx.cost import BackendCost, StepCost
from hawkeye_onnx.ir import Graph, paused_gc
from hawkeye_onnx.result import BackendReport, OpSummary, Totals, TreeNode, UnsupportedOp

_enc = json.encoder.encode_basestring  # a str as a JSON literal, non-ASCII kept (as json.dumps(ensure_ascii=False))


class ModuleIndex:
    """Module ids for every scope prefix in the graph, shared by all backends."""

    @paused_gc()
    def __init__(self, graph: Graph) -> None:
        ids: dict[tuple[str, ...], int] = {(): 0}
        self.paths: list[tuple[str, ...]] = [()]
        self.parent: list[int] = [-1]
        node_module = []
        for node in graph.nodes:
            mid = ids.get(node.scope)
            if mid is None:
                for depth in range(1, len(node.scope) + 1):
                    prefix = node.scope[:depth]
                    if prefix not in ids:
                        ids[prefix] = len(self.paths)
                        self.paths.append(prefix)
                        self.parent.append(ids[prefix[:-1]])
                mid = ids[node.scope]
            node_module.append(mid)
        self.node_module = np.asarray(node_module, dtype=np.int64).reshape(len(graph.nodes))
        self.children: list[list[int]] = [[] for _ in self.paths]
        for m in range(1, len(self.paths)):
            self.children[self.parent[m]].append(m)
        # Deepest level first: (modules at depth d, their parents), to add every module into its parent.
        depth = np.asarray([len(p) for p in self.paths], dtype=np.int64)
        parent = np.asarray(self.parent, dtype=np.int64)
        self.levels = [(np.flatnonzero(depth == d), parent[depth == d]) for d in range(int(depth.max()), 0, -1)]
        self._graph = graph

    @cached_property
    def name_json(self) -> list[str]:
        """Each module's name as a JSON string literal."""
        return [_enc(p[-1] if p else "model") for p in self.paths]

    @cached_property
    def node_name_json(self) -> np.ndarray:
        """`{"name": <node name>` per node (object array), the start of every node's JSON record."""
        return np.asarray(['{"name": ' + _enc(n.name or f"{n.op_type}_{i}") for i, n in enumerate(self._graph.nodes)]
                          + [""], dtype=object)[:-1]


def _totals_json(row: Sequence[int]) -> str:
    a, b, c, d = row
    return f'"online": {{"bytes": {a}, "rounds": {b}}}, "offline": {{"bytes": {c}, "rounds": {d}}}'


class TreeSource:
    """One backend's module tree, kept as arrays: `build()` makes the TreeNode records (the Python API),
    `json()` writes the tree's JSON text directly, without them.

    A million-node model has millions of tree records; the JSON writer needs none of them. Nodes priced
    by one rule variant share their primitive list, and repeated blocks repeat the same numbers, so each
    distinct (node totals, primitive calls and costs) row is formatted once and glued to node names."""

    def __init__(self, graph: Graph, cost: BackendCost, modules: ModuleIndex, mod_rows: list[list[int]],
                 depth: int | None) -> None:
        self.graph, self.cost, self.modules, self.mod_rows, self.depth = graph, cost, modules, mod_rows, depth

    def _batches(self) -> list[list[StepCost]]:
        batches: dict[int, list[StepCost]] = {}
        for step in self.cost.steps:
            batches.setdefault(step.batch, []).append(step)
        return list(batches.values())

    def _costed(self) -> np.ndarray:
        """Nodes with at least one primitive call, ordered by (module, index): each module's slice of the tree."""
        parts = [b[0].nodes for b in self._batches()]
        costed = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        order = np.lexsort((costed, self.modules.node_module[costed]))
        return costed[order]

    def build(self) -> TreeNode:
        with paused_gc():
            return self._build()

    def _build(self) -> TreeNode:
        graph, cost, modules, depth = self.graph, self.cost, self.modules, self.depth
        per_node: dict[int, list[tuple[str, int, list[int]]]] = defaultdict(list)
        for step in cost.steps:
            for i, c, row in zip(step.nodes.tolist(), step.calls.tolist(), step.cost.tolist(), strict=True):
                per_node[i].append((step.prim, c, row))
        node_rows = cost.node_cost.tolist()
        interned: dict[tuple[int, ...], Totals] = {}

        def totals(row: list[int]) -> Totals:
            """Repeated blocks give identical rows: share one Totals object per distinct row."""
            key = tuple(row)
            found = interned.get(key)
            if found is None:
                found = interned[key] = Totals.of(row)
            return found

        nodes_of: dict[int, list[int]] = defaultdict(list)
        for i in sorted(per_node):
            nodes_of[int(modules.node_module[i])].append(i)

        def node_tree(i: int, level: int) -> TreeNode:
            node = graph.nodes[i]
            prims = ()
            if depth is None or level < depth:
                prims = tuple(TreeNode(p, "primitive", totals(row), calls=c) for p, c, row in per_node[i])
            return TreeNode(node.name or f"{node.op_type}_{i}", "node", totals(node_rows[i]), prims,
                            op_type=node.op_type)

        def module_tree(m: int, level: int) -> TreeNode:
            kids: list[TreeNode] = []
            if depth is None or level < depth:
                kids = [module_tree(c, level + 1) for c in modules.children[m] if any(self.mod_rows[c])]
                kids += [node_tree(i, level + 1) for i in nodes_of[m]]
            name = modules.paths[m][-1] if modules.paths[m] else "model"
            return TreeNode(name, "module", totals(self.mod_rows[m]), tuple(kids))

        return module_tree(0, 0)

    def _node_json(self) -> tuple[np.ndarray, np.ndarray]:
        """JSON records of every costed node, with and without their primitives (object arrays by node)."""
        n = len(self.graph.nodes)
        full = np.empty(n, dtype=object)
        bare = np.empty(n, dtype=object)
        heads = self.modules.node_name_json
        for steps in self._batches():
            nodes = steps[0].nodes
            op = _enc(self.graph.nodes[int(nodes[0])].op_type)
            table = np.column_stack([self.cost.node_cost[nodes]] + [np.column_stack([s.calls, s.cost]) for s in steps])
            distinct: dict[tuple[int, ...], int] = {}  # exact, and faster than np.unique(axis=0) on rows
            inverse = np.fromiter((distinct.setdefault(tuple(r), len(distinct)) for r in table.tolist()),
                                  dtype=np.int64, count=len(table))
            tails_full, tails_bare = [], []
            for row in distinct:
                prims = ", ".join(
                    f'{{"name": {_enc(s.prim)}, "kind": "primitive", "calls": {row[4 + 5 * j]}, '
                    f'{_totals_json(row[5 + 5 * j: 9 + 5 * j])}, "children": []}}'
                    for j, s in enumerate(steps))
                tail = f', "kind": "node", "op_type": {op}, {_totals_json(row[:4])}, "children": ['
                tails_full.append(tail + prims + "]}")
                tails_bare.append(tail + "]}")
            full[nodes] = heads[nodes] + np.asarray(tails_full, dtype=object)[inverse]
            bare[nodes] = heads[nodes] + np.asarray(tails_bare, dtype=object)[inverse]
        return full, bare

    def json(self) -> str:
        """The tree's JSON text, equal to `json.dumps(self.build().to_dict(), ensure_ascii=False)`."""
        with paused_gc():
            return self._json()

    def _json(self) -> str:
        modules, depth, mod_rows = self.modules, self.depth, self.mod_rows
        full, bare = self._node_json()
        costed = self._costed()
        where = modules.node_module[costed]
        bounds = np.searchsorted(where, np.arange(len(modules.paths) + 1))
        full_l = full[costed].tolist()
        bare_l = bare[costed].tolist()
        nonzero = [any(r) for r in mod_rows]
        names = modules.name_json
        out: list[str] = []

        def emit(m: int, level: int) -> None:
            out.append(f'{{"name": {names[m]}, "kind": "module", {_totals_json(mod_rows[m])}, "children": [')
            if depth is None or level < depth:
                first = True
                for c in modules.children[m]:
                    if nonzero[c]:
                        if not first:
                            out.append(", ")
                        emit(c, level + 1)
                        first = False
                a, b = int(bounds[m]), int(bounds[m + 1])
                if b > a:
                    if not first:
                        out.append(", ")
                    out.append(", ".join((full_l if depth is None or level + 1 < depth else bare_l)[a:b]))
            out.append("]}")

        emit(0, 0)
        return "".join(out)


@paused_gc()
def build_report(graph: Graph, cost: BackendCost, modules: ModuleIndex, depth: int | None) -> BackendReport:
    """Turn one backend's node costs into its report section."""
    backend = cost.backend
    mod_cost = np.zeros((len(modules.paths), 4), dtype=np.int64)
    np.add.at(mod_cost, modules.node_module, cost.node_cost)
    for mods, parents in modules.levels:
        np.add.at(mod_cost, parents, mod_cost[mods])
    mod_rows = mod_cost.tolist()

    prim_totals: dict[str, np.ndarray] = {}
    prim_calls: dict[str, int] = defaultdict(int)
    op_first: dict[str, int] = {}
    op_count: dict[str, int] = defaultdict(int)
    op_cost: dict[str, np.ndarray] = {}
    seen_batches: set[int] = set()
    for step in cost.steps:
        prim_totals.setdefault(step.prim, np.zeros(4, dtype=np.int64))
        prim_totals[step.prim] += step.cost.sum(axis=0)
        prim_calls[step.prim] += int(step.calls.sum())
        if step.batch in seen_batches or not len(step.nodes):
            continue
        seen_batches.add(step.batch)
        op = graph.nodes[int(step.nodes[0])].op_type
        op_first[op] = min(op_first.get(op, len(graph.nodes)), int(step.nodes.min()))
        op_count[op] += len(step.nodes)
        op_cost.setdefault(op, np.zeros(4, dtype=np.int64))
        op_cost[op] += cost.node_cost[step.nodes].sum(axis=0)
    op_order = sorted(op_first, key=op_first.__getitem__)  # first costed node, as the tables list them

    sources = {op: r.source for op, r in sorted(backend.ops.items())}
    return BackendReport(
        name=backend.name,
        title=backend.title,
        version=backend.version,
        params=dict(backend.param_values),
        sources=sources,
        total=Totals.of(mod_rows[0]),
        tree=TreeSource(graph, cost, modules, mod_rows, depth),
        ops={k: OpSummary(op_count[k], Totals.of(op_cost[k].tolist()))
             for k in sorted(op_order, key=lambda k: -op_cost[k][0])},
        primitives={k: OpSummary(prim_calls[k], Totals.of(v.tolist()))
                    for k, v in sorted(prim_totals.items(), key=lambda kv: -kv[1][0])},
        unsupported=tuple(UnsupportedOp(u.op_type, u.reason, u.nodes) for u in cost.unsupported),
    )
