"""Measure the real communication of SecretFlow SPU 0.9.5 (SEMI2K) on an ONNX model.

The model is lowered to JAX by ``onnx2jax`` (graph inputs and float initializers secret), compiled
by SPU's frontend, and run by P real party processes linked by SPU's brpc link on 127.0.0.1. The
inputs are secret-shared by the parent (``spu.api.Io``, no link traffic) and handed to the
parties, which only run the executable; the outputs are revealed by the parent from the parties'
shares, again off the link. So the counters cover the model's evaluation only.

Counters: with ``enable_pphlo_profile`` / ``enable_hal_profile`` each party's runtime logs, at the
end of ``Runtime.run``, its link's send bytes and send actions during the run (``Link details``)
and a per-op breakdown at the pphlo, HAL and MPC layers. Each party's log (stdout/stderr, spdlog)
is captured to its own file and parsed.

Conventions (shared/ground-truth/README.md): FM64, 18 fraction bits, TrustedFirstParty Beaver
(no offline link traffic), ``trunc_allow_msb_error = false``; ``bytes`` = the sum of every party's
send bytes; ``rounds`` = a party's send actions / (P - 1) (the largest over the parties).

Runs in the SPU interpreter (``validation/setup_envs.sh`` makes one; see validation/spu/NOTES.md), never
in the profiler's: ``hawkeye-onnx validate`` calls ``run_jobs`` through ``run.py``. By hand:

    python hawkeye_onnx/harness/spu_measure.py MODEL.onnx --input input=1x784 --parties 2 [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FRACTION_BITS = 18
JOB_TIMEOUT_S = 1800.0

_LINK_RE = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), send actions (\d+), recv actions (\d+)")
_SECTION_RE = re.compile(r"(HLO|HAL|MPC) profiling: total time")
_OP_RE = re.compile(
    r"- (\S+), executed (\d+) times, duration \S+s, send bytes (\d+) recv bytes (\d+), "
    r"send actions (\d+), recv actions (\d+)"
)


def runtime_config() -> Any:
    """The SEMI2K runtime configuration of every measurement (the README's defaults, explicit)."""
    from spu import libspu

    cfg = libspu.RuntimeConfig(
        protocol=libspu.ProtocolKind.SEMI2K, field=libspu.FieldType.FM64, fxp_fraction_bits=FRACTION_BITS
    )
    cfg.beaver_type = libspu.RuntimeConfig.BeaverType.TrustedFirstParty
    cfg.trunc_allow_msb_error = False
    cfg.enable_pphlo_profile = True
    cfg.enable_hal_profile = True
    return cfg


def parse_profile(log: str) -> dict[str, Any]:
    """Parse one party's profile log of one ``Runtime.run``: link totals and per-op tables."""
    m = _LINK_RE.search(log)
    if m is None:
        raise RuntimeError("no 'Link details' line in the party's log (profiling off?)")
    out: dict[str, Any] = {
        "send_bytes": int(m[1]),
        "recv_bytes": int(m[2]),
        "send_actions": int(m[3]),
        "recv_actions": int(m[4]),
        "HLO": {},
        "HAL": {},
        "MPC": {},
    }
    section = None
    for line in log.splitlines():
        s = _SECTION_RE.search(line)
        if s:
            section = s[1]
            continue
        o = _OP_RE.search(line)
        if o and section:
            out[section][o[1]] = {"count": int(o[2]), "send_bytes": int(o[3]), "send_actions": int(o[5])}
    return out


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _worker(rank: int, ports: list[int], log_path: str, conn: Connection) -> None:
    """One SPU party: runs each job it receives on its brpc link and sends back its output shares
    and the profile log of that run."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from spu import api, libspu

    desc = libspu.link.Desc()
    desc.recv_timeout_ms = int(JOB_TIMEOUT_S * 1000)
    for r, port in enumerate(ports):
        desc.add_party(f"p{r}", f"127.0.0.1:{port}")
    lctx = libspu.link.create_brpc(desc, rank)
    cfg = runtime_config()
    while True:
        job = conn.recv()
        if job is None:
            break
        exe_bytes, shares = job
        try:
            exe = libspu.Executable()
            exe.ParseFromString(exe_bytes)
            rt = api.Runtime(lctx, cfg)
            for name, (meta, chunks) in zip(exe.input_names, shares, strict=True):
                sh = libspu.Share()
                sh.meta = meta
                sh.share_chunks = chunks
                rt.set_var(name, sh)
            start = os.lseek(fd, 0, os.SEEK_END)
            rt.run(exe)
            outs = []
            for name in exe.output_names:
                v = rt.get_var(name)
                outs.append((v.meta, list(v.share_chunks)))
            sys.stdout.flush()
            with open(log_path, encoding="utf-8", errors="replace") as f:
                f.seek(start)
                log = f.read()
            conn.send(("ok", outs, log))
        except Exception as e:  # reported to the parent, which stops every party
            msg = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("#")]
            conn.send(("error", f"{type(e).__name__}: {' '.join(msg[:3])}", traceback.format_exc()))
    lctx.stop_link()


class Cluster:
    """P SPU party processes on loopback brpc links, reused across runs."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.logdir = tempfile.mkdtemp(prefix="spu-measure-")
        ctx = mp.get_context("spawn")
        ports = _free_ports(parties)
        self.conns: list[Connection] = []
        self.procs = []
        for r in range(parties):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(r, ports, f"{self.logdir}/party{r}.log", child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def run(self, exe_bytes: bytes, shares: list[list[tuple[bytes, list[bytes]]]]) -> list[tuple[Any, str]]:
        """Run one executable; ``shares[i][r]`` is input i's share for party r. Returns, per
        party, its output shares and its profile log."""
        for r, c in enumerate(self.conns):
            c.send((exe_bytes, [s[r] for s in shares]))
        results = []
        for r, c in enumerate(self.conns):
            if not c.poll(JOB_TIMEOUT_S):
                raise RuntimeError(f"party {r} timed out")
            status, payload, log = c.recv()
            if status != "ok":
                raise RuntimeError(f"party {r}: {payload}")
            results.append((payload, log))
        return results

    def close(self, force: bool = False) -> None:
        """Stop the parties (``force``: kill them, e.g. after an error left peers waiting)."""
        if not force:  # ask every party at once: a party's stop_link waits for its peers
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.send(None)
        for p in self.procs:
            if not force:
                p.join(2)
            if p.is_alive():
                p.kill()
                p.join()
        shutil.rmtree(self.logdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(force=exc[0] is not None)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to fd 2 for a while: libspu's C++ logger prints to stdout (keeps ``--json`` clean)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def make_inputs(model: Any, shapes: dict[str, Sequence[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random data inputs (standard normal; (0.5, 2) where the op needs positive values)."""
    from onnx2jax import positive_inputs

    rng = np.random.default_rng(seed)
    pos = positive_inputs(model)
    out = {}
    for name, dims in shapes.items():
        if name in pos:
            out[name] = rng.uniform(0.5, 2.0, size=tuple(dims)).astype(np.float32)
        else:
            out[name] = rng.standard_normal(tuple(dims)).astype(np.float32)
    return out


def _fix_input_shapes(model: Any, shapes: dict[str, Sequence[int]]) -> None:
    names = {i.name for i in model.graph.input}
    for name in shapes:
        if name not in names:
            raise ValueError(f"model has no input {name!r} (inputs: {sorted(names)})")
    for i in model.graph.input:
        if i.name in shapes:
            dims = i.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[i.name]:
                dims.add().dim_value = int(d)


def _merge(profiles: list[dict[str, Any]], section: str, unattributed: bool = False) -> dict[str, Any]:
    """Per-op table of one profile layer: ``bytes`` summed over the parties, ``actions`` of the
    busiest party. ``unattributed``: add what the link sent outside every listed op (e.g. ops
    the pphlo profiler does not time, such as ``custom_call``)."""
    ops: dict[str, Any] = {}
    for prof in profiles:
        for name, st in prof[section].items():
            e = ops.setdefault(name, {"count": st["count"], "bytes": 0, "actions": 0})
            e["bytes"] += st["send_bytes"]
            e["actions"] = max(e["actions"], st["send_actions"])
    out = {k: v for k, v in sorted(ops.items()) if v["bytes"] or v["actions"]}
    if unattributed:
        rest_b = sum(p["send_bytes"] for p in profiles) - sum(v["bytes"] for v in out.values())
        rest_a = max(p["send_actions"] - sum(s["send_actions"] for s in p[section].values()) for p in profiles)
        if rest_b or rest_a:
            out["(unattributed)"] = {"count": 0, "bytes": rest_b, "actions": rest_a}
    return out


def measure(
    model_path: str | Path,
    inputs: dict[str, Sequence[int]],
    parties: int,
    cluster: Cluster | None = None,
    seed: int = 0,
    rtol: float = 2e-2,
    atol: float = 2e-2,
    split_groups: bool = False,
    dump_ir: str | None = None,
) -> dict[str, Any]:
    """Measure one model; returns the result record, or ``{"error": ...}`` if SPU cannot run it.

    ``split_groups``: lower grouped convolutions as one convolution per group (see onnx2jax);
    ``dump_ir``: write the compiled pphlo program to this file."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    from onnx2jax import lower
    from spu import api, libspu
    from spu.utils import frontend as fe

    model = onnx.load(str(model_path))
    _fix_input_shapes(model, inputs)
    try:
        lowered = lower(model, split_groups=split_groups)
    except NotImplementedError as e:
        return {"error": f"onnx2jax: {e}"}
    data = make_inputs(model, inputs, seed)
    missing = [n for n in lowered.secret_names if n not in data and n not in lowered.weights]
    if missing:
        return {"error": f"no shape given for inputs {missing}"}
    args = [data[n] if n in data else lowered.weights[n] for n in lowered.secret_names]
    try:
        exe, _ = fe.compile(
            fe.Kind.JAX,
            lowered.fn,
            tuple(args),
            {},
            list(lowered.secret_names),
            [libspu.Visibility.VIS_SECRET] * len(args),
            lambda outs: [f"out{i}" for i in range(len(outs))],
        )
    except Exception as e:
        return {"error": f"compile: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    io = api.Io(parties, runtime_config())
    shares = []
    for a in args:
        ss = io.make_shares(np.asarray(a), libspu.Visibility.VIS_SECRET)
        shares.append([(s.meta, list(s.share_chunks)) for s in ss])
    if dump_ir:
        Path(dump_ir).write_text(exe.code.decode() if isinstance(exe.code, bytes) else exe.code)
    own = cluster is None
    cl = cluster or Cluster(parties)
    try:
        results = cl.run(exe.SerializeToString(), shares)
    except Exception as e:
        cl.close(force=True)
        if not own:
            raise
        return {"error": f"spu: {e}"}
    if own:
        cl.close()
    profiles = [parse_profile(log) for _, log in results]
    outs = []
    for i in range(len(exe.output_names)):
        ss = []
        for r in range(parties):
            sh = libspu.Share()
            sh.meta, sh.share_chunks = results[r][0][i]
            ss.append(sh)
        outs.append(np.asarray(io.reconstruct(ss)))
    ref = ReferenceEvaluator(model).run(None, data)
    errs = [
        float(np.max(np.abs(o.astype(np.float64) - np.asarray(r, np.float64)))) if o.size else 0.0
        for o, r in zip(outs, ref, strict=True)
    ]
    ok = all(np.allclose(o, r, rtol=rtol, atol=atol) for o, r in zip(outs, ref, strict=True))
    actions = [p["send_actions"] for p in profiles]
    rounds = max(actions) / (parties - 1)
    return {
        "model": str(model_path),
        "inputs": {k: list(v) for k, v in inputs.items()},
        "parties": parties,
        "bytes": sum(p["send_bytes"] for p in profiles),
        "rounds": int(rounds) if rounds.is_integer() else rounds,
        "per_party": [{"send_bytes": p["send_bytes"], "send_actions": p["send_actions"]} for p in profiles],
        "per_op": _merge(profiles, "HLO", unattributed=True),
        "hal": _merge(profiles, "HAL"),
        "mpc": _merge(profiles, "MPC"),
        "secret_inputs": list(lowered.secret_names),
        "split_groups": split_groups,
        "max_abs_err": max(errs) if errs else 0.0,
        "matches_reference": bool(ok),
    }


def run_on_cluster(parties: int, jobs: list[dict[str, Any]],
                   one: Callable[[dict[str, Any], Cluster], tuple[dict[str, Any], bool]]) -> list[dict[str, Any]]:
    """Run `one(job, cluster)` for every job on one set of `parties` processes; `one` returns the job's result
    and whether the cluster is still usable (if not, fresh parties are started for the next job). One result
    per job, in order, without its "model" key."""
    results: list[dict[str, Any]] = []
    cluster: Cluster | None = None
    with _stdout_to_stderr():
        try:
            for job in jobs:
                if cluster is None:
                    cluster = Cluster(parties)
                res, usable = one(job, cluster)
                if not usable:
                    cluster = None
                res.pop("model", None)
                results.append(res)
        finally:
            if cluster is not None:
                cluster.close()
    return results


def run_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure every job of ``spec`` = ``{"parties": P, "jobs": [{"model", "inputs", "split_groups"}]}``
    (the batch form ``hawkeye-onnx validate`` sends) on one set of party processes, started afresh
    after a job that left them in an error; one result per job, in order."""
    parties = int(spec["parties"])

    def one(job: dict[str, Any], cluster: Cluster) -> tuple[dict[str, Any], bool]:
        try:
            split = bool(job.get("split_groups", False))
            return measure(job["model"], job["inputs"], parties, cluster=cluster, split_groups=split), True
        except Exception as e:  # the parties were stopped: start fresh ones for the next job
            return {"error": f"spu: {e}"}, False

    return run_on_cluster(parties, spec["jobs"], one)


def _parse_input(s: str) -> tuple[str, list[int]]:
    name, _, dims = s.partition("=")
    if not dims:
        raise argparse.ArgumentTypeError(f"expected NAME=AxBxC, got {s!r}")
    return name, [int(d) for d in dims.split("x")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--input", type=_parse_input, action="append", required=True, metavar="NAME=AxBxC")
    ap.add_argument("--parties", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--split-groups",
        action="store_true",
        help="run a grouped Conv as one convolution per group (SPU cannot run the grouped form)",
    )
    ap.add_argument("--dump-ir", metavar="FILE", help="write the compiled pphlo program to FILE")
    ap.add_argument("--json", action="store_true", help="print the full record as JSON")
    args = ap.parse_args(argv)
    with _stdout_to_stderr():
        res = measure(
            args.model,
            dict(args.input),
            args.parties,
            seed=args.seed,
            split_groups=args.split_groups,
            dump_ir=args.dump_ir,
        )
    if args.json:
        print(json.dumps(res, indent=1))
        return 1 if "error" in res else 0
    if "error" in res:
        print(f"error: {res['error']}", file=sys.stderr)
        return 1
    print(
        f"{args.model} P={args.parties}: rounds={res['rounds']} bytes={res['bytes']:,} "
        f"(per party {[p['send_bytes'] for p in res['per_party']]}, actions "
        f"{[p['send_actions'] for p in res['per_party']]}) max_abs_err={res['max_abs_err']:.2e} "
        f"reference={'ok' if res['matches_reference'] else 'MISMATCH'}"
    )
    for name, st in res["per_op"].items():
        print(f"  {name:28s} x{st['count']:<4d} bytes={st['bytes']:>12,d} actions={st['actions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
