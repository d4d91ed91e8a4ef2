"""Measure one SPU 0.9.5 (SEMI2K) training step on an ONNX model: forward, loss+backward, update.

The ONNX graph is lowered to JAX by ``onnx2jax``; the step is ``jax.grad`` of the loss with respect to
the weights (the float initializers; no gradient for the data input), loss = softmax cross-entropy
against a secret one-hot label (``-sum(onehot * log_softmax(logits)) / batch``) or the mean squared
error against a secret target. Three programs are compiled and run on the same cluster: ``forward``
(inference), ``grad`` (forward + loss + backward, ``jax.value_and_grad``: the loss value and the
gradients) and ``update`` (SGD ``w - lr * g`` with a public lr; momentum ``v = 0.9 v + g; w - lr v``;
Adam). The "loss+backward" phase is ``grad`` minus ``forward`` (SPU runs one program, so the split is
by difference, as in shared/ground-truth/README.md). Per-HLO-op tables show where the bytes go. The
revealed loss value is checked against the same loss computed by JAX in plain floats.

Runs in the SPU interpreter; ``hawkeye-onnx validate --mode train`` calls ``run_jobs`` through ``run.py``
(job kind ``train``). By hand (validation/spu/measure_train.py is the same command):

    python hawkeye_onnx/harness/spu_train.py MODEL.onnx --input input=1x784 [--loss mse] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spu_measure import (
    Cluster,
    _fix_input_shapes,
    _merge,
    _parse_input,
    _stdout_to_stderr,
    make_inputs,
    parse_profile,
    run_on_cluster,
    runtime_config,
)


def _run(cl: Cluster, fn: Any, args: list[np.ndarray], parties: int) -> dict[str, Any]:
    """Compile `fn` with every argument secret, run it on the cluster; counters and revealed outputs."""
    from spu import api, libspu
    from spu.utils import frontend as fe

    names = [f"a{i}" for i in range(len(args))]
    exe, _ = fe.compile(fe.Kind.JAX, fn, tuple(args), {}, names, [libspu.Visibility.VIS_SECRET] * len(args),
                        lambda outs: [f"out{i}" for i in range(len(outs))])
    io = api.Io(parties, runtime_config())
    shares = []
    for a in args:
        ss = io.make_shares(np.asarray(a), libspu.Visibility.VIS_SECRET)
        shares.append([(s.meta, list(s.share_chunks)) for s in ss])
    results = cl.run(exe.SerializeToString(), shares)
    profiles = [parse_profile(log) for _, log in results]
    rounds = max(p["send_actions"] for p in profiles) / (parties - 1)
    first = []
    for r in range(parties):  # reveal output 0 only (the loss value of the grad program)
        sh = libspu.Share()
        sh.meta, sh.share_chunks = results[r][0][0]
        first.append(sh)
    return {"bytes": sum(p["send_bytes"] for p in profiles), "rounds": int(rounds),
            "per_op": _merge(profiles, "HLO", unattributed=True), "mpc": _merge(profiles, "MPC"),
            "out0": np.asarray(io.reconstruct(first))}


def measure_train(model_path: str, shapes: dict[str, list[int]], classes: int = 10, loss: str = "cross_entropy",
                  optimizer: str = "sgd", lr: float = 0.01, parties: int = 2,
                  target_shape: list[int] | None = None, cluster: Cluster | None = None) -> dict[str, Any]:
    """One step's phases; the label has `target_shape` (default ``[batch, classes]``). `cluster`: reuse
    running parties (else a cluster is started and stopped here)."""
    import jax
    import jax.numpy as jnp
    import onnx
    from onnx2jax import lower

    model = onnx.load(model_path)
    _fix_input_shapes(model, shapes)
    lowered = lower(model)
    data = make_inputs(model, shapes)
    n_data = len([n for n in lowered.secret_names if n not in lowered.weights])
    xs = [data[n] for n in lowered.secret_names[:n_data]]
    ws = [lowered.weights[n] for n in lowered.secret_names[n_data:]]
    batch = next(iter(shapes.values()))[0]
    shape = tuple(target_shape or (batch, classes))
    rng = np.random.default_rng(1)
    if loss == "mse":
        target = rng.standard_normal(shape).astype(np.float32)
    else:
        target = np.eye(shape[-1], dtype=np.float32)[np.arange(batch) % shape[-1]].reshape(shape)

    def loss_fn(weights: list[Any], inputs: list[Any], y: Any) -> Any:
        out = lowered.fn(*inputs, *weights)[0]
        if loss == "mse":
            return jnp.mean((out - y) ** 2)
        return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1)) / out.shape[0]

    def grad_prog(*args: Any) -> list[Any]:
        inputs, y, weights = list(args[:n_data]), args[n_data], list(args[n_data + 1:])
        value, grads = jax.value_and_grad(loss_fn)(weights, inputs, y)
        return [value, *grads]

    def forward_prog(*args: Any) -> list[Any]:
        return lowered.fn(*args)

    k = len(ws)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def update_prog(*args: Any) -> list[Any]:
        w, g = list(args[:k]), list(args[k:2 * k])
        if optimizer == "sgd":
            return [wi - lr * gi for wi, gi in zip(w, g, strict=True)]
        if optimizer == "momentum":
            v = list(args[2 * k:])
            nv = [0.9 * vi + gi for vi, gi in zip(v, g, strict=True)]
            return [wi - lr * vi for wi, vi in zip(w, nv, strict=True)] + nv
        m, v = list(args[2 * k:3 * k]), list(args[3 * k:])
        nm = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g, strict=True)]
        nv = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g, strict=True)]
        out = [wi - lr * (mi / (1 - b1)) / (jnp.sqrt(vi / (1 - b2)) + eps)
               for wi, mi, vi in zip(w, nm, nv, strict=True)]
        return out + nm + nv

    grads_plain = [np.full_like(w, 0.01) for w in ws]
    state = {"sgd": [], "momentum": [np.zeros_like(w) for w in ws],
             "adam": [np.zeros_like(w) for w in ws] + [np.full_like(w, 1e-4) for w in ws]}[optimizer]
    own = cluster is None
    cl = cluster or Cluster(parties)
    try:
        fwd = _run(cl, forward_prog, xs + ws, parties)
        grd = _run(cl, grad_prog, [*xs, target, *ws], parties)
        upd = _run(cl, update_prog, ws + grads_plain + state, parties)
    finally:
        if own:
            cl.close()
    reference = float(jax.jit(loss_fn)(ws, xs, target))  # the same JAX function in plain floats (traced)
    phases = {"forward": {"bytes": fwd["bytes"], "rounds": fwd["rounds"]},
              "loss+backward": {"bytes": grd["bytes"] - fwd["bytes"], "rounds": grd["rounds"] - fwd["rounds"]},
              "update": {"bytes": upd["bytes"], "rounds": upd["rounds"]}}
    return {"model": model_path, "inputs": shapes, "parties": parties, "loss": loss, "optimizer": optimizer,
            "phases": phases, "bytes": sum(p["bytes"] for p in phases.values()),
            "rounds": sum(p["rounds"] for p in phases.values()),
            "loss_value": float(grd["out0"]), "reference_loss": reference,
            "grad_per_op": grd["per_op"], "grad_mpc": grd["mpc"], "update_per_op": upd["per_op"]}


def run_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure every job of ``spec`` = ``{"parties": P, "jobs": [{"model", "inputs", "target_shape", "loss",
    "optimizer", "lr"}]}`` (what ``hawkeye-onnx validate --mode train`` sends) on one set of party
    processes, started afresh after a job that left them in an error; one record per job."""
    parties = int(spec["parties"])

    def one(job: dict[str, Any], cluster: Cluster) -> tuple[dict[str, Any], bool]:
        try:
            return measure_train(job["model"], job["inputs"], loss=job.get("loss", "cross_entropy"),
                                 optimizer=job.get("optimizer", "sgd"), lr=float(job.get("lr", 0.01)),
                                 parties=parties, target_shape=job.get("target_shape"), cluster=cluster), True
        except NotImplementedError as e:  # onnx2jax refuses an op: nothing ran
            return {"error": f"onnx2jax: {e}"}, True
        except Exception as e:  # the parties may be stuck: start fresh ones for the next job
            cluster.close(force=True)
            return {"error": f"spu: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}, False

    return run_on_cluster(parties, spec["jobs"], one)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--input", action="append", type=_parse_input, required=True)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--loss", choices=["cross_entropy", "mse"], default="cross_entropy")
    ap.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--parties", type=int, default=2)
    ap.add_argument("--target-shape", type=lambda s: [int(d) for d in s.split("x")], default=None,
                    help="label shape when the output is not (batch, classes), e.g. 1x16x32")
    args = ap.parse_args(argv)
    with _stdout_to_stderr():
        res = measure_train(args.model, dict(args.input), args.classes, args.loss, args.optimizer, args.lr,
                            args.parties, args.target_shape)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
