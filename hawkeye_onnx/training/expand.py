"""The training-graph expander: inference ONNX graph -> forward + loss + backward + optimizer update.

Nodes come out in four consecutive blocks (the phases): the forward graph (unchanged but for
BatchNormalization, switched to training mode), the loss under
`/loss/`, the backward nodes `<forward name>_Grad/<Op>_<k>`, and the update under
`/optimizer/<parameter>/`. Trainable weights are the float initializers on a path to the loss
(BatchNormalization running statistics are not differentiable inputs); the data inputs get no
gradient, unless the framework's autodiff computes one anyway (`Autodiff.data_input_grads`).
The loss reads the model's first output (other outputs get no gradient). Graph inputs added: `label`
(secret one-hot or target, shape of the model's output), the optimizer
state `<parameter>.momentum` / `.adam_m` / `.adam_v`, and for CrypTen's style `loss_grad` (its
encrypted seed). Outputs: the loss, then per parameter its new optimizer state and its updated value
(the last node of `/optimizer/<parameter>/`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper

from hawkeye_onnx.errors import ModelError, ParamError
from hawkeye_onnx.ir import Node, op_key, paused_gc
from hawkeye_onnx.shapes import ShapeTable, value_shapes
from hawkeye_onnx.training import replay
from hawkeye_onnx.training.builder import OPTIMIZER_SCOPE, Builder, ModelBase, model_base
from hawkeye_onnx.training.functions import DOMAIN, all_functions
from hawkeye_onnx.training.grads import REGISTRY, STYLES, Autodiff, GradCtx, grad_scope, register

LOSSES = ("cross-entropy", "mse")
OPTIMIZERS = ("sgd", "momentum", "adam")
PHASES = ("forward", "loss", "backward", "update")
_FLOAT = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_UNSEEN = object()  # a signature without a template yet


@dataclass(frozen=True)
class TrainOptions:
    """One training step: loss, optimizer and its public hyper-parameters, autodiff style."""

    loss: str = "cross-entropy"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    style: str = "onnx"

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ParamError(f"--loss {self.loss!r}: choose {' or '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ParamError(f"--optimizer {self.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
        if self.style not in STYLES:
            raise ParamError(f"autodiff style {self.style!r}: choose from {', '.join(STYLES)}")
        if not self.lr > 0:
            raise ParamError(f"--lr {self.lr}: must be a positive number")


@register(f"{DOMAIN}::SoftmaxCrossEntropy", diff=(0,))
def _ce_grad(c: GradCtx, dys: list[str | None]) -> list[str | None]:
    probs, label = c.node.output[1], c.node.input[1]
    return [c.custom("SoftmaxCrossEntropyGrad", [dys[0], probs, label], c.shape(c.node.input[0])), None]


def static_shapes(model: onnx.ModelProto, table: ShapeTable | None = None,
                  constants: Iterable[int] | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor of the (shape-inferred) model with a full static shape: its graph inputs, value_info and
    outputs as `shapes.value_shapes` reads them (`table`, when read elsewhere, e.g. from the inferred model's
    bytes in another process), its initializers and its Constant nodes (`constants`: their indices, when the
    caller knows them)."""
    g = model.graph
    table = value_shapes(g) if table is None else table
    kind_shape = [t[0] for t in table.types]
    out = {name: shape for name, shape in zip(table.names, map(kind_shape.__getitem__, table.kinds.tolist()),
                                               strict=True) if shape is not None}
    for i in g.initializer:
        out[i.name] = tuple(i.dims)
    for n in g.node if constants is None else map(g.node.__getitem__, constants):
        if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR:
            out[n.output[0]] = tuple(n.attribute[0].t.dims)
    return out


#: A node as the expander reads it: name, op key, inputs, outputs, and its attributes' bytes (for `replay`)
NodeFields = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[bytes, ...]]


class ModelFacts(NamedTuple):
    """What the expander reads of a (shape-inferred) model, read once per model: a profile expands it once per
    autodiff style, and a protobuf field makes new objects on every read (at 200k nodes, 0.6 s for the shapes
    and 0.6 s for the nodes' fields, per expansion)."""

    shapes: dict[str, tuple[int, ...]]  # `static_shapes`
    fields: list[NodeFields]  # per node of the model (`node_fields`)
    base: ModelBase  # what each builder starts from


def node_fields(nodes: Iterable[onnx.NodeProto]) -> list[NodeFields]:
    """Each node's fields as the expander reads them, each read from the proto once."""
    return [(n.name, op_key(n), tuple(n.input), tuple(n.output),
             tuple([a.SerializeToString() for a in n.attribute]) if n.attribute else ()) for n in nodes]


@paused_gc()
def model_facts(model: onnx.ModelProto, table: ShapeTable | None = None,
                read: tuple[Sequence[Node], Sequence[tuple[bytes, ...]]] | None = None) -> ModelFacts:
    """The facts of a shape-inferred `model` (see `ModelFacts`); its nodes' outputs are read once, for the fields
    and for the builder's base. `table`: its inferred shapes (`static_shapes`); `read`: its nodes' IR records and
    attribute bytes (`ir.read_structure`), when read already: then no proto is read again."""
    if read is None:
        fields = node_fields(model.graph.node)
    else:
        nodes, attr_bytes = read
        fields = [(n.name, op_key(n), n.inputs, n.outputs, a) for n, a in zip(nodes, attr_bytes, strict=True)]
    constants = [i for i, f in enumerate(fields) if f[1] == "Constant" or f[1].endswith("::Constant")]
    return ModelFacts(static_shapes(model, table, constants), fields,
                      model_base(model, [f[3] for f in fields], [f[0] for f in fields]))


def _training_mode(node: onnx.NodeProto, opset: int) -> onnx.NodeProto:
    """BatchNormalization normalises with the batch statistics while training (training_mode, opset >= 14)."""
    if node.op_type != "BatchNormalization" or opset < 14:
        return node
    out = onnx.NodeProto()
    out.CopyFrom(node)
    del out.output[1:]  # training mode has exactly 3 outputs: Y and the updated running statistics
    out.output.extend([f"{node.output[0]}_running_mean", f"{node.output[0]}_running_var"])
    kept = [a for a in out.attribute if a.name != "training_mode"]
    del out.attribute[:]
    out.attribute.extend([*kept, helper.make_attribute("training_mode", 1)])
    return out


def expand(model: onnx.ModelProto, opts: TrainOptions) -> tuple[onnx.ModelProto, dict[str, tuple[int, int]]]:
    """The training graph of a shape-inferred `model`, and the node index range of each phase."""
    train, phases, _ = expand_with_builder(model, opts)
    return train, phases


def expand_typed(model: onnx.ModelProto,
                 opts: TrainOptions) -> tuple[onnx.ModelProto, dict[str, tuple[int, int]], bool]:
    """`expand`, plus the value_info of every tensor the expander added when it knows all their static shapes
    (it computes each one to emit the gradients): then the graph is as shape inference would leave it and the
    IR can be built without running it (a second or more per 100k nodes). The flag says whether it did; if
    not, the model is exactly `expand`'s. tests/test_training_fast.py checks both ways give the same IR."""
    train, phases, b = expand_with_builder(model, opts)
    return train, phases, declare_shapes(train, model, b)


def declare_shapes(train: onnx.ModelProto, model: onnx.ModelProto, b: Builder) -> bool:
    """Write the value_info of every tensor `b` added to `train` (expanded from `model`), if it can: see
    `expand_typed`."""
    if not b.protos:
        return False  # expanded with `protos=False`: the model lacks the backward and update nodes
    g = train.graph
    declared = {vi.name for vi in (*g.input, *g.value_info, *g.output)}
    nf = len(g.node) - len(b.nodes)  # the forward nodes come first
    todo = [o for n in g.node[:nf] for o in n.output if o and o not in declared]
    todo += [o for o in b.outputs if o not in declared]
    model_outputs = {vi.name: vi for vi in model.graph.output}
    logits = model.graph.output[0]
    if logits.type.tensor_type.elem_type != TensorProto.FLOAT or any(o not in b.shapes for o in todo):
        return False  # a gradient's element type follows the model's (inference knows it), or a shape is unknown
    types: dict[tuple[int, tuple[int, ...]], onnx.TypeProto] = {}
    add = g.value_info.add
    for o in todo:
        vi = model_outputs.get(o)
        if vi is not None:  # an output of the model, now an inner tensor
            g.value_info.append(vi)
            continue
        key = (b.dtypes.get(o, TensorProto.FLOAT), b.shapes[o])
        tp = types.get(key)
        if tp is None:
            tp = types[key] = helper.make_tensor_type_proto(*key)
        add(name=o, type=tp)
    return True


def expand_with_builder(model: onnx.ModelProto, opts: TrainOptions, protos: bool = True,
                        facts: ModelFacts | None = None, defer: bool = False,
                        ) -> tuple[onnx.ModelProto, dict[str, tuple[int, int]], Builder]:
    """`expand`, and the builder that emitted the loss, backward and update nodes (its records and shapes).
    `protos=False`: the model's graph keeps the loss nodes only (no forward nodes, initializers or value_info),
    the backward and update nodes are in the builder's records alone (for `training.graph.build`, which reads
    nothing else), and a node like one seen before gets its backward nodes replayed (`replay`); with `defer`
    as blocks (`replay.defer`: the builder's `instances`, not its records), unless a name they would take is
    taken (then as records). `facts`: `model_facts(model)`, when the caller expands one model several
    times."""
    opts.check()
    style: Autodiff = STYLES[opts.style]
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ModelError(f"opset {opset}: training expansion needs opset >= 13; convert the model with "
                         "onnx.version_converter.convert_version(model, 17)")
    if not g.output:
        raise ModelError("the model has no output to train against")
    facts = model_facts(model) if facts is None else facts
    shapes = facts.shapes
    forward = [_training_mode(n, opset) for n in g.node]
    out = onnx.ModelProto()  # filled in place: the builder adds the loss, backward and update nodes after forward
    if protos:  # else the caller reads the records (a copy of 200k forward nodes is 0.2 s and 200 MB per style)
        out.graph.node.extend(forward)
    b = Builder(model, shapes, out.graph, facts.base)
    for n, n_train in zip(g.node, forward, strict=True):
        if n_train is not n:  # BatchNormalization in training mode: its running statistics are shaped like its inputs
            for o, x in zip(n_train.output[1:], n_train.input[3:], strict=False):
                if x in shapes:
                    b.shapes[o] = shapes[x]
    inits = {i.name: i for i in g.initializer}
    params = [n for n, i in inits.items() if i.data_type in _FLOAT]
    data_inputs = [i.name for i in g.input if i.name not in inits]
    logits = g.output[0].name
    if logits not in shapes:
        raise ModelError(f"output {logits!r} has no static shape; bind the inputs with --input-shape / --batch")
    out_shape = shapes[logits]
    if opts.loss == "cross-entropy" and (not out_shape or out_shape[-1] == 1):
        # softmax over one value is 1: the loss is constant and every gradient zero (a logistic regression's
        # single sigmoid output is trained with a regression loss)
        raise ParamError(f"output {logits!r} has one class (shape {list(out_shape)}): softmax cross-entropy is "
                         "constant there; use --loss mse")

    # Forward: which tensors depend on a trainable weight through differentiable inputs.
    # Each node's fields, read from its proto once (`ModelFacts`); the training-mode outputs where they differ
    # (BatchNormalization).
    fields = list(facts.fields)
    rg: set[str] = set(params) | (set(data_inputs) if style.data_input_grads else set())
    for _, key, inputs, outputs, _ in fields:
        rule = REGISTRY.get(key)
        diff = rule.diff if rule else range(len(inputs))
        if any(i < len(inputs) and inputs[i] in rg for i in diff):
            rg.update(o for o in outputs if o)
    for k, (n, n_train) in enumerate(zip(g.node, forward, strict=True)):
        if n_train is not n:
            fields[k] = (*fields[k][:3], tuple(n_train.output), fields[k][4])

    # Loss.
    label = "label"
    if opts.loss == "cross-entropy":
        loss, _probs = b.emit("/loss", "SoftmaxCrossEntropy", [logits, label], 2, DOMAIN)
        b.shapes[_probs] = out_shape
    else:
        diff = b.op("/loss", "Sub", [logits, label], out_shape)
        sq = b.op("/loss", "Pow", [diff, b.const("/loss", 2.0)], out_shape)
        loss = b.op("/loss", "ReduceMean", [sq], (), keepdims=0)
    b.shapes[loss] = ()
    rg.update(o for n in b.nodes for o in n.output if n.op_type != "Constant")
    loss_nodes = list(b.nodes)
    seed = "loss_grad" if style.secret_seed else b.const("/loss", 1.0)
    n_loss = len(b.records)
    b.protos = protos  # the gradient rules read the protos of the forward and loss nodes only

    # Backward, in reverse order of the forward + loss nodes.
    grads: dict[str, list[str]] = {loss: [seed]}
    if opts.loss == "mse" and not style.secret_seed:
        # With a public seed, XLA folds d mean(d^2) = d * (2 / size) into one public product.
        pow_node = next(n for n in loss_nodes if n.op_type == "Pow")
        pow_scope = grad_scope(pow_node.name, pow_node.output)
        scale = b.const(pow_scope, 2.0 / max(1, int(np.prod(out_shape))))
        grads = {pow_node.input[0]: [b.op(pow_scope, "Mul", [pow_node.input[0], scale], out_shape)]}
    detached: list[list[str]] = []  # [op, node] where the framework's autograd stops
    # per node signature, its rule's template (None: the rule must run); the protos path runs every rule
    memo: dict[tuple, replay.Template | None] | None = None if protos else {}
    fields += node_fields(loss_nodes)
    for n, (name, key, inputs, outputs, attrs) in zip(reversed(forward + loss_nodes), reversed(fields), strict=True):
        if not any(o in grads for o in outputs):
            continue
        if key in style.detached:
            detached.append([key, name or outputs[0]])
            continue
        rule = REGISTRY.get(key)
        diff = rule.diff if rule else tuple(range(len(inputs)))
        needs = [i in diff and bool(x) and x in rg for i, x in enumerate(inputs)]
        if not any(needs):
            continue
        if rule is None:
            known = ", ".join(sorted(k for k in REGISTRY if "::" not in k))
            raise ModelError(f"no gradient rule for {key} (node {name or outputs[0]!r}), which lies between a "
                             f"trainable weight and the loss; ops with gradient rules: {known}")
        scope = grad_scope(name, outputs)
        dys: list[str | None] = []
        for o in outputs:
            parts = grads.get(o)
            if not parts:
                dys.append(None)
            elif len(parts) == 1:
                dys.append(parts[0])
            else:
                dys.append(b.op(scope, "Sum", parts, b.shapes.get(o)))
        if dys[0] is None and not rule.any_output:
            raise ModelError(f"node {n.name!r} ({key}): only its first output may carry a gradient")
        if memo is None:
            gxs = rule.fn(GradCtx(b, n, needs, style), dys)
        else:  # records only: a node like one seen before gets the same nodes without running the rule
            env = [*inputs, *outputs, *dys]
            sig = replay.signature(b, attrs, key, needs, env)
            template = memo.get(sig, _UNSEEN)
            if template is _UNSEEN:
                gxs, memo[sig] = replay.capture(b, scope, env, functools.partial(
                    rule.fn, GradCtx(b, n, needs, style), dys))
            elif template is None:
                gxs = rule.fn(GradCtx(b, n, needs, style), dys)
            elif defer:
                gxs = replay.defer(b, template, scope, env)
            else:
                gxs = replay.replay(b, template, scope, env)
        for x, gx in zip(inputs, gxs, strict=False):
            if gx is not None and x in rg:
                grads.setdefault(x, []).append(gx)
    n_back = b.count()

    # Update.
    trained = [p for p in params if p in grads]
    if not trained and not detached:
        raise ModelError("no float initializer (weight) lies on a path to the output: nothing to train")
    new_inputs: list[onnx.ValueInfoProto] = [helper.make_tensor_value_info(label, TensorProto.FLOAT, out_shape)]
    if style.secret_seed:
        new_inputs.append(helper.make_tensor_value_info("loss_grad", TensorProto.FLOAT, []))
    outputs = [helper.make_tensor_value_info(loss, TensorProto.FLOAT, [])]
    types: dict[tuple[int, ...], onnx.TypeProto] = {}  # one float tensor type per parameter shape (a few dozen)
    # per (shape, number of gradients): the update's template, when blocks are kept (`defer`)
    updates: dict[tuple[tuple[int, ...], int], replay.Template | None] = {}
    for p in trained:
        scope = f"{OPTIMIZER_SCOPE}{p}"
        sp = tuple(inits[p].dims)
        parts = grads[p]
        # a scope `..._Grad` numbers its nodes (`Builder._name`), as a backward scope does: as records
        template = _update_template(model, opts, style, sp, len(parts), updates) \
            if defer and not scope.endswith("_Grad") else None
        if template is None:
            states, new_states = _update(b, scope, p, parts, sp, opts, style)
        else:
            states = _state_names(p, opts.optimizer)
            new_states = replay.defer(b, template, scope, [p, *parts, *states])  # type: ignore[assignment]
        tp = types.get(sp)
        if tp is None:
            tp = types[sp] = helper.make_tensor_type_proto(TensorProto.FLOAT, sp)
        new_inputs += [onnx.ValueInfoProto(name=s, type=tp) for s in states]
        # without the protos, the caller reads the outputs' names only (copying a type into each of 100k outputs
        # is a tenth of the update phase's time)
        outputs += [onnx.ValueInfoProto(name=s, type=tp) if protos else onnx.ValueInfoProto(name=s)
                    for s in new_states]
    b.custom.update(s.op for t in updates.values() if t is not None for s in t.steps if s.domain == DOMAIN)

    # what `helper.make_graph` + `helper.make_model` build, without copying the nodes twice
    graph = out.graph
    graph.name = (g.name or "model") + "_training"
    graph.input.extend([*g.input, *new_inputs])
    graph.output.extend(outputs)
    if protos:  # else the caller reads only the inputs, outputs and metadata (and the forward IR)
        graph.initializer.extend(g.initializer)
        graph.value_info.extend(g.value_info)
    out.opset_import.extend([o for o in model.opset_import if o.domain != DOMAIN] + [helper.make_opsetid(DOMAIN, 1)])
    funcs = all_functions(opset)
    out.functions.extend([funcs[f] for f in sorted(b.custom)])
    out.producer_name = "hawkeye-onnx expand"
    out.ir_version = max(model.ir_version, 8)
    nf = len(forward)
    phases = {"forward": (0, nf), "loss": (nf, nf + n_loss), "backward": (nf + n_loss, nf + n_back),
              "update": (nf + n_back, nf + b.count())}
    meta = {"loss": opts.loss, "optimizer": opts.optimizer, "lr": opts.lr, "style": opts.style,
            "phases": phases, "parameters": trained, "detached": detached}
    helper.set_model_props(out, {"hawkeye.training": json.dumps(meta)})
    if b.instances and not replay.settle(b):  # a name the blocks would take is taken: as records after all
        return expand_with_builder(model, opts, protos, facts)
    b.finish()
    return out, phases, b


#: per optimizer, its state inputs' names after `<parameter>.`
_STATES = {"sgd": (), "momentum": ("momentum",), "adam": ("adam_m", "adam_v")}


def _state_names(p: str, optimizer: str) -> list[str]:
    """The optimizer's state inputs of parameter `p`, in the order `_optimizer` returns them."""
    return [f"{p}.{x}" for x in _STATES[optimizer]]


_SCRATCH_BASE = ModelBase(frozenset(), {}, {})


def _update(b: Builder, scope: str, p: str, parts: list[str], sp: tuple[int, ...], o: TrainOptions,
            style: Autodiff) -> tuple[list[str], list[str]]:
    """Emit one parameter's update: the sum of its gradients `parts` (if more than one), then the optimizer's
    step; returns (state inputs, [new states..., updated parameter])."""
    g = parts[0] if len(parts) == 1 else b.op(scope, "Sum", parts, sp)
    return _optimizer(b, scope, p, g, sp, o, style)


def _update_template(model: onnx.ModelProto, o: TrainOptions, style: Autodiff, sp: tuple[int, ...], n_parts: int,
                     memo: dict[tuple[tuple[int, ...], int], replay.Template | None]) -> replay.Template | None:
    """The template of a parameter's update (`_update`) for a parameter of shape `sp` with `n_parts` gradients,
    in a scope that does not number its nodes; its given names are the parameter, its gradients and its
    states, and its `grads` the new states and the updated parameter. Made once per (shape, number of
    gradients) on a builder of its own, with stand-in names: the update reads nothing but its names and `sp`."""
    key = (sp, n_parts)
    found = memo.get(key, _UNSEEN)
    if found is not _UNSEEN:
        return found  # type: ignore[return-value]
    scratch = Builder(model, {}, base=_SCRATCH_BASE)
    scratch.protos = False
    p, scope = "\0p", "\0s"
    parts = [f"\0g{k}" for k in range(n_parts)]
    env: list[str | None] = [p, *parts, *_state_names(p, o.optimizer)]

    def run() -> list[str | None]:
        return list(_update(scratch, scope, p, parts, sp, o, style)[1])

    memo[key] = template = replay.capture(scratch, scope, env, run, numbered=False)[1]
    return template


def _optimizer(b: Builder, scope: str, p: str, g: str, sp: tuple[int, ...],
               o: TrainOptions, style: Autodiff) -> tuple[list[str], list[str]]:
    """Emit one parameter's update; returns (state inputs, [new states..., updated parameter])."""
    def mul(x: str, k: float) -> str:
        return b.op(scope, "Mul", [x, b.const(scope, k)], sp)

    if o.optimizer == "sgd":  # crypten/optim/sgd.py: p.sub_(d_p.mul(lr))
        return [], [b.op(scope, "Sub", [p, mul(g, o.lr)], sp)]
    if o.optimizer == "momentum":  # crypten/optim/sgd.py: buf.mul_(momentum).add_(d_p); p -= lr * buf
        [v] = _state_names(p, "momentum")
        nv = b.op(scope, "Add", [mul(v, o.momentum), g], sp)
        return [v], [nv, b.op(scope, "Sub", [p, mul(nv, o.lr)], sp)]
    # Adam (Kingma & Ba, first step's bias correction): secret square, sqrt and division per element.
    m, v = _state_names(p, "adam")
    nm = b.op(scope, "Add", [mul(m, o.beta1), mul(g, 1 - o.beta1)], sp)
    nv = b.op(scope, "Add", [mul(v, o.beta2), mul(b.op(scope, "Mul", [g, g], sp), 1 - o.beta2)], sp)
    mhat, vhat = mul(nm, 1 / (1 - o.beta1)), mul(nv, 1 / (1 - o.beta2))
    if o.eps < style.rsqrt_below:
        direction = b.op(scope, "Mul", [mhat, b.emit(scope, "Rsqrt", [vhat], 1, DOMAIN, sp)[0]], sp)
    else:
        denom = b.op(scope, "Add", [b.op(scope, "Sqrt", [vhat], sp), b.const(scope, o.eps)], sp)
        direction = b.op(scope, "Div", [mhat, denom], sp)
    step = mul(direction, o.lr)
    return [m, v], [nm, nv, b.op(scope, "Sub", [p, step], sp)]


def check(model: onnx.ModelProto) -> onnx.ModelProto:
    """`onnx.checker.check_model(full_check=True)` and strict shape inference; returns the inferred model."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"the expanded training graph is invalid (a bug): {first[:300]}") from None


def missing_shapes(model: onnx.ModelProto) -> list[str]:
    """Tensors of the (shape-inferred) graph without a full static shape."""
    known = static_shapes(model)
    names = {o for n in model.graph.node for o in n.output if o}
    return sorted(n for n in names if n not in known)


__all__ = ["LOSSES", "OPTIMIZERS", "PHASES", "ModelFacts", "TrainOptions", "check", "declare_shapes", "expand",
           "expand_typed", "expand_with_builder", "missing_shapes", "model_facts", "static_shapes"]
