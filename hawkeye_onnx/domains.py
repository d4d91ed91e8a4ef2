"""Operators outside the default ONNX domain (`ai.onnx.ml` from skl2onnx, vendor domains).

None of the MPC frameworks priced here imports them: CrypTen's `crypten.nn.from_onnx` maps op types
of the default domain only, SPU runs JAX programs (a user writes the JAX), and OpenCheetah /
CryptFlow2 / Delphi compile standard ONNX or TensorFlow layers. So such a node is reported as
unsupported with a reason that says so and, where one exists, the standard-op rewrite that would run.
"""

from __future__ import annotations

#: Rewrites into standard ONNX ops a model designer can apply before profiling.
REWRITES = {
    "ai.onnx.ml::ZipMap": "it only relabels the probabilities: convert without it (skl2onnx "
                          "options={'zipmap': False}) or read the tensor before it",
    "ai.onnx.ml::LinearClassifier": "export the linear model as Gemm + Sigmoid/Softmax (e.g. a torch.nn.Linear)",
    "ai.onnx.ml::LinearRegressor": "export it as Gemm",
    "ai.onnx.ml::Normalizer": "write the normalisation with standard ops (ReduceSum/Div)",
    "ai.onnx.ml::Scaler": "write it as Sub + Mul with public constants",
    "ai.onnx.ml::ArrayFeatureExtractor": "return the class index (ArgMax) instead of looking up the label",
}


def non_default_reason(domain: str, key: str, framework: str) -> str:
    """Why a node of a non-default domain is unsupported, and how to get a priced model."""
    hint = REWRITES.get(key)
    text = (f"{key} is in the {domain} domain, not standard ONNX: {framework} imports no {domain} operators, "
            "so the framework cannot run it as exported")
    return f"{text}; {hint}" if hint else text
