"""Validation stage: run a model on the real framework and compare its counters with the static profile.

The profile is computed here, in the profiler's environment. The framework runs in its own interpreter
(CrypTen needs torch 2.13, SPU pins jax 0.4.34 / numpy 1.26, which clash with ours), as a subprocess
running ``hawkeye_onnx/harness/run.py`` with every party a real process on 127.0.0.1. The harness reads
the framework's own communication counters (CrypTen: ``comm.get_communication_stats()`` with
``verbose``; SPU: the ``Link details`` of its profile log) and returns them as JSON.

Phases measured:
- crypten online: the default trusted-first-party provider (TFP), counters reset after the inputs are
  shared and read before the output is revealed;
- crypten offline: a second run with the trusted-third-party provider (TTP); its requests to the dealer
  are metered separately: bytes = 8 per ring element of the dealer's answers (the pickled request
  objects the counter logs at ``sys.getsizeof`` are left out), rounds = what party 0's counter logged
  for them (3 per request);
- semi2k online only: SPU 0.9.5's wheel ships no beaver dealer server, so its TTP traffic cannot be
  measured.

Modes are a registry (``MODES``): ``infer`` lives here; another mode (e.g. training) registers a
function with :func:`register_mode` and the CLI offers it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from hawkeye_onnx.errors import HawkeyeError, ParamError
from hawkeye_onnx.profile import profile

HARNESS = Path(__file__).resolve().parent / "harness" / "run.py"
PROJECT = Path(__file__).resolve().parent.parent  # the source tree when installed editable


class FrameworkMissing(HawkeyeError):
    """The framework's interpreter is not found or the framework does not import in it."""

    exit_code = 6


class FrameworkFailed(HawkeyeError):
    """The framework's harness crashed (not a model the framework refuses: that is a result)."""

    exit_code = 7


@dataclass(frozen=True)
class Framework:
    """How to find and run one backend's real framework."""

    backend: str
    title: str
    env_var: str  # interpreter override
    venv: str  # default venv folder name, looked up in the current dir and beside the project
    package: str  # the framework's import name (used when it is installed in the current interpreter)
    extra: str  # pyproject extra that installs it into the current interpreter
    setup: str  # the command that creates the venv
    offline: str | None  # provider of the offline run, or None when the framework cannot measure it
    offline_note: str

    def job(self, model: Path, inputs: Mapping[str, Sequence[int]], provider: str | None) -> dict[str, Any]:
        """One harness job for `model` (SPU: grouped Conv as the per-group split the rules price)."""
        job: dict[str, Any] = {"model": str(model), "inputs": {k: list(v) for k, v in inputs.items()}}
        if self.backend == "semi2k":
            job["split_groups"] = True
        if provider:
            job["provider"] = provider
        return job


FRAMEWORKS: dict[str, Framework] = {
    f.backend: f
    for f in (
        Framework("crypten", "CrypTen 0.4.1", "HAWKEYE_CRYPTEN_PYTHON", ".venv-crypten", "crypten", "crypten",
                  "bash validation/setup_envs.sh crypten", "TTP",
                  "TTP provider run: the dealer's answers to party 0 (8 B per ring element, 3 rounds per request)"),
        Framework("semi2k", "SecretFlow SPU 0.9.5 (SEMI2K)", "HAWKEYE_SPU_PYTHON", ".venv-spu", "spu", "spu",
                  "bash validation/setup_envs.sh spu", None,
                  "not measurable: the spu 0.9.5 wheel ships no beaver dealer (TTP) server"),
    )
}


@dataclass(frozen=True)
class Phase:
    """Static vs measured bytes and rounds of one phase (online or offline)."""

    static_bytes: int
    static_rounds: int
    measured_bytes: int
    measured_rounds: int

    @staticmethod
    def rel(static: float, measured: float) -> float:
        """Relative error of the static figure, against the measurement (0 when both are 0)."""
        if measured == static:
            return 0.0
        return abs(static - measured) / abs(measured) if measured else float("inf")

    @property
    def bytes_error(self) -> float:
        return self.rel(self.static_bytes, self.measured_bytes)

    @property
    def rounds_error(self) -> float:
        return self.rel(self.static_rounds, self.measured_rounds)

    def within(self, tolerance: float) -> bool:
        return self.bytes_error <= tolerance and self.rounds_error <= tolerance


@dataclass(frozen=True)
class Validation:
    """One model on one framework: the static profile against the framework's own counters."""

    model: str
    backend: str
    mode: str
    parties: int
    inputs: Mapping[str, tuple[int, ...]]
    online: Phase | None  # None when the framework could not run the model
    offline: Phase | None  # None when not measured
    offline_note: str
    unsupported: tuple[str, ...]  # op types the static profile reports unsupported
    framework_error: str | None  # the framework's one-line refusal, if it refused the model
    check: str  # the decrypted output against onnx's ReferenceEvaluator
    static_offline: tuple[int, int] = (0, 0)  # the profile's offline (bytes, rounds), measured or not
    extra: Mapping[str, Any] = field(default_factory=dict)  # the harness's raw records

    def agrees(self, tolerance: float = 0.0) -> bool:
        """Both ran and every measured phase is within `tolerance`, or both refuse the model."""
        if self.framework_error is not None or self.online is None:
            return bool(self.unsupported)
        if self.unsupported:
            return False
        return self.online.within(tolerance) and (self.offline is None or self.offline.within(tolerance))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the fields of ``validation/measured/*`` plus the static side)."""

        def ph(p: Phase | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {"static": {"bytes": p.static_bytes, "rounds": p.static_rounds},
                    "measured": {"bytes": p.measured_bytes, "rounds": p.measured_rounds},
                    "bytes_rel_error": p.bytes_error, "rounds_rel_error": p.rounds_error}

        return {"model": self.model, "backend": self.backend, "mode": self.mode, "parties": self.parties,
                "inputs": {k: list(v) for k, v in self.inputs.items()}, "online": ph(self.online),
                "offline": ph(self.offline), "offline_note": self.offline_note,
                "unsupported": list(self.unsupported), "framework_error": self.framework_error,
                "check": self.check, "agrees": self.agrees()}


class Case(NamedTuple):
    """One model to validate and the shapes to bind its inputs to (None: its own, free dims set to 1)."""

    model: Path
    input_shapes: Mapping[str, tuple[int, ...]] | None = None


@dataclass(frozen=True)
class Request:
    """What to validate: models, one backend, one party count (one framework start for all)."""

    cases: tuple[Case, ...]
    backend: str
    parties: int = 2
    batch: int | None = None
    python: str | None = None
    offline: bool = True
    timeout: float = 1800.0


ModeFn = Callable[[Request], list[Validation]]
MODES: dict[str, ModeFn] = {}


def register_mode(name: str, fn: ModeFn) -> None:
    """Add a validation mode (``--mode NAME``): `fn` validates every model of a request."""
    MODES[name] = fn


def framework_python(backend: str, python: str | os.PathLike | None = None) -> Path:
    """The framework's interpreter: `python`, else $HAWKEYE_<FW>_PYTHON, else ``<venv>/bin/python`` in the
    current directory or beside the project, else this interpreter if the framework is installed in it.
    Raises FrameworkMissing with the install command."""
    fw = _framework(backend)
    if python is None:
        python = os.environ.get(fw.env_var) or None
    if python is not None:
        path = Path(python).absolute()  # not resolve(): a venv's python is a symlink that must stay one
        if not path.exists():
            raise FrameworkMissing(f"{fw.title} interpreter {python} does not exist; {_how(fw)}")
        return path
    for base in dict.fromkeys((Path.cwd(), PROJECT)):
        cand = base / fw.venv / "bin" / "python"
        if cand.exists():
            return cand
    if importlib.util.find_spec(fw.package) is not None:
        return Path(sys.executable)
    raise FrameworkMissing(f"{fw.title} is not installed (no {fw.venv}/bin/python here or beside the project, "
                           f"${fw.env_var} unset); {_how(fw)}")


def _how(fw: Framework) -> str:
    return (f"create its environment with `{fw.setup}` (from the project root) and rerun, or point "
            f"--python / ${fw.env_var} at an interpreter where `pip install 'hawkeye-onnx[{fw.extra}]'` worked")


def _framework(backend: str) -> Framework:
    if backend not in FRAMEWORKS:
        raise ParamError(f"--backend {backend!r}: validate runs {' or '.join(FRAMEWORKS)}")
    return FRAMEWORKS[backend]


def run_harness(backend: str, python: Path, parties: int, jobs: list[dict[str, Any]],
                timeout: float = 1800.0) -> list[dict[str, Any]]:
    """Run `jobs` in the framework's interpreter; one raw record per job (``{"error": ...}`` for a refusal)."""
    fw = _framework(backend)
    with tempfile.TemporaryDirectory(prefix="hawkeye-validate-") as tmp:
        spec, out = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"parties": parties, "jobs": jobs, "timeout": timeout}))
        cmd = [str(python), str(HARNESS), backend, str(spec), str(out)]
        env = {**os.environ, "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)  # the framework's venv must not see the profiler's packages
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * max(1, len(jobs)),
                                  env=env, cwd=tmp, check=False)
        except OSError as exc:
            raise FrameworkMissing(f"cannot run {python}: {exc.strerror}; {_how(fw)}") from None
        except subprocess.TimeoutExpired:
            raise FrameworkFailed(f"{fw.title} harness timed out: {shlex.join(cmd)}") from None
        data = json.loads(out.read_text()) if out.exists() else {}
    if "missing" in data:
        raise FrameworkMissing(f"{fw.title} does not import in {python} ({data['missing']}); {_how(fw)}")
    if proc.returncode != 0 or "results" not in data:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise FrameworkFailed(f"{fw.title} harness failed (exit {proc.returncode}): {tail}")
    return data["results"]


def bind_free_dims(model: Path, input_shapes: Mapping[str, tuple[int, ...]] | None,
                   batch: int | None) -> dict[str, tuple[int, ...]] | None:
    """Input shapes with every symbolic dim the user left free set to 1 (a real run needs numbers)."""
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception:  # profile() reports a bad file with its own message
        return dict(input_shapes) if input_shapes else None
    inits = {i.name for i in graph.initializer}
    out = dict(input_shapes or {})
    for inp in graph.input:
        if inp.name in inits or inp.name in out or not inp.type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if any(d is None for d in dims[1 if batch else 0:]):
            out[inp.name] = tuple(d or 1 for d in dims)
            if batch:
                out[inp.name] = (batch, *out[inp.name][1:])
    return out or None


def _infer(req: Request) -> list[Validation]:
    """Inference: one forward pass on secret inputs and weights, 'parties' real party processes."""
    fw = _framework(req.backend)
    python = framework_python(req.backend, req.python)
    statics = [profile(c.model, backends=[req.backend], params={req.backend: {"parties": req.parties}},
                       input_shapes=bind_free_dims(c.model, c.input_shapes, req.batch), batch=req.batch)
               for c in req.cases]
    jobs = [fw.job(c.model.resolve(), p.model.inputs, None) for p, c in zip(statics, req.cases, strict=True)]
    online = run_harness(req.backend, python, req.parties, jobs, req.timeout)
    offline: list[dict[str, Any] | None] = [None] * len(jobs)
    if req.offline and fw.offline:
        runnable = [i for i, r in enumerate(online) if "error" not in r]
        off = run_harness(req.backend, python, req.parties,
                          [{**jobs[i], "provider": fw.offline} for i in runnable], req.timeout)
        for i, r in zip(runnable, off, strict=True):
            offline[i] = r
    return [_compare(fw, p, on, off, req.parties) for p, on, off in zip(statics, online, offline, strict=True)]


register_mode("infer", _infer)


def _compare(fw: Framework, prof: Any, on: dict[str, Any], off: dict[str, Any] | None, parties: int) -> Validation:
    b = prof.backends[fw.backend]
    unsupported = tuple(sorted({u.op_type for u in b.unsupported}))
    base = Validation(model=prof.model.name, backend=fw.backend, mode="infer", parties=parties,
                      inputs=dict(prof.model.inputs), online=None, offline=None, offline_note=fw.offline_note,
                      unsupported=unsupported, framework_error=None, check="", extra={"online": on, "offline": off},
                      static_offline=(b.total.offline.bytes, b.total.offline.rounds))
    if "error" in on:
        return replace(base, framework_error=str(on["error"]).splitlines()[0][:300])
    t = b.total
    online = Phase(t.online.bytes, t.online.rounds, int(on["bytes"]), _int(on["rounds"]))
    offline = None
    if off is not None and "ttp" in off:
        ttp = off["ttp"]
        offline = Phase(t.offline.bytes, t.offline.rounds, 8 * int(ttp["elements"]), int(ttp["logged_rounds"]))
    elif off is not None and "error" in off:
        base = replace(base, offline_note=f"TTP run failed: {off['error']}")
    return replace(base, online=online, offline=offline, check=_check(on))


def _int(x: Any) -> int:
    return int(x) if float(x).is_integer() else x


def _check(rec: dict[str, Any]) -> str:
    if "output_mismatch" in rec:
        return f"output differs from onnx reference: {rec['output_mismatch']}"
    if "max_abs_err" not in rec:
        return "output not checked (onnx reference cannot run the model)"
    ok = rec.get("matches_reference", True)
    return f"output vs onnx reference: max abs error {rec['max_abs_err']:.2g}" + ("" if ok else " (MISMATCH)")


def validate(models: str | os.PathLike | Sequence[str | os.PathLike | Case], backend: str, mode: str = "infer",
             parties: int = 2, input_shapes: Mapping[str, tuple[int, ...]] | None = None, batch: int | None = None,
             python: str | os.PathLike | None = None, offline: bool = True) -> list[Validation]:
    """Validate one model or several on `backend` (one framework start for all); the Python API of
    ``hawkeye-onnx validate``. A :class:`Case` brings its own input shapes; `input_shapes` binds the others.
    Raises FrameworkMissing (exit 6) when the framework is not installed."""
    if mode not in MODES:
        raise ParamError(f"--mode {mode!r}: available modes are {', '.join(sorted(MODES))}")
    if parties < 2:
        raise ParamError(f"--parties {parties}: need at least 2")
    items = [models] if isinstance(models, str | os.PathLike) else list(models)
    cases = tuple(m if isinstance(m, Case) else Case(Path(m), input_shapes) for m in items)
    req = Request(cases=cases, backend=_framework(backend).backend, parties=parties, batch=batch,
                  python=None if python is None else str(python), offline=offline)
    return MODES[mode](req)
