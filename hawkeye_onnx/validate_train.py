"""Validation mode ``train``: one real training step on the framework against ``profile_train``, per phase.

The static side is :func:`hawkeye_onnx.training.profile_train` (forward / loss / backward / update, each
priced in the framework's autodiff style). The measured side is the harness job kind ``train``
(``harness/crypten_train.py``, ``harness/spu_train.py``), run in the framework's interpreter:

- CrypTen: the counters are read between the four phases of one step (TFP provider, online only);
  momentum reports the second step (CrypTen creates the momentum buffer on the first);
- SPU: forward, grad (forward + loss + backward) and update are three programs, so loss and backward
  are one phase (``loss+backward`` = grad minus forward); the static loss and backward are summed.

Same label on both sides: a secret one-hot ``arange(batch) % classes`` (cross-entropy) or a secret
random target (MSE), shaped like the model's first output. The revealed loss value is checked against
the same loss in plain floats.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hawkeye_onnx.validate import (
    Case,
    Phase,
    Request,
    Validation,
    _framework,
    bind_free_dims,
    framework_python,
    register_mode,
    run_harness,
)

#: backend -> measured phases, each the static phases it sums (how the framework can be metered)
PHASE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "crypten": {"forward": ("forward",), "loss": ("loss",), "backward": ("backward",), "update": ("update",)},
    "semi2k": {"forward": ("forward",), "loss+backward": ("loss", "backward"), "update": ("update",)},
}
#: the harnesses' loss names
_LOSS = {"cross-entropy": "cross_entropy", "mse": "mse"}
ONLINE_ONLY = "training is measured online only (TFP / SPU's trusted first party: no offline traffic metered)"


def _target_shape(case: Case, shapes: dict[str, tuple[int, ...]] | None, batch: int | None) -> list[int]:
    """The label's shape: the model's first output with the inputs bound (what the expander labels)."""
    from hawkeye_onnx.load import load

    out = load(case.model, shapes, batch).model.graph.output[0]
    return [d.dim_value for d in out.type.tensor_type.shape.dim]


def _train(req: Request) -> list[Validation]:
    """One training step per model: loss, optimizer and lr from ``req.options``."""
    from hawkeye_onnx.training import TrainOptions, profile_train

    _framework(req.backend)  # a bad --backend is a bad option before any profiling
    o = req.options
    opts = TrainOptions(loss=o.get("loss", "cross-entropy"), optimizer=o.get("optimizer", "sgd"),
                        lr=float(o.get("lr", 0.01)))
    opts.check()
    python = framework_python(req.backend, req.python)
    statics, jobs = [], []
    for c in req.cases:
        shapes = bind_free_dims(c.model, c.input_shapes, req.batch)
        prof = profile_train(c.model, opts, backends=[req.backend], params={req.backend: {"parties": req.parties}},
                             input_shapes=shapes, batch=req.batch)
        statics.append(prof)
        jobs.append({"model": str(c.model.resolve()), "inputs": {k: list(v) for k, v in prof.model.inputs.items()},
                     "target_shape": _target_shape(c, shapes, req.batch), "loss": _LOSS[opts.loss],
                     "optimizer": opts.optimizer, "lr": opts.lr})
    measured = run_harness(req.backend, python, req.parties, jobs, req.timeout, kind="train")
    return [_compare(req.backend, p, m, req.parties, opts.optimizer)
            for p, m in zip(statics, measured, strict=True)]


def _compare(backend: str, prof: Any, rec: dict[str, Any], parties: int, optimizer: str) -> Validation:
    rep = prof.backends[backend]
    cuts = sorted({u.op_type for u in rep.unsupported if u.op_type.endswith("(backward)")})
    unsupported = tuple(sorted({u.op_type for u in rep.unsupported} - set(cuts)))
    t = rep.total
    base = Validation(model=prof.model.name, backend=backend, mode="train", parties=parties,
                      inputs=dict(prof.model.inputs), online=None, offline=None, offline_note=ONLINE_ONLY,
                      unsupported=unsupported, framework_error=None, check="", extra={"train": rec},
                      static_offline=(t.offline.bytes, t.offline.rounds))
    if "error" in rec:
        return replace(base, framework_error=str(rec["error"]).splitlines()[0][:300])
    phases = {}
    for name, parts in PHASE_GROUPS[backend].items():
        got = rec["phases"][name]
        phases[name] = Phase(sum(rep.phases[p].online.bytes for p in parts),
                             sum(rep.phases[p].online.rounds for p in parts), int(got["bytes"]), int(got["rounds"]))
    online = Phase(t.online.bytes, t.online.rounds, int(rec["bytes"]), int(rec["rounds"]))
    check = _check(rec)
    if backend == "crypten" and optimizer == "momentum":
        check += "; step 2 measured (CrypTen creates the momentum buffer on step 1)"
    if cuts:
        check += f"; the framework's autograd stops at: {', '.join(cuts)}"
    return replace(base, online=online, phases=phases, check=check)


def _check(rec: dict[str, Any]) -> str:
    """The step's revealed loss against the plain-float loss on the same inputs (a loose sanity check:
    fixed-point log/exp approximations)."""
    got = rec.get("loss_value", rec.get("first_loss"))
    want = rec.get("reference_loss")
    if got is None or want is None:
        return "loss not checked (no plain-float reference for this model)"
    err = abs(float(got) - float(want))
    ok = err <= 0.05 + 0.05 * abs(float(want))
    return f"loss {float(got):.4g} vs plain {float(want):.4g}: abs error {err:.2g}" + ("" if ok else " (MISMATCH)")


register_mode("train", _train)
