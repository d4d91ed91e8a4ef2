"""Print the README's validation table: static profile vs the real frameworks' measured communication.

    python validation/table.py          # Markdown, from validation/measured/*_models*.json

Every row is recomputed from the profiler, so the table shows what the code gives today.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hawkeye_onnx import profile  # noqa: E402


def rows() -> list[str]:
    index = {m["file"].removesuffix(".onnx"): m for m in json.loads((ROOT / "models" / "index.json").read_text())}
    out = ["| framework | model | parties | measured bytes | static bytes | measured rounds | static rounds | match |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
    for path in sorted((ROOT / "validation" / "measured").glob("*_models*.json")):
        for r in json.loads(path.read_text()):
            fw, name = r["framework"], r.get("model") or r["case"]
            if r.get("provider") == "TTP" or r.get("bytes") is None:
                continue
            entry = index[name]
            params: dict[str, int] = {"parties": r["parties"]}
            p = profile(ROOT / "models" / entry["file"], backends=[fw], params={fw: params},
                        input_shapes={k: tuple(v) for k, v in entry["inputs"].items()})
            t = p.backends[fw].total.online
            ok = "exact" if (t.bytes, t.rounds) == (r["bytes"], r["rounds"]) else "DIFFERS"
            out.append(f"| {fw} | {name} | {r['parties']} | {r['bytes']:,} | {t.bytes:,} | {r['rounds']} | "
                       f"{t.rounds} | {ok} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
