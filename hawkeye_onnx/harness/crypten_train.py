"""Measure the real communication of one CrypTen 0.4.1 training step on an ONNX model, phase by phase.

One step = forward (``crypten.nn.from_onnx`` model in training mode), loss (``crypten.nn.CrossEntropyLoss``
against a secret one-hot label, or ``crypten.nn.MSELoss`` against a secret target), backward
(``loss.backward()``, CrypTen's own autograd, crypten/gradients.py), update (``crypten.optim.SGD`` with a
public lr, optional momentum; CrypTen ships no Adam: ``adam`` runs one written with MPCTensor ops).
The counters are read between phases; sharing the inputs, label and weights is excluded, and so is the
reveal of the loss value after the step (checked against ``onnx.reference`` + NumPy on the same inputs).
Same conventions as ``crypten_measure`` (bytes = logged bytes summed over parties / 2, rounds = the
largest party counter). With ``trace`` every logged communication of party 0 is listed with the CrypTen
function that made it (what the rules are checked against).

Momentum: CrypTen's SGD creates the momentum buffer on the first step (no communication for it), so
the steady-state step is the second one; ``run_jobs`` runs two steps for momentum and reports the last.

Runs in the CrypTen interpreter; ``hawkeye-onnx validate --mode train`` calls ``run_jobs`` through
``run.py`` (job kind ``train``). By hand (validation/crypten/measure_train.py is the same command):

    python hawkeye_onnx/harness/crypten_train.py MODEL.onnx --input input=1x784 [--loss mse] [--momentum 0.9]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# crypten_measure installs the torch.onnx stub crypten needs: import it before crypten
from crypten_measure import _BytesIO, _stats, parse_input, prepare, run_parties  # noqa: I001

import crypten
import crypten.communicator as comm
import torch

PHASES = ("forward", "loss", "backward", "update")


def _tracer(events: list[tuple[str, int, str]]) -> None:
    """Record every logged communication of this party: phase, elements, innermost crypten frames."""
    c = comm.get()
    original = c._log_communication

    def logged(nelement: int) -> None:
        frames = [f for f in traceback.extract_stack()[:-1] if "/crypten/" in f.filename
                  and "/communicator/" not in f.filename]
        where = " < ".join(f"{Path(f.filename).name}:{f.name}:{f.lineno}" for f in reversed(frames[-12:]))
        events.append((c._phase, int(nelement), where))
        original(nelement)

    c._phase = "?"
    c._log_communication = logged


def _adam_step(params: list, state: list, lr: float, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-8) -> list:
    """Adam written with MPCTensor ops (CrypTen ships none), op for op as hawkeye-onnx's training graph:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g*g; p -= lr * (m / (1-b1)) / (sqrt(v / (1-b2)) + eps)."""
    out = []
    for p, (m, v) in zip(params, state, strict=True):
        g = p.grad
        m = m.mul(b1).add(g.mul(1 - b1))
        v = v.mul(b2).add(g.mul(g).mul(1 - b2))
        denom = v.mul(1 / (1 - b2)).sqrt().add(eps)
        p.sub_(m.mul(1 / (1 - b1)).div(denom).mul(lr))
        out.append((m, v))
    return out


def _party(rank: int, world: int, rendezvous: str, model_bytes: bytes, plain: dict[str, torch.Tensor],
           opts: dict[str, Any], queue: Any) -> None:
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank), "RENDEZVOUS": rendezvous,
                       "DISTRIBUTED_BACKEND": "gloo", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"})
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    stage = "init"
    try:
        crypten.init()
        crypten.cfg.communicator.verbose = True
        events: list[tuple[str, int, str]] = []
        if opts["trace"] and rank == 0:
            _tracer(events)
        stage = "crypten.nn.from_onnx"
        model = crypten.nn.from_onnx(_BytesIO(model_bytes))
        stage = "encrypt"
        model.encrypt(src=0)
        model.train()
        names = [i.name for i in onnx.load_from_string(model_bytes).graph.input]
        missing = [n for n in names if n not in plain]
        if missing:
            raise ValueError(f"no shape given for graph input(s) {missing}")
        xs = [crypten.cryptensor(plain[n], src=1) for n in names]
        target = crypten.cryptensor(opts["target"], src=1)
        loss_fn = crypten.nn.MSELoss() if opts["loss"] == "mse" else crypten.nn.CrossEntropyLoss()
        optim = crypten.optim.SGD(model.parameters(), lr=opts["lr"], momentum=opts["momentum"])
        params = list(model.parameters())
        adam_state = [(p.new(torch.zeros(p.size())), p.new(torch.zeros(p.size()))) for p in params]
        steps = []
        for _step in range(opts["steps"]):
            optim.zero_grad()
            comm.get().barrier()
            comm.get().reset_communication_stats()
            phases: dict[str, dict[str, int]] = {}
            last = (0, 0)

            def mark(phase: str, last_: tuple[int, int], phases: dict = phases) -> tuple[int, int]:
                now = _stats()
                phases[phase] = {"bytes": now[0] - last_[0], "rounds": now[1] - last_[1]}
                return now

            t0 = time.perf_counter()
            stage = "forward"
            comm.get()._phase = "forward"
            single = xs[0] if len(xs) == 1 else xs
            out = model(*xs) if isinstance(model, crypten.nn.Graph) else model(single)
            last = mark("forward", last)
            stage = comm.get()._phase = "loss"
            loss = loss_fn(out, target)
            last = mark("loss", last)
            stage = comm.get()._phase = "backward"
            loss.backward()
            last = mark("backward", last)
            stage = comm.get()._phase = "update"
            if opts["adam"]:
                with crypten.no_grad():
                    adam_state = _adam_step(params, adam_state, opts["lr"])
            else:
                optim.step()
            last = mark("update", last)
            seconds = time.perf_counter() - t0
            value = float(loss.get_plain_text())  # after the counters were read
            steps.append({"phases": phases, "seconds": seconds, "loss": value})
        queue.put((rank, {"steps": steps, "events": events}))
        crypten.uninit()
    except Exception as exc:
        msg = f"{stage}: {type(exc).__name__}: {exc}".replace("\n", " ")
        queue.put((rank, {"error": msg[:400]}))
        queue.close()
        queue.join_thread()
        os._exit(1)


def reference_loss(model: onnx.ModelProto, feeds: dict[str, np.ndarray], target: np.ndarray,
                   loss: str) -> float | None:
    """The first step's loss in plain floats: onnx.reference forward, then NumPy mean squared error or
    cross-entropy as ``crypten.nn.CrossEntropyLoss`` defines it: both sides squeezed, then
    ``-sum(onehot * log_softmax) / size(0)`` (so at batch 1 it divides by the class count). None when the
    reference cannot run."""
    try:
        from onnx.reference import ReferenceEvaluator

        out = np.asarray(ReferenceEvaluator(model).run(None, feeds)[0], dtype=np.float64)
    except Exception:
        return None
    if out.shape != target.shape:
        return None
    if loss == "mse":
        return float(np.mean((out - target) ** 2))
    out, target = out.squeeze(), target.squeeze()
    z = out - out.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-(target * logp).sum() / out.shape[0])


def make_target(loss: str, shape: list[int], gen: torch.Generator) -> torch.Tensor:
    """The secret label: one-hot of ``arange(batch) % classes`` (cross-entropy) or uniform [0, 1) (MSE)."""
    if loss == "mse":
        return torch.rand(shape, generator=gen)
    batch, classes = shape[0], shape[-1]
    return torch.nn.functional.one_hot(torch.arange(batch) % classes, classes).float().reshape(shape)


def measure_train(model_path: str | Path, shapes: dict[str, list[int]], classes: int = 10,
                  loss: str = "cross_entropy", lr: float = 0.01, momentum: float = 0.0, steps: int = 1,
                  trace: bool = False, timeout: float = 900.0, adam: bool = False, parties: int = 2,
                  target_shape: list[int] | None = None) -> dict[str, Any]:
    """Run `steps` training steps with `parties` parties; return per-step phases (and party 0's trace).
    The label has `target_shape` (default ``[batch, classes]``)."""
    gen = torch.Generator().manual_seed(0)
    plain = {n: torch.rand(s, generator=gen) + 0.5 for n, s in shapes.items()}
    batch = next(iter(shapes.values()))[0]
    target = make_target(loss, list(target_shape or [batch, classes]), gen)
    opts = {"loss": loss, "lr": lr, "momentum": momentum, "steps": steps, "trace": trace, "target": target,
            "adam": adam}
    original = onnx.load(str(model_path))
    model_bytes = prepare(onnx.load(str(model_path)))
    results = run_parties(_party, parties, parties, timeout,
                          lambda r, rdv, queue: (r, parties, rdv, model_bytes, plain, opts, queue))
    if "error" in results:
        return results
    out_steps = []
    for s in range(steps):
        phases = {}
        for ph in PHASES:
            per = [results[r]["steps"][s]["phases"][ph] for r in range(parties)]
            phases[ph] = {"bytes": sum(p["bytes"] for p in per) // 2, "rounds": max(p["rounds"] for p in per)}
        out_steps.append({"phases": phases,
                          "bytes": sum(p["bytes"] for p in phases.values()),
                          "rounds": sum(p["rounds"] for p in phases.values()),
                          "loss": results[0]["steps"][s]["loss"],
                          "seconds": round(max(results[r]["steps"][s]["seconds"] for r in range(parties)), 3)})
    res: dict[str, Any] = {"steps": out_steps}
    ref = reference_loss(original, {n: t.numpy() for n, t in plain.items()}, target.numpy().astype(np.float64),
                         loss)
    if ref is not None:
        res["reference_loss"] = ref
    if trace:
        res["trace"] = results[0]["events"]
    return res


def run_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure every job of ``spec`` = ``{"parties": P, "jobs": [{"model", "inputs", "target_shape", "loss",
    "optimizer", "lr"}]}`` (what ``hawkeye-onnx validate --mode train`` sends); one record per job: the
    phases of the measured step (the second for momentum), its loss and the reference loss."""
    timeout = float(spec.get("timeout", 900.0))
    out = []
    for job in spec["jobs"]:
        opt = job.get("optimizer", "sgd")
        steps = 2 if opt == "momentum" else 1
        res = measure_train(job["model"], job["inputs"], loss=job.get("loss", "cross_entropy"),
                            lr=float(job.get("lr", 0.01)), momentum=0.9 if opt == "momentum" else 0.0,
                            steps=steps, timeout=timeout, adam=opt == "adam", parties=int(spec["parties"]),
                            target_shape=job.get("target_shape"))
        if "error" not in res:
            last = res["steps"][-1]
            res = {**last, "step": steps, "first_loss": res["steps"][0]["loss"],
                   **({"reference_loss": res["reference_loss"]} if "reference_loss" in res else {})}
        out.append(res)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--input", action="append", type=parse_input, required=True)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--loss", choices=["cross_entropy", "mse"], default="cross_entropy")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--parties", type=int, default=2)
    ap.add_argument("--target-shape", type=lambda s: [int(d) for d in s.split("x")], default=None,
                    help="label shape when the output is not (batch, classes), e.g. 1x16x32")
    ap.add_argument("--adam", action="store_true", help="update with Adam written in MPCTensor ops (_adam_step)")
    args = ap.parse_args(argv)
    res = measure_train(args.model, dict(args.input), args.classes, args.loss, args.lr, args.momentum,
                        args.steps, args.trace, adam=args.adam, parties=args.parties,
                        target_shape=args.target_shape)
    print(json.dumps(res, indent=1))
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
