"""Export a small Keras CNN to ONNX through tf2onnx (the usual TensorFlow/Keras route).

A LeNet-style network for 28x28x1 images, channels-last as Keras builds it: Conv2D 3x3 (ReLU),
MaxPool 2, Conv2D 3x3 (ReLU), MaxPool 2, BatchNormalization, Flatten, Dense 64 (ReLU), Dense 10
(softmax). Weights are seeded (``keras.utils.set_random_seed(0)``), BatchNorm statistics randomised so
folding is observable. The model is saved as a TensorFlow SavedModel (``model.export``) and converted
with tf2onnx's command line (``python -m tf2onnx.convert --saved-model DIR --opset 17``), the route
Keras 3 users take (``tf2onnx.convert.from_keras`` does not accept Keras 3 models). tf2onnx names nodes
after the TensorFlow ops under the serving wrapper, e.g.
``StatefulPartitionedCall/keras_cnn_1/conv1_1/convolution``, and adds ``__N`` suffixes to the ops it
inserts (``.../convolution__6``, ``Transpose__40``). The file is checked with the ONNX checker and onnxruntime against Keras.

Regenerate (tensorflow-cpu 2.21, tf2onnx 1.17, onnxruntime)::

    /work/venvs/tf/bin/python models/export_keras.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from tensorflow import keras  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _index import merge  # noqa: E402

FILE = "keras_cnn_tf2onnx.onnx"
SHAPE = (1, 28, 28, 1)
OPSET = 17


def build() -> keras.Model:
    """The seeded Keras CNN, with non-trivial BatchNorm statistics."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=SHAPE[1:], batch_size=SHAPE[0], name="input"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="fc1"),
        keras.layers.Dense(10, activation="softmax", name="fc2"),
    ], name="keras_cnn")
    bn = model.get_layer("bn")
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = (w.numpy() for w in bn.weights)
    bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.uniform(-0.2, 0.2, beta.shape),
                    rng.uniform(-0.2, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def main() -> int:
    """Export, check against Keras, and record the file in ``index.json``."""
    model = build()
    path = HERE / FILE
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", tmp, "--opset", str(OPSET),
                        "--output", str(path)], check=True, capture_output=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model(x, training=False).numpy(), rtol=1e-4, atol=1e-5)
    name = session.get_inputs()[0].name
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    symbolic = {str(i): d.dim_param for i, d in enumerate(dims) if d.dim_param}
    print(f"{FILE}: {path.stat().st_size} B, {len(proto.graph.node)} nodes, input {name}")
    for n in proto.graph.node:
        print(f"   {n.op_type:20s} {n.name}")
    merge(HERE, [{"file": FILE, "inputs": {name: list(SHAPE)}, "exporter": f"tf2onnx {tf2onnx.__version__}",
                  "opset": OPSET, "description": "Keras CNN (Conv2D/MaxPool x2, BatchNorm, Dense 64-10 softmax), "
                  f"channels-last, SavedModel converted by tf2onnx from TensorFlow {tf.__version__}; "
                  "symbolic batch dim (use --batch)", "symbolic_dims": {name: symbolic}}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
