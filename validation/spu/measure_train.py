"""Command-line name kept for the notes: the SPU training harness ships with the package, in
``hawkeye_onnx/harness/spu_train.py`` (``hawkeye-onnx validate --mode train`` runs it). In the SPU venv:

    python validation/spu/measure_train.py MODEL.onnx --input input=1x784 [--loss mse] [--optimizer adam]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hawkeye_onnx" / "harness"))

from spu_train import main, measure_train

__all__ = ["main", "measure_train"]

if __name__ == "__main__":
    sys.exit(main())
