"""Export two scikit-learn classifiers to ONNX through skl2onnx.

* ``sklearn_logreg.onnx``: ``LogisticRegression`` (20 features, 2 classes), converted with skl2onnx's
  defaults: ``ai.onnx.ml`` ops ``LinearClassifier`` and ``ZipMap`` (the probabilities as a list of
  {class: probability} maps), plus a ``Cast`` of the label, as skl2onnx writes them.
* ``sklearn_mlp.onnx``: ``MLPClassifier`` (20-16-8, ReLU, 3 classes): MatMul/Add/Relu/Softmax in the
  default domain, then the ``ai.onnx.ml`` label lookup (``ArgMax`` + ``ArrayFeatureExtractor``) and
  ``ZipMap``.

Both are trained on a small seeded synthetic data set (``make_classification``). skl2onnx gives flat
node names (``LinearClassifier``, ``MatMul1``, ``Relu2`` for the Softmax...), so hawkeye-onnx groups them by op type.
Each file passes the ONNX checker and its onnxruntime probabilities match ``predict_proba``.

Regenerate (scikit-learn 1.9, skl2onnx 1.20, onnxruntime)::

    /work/venvs/skl/bin/python models/export_sklearn.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _index import merge  # noqa: E402

BATCH = 4
FEATURES = 20
OPSET = {"": 17, "ai.onnx.ml": 3}


def _export(name: str, model, x: np.ndarray, description: str) -> dict:
    proto = to_onnx(model, x[:1], target_opset=OPSET, options={"zipmap": True})
    path = HERE / name
    onnx.save(proto, str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, probs = session.run(None, {"X": x[:BATCH]})
    got = np.array([[p[c] for c in model.classes_] for p in probs])
    np.testing.assert_allclose(got, model.predict_proba(x[:BATCH]), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(label, model.predict(x[:BATCH]))
    print(f"{name}: {path.stat().st_size} B, {len(proto.graph.node)} nodes")
    for n in proto.graph.node:
        print(f"   {n.domain or 'ai.onnx':10s} {n.op_type:22s} {n.name}")
    return {"file": name, "inputs": {"X": [BATCH, FEATURES]}, "exporter": f"skl2onnx {skl2onnx.__version__}",
            "opset": OPSET[""], "description": description + f" (scikit-learn {sklearn.__version__}); "
            "symbolic batch dim (use --batch)", "symbolic_dims": {"X": {"0": "N"}}}


def main() -> int:
    """Train, export, check against scikit-learn, and record both files in ``index.json``."""
    x, y = make_classification(n_samples=200, n_features=FEATURES, n_informative=8, n_classes=2, random_state=0)
    x = x.astype(np.float32)
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    x3, y3 = make_classification(n_samples=300, n_features=FEATURES, n_informative=8, n_classes=3, random_state=0)
    x3 = x3.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a fixture, not a tuned model
        mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=200, random_state=0).fit(x3, y3)
    entries = [
        _export("sklearn_logreg.onnx", logreg, x, "scikit-learn LogisticRegression, 20 features, 2 classes: "
                "ai.onnx.ml LinearClassifier + ZipMap"),
        _export("sklearn_mlp.onnx", mlp, x3, "scikit-learn MLPClassifier 20-16-8-3 (ReLU, softmax): MatMul/Add/"
                "Relu/Softmax, then ai.onnx.ml ArgMax/ArrayFeatureExtractor label lookup and ZipMap"),
    ]
    merge(HERE, entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
