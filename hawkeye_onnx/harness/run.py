"""Entry point that ``hawkeye-onnx validate`` runs in a framework's interpreter.

    python run.py crypten|semi2k JOBS.json OUT.json

``JOBS.json`` is ``{"parties": P, "jobs": [...]}`` (see ``run_jobs`` in ``crypten_measure`` /
``spu_measure``). Writes ``{"results": [...]}`` (one record per job, or ``{"error": ...}`` for a job
the framework could not run) to ``OUT.json``; a file, not stdout, because the frameworks' C++ and
distributed loggers print there. Exit code 3 with ``{"missing": ...}`` when the framework does not
import in this interpreter.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: backend -> (harness module, packages to import first; crypten_measure stubs a torch module before `import crypten`)
MODULES = {"crypten": ("crypten_measure", ("torch",)), "semi2k": ("spu_measure", ("jax", "spu"))}
MISSING = 3


def main(argv: list[str]) -> int:
    backend, jobs, out = argv
    name, needs = MODULES[backend]
    try:
        for package in needs:
            importlib.import_module(package)
        module = importlib.import_module(name)
    except ImportError as exc:
        Path(out).write_text(json.dumps({"missing": f"{type(exc).__name__}: {exc}"}))
        return MISSING
    results = module.run_jobs(json.loads(Path(jobs).read_text()))
    Path(out).write_text(json.dumps({"results": results}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
