"""Rule files: a backend's parameters, primitive protocols and per-op costs, as data.

A rule file (`rules/<backend>.toml`) has four parts:

* `[backend]`: name, title, framework version, conventions.
* `[params.<name>]`: `default`, `doc`, `source`; overridable with `--param <backend>.<name>=V`.
* `[primitives.<name>]`: `args`, then either `online = {bytes, rounds}` / `offline = {...}` formulas or
  `steps` composing other primitives; optional `let` (named intermediate formulas).
* `[ops.<OpType>]`: `source` (the framework file and function the cost follows), and `steps`, or
  `variants = [{when, steps}, ...]` (first match wins; a variant may say `unsupported = "why"`
  instead of steps), or `free = true`, or `unsupported = "why"`.
  A step is `{prim = "name", times = "...", <arg> = "<formula>"}`.
* `[free] ops = [...]`: ops that are local (no communication) in this framework.

Everything is validated when the file loads: formulas compile (never `eval`), every name a formula
reads is a parameter, an argument, a `let` or a shape variable of that op (see `opvars`), every step
names a known primitive with exactly its arguments. Errors read `file:line: what is wrong`.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hawkeye_onnx.functions  # noqa: F401 - registers framework helper functions
from hawkeye_onnx.errors import ParamError, RuleError
from hawkeye_onnx.expr import Expr, compile_expr
from hawkeye_onnx.opvars import variables_for

Scalar = int | float | str


@dataclass(frozen=True)
class Param:
    name: str
    default: Scalar
    doc: str
    source: str


@dataclass(frozen=True)
class Formula:
    bytes: Expr
    rounds: Expr


@dataclass(frozen=True)
class Step:
    """A call of `prim`, `times` times in sequence. With `levels`, the call's n elements are
    processed in that many sequential batches (a reduction tree): bytes as one call on all of
    them, rounds `levels` times one call's rounds."""

    prim: str
    times: Expr
    args: Mapping[str, Expr]
    levels: Expr | None = None


@dataclass(frozen=True)
class Primitive:
    name: str
    args: tuple[str, ...]
    doc: str
    source: str
    lets: tuple[tuple[str, Expr], ...]
    online: Formula | None
    offline: Formula | None
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Variant:
    """One case of an op rule; with `unsupported`, the nodes it matches cannot run (reason given)."""

    when: Expr | None
    lets: tuple[tuple[str, Expr], ...]
    steps: tuple[Step, ...]
    source: str
    unsupported: str | None = None


@dataclass(frozen=True)
class OpRule:
    op_type: str
    source: str
    doc: str
    variants: tuple[Variant, ...] = ()
    free: bool = False
    unsupported: str | None = None


@dataclass(frozen=True)
class Backend:
    """One framework's cost model, loaded and validated from its rule file."""

    name: str
    title: str
    version: str
    framework: str
    conventions: str
    params: Mapping[str, Param]
    primitives: Mapping[str, Primitive]
    ops: Mapping[str, OpRule]
    path: str
    values: Mapping[str, Scalar] = field(default_factory=dict)
    unknown_op: str = ""
    #: String parameters that name nodes (comma-separated node names or globs); each gives the ops'
    #: formulas a 0/1 variable `in_<param>` per node (see `node_set_var`).
    node_sets: tuple[str, ...] = ()
    #: Why a node that reads one tensor in two input slots cannot run (empty: such nodes run as usual);
    #: `[backend] repeated_input` in the rule file, applied by the cost stage to every node, secret or not.
    repeated_input: str = ""

    def with_params(self, overrides: Mapping[str, str | Scalar]) -> Backend:
        """A copy with parameter values overridden; unknown names and bad values are refused."""
        values = dict(self.values) if self.values else {k: p.default for k, p in self.params.items()}
        for key, raw in overrides.items():
            if key not in self.params:
                known = ", ".join(sorted(self.params))
                raise ParamError(f"backend {self.name!r} has no parameter {key!r} (known: {known})")
            values[key] = _coerce(self.name, key, raw, self.params[key].default)
        return replace(self, values=values)

    @property
    def param_values(self) -> Mapping[str, Scalar]:
        return self.values or {k: p.default for k, p in self.params.items()}


def _coerce(backend: str, key: str, raw: str | Scalar, default: Scalar) -> Scalar:
    if not isinstance(raw, str):
        return raw
    if isinstance(default, (bool, str)):
        return raw
    try:
        value: Scalar = int(raw) if isinstance(default, int) else float(raw)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ParamError(f"--param {backend}.{key}={raw}: expected {kind}") from None
    return value


class _Locator:
    """Maps table headers and keys of a TOML file to line numbers, for `file:line` errors."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.headers: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        current = ""
        for lineno, line in enumerate(text.splitlines(), 1):
            m = self._HEADER.match(line)
            if m:
                current = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
                self.headers.setdefault(current, lineno)
                continue
            k = self._KEY.match(line)
            if k:
                self.keys.setdefault((current, k.group(1).strip("\"'")), lineno)

    def at(self, table: str, key: str | None = None) -> str:
        line = self.keys.get((table, key)) if key else None
        if line is None and key and "." in key:
            # dotted key inside a parent table, e.g. [params] parties.default = 2
            parent, _, rest = key.partition(".")
            line = self.keys.get((f"{table}.{parent}", rest))
        if line is None:
            line = self.headers.get(table)
        if line is None:
            top, _, leaf = table.rpartition(".")
            line = self.keys.get((top, leaf), 1)
        return f"{self.path}:{line}"


def _need(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise RuleError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        raise RuleError(f"{where}: {key!r} must be a {getattr(kind, '__name__', kind)}")
    return value


def _check_names(expr: Expr, known: set[str], where: str) -> None:
    unknown = sorted(expr.names - known)
    if unknown:
        raise RuleError(f"{where}: unknown variable {unknown[0]!r} in formula {expr.text!r} "
                        f"(known here: {', '.join(sorted(known))})")


def _lets(table: Mapping[str, Any], known: set[str], loc: _Locator, tname: str) -> tuple[tuple[str, Expr], ...]:
    raw = table.get("let", {})
    if not isinstance(raw, dict):
        raise RuleError(f"{loc.at(tname, 'let')}: 'let' must be a table of name = formula")
    out = []
    for name, text in raw.items():
        where = loc.at(tname, "let")
        expr = compile_expr(text, where)
        _check_names(expr, known, where)
        known.add(name)
        out.append((name, expr))
    return tuple(out)


def _steps(raw: Any, known: set[str], prims: Mapping[str, Any], loc: _Locator, tname: str,
           key: str = "steps") -> tuple[Step, ...]:
    where = loc.at(tname, key)
    if not isinstance(raw, list):
        raise RuleError(f"{where}: {key!r} must be an array of {{prim = ..., ...}} tables")
    out = []
    for item in raw:
        if not isinstance(item, dict) or "prim" not in item:
            raise RuleError(f"{where}: every step needs prim = \"<primitive name>\"")
        prim = item["prim"]
        if prim not in prims:
            raise RuleError(f"{where}: step uses unknown primitive {prim!r}")
        want = set(prims[prim].get("args", []))
        given = set(item) - {"prim", "times", "levels"}
        if want != given:
            missing, extra = sorted(want - given), sorted(given - want)
            what = f"missing argument {missing[0]!r}" if missing else f"unexpected argument {extra[0]!r}"
            raise RuleError(f"{where}: step {prim!r}: {what} (it takes {', '.join(sorted(want)) or 'none'})")
        exprs = {}
        for arg in sorted(want):
            e = compile_expr(item[arg], where)
            _check_names(e, known, where)
            exprs[arg] = e
        times = compile_expr(item.get("times", 1), where)
        _check_names(times, known, where)
        levels = None
        if "levels" in item:
            levels = compile_expr(item["levels"], where)
            _check_names(levels, known, where)
        out.append(Step(prim, times, exprs, levels))
    return tuple(out)


def _formula(table: Any, known: set[str], where: str) -> Formula:
    if not isinstance(table, dict) or set(table) - {"bytes", "rounds"}:
        raise RuleError(f"{where}: expected {{bytes = \"...\", rounds = \"...\"}}")
    b = compile_expr(table.get("bytes", 0), where)
    r = compile_expr(table.get("rounds", 0), where)
    _check_names(b, known, where)
    _check_names(r, known, where)
    return Formula(b, r)


def load_backend(path: str | Path) -> Backend:
    """Load and validate one rule file."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{shown}:1: cannot read rule file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = m.group(1) if m else "1"
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise RuleError(f"{shown}:{line}: TOML syntax error: {msg}") from None
    loc = _Locator(text, shown)

    meta = _need(data, "backend", dict, f"{shown}:1")
    name = _need(meta, "name", str, loc.at("backend", "name"))
    params: dict[str, Param] = {}
    for pname, p in data.get("params", {}).items():
        where = loc.at(f"params.{pname}")
        if not isinstance(p, dict) or "default" not in p:
            raise RuleError(f"{where}: parameter {pname!r} needs a default")
        if not isinstance(p["default"], (int, float, str)):
            raise RuleError(f"{where}: default of {pname!r} must be a number or a string")
        params[pname] = Param(pname, p["default"], str(p.get("doc", "")), str(p.get("source", "")))
    numeric = {k for k, p in params.items() if isinstance(p.default, (int, float))}
    node_sets = meta.get("node_sets", [])
    if not isinstance(node_sets, list) or any(n not in params or not isinstance(params[n].default, str)
                                              for n in node_sets):
        raise RuleError(f"{loc.at('backend', 'node_sets')}: node_sets must list string parameters of this file")

    raw_prims = data.get("primitives", {})
    prims: dict[str, Primitive] = {}
    for pname, p in raw_prims.items():
        tname = f"primitives.{pname}"
        if not isinstance(p, dict):
            raise RuleError(f"{loc.at(tname)}: primitive {pname!r} must be a table")
        args = tuple(p.get("args", []))
        known = numeric | set(args)
        lets = _lets(p, known, loc, tname)
        online = _formula(p["online"], known, loc.at(tname, "online")) if "online" in p else None
        offline = _formula(p["offline"], known, loc.at(tname, "offline")) if "offline" in p else None
        steps = _steps(p["steps"], known, raw_prims, loc, tname) if "steps" in p else ()
        if not steps and online is None:
            raise RuleError(f"{loc.at(tname)}: primitive {pname!r} needs online = {{...}} or steps = [...]")
        if steps and (online or offline):
            raise RuleError(f"{loc.at(tname)}: primitive {pname!r} has both formulas and steps")
        prims[pname] = Primitive(pname, args, str(p.get("doc", "")), str(p.get("source", "")), lets,
                                 online, offline, steps)
    _check_cycles(prims, loc)

    ops: dict[str, OpRule] = {}
    free = data.get("free", {})
    for op in free.get("ops", []):
        ops[op] = OpRule(op, str(free.get("source", "")), "local: no communication", free=True)
    for op, r in data.get("ops", {}).items():
        tname = f"ops.{op}"
        if not isinstance(r, dict):
            raise RuleError(f"{loc.at(tname)}: rule for {op!r} must be a table")
        source = str(r.get("source", ""))
        if not source:
            raise RuleError(f"{loc.at(tname)}: rule for {op!r} must cite its source (source = \"file function\")")
        if r.get("free"):
            ops[op] = OpRule(op, source, str(r.get("doc", "")), free=True)
            continue
        if "unsupported" in r:
            ops[op] = OpRule(op, source, str(r.get("doc", "")), unsupported=str(r["unsupported"]))
            continue
        base_known = numeric | set(variables_for(op)) | {node_set_var(n) for n in node_sets}
        raw_variants = r.get("variants") if "variants" in r else [{"steps": r.get("steps"), "let": r.get("let", {})}]
        if not isinstance(raw_variants, list):
            raise RuleError(f"{loc.at(tname, 'variants')}: 'variants' must be an array of tables")
        variants = []
        for v in raw_variants:
            known = set(base_known)
            key = "variants" if "variants" in r else "steps"
            when = None
            if v.get("when") is not None:
                when = compile_expr(v["when"], loc.at(tname, key))
                _check_names(when, known, loc.at(tname, key))
            if "unsupported" in v:
                variants.append(Variant(when, (), (), str(v.get("source", source)), str(v["unsupported"])))
                continue
            lets = _lets(v, known, loc, tname)
            if v.get("steps") is None:
                raise RuleError(f"{loc.at(tname)}: rule for {op!r} needs steps, variants, free or unsupported")
            steps = _steps(v["steps"], known, raw_prims, loc, tname, key)
            variants.append(Variant(when, lets, steps, str(v.get("source", source))))
        ops[op] = OpRule(op, source, str(r.get("doc", "")), tuple(variants))

    return Backend(name, str(meta.get("title", name)), str(meta.get("version", "")),
                   str(meta.get("framework", "")), str(meta.get("conventions", "")),
                   params, prims, ops, shown, unknown_op=str(meta.get("unknown_op", "")), node_sets=tuple(node_sets),
                   repeated_input=str(meta.get("repeated_input", "")))


def node_set_var(param: str) -> str:
    """The per-node 0/1 variable of node-set parameter `param`."""
    return f"in_{param}"


def node_in_set(name: str, spec: str) -> bool:
    """Whether node `name` is named by `spec`: comma-separated entries, each an exact node name, a glob
    (`fnmatch`, e.g. `/layer1/*`), or a name-scope prefix (`/layer1/layer1.0` matches
    `/layer1/layer1.0/relu/Relu`)."""
    for entry in (e.strip() for e in spec.split(",")):
        if entry and (name == entry or fnmatch.fnmatchcase(name, entry) or name.startswith(entry.rstrip("/") + "/")):
            return True
    return False


def _check_cycles(prims: Mapping[str, Primitive], loc: _Locator) -> None:
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise RuleError(f"{loc.at('primitives.' + name)}: primitive {name!r} is defined in terms of itself")
        state[name] = 1
        for s in prims[name].steps:
            visit(s.prim)
        state[name] = 2

    for name in prims:
        visit(name)


def rules_dir() -> Path:
    """The rule files: `$HAWKEYE_ONNX_RULES` if set (a folder of your own rule files), else inside the
    installed package, or the source tree's top-level `rules/`."""
    override = os.environ.get("HAWKEYE_ONNX_RULES")
    if override:
        if not Path(override).is_dir():
            raise ParamError(f"HAWKEYE_ONNX_RULES={override}: no such directory (a folder of <backend>.toml files)")
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here / "rules", here.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise RuleError(f"{here}:1: no rules/ directory found beside the package")


def load_backends(names: list[str] | None = None, params: Mapping[str, Mapping[str, str]] | None = None,
                  directory: Path | None = None) -> list[Backend]:
    """Load the named backends (all, in a stable order, when `names` is None) with overrides."""
    directory = directory or rules_dir()
    available = {p.stem: p for p in sorted(directory.glob("*.toml"))}
    order = [n for n in BACKEND_ORDER if n in available] + sorted(set(available) - set(BACKEND_ORDER))
    wanted = order if names is None else names
    params = params or {}
    for b in params:
        if b not in wanted:
            raise ParamError(f"--param names backend {b!r}, which is not selected (selected: {', '.join(wanted)})")
    out = []
    for n in wanted:
        if n not in available:
            raise ParamError(f"unknown backend {n!r} (available: {', '.join(order)})")
        out.append(load_backend(available[n]).with_params(params.get(n, {})))
    return out


#: Display order of the backends.
BACKEND_ORDER = ("crypten", "semi2k", "cryptflow2", "cheetah", "delphi")
