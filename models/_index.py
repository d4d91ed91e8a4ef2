"""Merge export records into ``index.json``: each export script owns the files it writes.

The scripts run in different virtual environments (PyTorch, TensorFlow, scikit-learn), so each one
rewrites only its own entries and keeps the others, in a stable order (existing entries first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def merge(folder: Path, entries: list[dict[str, Any]]) -> Path:
    """Replace or append ``entries`` (keyed by ``file``) in ``folder/index.json``; one record a line."""
    path = folder / "index.json"
    old = json.loads(path.read_text()) if path.exists() else []
    new = {e["file"]: e for e in entries}
    rows = [new.pop(e["file"], e) for e in old] + list(new.values())
    body = ",\n".join(f"  {json.dumps(e)}" for e in rows)
    path.write_text(f"[\n{body}\n]\n")
    return path
