"""Print the README's validation table: static profile vs the real frameworks' measured communication.

    python validation/table.py          # Markdown, from the recorded runs in validation/measured/*_models*.json
    python validation/table.py --live   # Markdown, from fresh runs of `hawkeye-onnx validate` (needs the
                                        # framework environments: bash validation/setup_envs.sh; ~2 min)

Every static figure is recomputed from the profiler, so the table shows what the code gives today. The
recorded runs are the default source (no framework needed); the `frameworks` test suite checks that a fresh
run reproduces every recorded number, and `--live` prints the table from such a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hawkeye_onnx import profile  # noqa: E402

HEADER = ["| framework | model | parties | measured bytes | static bytes | measured rounds | static rounds | match |",
          "|---|---|---:|---:|---:|---:|---:|---|"]


def _index() -> dict[str, dict]:
    return {m["file"].removesuffix(".onnx"): m for m in json.loads((ROOT / "models" / "index.json").read_text())}


def _row(fw: str, name: str, parties: int, mb: int, sb: int, mr: int, sr: int) -> str:
    ok = "exact" if (sb, sr) == (mb, mr) else "DIFFERS"
    return f"| {fw} | {name} | {parties} | {mb:,} | {sb:,} | {mr} | {sr} | {ok} |"


def rows() -> list[str]:
    """The table from the recorded measurements."""
    index = _index()
    out = list(HEADER)
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
            out.append(_row(fw, name, r["parties"], r["bytes"], t.bytes, r["rounds"], t.rounds))
    return out


def live_rows(parties: tuple[int, ...] = (2, 3)) -> list[str]:
    """The table from fresh runs of the real frameworks (models the framework refuses are left out)."""
    from hawkeye_onnx.validate import FRAMEWORKS, Case, validate

    index = _index()
    cases = [Case(ROOT / "models" / m["file"], {k: tuple(v) for k, v in m["inputs"].items()}) for m in index.values()]
    out = list(HEADER)
    for fw in FRAMEWORKS:
        for p in parties:
            for name, v in zip(index, validate(cases, fw, parties=p, offline=False), strict=True):
                if v.online is not None:
                    o = v.online
                    out.append(_row(fw, name, p, o.measured_bytes, o.static_bytes, o.measured_rounds, o.static_rounds))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", action="store_true", help="measure now with the real frameworks")
    print("\n".join(live_rows() if ap.parse_args().live else rows()))
