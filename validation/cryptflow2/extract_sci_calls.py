"""Extract the layer calls of SCI's own ImageNet networks (the ones the CrypTFlow2 paper measured) into
`sci_networks.json`.

SCI's networks (`mpc-msri/EzPC SCI/networks/main_{resnet50,densenet121,sqnet}.cpp`) are Athos-generated C++.
They are not OpenCheetah's hand-edited copies (`validation/cheetah/opencheetah_networks.json`): SCI's
ResNet-50 has 53 separate convolutions, 49 FusedBatchNorm4411 and 49 ScaleDown4, and every Relu4 truncates
(`doTruncation = 1`, known MSB), where OpenCheetah's fuses 31 BatchNorms into convolutions and keeps 18
ScaleDowns. This script lists, in order after `StartComputation();`, every call that communicates, with its
integer arguments (casts stripped, pointer arguments dropped):

    Conv2DWrapper (N, H, W, CI, FH, FW, CO, padHL, padHR, padWL, padWR, strideH, strideW)
    FusedBatchNorm4411 (N, H, W, C, multExprScaleDownSf, biasExprScaleUpSf)
    Relu4 (N, H, W, C, sf, doTruncation)       ScaleDown4 (N, H, W, C, sf)
    MaxPool / AvgPool (N, H, W, C, kH, kW, padHL, padHR, padWL, padWR, sH, sW, N1, imgH, imgW, C1)
    MatMul2D (d0, d1, d2, modelIsA)            ArgMax1 / ArgMax3 (sizes)

    python validation/cryptflow2/extract_sci_calls.py EZPC_GIT_DIR > validation/cryptflow2/sci_networks.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

CALLS = ("Conv2DWrapper", "FusedBatchNorm4411", "Relu4", "ScaleDown4", "MaxPool", "AvgPool", "MatMul2D",
         "ArgMax1", "ArgMax3")


def calls(git_dir: str, name: str) -> list[list]:
    src = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:SCI/networks/main_{name}.cpp"],
                         capture_output=True, text=True, check=True).stdout
    code = src[src.index("StartComputation();"):]
    out = []
    for fn, args in re.findall(r"\b(" + "|".join(CALLS) + r")\(([^;]*)\);", code, re.S):
        parts = [re.sub(r"\((?:u?int(?:32|64)_t|bool)\)|\s", "", a) for a in args.split(",")]
        out.append([fn, *(int(a) for a in parts if re.fullmatch(r"-?\d+", a))])
    return out


def main() -> None:
    git_dir = sys.argv[1]
    nets = {name: calls(git_dir, name) for name in ("resnet50", "densenet121", "sqnet")}
    doc = {"source": "mpc-msri/EzPC SCI/networks/main_*.cpp at f24bf3e, extracted by "
                     "validation/cryptflow2/extract_sci_calls.py", "networks": nets}
    json.dump(doc, sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
