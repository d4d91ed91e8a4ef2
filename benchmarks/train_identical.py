"""Check that two source trees give byte-identical `report --mode train` output (a speed-up must not change it).

For every model in models/*.onnx it runs `hawkeye-onnx report MODEL --mode train --optimizer sgd,adam --batch 2
-b all -f json -q` from each tree (PYTHONPATH=<tree>), and compares the JSON, the exit code and stderr (models
that cannot be trained must fail the same way); `--extra MODEL` adds models run without --batch (e.g. the
benchmark's bench_20000.onnx). Exit status 1 if anything differs.

    python benchmarks/train_identical.py /work/main .
    python benchmarks/train_identical.py /work/main . --extra /tmp/bb/bench_20000.onnx
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(tree: Path, model: Path, batch: bool, out: Path) -> tuple[int, str, bytes]:
    args = [sys.executable, "-m", "hawkeye_onnx", "report", str(model), "--mode", "train", "-b", "all",
            "-f", "json", "-q", "-o", str(out)]
    if batch:
        args += ["--optimizer", "sgd,adam", "--batch", "2"]
    out.unlink(missing_ok=True)
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)},
                          check=False)
    return proc.returncode, proc.stderr, out.read_bytes() if out.exists() else b""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="the reference source tree (e.g. a checkout of main)")
    ap.add_argument("new", type=Path, help="the source tree under test")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="another model, run without --batch")
    a = ap.parse_args()
    cases = [(m, True) for m in sorted((ROOT / "models").glob("*.onnx"))] + [(m, False) for m in a.extra]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for model, batch in cases:
            base = run(a.base.resolve(), model, batch, Path(tmp) / "base.json")
            new = run(a.new.resolve(), model, batch, Path(tmp) / "new.json")
            same = base == new
            bad += not same
            print(f"{'same' if same else 'DIFFERENT':9s} exit {base[0]}/{new[0]}  {model.name}")
    print(f"{len(cases) - bad} of {len(cases)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
