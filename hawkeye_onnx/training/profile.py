"""Price one training step per backend and split it into phases.

For each backend the graph is expanded in that framework's autodiff style (what its autodiff really
computes, `grads.STYLES`), loaded through the core pipeline (shape inference, IR), priced by the
backend's rules and aggregated into the module tree (backward nodes land in their forward node's
module). A backward node is priced by the rule `backward::<Op>` when the backend has one (the same
op costs differently inside a framework's autograd than in an ONNX model it loads, e.g. a ReduceSum
with an axes input, or ConvTranspose, which crypten.nn.from_onnx cannot load but its autograd runs),
else by the op's own rule; likewise `train::<Op>` for a forward op that runs differently in training
mode (BatchNormalization with batch statistics). Phases are the node ranges the expander reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx

from hawkeye_onnx import background
from hawkeye_onnx.aggregate import ModuleIndex, build_report
from hawkeye_onnx.cost import price
from hawkeye_onnx.errors import HawkeyeWarning
from hawkeye_onnx.ir import Graph, Node, build_graph, op_keys, paused_gc, read_structure, with_domains
from hawkeye_onnx.load import BoundModel, LoadedModel, ReadModel, bind, infer, infer_table, read_model, require_static
from hawkeye_onnx.load import loaded as loaded_model
from hawkeye_onnx.profile import CONVENTIONS, child_bound, overlap_min_nodes
from hawkeye_onnx.result import BackendReport, ModelInfo, Profile, SpillFile, Totals, UnsupportedOp
from hawkeye_onnx.rules import Backend, load_backends
from hawkeye_onnx.scope import may_have_metadata, scope_index
from hawkeye_onnx.shapes import ShapeTable
from hawkeye_onnx.training.expand import (
    _FLOAT,
    PHASES,
    ModelFacts,
    TrainOptions,
    declare_shapes,
    expand_with_builder,
    model_facts,
)
from hawkeye_onnx.training.graph import Forward, ForwardScopes, build, forward_ir, forward_scopes

#: The autodiff a backend's framework runs (others: the minimal gradient graph).
BACKEND_STYLE = {"crypten": "crypten", "semi2k": "jax"}
BACKWARD = "backward"
TRAIN = "train"
INFERENCE_ONLY = ("{title} is an inference-only framework (no backward or optimizer protocol): the loss, backward "
                  "and update nodes it has a rule for are priced with its inference protocols (weights secret), "
                  "the others are listed here; read its training cost as a lower bound from its primitives")
DETACHED_REASON = ("the framework's module cuts the autograd graph here (crypten/nn/module.py GlobalAveragePool "
                   "uses input.shallow_copy()): no layer before it gets a gradient, so it is not trained; "
                   "the step is priced as the framework runs it")


def _context(graph: Graph, backend: Backend, span: tuple[int, int], context: str,
             only: Callable[[Node], bool] | None = None) -> Graph:
    """Nodes in `span` whose op has a `<context>::<op>` rule in `backend` get that domain (IR only)."""
    # a backend has a few such rules: the op keys are read as a list (a big model's backward phase has a million
    # nodes, most of them not kept as records: `ir.ColumnNodes`), and only the nodes of those keys are looked at
    prefix = f"{context}::"
    wanted = {k[len(prefix):] for k in backend.ops if k.startswith(prefix)}  # the op keys that have such a rule
    if not wanted:
        return graph
    nodes = graph.nodes
    lo, hi = span
    changes = {}
    for i, key in [(i, key) for i, key in enumerate(op_keys(nodes, lo, hi), lo) if key in wanted]:
        if only is None or only(nodes[i]):
            changes[i] = context if "::" not in key else f"{context}::{key.rsplit('::', 1)[0]}"
    if not changes:
        return graph
    changed = list(changes)
    out = dataclasses.replace(graph, nodes=with_domains(nodes, changes))
    # only the op groups differ (a changed node's key is `<context>::<its key>`): keep the tensor columns
    out.__dict__["columns"] = dataclasses.replace(graph.columns, groups=_regroup(graph.columns.groups, changed,
                                                                                 len(nodes), context))
    return out


def _regroup(groups: Mapping[str, np.ndarray], changed: list[int], n: int, context: str) -> dict[str, np.ndarray]:
    """`Columns.groups` after the nodes `changed` moved from op key K to `<context>::K`: the same indices per
    key, keys in order of their first node (as `ir.Columns` orders them)."""
    moved = np.zeros(n, dtype=bool)
    moved[changed] = True
    parts: dict[str, list[np.ndarray]] = {}
    for key, idx in groups.items():
        m = moved[idx]
        if not m.any():
            parts.setdefault(key, []).append(idx)
            continue
        if not m.all():
            parts.setdefault(key, []).append(idx[~m])
        parts.setdefault(f"{context}::{key}", []).append(idx[m])
    merged = {k: v[0] if len(v) == 1 else np.sort(np.concatenate(v)) for k, v in parts.items()}
    return dict(sorted(merged.items(), key=lambda kv: int(kv[1][0])))


def _parameters(g: onnx.GraphProto) -> int:
    """Weights in the model, counted as `ir.build_graph` counts them (float initializers of rank > 0), without
    building the inference IR only for the report header."""
    return sum(math.prod(i.dims) for i in g.initializer if i.data_type in _FLOAT and len(i.dims) > 0)


def _training_mode(node: Node) -> bool:
    return bool(node.attrs.get("training_mode", 0))


def _replace(rep: BackendReport, **changes: object) -> BackendReport:
    """`dataclasses.replace` for a report without reading its lazy `tree` (which would build the whole
    module tree, and make the JSON writer walk it instead of writing from arrays)."""
    values = {f.name: rep.__dict__["_tree"] if f.name == "tree" else getattr(rep, f.name)
              for f in dataclasses.fields(rep)}
    values.update(changes)
    return BackendReport(**values)  # type: ignore[arg-type]


def _phase_totals(node_cost: np.ndarray, phases: Mapping[str, tuple[int, int]]) -> dict[str, Totals]:
    out = {}
    for name in PHASES:
        lo, hi = phases[name]
        out[name] = Totals.of(node_cost[lo:hi].sum(axis=0).tolist())
    return out


def profile_train(
    model: str | os.PathLike | onnx.ModelProto,
    options: TrainOptions | Sequence[TrainOptions] | None = None,
    backends: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, str | int | float]] | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
    depth: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Profile:
    """Profile one training step of `model`. Several `options` (e.g. one per optimizer) give one run
    each: the first is the main result (`backends`), every run is summarised in `training.runs`.
    `progress(stage, done, total)` is called as stages start: loading, then each autodiff style's training
    graph (the CLI's progress bar; at 1M nodes a style takes minutes)."""
    try:
        return _profile_train(model, options, backends, params, input_shapes, batch, depth,
                              progress or (lambda stage, done, total: None))
    finally:
        gc.unfreeze()  # the training graphs' records were frozen out of the cyclic GC's sight while pricing


class _Expanded(NamedTuple):
    """One autodiff style's training graph, shared by the backends of that style."""

    graph: Graph
    phases: dict[str, tuple[int, int]]
    meta: dict  # the expander's `hawkeye.training` metadata
    modules: ModuleIndex  # scopes and names only: the same for every backend's `_context` variant
    #: shape variables per (op key, node indices of its group), computed once for the backends of the style
    #: (`Graph.opvars_cache` is per graph instance, keyed by op key, and `_context` moves nodes between keys)
    envs: dict[tuple[str, bytes], dict]


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`load`'s shape inference (same flags, same one-line error) for a model built in memory: no digest, no
    defensive copy, no input binding."""
    return infer(BoundModel(model, None, None, None, "<model>"))


def _expand(loaded: LoadedModel, opts: TrainOptions, forward: Forward | None, facts: ModelFacts) -> _Expanded:
    """Expand, and build the IR: from the builder's records on the shared forward IR (None: the model's output is
    not float) where it can, else from the training model (its shapes declared by the expander, or inferred)."""
    # see `hawkeye_onnx.profile.profile`: the expander's protos and the IR's records are acyclic; the IR's are
    # frozen before the GC is back
    with paused_gc():
        train, phases, b = expand_with_builder(loaded.model, opts, protos=False, facts=facts, defer=True)
        built = build(forward, train, b) if forward is not None else None
        if built is None:  # the records are not enough: the whole training model, as `expand` makes it from the
            # inferred model (`loaded.model` is the bound one: its value_info has no inferred element type)
            inferred = infer_shapes(loaded.model)
            train, phases, b = expand_with_builder(inferred, opts, facts=facts)
            built = (build_graph(train if declare_shapes(train, inferred, b) else infer_shapes(train)),
                     scope_index(train.graph.node))
        graph, scopes = built
        meta = json.loads(next(p.value for p in train.metadata_props if p.key == "hawkeye.training"))
        del train
        gc.freeze()
    graph.extra["shape_hint"] = loaded.shape_hint
    graph.extra["onnx_nodes"] = phases["forward"]  # what the framework loads from the ONNX file
    return _Expanded(graph, phases, meta, ModuleIndex(scopes, graph.nodes), {})


@paused_gc()  # in the parent and in a child alike (see `ir.paused_gc`): the plain path's `_context` makes 200k records
def _style_reports(loaded: LoadedModel, style_opts: TrainOptions, backends: list[Backend],
                   forward: Forward | None, facts: ModelFacts,
                   depth: int | None, spill: SpillFile | None = None) -> dict[str, BackendReport]:
    """One autodiff style's training graph, priced by each of its backends. With `spill`, each report's tree is
    written to JSON text at once and kept in that file, so that nothing holds the style's graph when this
    returns (a lazy tree keeps it: 1.9 GB at 200k nodes, where the three backends' texts are 0.5 GB)."""
    graph, phases, meta, modules, envs = _expand(loaded, style_opts, forward, facts)
    out = {}
    for b in backends:
        priced_graph = _context(graph, b, phases["backward"], BACKWARD)
        # a forward op that runs differently while training (BatchNormalization on batch statistics)
        priced_graph = _context(priced_graph, b, phases["forward"], TRAIN, _training_mode)
        groups = priced_graph.columns.groups
        known = {k: envs[(k, idx.tobytes())] for k, idx in groups.items() if (k, idx.tobytes()) in envs}
        priced_graph.opvars_cache.update(known)
        cost = price(priced_graph, b)
        envs.update(((k, groups[k].tobytes()), env) for k, env in priced_graph.opvars_cache.items())
        rep = build_report(priced_graph, cost, modules, depth)
        rep = _replace(rep, phases=_phase_totals(cost.node_cost, phases))
        for op in sorted({op for op, _ in meta["detached"]}):
            cut = UnsupportedOp(f"{op} (backward)", DETACHED_REASON,
                                tuple(name for o, name in meta["detached"] if o == op))
            rep = _replace(rep, unsupported=(*rep.unsupported, cut))
        if b.name not in BACKEND_STYLE:
            note = UnsupportedOp("training", INFERENCE_ONLY.format(title=b.title), ())
            rep = _replace(rep, unsupported=(*rep.unsupported, note))
        out[b.name] = _replace(rep, tree=spill.put(rep.tree_json())) if spill is not None else rep
    return out


def _style_reports_sent(loaded: LoadedModel, styles: list[tuple[TrainOptions, list[Backend]]],
                        forward: Forward | None, facts: ModelFacts,
                        depth: int | None, spill: SpillFile) -> Iterator[BackendReport]:
    """`_style_reports` of one style after the other, in a background child: each backend's report, its tree as
    JSON text in `spill` (made by the parent before the fork; the graphs stay here), in the order of `styles`
    and their backends."""
    for style_opts, backends in styles:
        reports = _style_reports(loaded, style_opts, backends, forward, facts, depth, spill)
        for b in backends:
            yield reports.pop(b.name)


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


#: Memory one autodiff style takes at its peak (expansion, IR, pricing, report texts), per node of the model:
#: 11.5 kB measured on the 200k-node benchmark model before the builder dropped its emission state, about 9 kB
#: at 1M nodes after; kept with a margin.
STYLE_BYTES_PER_NODE = 14_000


def _style_memory(nodes: int) -> tuple[int, int, int] | None:
    """(MemAvailable, what the styles may take of it: all but a fifth, kept for the rest of the run, and what one
    style of a `nodes`-node model takes), in bytes; None where the free memory is unknown."""
    avail = _available_memory()
    return None if avail is None else (avail, int(avail * 0.8), max(1, STYLE_BYTES_PER_NODE * nodes))


def memory_warning(nodes: int) -> str | None:
    """What to tell the user when even one autodiff style of a `nodes`-node model may not fit in the free memory
    (the kernel's out-of-memory killer would stop the run with exit code 137, saying nothing); else None."""
    memory = _style_memory(nodes)
    if memory is None or memory[2] <= memory[1]:
        return None
    avail, _, need = memory
    return (f"training a {nodes:,}-node model may take up to {need / 2**30:.1f} GiB of memory per autodiff style, "
            f"and {avail / 2**30:.1f} GiB is available: the system may stop the run (exit code 137); free memory or "
            "use a machine with more")


def style_workers(styles: int, nodes: int) -> int:
    """How many autodiff styles may run at the same time on a model of `nodes` nodes: all of them, unless the
    free memory (MemAvailable, less a fifth for the rest of the run) holds fewer. Each style running at once is
    one more process and its whole working set: three styles of a 1M-node model side by side would want more
    memory than a 23 GB machine has, where one after the other they fit."""
    memory = _style_memory(nodes)
    if memory is None:
        return styles
    _, usable, need = memory
    return max(1, min(styles, usable // need))


def _load(read: ReadModel, input_shapes: Mapping[str, tuple[int, ...]] | None, batch: int | None,
          alongside: bool) -> tuple[LoadedModel, ModelFacts, Forward | None]:
    """`load`, `model_facts` and the forward IR (`forward_ir`), from one read of the model's nodes (for the IR and
    the facts) and its inferred shapes (`shapes.ShapeTable`). `alongside`: onnx's shape inference runs in a forked
    child while this process checks and binds the model and reads its nodes (as `profile` does for inference),
    else here after them; either way the checks fail in this order. The model kept (`LoadedModel.model`) is the
    bound one, not the inferred one: the expander reads its nodes, initializers, inputs and outputs, and the
    shapes come from the table (`static_shapes`)."""
    metadata = may_have_metadata(read.data)  # (`scope.raw_scopes`)
    with contextlib.ExitStack() as stack:  # the child, if any, is ended when the block is left (an error here)
        pending = stack.enter_context(background.Pending(
            functools.partial(_background_work, read, input_shapes, batch, metadata))) if alongside else None
        bound = bind(read, input_shapes, batch)
        loaded = loaded_model(bound, bound.model)
        require_static(loaded)
        attr_bytes: list[tuple[bytes, ...]] = []
        structure = read_structure(bound.model, attr_bytes=attr_bytes)
        table = scopes = None
        if pending is not None:
            with contextlib.suppress(background.Lost):  # the child was killed (memory?): infer here after all
                table = pending.next()
        if table is None:
            table = infer_table(bound)
        facts = model_facts(bound.model, table, (structure.nodes, attr_bytes))
        if pending is not None:  # the child read the scopes meanwhile
            with contextlib.suppress(background.Lost):
                scopes = pending.next()
    if scopes is None:
        scopes = forward_scopes(bound.model.graph.node, metadata)
    return loaded, facts, forward_ir(bound.model, facts.shapes, table, structure, scopes)


def _background_work(read: ReadModel, input_shapes: Mapping[str, tuple[int, ...]] | None, batch: int | None,
                     metadata: bool) -> Iterator[ShapeTable | ForwardScopes]:
    """The background child's work (`_load`): bind its own copy of the model and infer its shapes; then the forward
    nodes' scopes, while the parent reads the facts."""
    bound = child_bound(read, input_shapes, batch)
    yield infer_table(bound)  # first: the parent waits for it
    yield forward_scopes(bound.model.graph.node, metadata)


def _profile_train(
    model: str | os.PathLike | onnx.ModelProto,
    options: TrainOptions | Sequence[TrainOptions] | None,
    backends: Iterable[str] | None,
    params: Mapping[str, Mapping[str, str | int | float]] | None,
    input_shapes: Mapping[str, tuple[int, ...]] | None,
    batch: int | None,
    depth: int | None,
    progress: Callable[[str, int, int], None],
) -> Profile:
    if options is None:
        options = TrainOptions()
    runs = [options] if isinstance(options, TrainOptions) else list(options)
    for o in runs:
        o.check()
    progress("reading the model and inferring shapes", 0, 1)
    read = read_model(model)
    # a big model (`overlap_min_nodes`): its shapes are inferred in a child while this process reads its nodes;
    # each style's trees become text in a spill file as soon as they are made (its graph is then freed), and the
    # styles run side by side in forked children as far as the memory allows
    big = len(read.model.graph.node) >= overlap_min_nodes()
    parallel = background.AVAILABLE and big
    # the facts and the forward phase's IR are the same in every style: made once (before the fork)
    loaded, facts, forward = _load(read, input_shapes, batch, parallel)
    selected = load_backends(list(backends) if backends is not None else None,
                             {b: dict(p) for b, p in (params or {}).items()})
    if big and (warning := memory_warning(len(loaded.model.graph.node))) is not None:
        warnings.warn(HawkeyeWarning(warning), stacklevel=3)
    results = []
    total = 1 + len(runs) * len({BACKEND_STYLE.get(b.name, "onnx") for b in selected})
    done = 1

    def stage(style_opts: TrainOptions, backends: list[Backend], where: str = "") -> None:
        progress(f"training graph, {style_opts.style} autodiff ({', '.join(b.name for b in backends)}){where}",
                 done, total)

    for opts in runs:
        # backends of one autodiff style price the same training graph: it is expanded and built once per style
        jobs: dict[TrainOptions, list[Backend]] = {}
        for b in selected:
            jobs.setdefault(dataclasses.replace(opts, style=BACKEND_STYLE.get(b.name, "onnx")), []).append(b)
        styles = list(jobs.items())
        workers = style_workers(len(styles), len(loaded.model.graph.node)) if parallel else 1
        # with one worker every style here, one after another; else the first style here and the others in
        # `workers - 1` children, each pricing its share one style after another
        here = styles if workers == 1 else styles[:1]
        shares = [styles[1 + k::workers - 1] for k in range(workers - 1)]
        reports: dict[str, BackendReport] = {}
        with contextlib.ExitStack() as children:
            spill = SpillFile() if big else None  # for the trees made here
            spills = [SpillFile() for _ in shares]  # one per child, open here until its trees are read back
            pending = [children.enter_context(background.Pending(functools.partial(
                _style_reports_sent, loaded, share, forward, facts, depth, sp)))
                for share, sp in zip(shares, spills, strict=True)]
            for style_opts, backends in here:
                stage(style_opts, backends)
                reports.update(_style_reports(loaded, style_opts, backends, forward, facts, depth, spill))
                done += 1
            for child, share in zip(pending, shares, strict=True):
                for style_opts, backends in share:
                    stage(style_opts, backends, ", in a background process")
                    try:
                        for b in backends:
                            reports[b.name] = child.next()
                    except background.Lost:  # the child was killed (memory?): this style here after all
                        stage(style_opts, backends)
                        reports.update(_style_reports(loaded, style_opts, backends, forward, facts, depth, spill))
                    done += 1
        results.append((opts, {b.name: reports[b.name] for b in selected}))
    name = Path(loaded.path).stem if loaded.path else (loaded.model.graph.name or "model")
    g = loaded.model.graph
    info = ModelInfo(name=name, path=loaded.path, sha256=loaded.sha256,
                     producer=" ".join(x for x in (loaded.model.producer_name, loaded.model.producer_version) if x),
                     opset=next((o.version for o in loaded.model.opset_import if o.domain in ("", "ai.onnx")), 0),
                     inputs=dict(loaded.input_shapes), nodes=len(g.node), parameters=_parameters(g))
    first_opts, first = results[0]
    training = {
        "loss": first_opts.loss, "optimizer": first_opts.optimizer, "lr": first_opts.lr,
        "momentum": first_opts.momentum, "beta1": first_opts.beta1, "beta2": first_opts.beta2, "eps": first_opts.eps,
        "styles": {b.name: BACKEND_STYLE.get(b.name, "onnx") for b in selected},
        "runs": [{"optimizer": o.optimizer, "loss": o.loss,
                  "backends": {k: {"total": r.total.to_dict(),
                                   "phases": {p: t.to_dict() for p, t in (r.phases or {}).items()}}
                               for k, r in reps.items()}} for o, reps in results],
    }
    conventions = dict(CONVENTIONS)
    conventions["phases"] = ("forward = the model; loss = the loss value; backward = every gradient the "
                             "framework's autodiff computes (loss gradient included); update = the optimizer step")
    return Profile(info, "train", first, conventions, training=training)
