"""Add one training-step measurement to validation/measured/training/{crypten,semi2k}.json.

Takes the JSON printed by validation/crypten/measure_train.py or validation/spu/measure_train.py and
files it as a test record (tests/test_training.py reproduces every record):

    python validation/training_record.py crypten out.json mlp 1x784 cross_entropy sgd [STEP] [PARTIES]

STEP picks the step of a multi-step CrypTen run (0-based; momentum: 1, once the buffer exists).
A record already there for the same model, input, loss, optimizer and parties is replaced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "measured" / "training"


def main(argv: list[str]) -> int:
    fw, src, model, inp, loss, opt = argv[:6]
    step = int(argv[6]) if len(argv) > 6 else 0
    parties = int(argv[7]) if len(argv) > 7 else 2
    text = Path(src).read_text()
    d = json.loads(text[text.index("{"):])  # SPU's logger may print a line before the JSON
    path = OUT / f"{'crypten' if fw == 'crypten' else 'semi2k'}.json"
    doc = json.loads(path.read_text())
    shape = [int(x) for x in inp.split("x")]
    base = {"model": f"models/{model}.onnx", "inputs": {"input": shape}, "parties": parties, "loss": loss,
            "optimizer": opt, "lr": 0.01}
    if fw == "crypten":
        s = d["steps"][step]
        rec = {"framework": "crypten", "version": "0.4.1", **base, "provider": "TFP",
               "momentum": 0.9 if opt == "momentum" else 0.0, "step": step + 1, "phases": s["phases"],
               "bytes": s["bytes"], "rounds": s["rounds"]}
    else:
        rec = {"framework": "semi2k", "version": "spu 0.9.5", **base, "phases": d["phases"], "bytes": d["bytes"],
               "rounds": d["rounds"], "grad_per_op": d["grad_per_op"], "update_per_op": d["update_per_op"]}
    same = ("model", "inputs", "loss", "optimizer", "parties")
    doc["cases"] = [c for c in doc["cases"] if any(c.get(k) != rec[k] for k in same)] + [rec]
    path.write_text(json.dumps(doc, indent=1))
    print(f"{path.name}: {rec['model']} {rec['phases']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
