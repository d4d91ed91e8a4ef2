"""The pipeline, top to bottom: load -> shape inference -> IR -> cost rules -> aggregation.

`profile()` is the Python API; the CLI is a thin layer over it. On a big model (`overlap_min_nodes`), shape
inference runs in a forked child while this process reads the graph's structure, which needs no shapes;
the IR then takes the shapes from the child (`Structure.finish`). The child goes on with the module index
(node names -> module tree), which this process needs only once every backend is priced.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import onnx

from hawkeye_onnx import background
from hawkeye_onnx.aggregate import ModuleIndex, build_report, node_names_json
from hawkeye_onnx.cost import price
from hawkeye_onnx.errors import ParamError
from hawkeye_onnx.ir import Graph, build_graph, paused_gc, read_structure
from hawkeye_onnx.load import (
    BoundModel,
    LoadedModel,
    ReadModel,
    bind,
    infer,
    infer_table,
    loaded,
    ort_symbolic,
    read_model,
    require_static,
)
from hawkeye_onnx.result import ModelInfo, Profile
from hawkeye_onnx.rules import Backend, load_backends
from hawkeye_onnx.scope import may_have_metadata, scope_index
from hawkeye_onnx.shapes import ShapeTable

CONVENTIONS = {
    "bytes": "bytes put on the wire by all parties together (each framework's own counter convention)",
    "rounds": "sequential communication rounds; operators run one after another",
    "online": "cost with the framework's default trusted-first-party / dealer-free setting",
    "offline": "extra preprocessing traffic (e.g. Beaver triples from a trusted third party)",
    "excluded": "sharing the inputs and weights, and revealing the output",
    "secret": "graph inputs and weights are secret unless --public-weights",
}


def profile(
    model: str | os.PathLike | onnx.ModelProto,
    backends: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, str | int | float]] | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
    public_weights: bool = False,
    depth: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Profile:
    """Profile the communication of `model` under each backend.

    `params` maps backend name -> {parameter: value}, e.g. `{"crypten": {"parties": 3}}`.
    `input_shapes` binds graph inputs, e.g. `{"input": (1, 3, 32, 32)}`; `batch` sets dim 0 of
    every input. `depth` limits the module tree (None: modules, nodes and primitives).
    `progress(stage, done, total)` is called as stages start (the CLI's progress bar).
    """
    progress = progress or (lambda stage, done, total: None)
    # The IR's millions of records are built with the cyclic collector off, then frozen out of its sight
    # before it is back on: else its passes rescan them all again and again (about 1.5 s at 200k nodes).
    # They are still freed by reference counting; `gc.unfreeze` hands them back at the end.
    selected = load_backends(list(backends) if backends is not None else None,
                             {b: {k: v for k, v in p.items()} for b, p in (params or {}).items()})
    with contextlib.ExitStack() as child:  # a background child, if any, ends with the block
        with paused_gc():
            loaded, graph, modules = _load_and_build(model, input_shapes, batch, public_weights, progress, child)
            gc.freeze()
        try:
            return _price_all(graph, loaded, selected, modules, depth, progress)
        finally:
            gc.unfreeze()


#: Models with at least this many nodes infer their shapes in a child process while the IR's structure is
#: read (`hawkeye_onnx.background`); below it a fork costs more than it saves. The environment variable
#: HAWKEYE_ONNX_OVERLAP_NODES sets it (a huge number turns it off: the two processes' memory adds up).
OVERLAP_MIN_NODES = 20_000


def overlap_min_nodes() -> int:
    """From how many nodes the pipeline infers shapes in a second process."""
    value = os.environ.get("HAWKEYE_ONNX_OVERLAP_NODES", "").strip()
    if not value:
        return OVERLAP_MIN_NODES
    try:
        return int(value)
    except ValueError:
        raise ParamError(f"HAWKEYE_ONNX_OVERLAP_NODES={value!r}: expected a node count, e.g. 20000") from None


def _load_and_build(model: str | os.PathLike | onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None,
                    batch: int | None, public_weights: bool, progress: Callable[[str, int, int], None],
                    child: contextlib.ExitStack) -> tuple[LoadedModel, Graph, Callable[[], ModuleIndex]]:
    """The loaded model, its IR and how to get the IR's module index (which pricing does not need: a child
    process, when there is one, makes it from the model's node names meanwhile)."""
    progress("reading the model and inferring shapes", 0, 3)
    read = read_model(model)
    inferred: onnx.ModelProto | None = None
    modules: Callable[[], ModuleIndex] | None = None
    if background.AVAILABLE and len(read.model.graph.node) >= overlap_min_nodes():
        # The child binds its own copy (the same way), infers and sends the shapes, then makes the module index;
        # this process checks, binds and reads the structure meanwhile. Its errors are found here first, and the
        # child is then killed.
        pending = child.enter_context(background.Pending(lambda: _background_work(read, input_shapes, batch)))
        bound = bind(read, input_shapes, batch)
        loaded_model = loaded(bound, bound.model)  # the header reads the inputs only: no need to wait
        require_static(loaded_model)
        progress("building the graph (shapes inferred alongside)", 1, 3)
        structure = read_structure(bound.model, public_weights=public_weights)
        names = node_names_json(structure.nodes)  # while the child still infers: it sends the index without them
        try:
            shapes = pending.next()
        except background.Lost:  # the child was killed (memory?): infer here after all
            shapes = infer_table(bound)
        with paused_gc():
            graph = structure.finish(shapes)

        def modules() -> ModuleIndex:
            try:
                index: ModuleIndex = pending.next()
            except background.Lost:  # the child was killed: make the index here after all
                index = _module_index(bound.model, graph)
            return index.with_nodes(graph.nodes, names)
    else:
        bound = bind(read, input_shapes, batch)
        inferred = infer(bound)
        loaded_model = loaded(bound, inferred)
        require_static(loaded_model)
        progress("building the graph", 1, 3)
        graph = build_graph(inferred, public_weights=public_weights)
    if (graph.columns.rank < 0).any():
        if inferred is None:  # rare: inferred in the child, which kept the model; infer again here
            inferred = infer(bound)
        better = ort_symbolic(inferred)  # onnx left some shape unknown: try onnxruntime's inference
        if better is not None:
            graph = build_graph(better, public_weights=public_weights)
            inferred, modules = better, None
    graph.extra["shape_hint"] = loaded_model.shape_hint
    return loaded_model, graph, modules or functools.partial(_module_index, inferred, graph)


def _module_index(model: onnx.ModelProto, graph: Graph) -> ModuleIndex:
    return ModuleIndex(scope_index(model.graph.node), graph.nodes)


def child_bound(read: ReadModel, input_shapes: Mapping[str, tuple[int, ...]] | None,
                batch: int | None) -> BoundModel:
    """A background child's own bound copy of the model, to infer its shapes while the parent reads its
    structure. With nothing to bind, the file's bytes go to inference as they are (the parent runs the checks
    `bind` makes, and stops the child if one fails)."""
    background.coalesce_frees()
    if not input_shapes and batch is None and read.data is not None:
        return BoundModel(read.model, read.path, read.sha256, read.data, read.path or "<model>")
    return bind(read, input_shapes, batch)


def _background_work(read: ReadModel, input_shapes: Mapping[str, tuple[int, ...]] | None,
                     batch: int | None) -> Iterator[ShapeTable | ModuleIndex]:
    """The background child's work: bind its own copy of the model (`child_bound`) and infer; then the module
    index, from the node names."""
    bound = child_bound(read, input_shapes, batch)
    yield infer_table(bound)  # first: the parent waits for it
    nodes = bound.model.graph.node
    metadata = may_have_metadata(read.data)
    yield ModuleIndex(scope_index(nodes, metadata), nodes)  # pickled with its JSON parts (`__getstate__`)


def _price_all(graph: Graph, loaded: LoadedModel, selected: list[Backend], modules: Callable[[], ModuleIndex],
               depth: int | None, progress: Callable[[str, int, int], None]) -> Profile:
    costs = []
    for i, b in enumerate(selected):
        progress(f"pricing {b.name}", 2 + i, 2 + len(selected))
        costs.append(price(graph, b))
    index = modules()  # the last: it may come from the background child
    reports = {b.name: build_report(graph, cost, index, depth) for b, cost in zip(selected, costs, strict=True)}
    name = Path(loaded.path).stem if loaded.path else (loaded.model.graph.name or "model")
    info = ModelInfo(
        name=name,
        path=loaded.path,
        sha256=loaded.sha256,
        producer=" ".join(x for x in (loaded.model.producer_name, loaded.model.producer_version) if x),
        opset=graph.opset,
        inputs=dict(loaded.input_shapes),
        nodes=len(graph.nodes),
        parameters=graph.parameters,
    )
    return Profile(info, "inference", reports, CONVENTIONS)
