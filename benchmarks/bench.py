"""Scale benchmark: hawkeye-onnx report vs the floor (onnx.load + onnx shape inference) on big graphs.

Builds synthetic models of about 20k, 200k and 1M nodes with TorchScript-style scoped names
(`/layer3/layer3.12/conv2/Conv`, `/layer3/layer3.12/attn/Softmax`) and a mix of Conv, Relu, Add, MatMul,
Gemm, Softmax, Transpose, Reshape, Mul, Sigmoid, MaxPool-free residual blocks; every weight is an
external-data reference into one sparse file, so the .onnx stays small (as a real exported model's
protobuf does). Then, in the same run and each in its own subprocess, it times

  (a) the floor: `onnx.load(path, load_external_data=False)` + `onnx.shape_inference.infer_shapes_path`,
  (b) `hawkeye-onnx report MODEL -b all -f json -o OUT` (and `--mode train` if the CLI has it),

and prints wall time, the ratio (b)/(a), the peak resident memory of the largest process (ru_maxrss) and
the sampled peak PSS of the whole process tree (hawkeye-onnx forks workers on big models) of each
(sampled in a run of its own: the sampler slows what it samples).

    python benchmarks/bench.py                 # 20k, 200k, 1M nodes
    python benchmarks/bench.py --sizes 20k,200k --repeat 3

Targets (issue 8): ratio <= 2 and peak memory <= 2x the floor's at 200k and 1M nodes, linear growth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent

C, HW = 32, 8  # conv stream: 1 x C x HW x HW
T, D = HW * HW, C  # token stream: 1 x T x D (the conv map flattened)
NODES_PER_BLOCK = 21


class _Gen:
    """Emits nodes and external-data weights with exporter-style names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.offset = 0
        self.uid = 0

    def weight(self, qual: str, shape: tuple[int, ...]) -> str:
        t = TensorProto()
        t.name = qual
        t.data_type = TensorProto.FLOAT
        t.dims.extend(shape)
        t.data_location = TensorProto.EXTERNAL
        n = 4
        for d in shape:
            n *= d
        for k, v in (("location", "bench.data"), ("offset", str(self.offset)), ("length", str(n))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.offset += n
        self.inits.append(t)
        return qual

    def const(self, values: list[int]) -> str:
        self.uid += 1
        name = f"onnx::Reshape_{self.uid}"
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    def op(self, scope: str, op: str, inputs: list[str], **attrs: object) -> str:
        name = f"{scope}/{op}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out


def _block(g: _Gen, x: str, path: str, qual: str, shapes: tuple[str, str]) -> str:
    """One residual conv block plus one attention-style block: NODES_PER_BLOCK nodes."""
    to_tokens, to_map = shapes
    h = x
    for i in (1, 2):
        h = g.op(f"{path}/conv{i}", "Conv", [h, g.weight(f"{qual}.conv{i}.weight", (C, C, 3, 3)),
                                             g.weight(f"{qual}.conv{i}.bias", (C,))],
                 kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
        h = g.op(f"{path}/relu{'' if i == 1 else '_1'}", "Relu", [h])
    h = g.op(path, "Add", [h, x])
    t = g.op(path, "Reshape", [h, to_tokens])
    q = g.op(f"{path}/attn/q", "MatMul", [t, g.weight(f"onnx::MatMul_{qual}.q", (D, D))])
    k = g.op(f"{path}/attn/k", "MatMul", [t, g.weight(f"onnx::MatMul_{qual}.k", (D, D))])
    kt = g.op(f"{path}/attn", "Transpose", [k], perm=[0, 2, 1])
    s = g.op(f"{path}/attn", "MatMul", [q, kt])
    s = g.op(f"{path}/attn", "Mul", [s, g.weight(f"{qual}.attn.scale", ())])
    p = g.op(f"{path}/attn", "Softmax", [s], axis=-1)
    a = g.op(f"{path}/attn/out", "MatMul", [p, t])
    t2 = g.op(f"{path}/attn", "Add", [a, t])
    f = g.op(f"{path}/mlp", "Reshape", [t2, g.const([T, D])])
    f = g.op(f"{path}/mlp/fc1", "Gemm", [f, g.weight(f"{qual}.mlp.fc1.weight", (D, D)),
                                         g.weight(f"{qual}.mlp.fc1.bias", (D,))], transB=1)
    f = g.op(f"{path}/mlp/act", "Sigmoid", [f])
    f = g.op(f"{path}/mlp/fc2", "Gemm", [f, g.weight(f"{qual}.mlp.fc2.weight", (D, D)),
                                         g.weight(f"{qual}.mlp.fc2.bias", (D,))], transB=1)
    f = g.op(f"{path}/mlp", "Reshape", [f, to_tokens])
    t3 = g.op(f"{path}/mlp", "Add", [f, t2])
    t3 = g.op(f"{path}/mlp/relu", "Relu", [t3])
    return g.op(f"{path}/out", "Reshape", [t3, to_map])


def build(nodes: int, folder: Path) -> Path:
    """Write `bench_<nodes>.onnx` (+ a sparse `bench.data`) with about `nodes` nodes; returns its path."""
    path = folder / f"bench_{nodes}.onnx"
    if path.exists():
        return path
    g = _Gen()
    blocks = max(1, nodes // NODES_PER_BLOCK)
    stages = 4
    per_stage = -(-blocks // stages)
    shapes = (g.const([1, T, D]), g.const([1, C, HW, HW]))
    x = g.op("/stem/conv", "Conv", ["input", g.weight("stem.conv.weight", (C, 3, 3, 3))],
             kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    done = 0
    for s in range(1, stages + 1):
        for b in range(per_stage):
            if done == blocks:
                break
            x = _block(g, x, f"/layer{s}/layer{s}.{b}", f"layer{s}.{b}", shapes)
            done += 1
    x = g.op("/head", "ReduceMean", [x], axes=[2, 3], keepdims=0)
    x = g.op("/head/fc", "Gemm", [x, g.weight("head.fc.weight", (10, C)), g.weight("head.fc.bias", (10,))], transB=1)
    g.nodes[-1].output[0] = "output"
    graph = helper.make_graph(g.nodes, "bench", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, HW, HW])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hawkeye-bench")
    model.ir_version = 8
    with (folder / "bench.data").open("ab") as fh:  # sparse: takes no disk blocks
        fh.truncate(max(fh.tell(), g.offset))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.rename(path)
    return path


FLOOR = """
import sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
onnx.shape_inference.infer_shapes_path(sys.argv[1], sys.argv[2])
"""


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc), for memory that forked workers add."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process ended meanwhile
                todo += [int(c) for c in task.read_text().split()]
    return out


def _pss_mb(pid: int) -> float:
    """Proportional set size of `pid`'s tree in MB: pages shared after a fork are split between the
    sharers, so the sum is the memory the tree really holds."""
    total = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            pass
    return total / 1024


def _timed(cmd: list[str], sample_pss: bool = False) -> tuple[float, float, float, float]:
    """Wall seconds, peak RSS (MB) of the largest process, CPU seconds (user + system) and, with
    `sample_pss`, the sampled peak PSS (MB) of the whole process tree of one child process (else 0); fails
    loudly if the child fails. CPU time is the steadier number on a shared machine, wall time the one a user
    waits; the tree's PSS counts the memory of forked workers, which ru_maxrss (one process's peak) does not.

    Sampling PSS is not free: reading /proc/PID/smaps_rollup walks the page tables of a process of GBs and
    holds its memory lock meanwhile, and the sampler needs a core. On a 2-core machine it slowed the
    two-process report at 1M nodes from 35 s to 46 s and left the one-process floor alone; so wall times
    come from runs without the sampler and PSS from a run of its own.

    Every run starts with the earlier runs' written files on disk (`os.sync`): both commands write hundreds of
    MB (the inferred model, the JSON), and a run that shares the disk with the previous one's writeback was
    up to 1.3 s slower at 200k nodes."""
    if hasattr(os, "sync"):
        os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _pss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_pss and Path("/proc/self/smaps_rollup").exists():
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-2000:]}")
    rss = usage.ru_maxrss / 1024  # Linux: ru_maxrss in KiB
    return wall, rss, usage.ru_utime + usage.ru_stime, max(peak[0], 0.0)


def _measure(cmd: list[str], repeat: int) -> tuple[float, float, float, float]:
    """The best of `repeat` unsampled runs (wall, RSS, CPU), with the PSS of one more, sampled run."""
    best = min((_timed(cmd) for _ in range(repeat)), key=lambda r: r[0])
    return (*best[:3], _timed(cmd, sample_pss=True)[3])


def _report_help() -> str:
    """`report --help`, to use `--mode train` and `--quiet` only where this checkout's CLI has them."""
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", "--help"], capture_output=True,
                          text=True, env={**_env(), "COLUMNS": "200"}, cwd=ROOT).stdout


def _env() -> dict[str, str]:
    """The environment of the timed commands, which run in ROOT: `python -m` puts the working folder first on
    sys.path, before PYTHONPATH, so both make the commands import this checkout's hawkeye_onnx wherever the
    script is started from."""
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20k,200k,1M", help="comma-separated node counts (k/M suffixes)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs per measurement, the best kept (plus one run that samples memory)")
    ap.add_argument("--dir", type=Path, default=None, help="keep the models here (default: a temp folder)")
    ap.add_argument("--modes", default="inference,train",
                    help="modes to time (train only where the CLI has --mode)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    folder_ctx = tempfile.TemporaryDirectory(prefix="hawkeye-bench-") if args.dir is None else None
    folder = Path(folder_ctx.name) if folder_ctx else args.dir.resolve()  # the commands run in ROOT (`_env`)
    folder.mkdir(parents=True, exist_ok=True)
    helptext = _report_help()
    modes = [m for m in args.modes.split(",") if m == "inference" or "--mode" in helptext]
    quiet = ["--quiet"] if "--quiet" in helptext else []
    rows = []
    print(f"{'nodes':>9} {'mode':>9} {'floor s':>8} {'cpu s':>6} {'floor MB':>9} {'report s':>9} {'cpu s':>6} "
          f"{'report MB':>10} {'tree PSS':>9} {'ratio':>6} {'cpu x':>6} {'mem x':>6} {'pss x':>6}  json MB", flush=True)
    for n in (_size(s) for s in args.sizes.split(",")):
        path = build(n, folder)
        count = len(onnx.load(str(path), load_external_data=False).graph.node)
        floor_cmd = [sys.executable, "-c", FLOOR, str(path), str(folder / "inferred.onnx")]
        floor = _measure(floor_cmd, args.repeat)
        for mode in modes:
            out = folder / f"report_{n}_{mode}.json"
            cmd = [sys.executable, "-m", "hawkeye_onnx", "report", str(path), "-b", "all", "-f", "json", "-o", str(out),
                   *quiet]
            if mode != "inference":
                cmd += ["--mode", mode]
            rep = _measure(cmd, args.repeat)
            json_mb = out.stat().st_size / 1e6
            row = {"nodes": count, "mode": mode, "floor_s": round(floor[0], 2), "floor_cpu_s": round(floor[2], 2),
                   "floor_mb": round(floor[1]), "report_s": round(rep[0], 2), "report_cpu_s": round(rep[2], 2),
                   "report_mb": round(rep[1]), "ratio": round(rep[0] / floor[0], 2),
                   "cpu_ratio": round(rep[2] / floor[2], 2), "mem_ratio": round(rep[1] / floor[1], 2),
                   "tree_pss_mb": round(rep[3]), "pss_ratio": round(rep[3] / max(floor[3], 1.0), 2),
                   "json_mb": round(json_mb, 1)}
            rows.append(row)
            print(f"{count:>9} {mode:>9} {floor[0]:>8.2f} {floor[2]:>6.2f} {floor[1]:>9.0f} {rep[0]:>9.2f} "
                  f"{rep[2]:>6.2f} {rep[1]:>10.0f} {rep[3]:>9.0f} {row['ratio']:>6.2f} {row['cpu_ratio']:>6.2f} "
                  f"{row['mem_ratio']:>6.2f} {row['pss_ratio']:>6.2f}  {json_mb:.1f}", flush=True)
            out.unlink()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if folder_ctx:
        folder_ctx.cleanup()


if __name__ == "__main__":
    main()
