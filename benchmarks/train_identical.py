"""Check that two source trees give byte-identical `report --mode train` output (a speed-up must not change it).

For every model in models/*.onnx it runs `hawkeye-onnx report MODEL --mode train --optimizer sgd,adam --batch 2
-b all -f json -q` from each tree (as its working folder and PYTHONPATH), and compares the JSON, the exit code
and stderr (models that cannot be trained must fail the same way); `--extra MODEL` adds models run without
--batch (e.g. the benchmark's bench_20000.onnx). Exit status 1 if anything differs, 2 if a tree's runs would not
import its own code.

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


def _python(tree: Path, args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """Run Python on `tree`'s code. `python -m`/`-c` put the working folder first on sys.path, before
    PYTHONPATH: the tree must be the working folder too, else every run imports the caller's folder's code."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tree,  # type: ignore[call-overload]
                          env={**os.environ, "PYTHONPATH": str(tree)}, check=False, **kwargs)


def imported_from(tree: Path) -> Path:
    """The folder `hawkeye_onnx` is imported from when run on `tree`."""
    return Path(_python(tree, ["-c", "import hawkeye_onnx; print(hawkeye_onnx.__file__)"]).stdout.strip()).parent


def run(tree: Path, model: Path, batch: bool, out: Path) -> tuple[int, str, bytes]:
    args = ["-m", "hawkeye_onnx", "report", str(model), "--mode", "train", "-b", "all", "-f", "json", "-q",
            "-o", str(out)]
    if batch:
        args += ["--optimizer", "sgd,adam", "--batch", "2"]
    out.unlink(missing_ok=True)
    proc = _python(tree, args)
    return proc.returncode, proc.stderr, out.read_bytes() if out.exists() else b""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="the reference source tree (e.g. a checkout of main)")
    ap.add_argument("new", type=Path, help="the source tree under test")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="another model, run without --batch")
    a = ap.parse_args()
    for tree in (a.base, a.new):
        found = imported_from(tree.resolve())
        if found != tree.resolve() / "hawkeye_onnx":
            print(f"{tree}: its runs would not import its own hawkeye_onnx (found {found})")
            return 2
    if a.base.resolve() == a.new.resolve():
        print("the two trees are the same folder")
        return 2
    cases = [(m, True) for m in sorted((ROOT / "models").glob("*.onnx"))] + [(m.resolve(), False) for m in a.extra]
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
