"""Measure the real communication of CrypTen 0.4.1 on an ONNX model.

Runs the model with P real party processes (torch.distributed, gloo, on 127.0.0.1 only) on
already-encrypted inputs and reports what CrypTen's own counters logged during the model's
evaluation only: the input sharing and the output reveal are excluded (counters are reset after
encryption and read before decryption).

Conventions (shared/ground-truth/README.md):
- every graph input is secret data (shared by party 1); float initializers are weights, secret
  too (shared by party 0); ``Constant`` nodes and integer initializers are public;
- ``bytes`` = (sum of all parties' logged bytes) / 2, so one opening of n ring elements counts
  8*P*n bytes; ``rounds`` = a party's ``rounds`` counter (the largest over the parties).

With ``--provider TTP`` a trusted-third-party process serves the Beaver triples; the traffic of
party 0's requests to it is measured separately (``ttp``) and removed from the online figures.

Runs in the CrypTen interpreter (``validation/setup_envs.sh`` makes one; see validation/crypten/NOTES.md),
never in the profiler's: ``hawkeye-onnx validate`` calls ``run_jobs`` through ``run.py``. By hand:

    python hawkeye_onnx/harness/crypten_measure.py MODEL.onnx --input input=1x784 --parties 2 [--json]
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
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

# torch >= 2.x removed the module crypten's ONNX converter imports at load time; it is only
# used by crypten.nn.from_pytorch, never by from_onnx, so an empty stand-in is enough.
_REG = "torch.onnx._internal.registration"
if _REG not in sys.modules:
    _stub = types.ModuleType(_REG)
    _stub.registry = None  # type: ignore[attr-defined]
    sys.modules[_REG] = _stub

import crypten  # noqa: E402
import crypten.communicator as comm  # noqa: E402
import torch  # noqa: E402

DATA_SRC = 1  # party that owns the data inputs
MODEL_SRC = 0  # party that owns the weights


def prepare(model: onnx.ModelProto) -> bytes:
    """Return `model` rewritten into the form ``crypten.nn.from_onnx`` can load.

    Only graph plumbing changes, never the computation: ``Identity`` nodes are removed (their
    consumers read the identity's input), non-float initializers (shapes, axes) become
    ``Constant`` nodes (public, as CrypTen's own PyTorch export produces them), and initializers
    are dropped from the graph's input list.
    """
    g = model.graph
    alias: dict[str, str] = {}
    kept = []
    for node in g.node:
        if node.op_type == "Identity":
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
        else:
            kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    for out in g.output:  # an output an Identity produced now names the identity's source
        out.name = alias.get(out.name, out.name)
    dims = {i.name: len(i.dims) for i in g.initializer}
    for node in kept:
        _fill_defaults(node, dims)
    consts = []
    floats = []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.ndim > 0:  # rank 0: a literal the exporter lifted (public)
            floats.append(init)
        else:
            consts.append(helper.make_node("Constant", [], [init.name], value=init))
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    del g.node[:]
    g.node.extend(consts + kept)
    del g.initializer[:]
    g.initializer.extend(floats)
    del g.input[:]
    g.input.extend(inputs)
    return model.SerializeToString()


def _fill_defaults(node: onnx.NodeProto, init_rank: dict[str, int]) -> None:
    """Write out the ONNX-spec default attributes that CrypTen's loader insists on.

    ``crypten.nn.from_onnx`` asserts that Gemm has alpha/beta, Conv has strides/pads/dilations,
    pooling has strides and Softmax has axis; ONNX makes them optional (PyTorch always writes
    them). The values written are the ONNX defaults, so the computation is unchanged.
    """
    have = {a.name for a in node.attribute}
    ks = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
    k = len(ks) if ks else (init_rank.get(node.input[1], 4) - 2 if len(node.input) > 1 else 2)
    defaults: dict[str, Any] = {}
    if node.op_type == "Gemm":
        defaults = {"alpha": 1.0, "beta": 1.0}
    elif node.op_type == "Conv":
        defaults = {"strides": [1] * k, "pads": [0] * (2 * k), "dilations": [1] * k}
    elif node.op_type in ("MaxPool", "AveragePool"):
        defaults = {"strides": [1] * k}
    elif node.op_type in ("Softmax", "LogSoftmax"):
        defaults = {"axis": -1}
    for name, value in defaults.items():
        if name not in have:
            node.attribute.append(helper.make_attribute(name, value))


# What CrypTen 0.4.1's own code does when it raises these (see NOTES.md, "Loader limits").
_KNOWN_FAILURES = {
    "KeyError: 'axes'": "crypten's Sum/Mean modules read axes only from the attribute; ONNX ReduceSum "
    "(opset>=13) and ReduceMean (opset>=18) pass axes as an input",
    "Is graph unconnected": "crypten.nn.Graph marks only the first of a node's repeated inputs as "
    "available (e.g. Concat(f, f)), so that node never runs",
}


def _stats() -> tuple[int, int]:
    s = comm.get().get_communication_stats()
    return int(s["bytes"]), int(s["rounds"])


class _TTPMeter:
    """Counts party 0's traffic with the trusted third party (requests and their results)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.requests = 0
        self.elements = 0
        self.bytes = 0
        self.rounds = 0
        self.by_function: dict[str, int] = {}
        self.requests_by_function: dict[str, int] = {}

    def install(self) -> None:
        from crypten.mpc.provider.ttp_provider import TTPClient

        client = TTPClient.get()
        original = client.ttp_request

        def metered(func_name: str, device: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
            b0, r0 = _stats()
            result = original(func_name, device, *args, **kwargs)
            b1, r1 = _stats()
            self.requests += 1
            self.elements += result.nelement()
            self.by_function[func_name] = self.by_function.get(func_name, 0) + result.nelement()
            self.requests_by_function[func_name] = self.requests_by_function.get(func_name, 0) + 1
            self.bytes += b1 - b0
            self.rounds += r1 - r0
            return result

        client.ttp_request = metered

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "elements": self.elements,
            "logged_bytes": self.bytes,
            "logged_rounds": self.rounds,
            "elements_by_function": self.by_function,
            "requests_by_function": self.requests_by_function,
            # what the counter logged for the pickled request dicts and result sizes
            # (send_obj/recv_obj log sys.getsizeof); the rest of logged_bytes is 8 per element of c
            "pickled_bytes": self.bytes - 8 * self.elements,
        }


def _party(
    rank: int,
    world: int,
    rendezvous: str,
    provider: str,
    model_bytes: bytes,
    plain: dict[str, torch.Tensor],
    queue: Any,
) -> None:
    """Body of one party process: encrypt, reset counters, evaluate, read counters."""
    os.environ.update(
        {
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "RENDEZVOUS": rendezvous,
            "DISTRIBUTED_BACKEND": "gloo",
            "GLOO_SOCKET_IFNAME": "lo",
            "MASTER_ADDR": "127.0.0.1",
        }
    )
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    crypten.cfg.mpc.provider = provider
    if rank == world:  # the trusted third party: serves requests until party 0 says stop
        from crypten.mpc.provider import TTPServer

        TTPServer()
        return
    stage = "init"
    try:
        crypten.init()
        crypten.cfg.communicator.verbose = True
        meter = _TTPMeter()
        if provider == "TTP" and rank == 0:
            meter.install()
        stage = "crypten.nn.from_onnx"
        model = crypten.nn.from_onnx(_BytesIO(model_bytes))
        stage = "encrypt"
        names = [i.name for i in onnx.load_from_string(model_bytes).graph.input]
        missing = [n for n in names if n not in plain]
        if missing:
            raise ValueError(f"no shape given for graph input(s) {missing}")
        model.encrypt(src=MODEL_SRC)
        model.eval()
        xs = [crypten.cryptensor(plain[n], src=DATA_SRC) for n in names]
        comm.get().barrier()
        comm.get().reset_communication_stats()
        meter.reset()
        t0 = time.perf_counter()
        stage = "forward"
        with crypten.no_grad():
            # from_onnx returns a one-node graph as that bare module, which takes one argument
            single = xs[0] if len(xs) == 1 else xs
            out = model(*xs) if isinstance(model, crypten.nn.Graph) else model(single)
        seconds = time.perf_counter() - t0
        nbytes, rounds = _stats()
        ttp = meter.as_dict()
        if not crypten.is_encrypted_tensor(out):
            raise ValueError(f"model output is not encrypted ({type(out).__name__})")
        result = out.get_plain_text()
        queue.put(
            (
                rank,
                {
                    "bytes": nbytes - ttp["logged_bytes"],
                    "output": result.numpy(),
                    "rounds": rounds - ttp["logged_rounds"],
                    "seconds": seconds,
                    "ttp": ttp if provider == "TTP" and rank == 0 else None,
                },
            )
        )
        crypten.uninit()
    except Exception as exc:  # reported to the parent as one line
        msg = f"{stage}: {type(exc).__name__}: {exc}".replace("\n", " ")
        msg += next((f" ({why})" for key, why in _KNOWN_FAILURES.items() if key in msg), "")
        queue.put((rank, {"error": msg[:400]}))
        queue.close()
        queue.join_thread()  # flush before the hard exit (other parties may be blocked)
        os._exit(1)


class _BytesIO:
    """Minimal seekable file for crypten.nn.from_onnx (which calls seek then onnx.load)."""

    def __init__(self, data: bytes) -> None:
        import io

        self._f = io.BytesIO(data)

    def seek(self, pos: int) -> int:
        return self._f.seek(pos)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


def run_parties(target: Any, world: int, parties: int, timeout: float,
                args: Any) -> dict[Any, dict[str, Any]]:
    """Run `world` forked processes `target(*args(rank, rendezvous, queue))` (the first `parties` are the
    computing parties; a TTP dealer may follow) and collect each party's result dict from the queue, by rank.
    Returns ``{"error": ...}`` when a party reports one, dies without a message or the timeout passes."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    rdv_dir = tempfile.mkdtemp(prefix="crypten-rdv-")
    rdv = "file://" + os.path.join(rdv_dir, "rendezvous")
    procs = [ctx.Process(target=target, args=args(r, rdv, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results: dict[Any, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(results) < parties and time.monotonic() < deadline:
        try:
            rank, res = queue.get(timeout=1.0)
            results[rank] = res
            if "error" in res:
                break
        except Exception:  # queue.Empty: check the processes are still alive
            if any(p.exitcode not in (None, 0) for p in procs[:parties]):
                time.sleep(1.0)
                while not queue.empty():
                    rank, res = queue.get()
                    results[rank] = res
                break
    for p in procs:
        p.join(timeout=5.0 if len(results) == parties else 0.5)
        if p.is_alive():
            p.kill()
            p.join()
    shutil.rmtree(rdv_dir, ignore_errors=True)
    errors = [r["error"] for r in results.values() if "error" in r]
    if errors or len(results) < parties:
        return {"error": errors[0] if errors else "timed out or a party died without a message"}
    return results


def measure(
    model_path: str | Path,
    shapes: dict[str, list[int]],
    parties: int = 2,
    provider: str = "TFP",
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Evaluate the model with `parties` processes and return its measured communication.

    Returns ``{"bytes", "rounds", "per_party": [...], ...}`` or ``{"error": "..."}``.
    """
    original = onnx.load(str(model_path))
    gen = torch.Generator().manual_seed(0)
    plain = {n: torch.rand(s, generator=gen) + 0.5 for n, s in shapes.items()}
    model_bytes = prepare(onnx.load(str(model_path)))
    world = parties + (1 if provider == "TTP" else 0)
    results = run_parties(_party, world, parties, timeout,
                          lambda r, rdv, queue: (r, parties, rdv, provider, model_bytes, plain, queue))
    if "error" in results:
        return results
    per = [results[r] for r in range(parties)]
    out = {
        "bytes": sum(r["bytes"] for r in per) // 2,
        "rounds": max(r["rounds"] for r in per),
        "per_party": [{"bytes": r["bytes"], "rounds": r["rounds"]} for r in per],
        "seconds": round(max(r["seconds"] for r in per), 3),
    }
    if provider == "TTP":
        out["ttp"] = per[0]["ttp"]
    out.update(_reference_check(original, plain, per[0]["output"]))
    return out


def _reference_check(model: onnx.ModelProto, plain: dict[str, torch.Tensor], got: np.ndarray) -> dict[str, Any]:
    """Compare CrypTen's decrypted output with onnx.reference on the same inputs.

    Returns ``{"max_abs_err": float}``, or ``{"output_mismatch": "..."}`` when the shapes differ
    (CrypTen silently evaluated something else), or ``{}`` when the reference cannot run.
    """
    try:
        from onnx.reference import ReferenceEvaluator

        feeds = {n: t.numpy() for n, t in plain.items()}
        want = np.asarray(ReferenceEvaluator(model).run(None, feeds)[0], dtype=np.float64)
    except Exception:  # the reference evaluator lacks the op
        return {}
    if want.shape != got.shape:
        return {"output_mismatch": f"CrypTen output shape {list(got.shape)}, ONNX {list(want.shape)}"}
    return {"max_abs_err": round(float(np.max(np.abs(want - got))), 6)}


def run_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure every job of ``spec`` = ``{"parties": P, "jobs": [{"model", "inputs", "provider"}]}``
    (the batch form ``hawkeye-onnx validate`` sends); one result per job, in order."""
    timeout = float(spec.get("timeout", 900.0))
    return [
        measure(job["model"], job["inputs"], int(spec["parties"]), job.get("provider", "TFP"), timeout)
        for job in spec["jobs"]
    ]


def parse_input(spec: str) -> tuple[str, list[int]]:
    """Parse ``name=1x784`` into ``("name", [1, 784])``."""
    name, _, dims = spec.partition("=")
    if not dims:
        raise argparse.ArgumentTypeError(f"expected NAME=DxDx..., got {spec!r}")
    return name, [int(d) for d in dims.lower().split("x")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument(
        "--input",
        action="append",
        type=parse_input,
        required=True,
        help="graph input shape, NAME=DxD...; repeat for several inputs",
    )
    ap.add_argument("--parties", type=int, default=2)
    ap.add_argument("--provider", choices=["TFP", "TTP"], default="TFP")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = measure(args.model, dict(args.input), args.parties, args.provider)
    if args.json:
        print(json.dumps(res))
    elif "error" in res:
        print(f"error: {res['error']}")
    else:
        print(
            f"{args.model}: P={args.parties} {args.provider} rounds={res['rounds']} "
            f"bytes={res['bytes']:,} per-party={res['per_party']} "
            f"check={res.get('max_abs_err', res.get('output_mismatch'))}"
            + (f" ttp={res['ttp']}" if "ttp" in res else "")
        )
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
