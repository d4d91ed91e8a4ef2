"""Measure the real communication of one CrypTen 0.4.1 training step on an ONNX model, phase by phase.

One step = forward (``crypten.nn.from_onnx`` model in training mode), loss (``crypten.nn.CrossEntropyLoss``
against a secret one-hot label, or ``crypten.nn.MSELoss`` against a secret target), backward
(``loss.backward()``, CrypTen's own autograd, crypten/gradients.py), update (``crypten.optim.SGD`` with a
public lr, optional momentum; CrypTen ships no Adam: ``--adam`` runs one written with MPCTensor ops).
The counters are read between phases; sharing the
inputs, label and weights is excluded. Same conventions as ``measure.py`` (bytes = logged bytes summed
over parties / 2, rounds = one party's counter). With ``--trace`` every logged communication of party 0
is listed with the CrypTen function that made it (what the rules are checked against).

    python validation/crypten/measure_train.py MODEL.onnx --input input=1x784 [--loss mse] [--momentum 0.9]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# measure.py installs the torch.onnx stub crypten needs: import it before crypten
from measure import _BytesIO, _stats, parse_input, prepare  # noqa: I001

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
    try:
        crypten.init()
        crypten.cfg.communicator.verbose = True
        events: list[tuple[str, int, str]] = []
        if opts["trace"] and rank == 0:
            _tracer(events)
        model = crypten.nn.from_onnx(_BytesIO(model_bytes))
        model.encrypt(src=0)
        model.train()
        names = [i.name for i in onnx.load_from_string(model_bytes).graph.input]
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
            comm.get()._phase = "forward"
            single = xs[0] if len(xs) == 1 else xs
            out = model(*xs) if isinstance(model, crypten.nn.Graph) else model(single)
            last = mark("forward", last)
            comm.get()._phase = "loss"
            loss = loss_fn(out, target)
            last = mark("loss", last)
            comm.get()._phase = "backward"
            loss.backward()
            last = mark("backward", last)
            comm.get()._phase = "update"
            if opts["adam"]:
                with crypten.no_grad():
                    adam_state = _adam_step(params, adam_state, opts["lr"])
            else:
                optim.step()
            last = mark("update", last)
            steps.append({"phases": phases, "seconds": time.perf_counter() - t0})
        queue.put((rank, {"steps": steps, "events": events}))
        crypten.uninit()
    except Exception as exc:
        queue.put((rank, {"error": f"{type(exc).__name__}: {exc}"[:400]}))
        queue.close()
        queue.join_thread()
        os._exit(1)


def measure_train(model_path: str | Path, shapes: dict[str, list[int]], classes: int, loss: str = "cross_entropy",
                  lr: float = 0.01, momentum: float = 0.0, steps: int = 1, trace: bool = False,
                  timeout: float = 900.0, adam: bool = False, parties: int = 2,
                  target_shape: list[int] | None = None) -> dict[str, Any]:
    """Run `steps` training steps with `parties` parties; return per-step phases (and party 0's trace)."""
    gen = torch.Generator().manual_seed(0)
    plain = {n: torch.rand(s, generator=gen) + 0.5 for n, s in shapes.items()}
    batch = next(iter(shapes.values()))[0]
    if loss == "mse":
        target = torch.rand(target_shape or [batch, classes], generator=gen)
    else:
        target = torch.nn.functional.one_hot(torch.arange(batch) % classes, classes).float()
    opts = {"loss": loss, "lr": lr, "momentum": momentum, "steps": steps, "trace": trace, "target": target,
            "adam": adam}
    model_bytes = prepare(onnx.load(str(model_path)))
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    rdv_dir = tempfile.mkdtemp(prefix="crypten-rdv-")
    rdv = "file://" + os.path.join(rdv_dir, "rendezvous")
    procs = [ctx.Process(target=_party, args=(r, parties, rdv, model_bytes, plain, opts, queue))
             for r in range(parties)]
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(results) < parties and time.monotonic() < deadline:
        try:
            rank, res = queue.get(timeout=1.0)
            results[rank] = res
            if "error" in res:
                break
        except Exception:
            if any(p.exitcode not in (None, 0) for p in procs):
                break
    for p in procs:
        p.join(timeout=5.0)
        if p.is_alive():
            p.kill()
            p.join()
    shutil.rmtree(rdv_dir, ignore_errors=True)
    errors = [r["error"] for r in results.values() if "error" in r]
    if errors or len(results) < parties:
        return {"error": errors[0] if errors else "timed out"}
    out_steps = []
    for s in range(steps):
        phases = {}
        for ph in PHASES:
            per = [results[r]["steps"][s]["phases"][ph] for r in range(parties)]
            phases[ph] = {"bytes": sum(p["bytes"] for p in per) // 2, "rounds": max(p["rounds"] for p in per)}
        out_steps.append({"phases": phases,
                          "bytes": sum(p["bytes"] for p in phases.values()),
                          "rounds": sum(p["rounds"] for p in phases.values())})
    res: dict[str, Any] = {"steps": out_steps}
    if trace:
        res["trace"] = results[0]["events"]
    return res


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
                    help="MSE target shape when the output is not (batch, classes), e.g. 1x16x32")
    ap.add_argument("--adam", action="store_true", help="update with Adam written in MPCTensor ops (_adam_step)")
    args = ap.parse_args(argv)
    res = measure_train(args.model, dict(args.input), args.classes, args.loss, args.lr, args.momentum,
                        args.steps, args.trace, adam=args.adam, parties=args.parties,
                        target_shape=args.target_shape)
    print(json.dumps(res, indent=1))
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
