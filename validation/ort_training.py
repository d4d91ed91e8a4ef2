"""Record onnxruntime-training's backward graph for small models (the test oracle of the expander).

onnxruntime-training 1.19.2 (`generate_artifacts`, shared/reference/onnx-facts.md §1.7) needs its own
Python 3.11 venv (`pip install onnxruntime-training==1.19.2`) and a stand-in `torch` module. Writes
validation/measured/training/ort_grads.json: per model, every backward node ORT emits
(`<forward node>_Grad/<Op>_<k>`, op type, domain), CrossEntropyLoss, all float initializers trainable.

    /path/to/ort-venv/bin/python validation/ort_training.py models/mlp.onnx models/lenet5.onnx ...
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

OUT = Path(__file__).resolve().parent / "measured" / "training" / "ort_grads.json"


def backward_nodes(model_path: str) -> list[list[str]]:
    """ORT's backward nodes of `model_path`: [name, op type, domain]."""
    import onnx
    from onnxruntime.training import artifacts

    m = onnx.load(model_path)
    params = [i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    with tempfile.TemporaryDirectory() as out:
        artifacts.generate_artifacts(m, requires_grad=params, frozen_params=[],
                                     loss=artifacts.LossType.CrossEntropyLoss, optimizer=artifacts.OptimType.AdamW,
                                     artifact_directory=out)
        tm = onnx.load(f"{out}/training_model.onnx")
    return [[n.name, n.op_type, n.domain] for n in tm.graph.node if "_Grad/" in n.name]


def main(argv: list[str]) -> int:
    fake = mock.MagicMock()
    fake.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    sys.modules.setdefault("torch", fake)  # onnxruntime.training imports torch at package import only
    data = json.loads(OUT.read_text()) if OUT.exists() else {"about": __doc__.splitlines()[0], "models": {}}
    for path in argv:
        data["models"][Path(path).name] = backward_nodes(path)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
