"""Measure every case of an index.json (opzoo micro-models or exported models) with CrypTen.

    python validation/crypten/measure_all.py OUTDIR -o validation/measured/crypten_ops.json

``OUTDIR/index.json`` lists ``{"name", "file", "inputs": {name: [dims]}}``. Each case is run for
every party count in ``--parties`` (default 2 and 3); a case CrypTen cannot run is recorded with
a one-line ``error`` instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import measure

VERSION = "0.4.1"


def record(case: dict[str, Any], parties: int, provider: str, res: dict[str, Any]) -> dict[str, Any]:
    """One output record in the project's measured-data format."""
    if "error" in res:
        return {
            "framework": "crypten",
            "version": VERSION,
            "case": case["name"],
            "inputs": case["inputs"],
            "parties": parties,
            "error": res["error"],
        }
    rec: dict[str, Any] = {
        "framework": "crypten",
        "version": VERSION,
        "case": case["name"],
        "inputs": case["inputs"],
        "parties": parties,
        "bytes": int(res["bytes"]),
        "rounds": int(res["rounds"]),
    }
    for key in ("max_abs_err", "output_mismatch"):  # CrypTen's output against onnx.reference
        if key in res:
            rec[key] = res[key]
    if provider != "TFP":
        rec["provider"] = provider
        rec["ttp"] = res.get("ttp")
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--parties", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--provider", choices=["TFP", "TTP"], default="TFP")
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = ap.parse_args(argv)
    index = json.loads((args.outdir / "index.json").read_text())
    records = []
    for case in index:
        case.setdefault("name", Path(case["file"]).stem)
        if args.only and case["name"] not in args.only:
            continue
        for p in args.parties:
            res = measure(args.outdir / case["file"], case["inputs"], p, args.provider)
            rec = record(case, p, args.provider, res)
            records.append(rec)
            check = rec.get("max_abs_err", rec.get("output_mismatch"))
            shown = rec.get("error") or f"rounds={rec['rounds']} bytes={rec['bytes']} check={check}"
            print(f"{case['name']:28s} P={p} {shown}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(records, indent=1) + "\n")
    print(f"{len(records)} records written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
