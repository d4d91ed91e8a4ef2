"""Extract the layer calls of OpenCheetah's three ImageNet networks into `opencheetah_networks.json`.

OpenCheetah's networks are EzPC/Athos-generated C++ (`networks/main_{resnet50,densenet121,sqnet}.cpp`,
"then hand crafted by Wen-jie Lu"). Built as `<net>-cheetah` they are compiled with USE_CHEETAH=1 and
`#define USE_FUSED_BN 1`. This script keeps the code of that configuration (it resolves `#if NAME` /
`#else` / `#endif` for those two macros) after `StartComputation();` and lists, in order, every call of
a library function that communicates, with its integer arguments:

    Conv2DWrapper / FusedBN (N, H, W, CI, FH, FW, CO, padHL, padHR, padWL, padWR, strideH, strideW)
    FusedBatchNorm4411 (N, H, W, C)      Relu4 (N, H, W, C)        ScaleDown4 (N, H, W, C)
    MaxPool / AvgPool (N, H, W, C, kH, kW, padHL, padHR, padWL, padWR, sH, sW, N1, imgH, imgW, C1)
    MatMul2D (d0, d1, d2)                ArgMax1 / ArgMax3 (sizes)

(additions, ScaleUp, Concat and broadcasts are local). tests/test_cheetah.py rebuilds each network from
this list as a chain of ONNX nodes and prices it, to compare with the paper on the paper's own networks.

    python validation/cheetah/extract_calls.py OPENCHEETAH_GIT_DIR > validation/cheetah/opencheetah_networks.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

CALLS = ("Conv2DWrapper", "FusedBN", "FusedBatchNorm4411", "Relu4", "ScaleDown4", "MaxPool", "AvgPool",
         "MatMul2D", "ArgMax1", "ArgMax3")
DEFINES = {"USE_FUSED_BN": 1, "USE_CHEETAH": 1}


def calls(git_dir: str, name: str) -> list[list]:
    src = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:networks/main_{name}.cpp"],
                         capture_output=True, text=True, check=True).stdout
    src = src[src.index("StartComputation();"):]
    keep, stack = [], []
    for line in src.split("\n"):
        s = line.strip()
        m = re.match(r"#if\s+(\w+)", s)
        if m:
            stack.append(bool(DEFINES.get(m.group(1), 0)))
        elif s.startswith("#else"):
            stack[-1] = not stack[-1]
        elif s.startswith("#endif"):
            stack.pop()
        elif all(stack):
            keep.append(line)
    code = "\n".join(keep)
    out = []
    for fn, args in re.findall(r"\b(" + "|".join(CALLS) + r")\(([^;]*)\);", code, re.S):
        ints = [int(a) for a in re.sub(r"\(int32_t\)|\s", "", args).split(",") if re.fullmatch(r"-?\d+", a)]
        out.append([fn, *ints])
    return out


def main() -> None:
    git_dir = sys.argv[1]
    nets = {name: calls(git_dir, name) for name in ("resnet50", "densenet121", "sqnet")}
    doc = {"source": "Alibaba-Gemini-Lab/OpenCheetah networks/main_*.cpp (USE_CHEETAH=1, USE_FUSED_BN=1), "
                     "extracted by validation/cheetah/extract_calls.py", "networks": nets}
    json.dump(doc, sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
