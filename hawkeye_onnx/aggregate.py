"""Aggregation stage: fold per-node costs into the module tree, per op type and per primitive.

The tree is module prefix -> node -> primitive call, with totals at every level. Module totals are
computed with one `np.add.at` into each node's deepest module and one pass that adds every module
into its parent (deepest first), so the cost is linear in nodes plus modules. Subtrees that cost
nothing are left out of the tree (plumbing such as Reshape); the totals are unaffected.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from hawkeye_onnx.cost import BackendCost
from hawkeye_onnx.ir import Graph
from hawkeye_onnx.result import BackendReport, OpSummary, Totals, TreeNode, UnsupportedOp


class ModuleIndex:
    """Module ids for every scope prefix in the graph, shared by all backends."""

    def __init__(self, graph: Graph) -> None:
        ids: dict[tuple[str, ...], int] = {(): 0}
        self.paths: list[tuple[str, ...]] = [()]
        self.parent: list[int] = [-1]
        node_module = np.empty(len(graph.nodes), dtype=np.int64)
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
            node_module[node.index] = mid
        self.node_module = node_module
        self.depth_order = sorted(range(1, len(self.paths)), key=lambda m: -len(self.paths[m]))


def build_report(graph: Graph, cost: BackendCost, modules: ModuleIndex, depth: int | None) -> BackendReport:
    """Turn one backend's node costs into its report section."""
    backend = cost.backend
    mod_cost = np.zeros((len(modules.paths), 4), dtype=np.int64)
    np.add.at(mod_cost, modules.node_module, cost.node_cost)
    for m in modules.depth_order:
        mod_cost[modules.parent[m]] += mod_cost[m]

    # Per node: its primitive calls, in rule order.
    per_node: dict[int, list[tuple[str, int, np.ndarray]]] = defaultdict(list)
    prim_totals: dict[str, np.ndarray] = {}
    prim_calls: dict[str, int] = defaultdict(int)
    for step in cost.steps:
        prim_totals.setdefault(step.prim, np.zeros(4, dtype=np.int64))
        prim_totals[step.prim] += step.cost.sum(axis=0)
        prim_calls[step.prim] += int(step.calls.sum())
        # Python ints once per array: converting numpy scalars one by one costs ~15 us each.
        for i, c, row in zip(step.nodes.tolist(), step.calls.tolist(), step.cost.tolist(), strict=True):
            per_node[i].append((step.prim, c, row))
    node_rows = cost.node_cost.tolist()
    mod_rows = mod_cost.tolist()
    interned: dict[tuple[int, ...], Totals] = {}

    def totals(row: list[int]) -> Totals:
        """Repeated blocks give identical rows: share one Totals object per distinct row."""
        key = tuple(row)
        found = interned.get(key)
        if found is None:
            found = interned[key] = Totals.of(row)
        return found

    op_count: dict[str, int] = defaultdict(int)
    op_cost: dict[str, np.ndarray] = {}
    costed = sorted(per_node)
    for i in costed:
        op = graph.nodes[i].op_type
        op_count[op] += 1
        op_cost.setdefault(op, np.zeros(4, dtype=np.int64))
        op_cost[op] += cost.node_cost[i]

    children: dict[int, list[int]] = defaultdict(list)
    for m in range(1, len(modules.paths)):
        children[modules.parent[m]].append(m)
    nodes_of: dict[int, list[int]] = defaultdict(list)
    for i in costed:
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
            kids = [module_tree(c, level + 1) for c in children[m] if any(mod_rows[c])]
            kids += [node_tree(i, level + 1) for i in nodes_of[m]]
        name = modules.paths[m][-1] if modules.paths[m] else "model"
        return TreeNode(name, "module", totals(mod_rows[m]), tuple(kids))

    sources = {op: r.source for op, r in sorted(backend.ops.items())}
    return BackendReport(
        name=backend.name,
        title=backend.title,
        version=backend.version,
        params=dict(backend.param_values),
        sources=sources,
        total=Totals.of(mod_rows[0]),
        tree=module_tree(0, 0),
        ops={k: OpSummary(op_count[k], Totals.of(v.tolist()))
             for k, v in sorted(op_cost.items(), key=lambda kv: -kv[1][0])},
        primitives={k: OpSummary(prim_calls[k], Totals.of(v.tolist()))
                    for k, v in sorted(prim_totals.items(), key=lambda kv: -kv[1][0])},
        unsupported=tuple(UnsupportedOp(u.op_type, u.reason, u.nodes) for u in cost.unsupported),
    )
