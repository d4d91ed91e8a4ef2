"""Measure every case of an index.json (opzoo micro-models or exported models) with SPU SEMI2K.

    python validation/spu/measure_all.py OUTDIR -o validation/measured/semi2k_ops.json

``OUTDIR/index.json`` lists ``{"name", "file", "inputs": {name: [dims]}}`` (``name`` defaults to
the file's stem). Each case is run for every party count in ``--parties`` (default 2 and 3) on one
set of party processes per party count, reused across cases; a case SPU (or the ONNX lowering)
cannot run is recorded with a one-line ``error`` instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Cluster, measure

FRAMEWORK = "semi2k"
VERSION = "spu 0.9.5"


def record(case: dict[str, Any], parties: int, res: dict[str, Any]) -> dict[str, Any]:
    """One output record in the project's measured-data format."""
    base: dict[str, Any] = {
        "framework": FRAMEWORK,
        "version": VERSION,
        "case": case["name"],
        "inputs": case["inputs"],
        "parties": parties,
    }
    if "error" in res:
        return {**base, "error": res["error"]}
    return {
        **base,
        "bytes": int(res["bytes"]),
        "rounds": res["rounds"],
        "send_actions": [p["send_actions"] for p in res["per_party"]],
        "per_op": res["per_op"],
        "hal": res["hal"],
        "mpc": res["mpc"],
        "max_abs_err": round(res["max_abs_err"], 6),
        "matches_reference": res["matches_reference"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--parties", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = ap.parse_args(argv)
    index = json.loads((args.outdir / "index.json").read_text())
    for case in index:
        case.setdefault("name", Path(case["file"]).stem)
    cases = [c for c in index if not args.only or c["name"] in args.only]
    records = []
    for p in args.parties:
        cluster: Cluster | None = None
        for case in cases:
            if cluster is None:
                cluster = Cluster(p)
            try:
                res = measure(args.outdir / case["file"], case["inputs"], p, cluster=cluster)
            except Exception as e:  # the parties were stopped; start fresh ones for the next case
                res = {"error": f"spu: {e}"}
                cluster = None
            rec = record(case, p, res)
            if "spatial dimensions is not supported" in res.get("error", ""):
                # grouped Conv: SPU cannot run feature_group_count; measure the per-group form too
                cluster = Cluster(p)
                alt = record(
                    case, p, measure(args.outdir / case["file"], case["inputs"], p, cluster=cluster, split_groups=True)
                )
                rec["error"] = res["error"][:300]
                alt["lowering"] = "grouped Conv as one convolution per group + concatenate"
                records.append(rec)
                rec = alt
            records.append(rec)
            ref = "ok" if rec.get("matches_reference") else "MISMATCH"
            shown = (
                rec.get("error") or f"rounds={rec['rounds']} bytes={rec['bytes']} err={rec['max_abs_err']} ref={ref}"
            )
            print(f"{case['name']:32s} P={p} {shown}", flush=True)
        if cluster is not None:
            cluster.close()
    records.sort(key=lambda r: ([c["name"] for c in cases].index(r["case"]), r["parties"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(records, indent=1) + "\n")
    print(f"{len(records)} records written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
