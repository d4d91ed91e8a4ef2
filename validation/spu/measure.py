"""Command-line name kept for the notes: the SPU harness now ships with the package, in
``hawkeye_onnx/harness/spu_measure.py`` (``hawkeye-onnx validate`` runs it). Run in the SPU venv:

    python validation/spu/measure.py MODEL.onnx --input input=1x784 --parties 2 [--json]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hawkeye_onnx" / "harness"))

from spu_measure import Cluster, main, measure

__all__ = ["Cluster", "main", "measure"]

if __name__ == "__main__":
    sys.exit(main())
