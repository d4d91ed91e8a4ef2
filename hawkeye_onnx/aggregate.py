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
import onnx

from hawkeye_onnx.cost import BackendCost, StepCost
from hawkeye_onnx.ir import Graph, Node, node_label, node_names, paused_gc
from hawkeye_onnx.result import BackendReport, OpSummary, Totals, TreeNode, UnsupportedOp
from hawkeye_onnx.scope import ScopeIndex

_enc = json.encoder.encode_basestring  # a str as a JSON literal, non-ASCII kept (as json.dumps(ensure_ascii=False))


class ModuleIndex:
    """Module ids for every scope prefix in the graph, shared by all backends.

    Made from a graph's `scope.ScopeIndex` and its nodes (IR nodes, or the model's NodeProtos: only their
    names and op types are read), so that a background process can make it from the model alone
    (`profile.py`); it pickles with what the JSON writer reads, without the nodes and their names
    (`with_nodes`)."""

    @paused_gc()
    def __init__(self, scope_index: ScopeIndex, nodes: Sequence[Node] | Sequence[onnx.NodeProto]) -> None:
        ids: dict[tuple[str, ...], int] = {(): 0}
        self.names: list[str] = ["model"]  # each module's name: the last segment of its path
        parent, depth = [-1], [0]
        scopes, node_scope = scope_index
        scope_module = []
        for scope in scopes:  # in the order nodes first use them: modules are numbered as nodes reach them
            mid = ids.get(scope)
            if mid is None:
                for d in range(1, len(scope) + 1):
                    prefix = scope[:d]
                    if prefix not in ids:
                        ids[prefix] = len(self.names)
                        self.names.append(prefix[-1])
                        parent.append(ids[prefix[:-1]])
                        depth.append(d)
                mid = ids[scope]
            scope_module.append(mid)
        self.node_module = np.asarray(scope_module, dtype=np.int64)[node_scope].reshape(len(nodes))
        self.parent = np.asarray(parent, dtype=np.int64)  # a module's id is above its parent's
        self.level = np.asarray(depth, dtype=np.int64)  # each module's depth in the tree (the root is 0)
        # Deepest level first: (modules at depth d, their parents), to add every module into its parent.
        self.levels = [(np.flatnonzero(self.level == d), self.parent[self.level == d])
                       for d in range(int(self.level.max()), 0, -1)]
        self._nodes: Sequence[Node] | Sequence[onnx.NodeProto] | None = nodes
        self._name_json: np.ndarray | None = None  # per node: its name's JSON (`node_name_json`), once made
        self._named = np.zeros(0, dtype=bool)  # per node: made

    #: What a background process sends (`__getstate__`); the rest is remade from it on first use. Not the
    #: nodes' names: the receiver has them (`with_nodes`).
    _SENT = ("head_json", "dfs", "node_order", "_runs", "_level_runs")

    def __getstate__(self) -> dict[str, object]:
        for cached in self._SENT:
            getattr(self, cached)
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_nodes", "children", "_name_json", "_named")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, _nodes=None, _name_json=None, _named=np.zeros(0, dtype=bool))

    def with_nodes(self, nodes: Sequence[Node], name_json: np.ndarray | None = None) -> ModuleIndex:
        """This index (made by another process from the same model) with this process's nodes, and their
        `node_name_json` when made already (`node_names_json`)."""
        self._nodes = nodes
        if name_json is not None:
            self._name_json, self._named = name_json, np.ones(len(name_json), dtype=bool)
        return self

    def module_totals(self, node_cost: np.ndarray) -> np.ndarray:
        """Each module's cost (its nodes' and its submodules'), as int64 rows: sums of presorted runs
        (`np.add.reduceat`), exact (no float weights) and without `np.add.at`'s per-element dispatch."""
        out = np.zeros((len(self.names), node_cost.shape[1]), dtype=np.int64)
        mods, starts = self._runs
        if len(starts):
            out[mods] = np.add.reduceat(node_cost[self.node_order], starts, axis=0)
        for level_mods, parents, order, starts in self._level_runs:  # deepest level first
            out[parents] += np.add.reduceat(out[level_mods[order]], starts, axis=0)
        return out

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray]:
        """The modules that have nodes, and where each one's run starts in `node_order`."""
        owner = self.node_module[self.node_order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
        return owner[starts], starts

    @cached_property
    def _level_runs(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per level (deepest first): its modules, their distinct parents, the modules' order by parent and
        where each parent's run starts in it."""
        out = []
        for mods, parents in self.levels:
            order = np.argsort(parents, kind="stable")
            by_parent = parents[order]
            starts = np.flatnonzero(np.r_[True, by_parent[1:] != by_parent[:-1]])
            out.append((mods, by_parent[starts], order, starts))
        return out

    @cached_property
    def children(self) -> list[list[int]]:
        """Each module's children, in id order."""
        out: list[list[int]] = [[] for _ in self.names]
        for m, p in enumerate(self.parent.tolist()[1:], start=1):
            out[p].append(m)
        return out

    @cached_property
    def head_json(self) -> np.ndarray:
        """`{"name": <module name>, "kind": "module", ` per module (object array): the start of its JSON record."""
        return _objects(['{"name": ' + _enc(name) + ', "kind": "module", ' for name in self.names])

    @cached_property
    def dfs(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each module opens and closes in a depth-first walk (children in id order): the order of the
        tree's JSON text, so that every backend's text is laid out by sorting, not by recursion.

        A module's position in the preorder is that of its path of ids (root ... module) in lexicographic
        order; before its open come the modules before it in the preorder that are not its ancestors, each
        opened and closed: open = 2 * preorder - depth; its close follows its subtree: open + 2 * size - 1."""
        n, top = len(self.names), int(self.level.max())
        ancestors = np.full((n, top + 1), -1, dtype=np.int64)  # [m, d]: m's ancestor at depth d, -1 below m
        at, current = self.level.copy(), np.arange(n)
        for _ in range(top + 1):
            live = at >= 0
            ancestors[live, at[live]] = current[live]
            current = np.where(live, self.parent[current], -1)
            at = at - 1
        order = np.lexsort(ancestors.T[::-1])  # the last key sorts first: depth 0, then 1, ...
        pre = np.empty(n, dtype=np.int64)
        pre[order] = np.arange(n)
        size = np.ones(n, dtype=np.int64)
        for mods, parents in self.levels:
            np.add.at(size, parents, size[mods])
        opens = 2 * pre - self.level
        return opens, opens + 2 * size - 1

    @cached_property
    def node_order(self) -> np.ndarray:
        """Node indices ordered by (module, index): the order of every module's nodes in the tree."""
        return np.argsort(self.node_module, kind="stable")

    def node_name_json(self, idx: np.ndarray) -> np.ndarray:
        """`{"name": <node name>` of the nodes `idx` (object array), the start of each one's JSON record: made
        when first asked for, node by node (a training graph's tree shows a third of its nodes, those that cost
        something under one of the style's backends; the others' names are never made)."""
        assert self._nodes is not None, "an index from another process needs `with_nodes`"
        if self._name_json is None:
            self._name_json = np.empty(len(self.node_module), dtype=object)
            self._named = np.zeros(len(self.node_module), dtype=bool)
        missing = idx[~self._named[idx]]  # a node asked for twice would be made twice, the same (not worth a sort)
        if len(missing):
            self._name_json[missing] = node_names_json(self._nodes, missing)
            self._named[missing] = True
        return self._name_json[idx]


def node_names_json(nodes: Sequence[Node] | Sequence[onnx.NodeProto], idx: np.ndarray | None = None) -> np.ndarray:
    """`{"name": <node name>` of every node, or of the nodes `idx` (object array), the start of each one's JSON
    record in the tree."""
    if idx is None:
        return _objects(['{"name": ' + _enc(node_label(n, i)) for i, n in enumerate(nodes)])
    at = idx.tolist()
    return _objects(['{"name": ' + _enc(name or node_label(nodes[i], i))
                     for i, name in zip(at, node_names(nodes, at), strict=True)])  # type: ignore[arg-type]


def _distinct_rows(table: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """The distinct rows of an int64 table (as lists of Python ints) and, per row, the index of its distinct
    row: big models repeat a few cost rows thousands of times, so each is formatted once. Rows are compared
    as raw bytes (one sort of fixed-size keys), exactly."""
    table = np.ascontiguousarray(table, dtype=np.int64)
    if not len(table):
        return [], np.zeros(0, dtype=np.int64)
    keys = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return table[first].tolist(), inverse.ravel()


def _objects(items: list[str]) -> np.ndarray:
    """A 1-D object array of strings (np.asarray would make a fixed-width string array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


#: What comes before a record in the tree's text: nothing, or `, ` after another record of its list (an object
#: array: indexing it gives the same two strings, no new ones per record)
_SEPARATORS = np.array(["", ", "], dtype=object)


def _totals_json(row: Sequence[int]) -> str:
    a, b, c, d = row
    return f'"online": {{"bytes": {a}, "rounds": {b}}}, "offline": {{"bytes": {c}, "rounds": {d}}}'


class TreeSource:
    """One backend's module tree, kept as arrays: `build()` makes the TreeNode records (the Python API),
    `json()` writes the tree's JSON text directly, without them.

    A million-node model has millions of tree records; the JSON writer needs none of them. Nodes priced
    by one rule variant share their primitive list, and repeated blocks repeat the same numbers, so each
    distinct (node totals, primitive calls and costs) row is formatted once and glued to node names."""

    def __init__(self, graph: Graph, cost: BackendCost, modules: ModuleIndex, mod_cost: np.ndarray,
                 depth: int | None) -> None:
        self.graph, self.cost, self.modules, self.mod_cost, self.depth = graph, cost, modules, mod_cost, depth

    @cached_property
    def mod_rows(self) -> list[list[int]]:
        return self.mod_cost.tolist()

    def _batches(self) -> list[list[StepCost]]:
        batches: dict[int, list[StepCost]] = {}
        for step in self.cost.steps:
            batches.setdefault(step.batch, []).append(step)
        return list(batches.values())

    def _costed(self) -> np.ndarray:
        """Nodes with at least one primitive call, ordered by (module, index): each module's slice of the tree."""
        mask = np.zeros(len(self.graph.nodes), dtype=bool)
        for b in self._batches():
            mask[b[0].nodes] = True
        order = self.modules.node_order
        return order[mask[order]]

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
            return TreeNode(node_label(node, i), "node", totals(node_rows[i]), prims,
                            op_type=node.op_type)

        def module_tree(m: int, level: int) -> TreeNode:
            kids: list[TreeNode] = []
            if depth is None or level < depth:
                kids = [module_tree(c, level + 1) for c in modules.children[m] if any(self.mod_rows[c])]
                kids += [node_tree(i, level + 1) for i in nodes_of[m]]
            return TreeNode(modules.names[m], "module", totals(self.mod_rows[m]), tuple(kids))

        return module_tree(0, 0)

    def _node_tails(self, full: bool, bare: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The JSON records of every costed node after its name (`ModuleIndex.node_name_json`), with (`full`)
        and without (`bare`) their primitives: object arrays by node index, None where not asked for."""
        n = len(self.graph.nodes)
        out_full = np.empty(n, dtype=object) if full else None
        out_bare = np.empty(n, dtype=object) if bare else None
        for steps in self._batches():
            nodes = steps[0].nodes
            op = _enc(self.graph.nodes[int(nodes[0])].op_type)
            table = np.column_stack([self.cost.node_cost[nodes]] + [np.column_stack([s.calls, s.cost]) for s in steps])
            rows, inverse = _distinct_rows(table)
            tails_full, tails_bare = [], []
            for row in rows:
                tail = f', "kind": "node", "op_type": {op}, {_totals_json(row[:4])}, "children": ['
                if full:
                    prims = ", ".join(
                        f'{{"name": {_enc(s.prim)}, "kind": "primitive", "calls": {row[4 + 5 * j]}, '
                        f'{_totals_json(row[5 + 5 * j: 9 + 5 * j])}, "children": []}}'
                        for j, s in enumerate(steps))
                    tails_full.append(tail + prims + "]}")
                tails_bare.append(tail + "]}")
            if out_full is not None:
                out_full[nodes] = _objects(tails_full)[inverse]
            if out_bare is not None:
                out_bare[nodes] = _objects(tails_bare)[inverse]
        return out_full, out_bare

    def json(self) -> str:
        """The tree's JSON text, equal to `json.dumps(self.build().to_dict(), ensure_ascii=False)`."""
        with paused_gc():
            return self._json()

    def _json(self) -> str:
        """Every record of the tree is one row of string parts: its separator (`, ` for a record after anything
        but an open, else nothing), then module heads (name; totals and `"children": [`), node records (name; the
        rest) and module closes (`]}`; ``). Their order is the depth-first walk (`ModuleIndex.dfs`), a node's
        record just before its module's close. The parts are joined once: no record is glued into a new string
        before."""
        modules, depth = self.modules, self.depth
        limit = np.iinfo(np.int64).max if depth is None else depth
        level = modules.level
        keep = np.any(self.mod_cost != 0, axis=1) & (level <= limit)
        keep[0] = True  # the root, even when it costs nothing (a module that costs nothing has no costly child)
        kept = np.flatnonzero(keep)
        opens, closes = modules.dfs
        rows, inverse = _distinct_rows(self.mod_cost[kept])
        totals = _objects([_totals_json(row) + ', "children": [' for row in rows])

        costed = self._costed()
        where = modules.node_module[costed]
        shown = keep[where] & (level[where] < limit)
        costed, where = costed[shown], where[shown]
        with_prims = level[where] + 1 < limit
        full, bare = self._node_tails(bool(with_prims.any()), not with_prims.all())
        if not len(costed):
            records = np.zeros(0, dtype=object)
        elif bare is None:
            records = full[costed]
        elif full is None:
            records = bare[costed]
        else:
            records = np.where(with_prims, full[costed], bare[costed])

        n_mod, n_node = len(kept), len(costed)
        key = np.concatenate([2 * opens[kept], 2 * closes[where] - 1, 2 * closes[kept]])
        kind = np.concatenate([np.zeros(n_mod, np.int8), np.ones(n_node, np.int8), np.full(n_mod, 2, np.int8)])
        order = np.lexsort((np.concatenate([np.zeros(n_mod, np.int64), costed, np.zeros(n_mod, np.int64)]), key))
        at = np.empty_like(order)  # each record's place in the text
        at[order] = np.arange(len(order))
        in_order = kind[order]
        comma = np.zeros(len(order), dtype=np.intp)  # an open or a node record after anything but an open
        comma[1:] = (in_order[1:] != 2) & (in_order[:-1] != 0)
        at_open, at_node, at_close = at[:n_mod], at[n_mod:n_mod + n_node], at[n_mod + n_node:]
        parts = np.empty((len(order), 3), dtype=object)
        parts[:, 0] = _SEPARATORS[comma]  # in text order
        parts[at_open, 1] = modules.head_json[kept]
        parts[at_open, 2] = totals[inverse]
        parts[at_node, 1] = modules.node_name_json(costed)
        parts[at_node, 2] = records
        parts[at_close, 1] = "]}"
        parts[at_close, 2] = ""
        return "".join(parts.ravel().tolist())


@paused_gc()
def build_report(graph: Graph, cost: BackendCost, modules: ModuleIndex, depth: int | None) -> BackendReport:
    """Turn one backend's node costs into its report section."""
    backend = cost.backend
    mod_cost = modules.module_totals(cost.node_cost)

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
        total=Totals.of(mod_cost[0].tolist()),
        tree=TreeSource(graph, cost, modules, mod_cost, depth),
        ops={k: OpSummary(op_count[k], Totals.of(op_cost[k].tolist()))
             for k in sorted(op_order, key=lambda k: -op_cost[k][0])},
        primitives={k: OpSummary(prim_calls[k], Totals.of(v.tolist()))
                    for k, v in sorted(prim_totals.items(), key=lambda kv: -kv[1][0])},
        unsupported=tuple(UnsupportedOp(u.op_type, u.reason, u.nodes) for u in cost.unsupported),
    )
