"""A small, whitelisted expression compiler for cost formulas in rule files.

Rule files are data written by people; they must never reach `eval`. An expression is parsed with
`ast.parse(mode="eval")`, every node is checked against a whitelist (numbers, names, arithmetic,
comparisons, `and`/`or`/`not`, `a if c else b` and a few named functions), and compiled into a tree
of closures. The closures take an environment of numpy arrays (one entry per node of an op group) or
scalars (parameters), so one call prices every node of an op type at once.

Integer arithmetic stays in int64 where both operands are integers; `/` gives floats. Results that
must be whole numbers (bytes, rounds) are checked by the caller.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from hawkeye_onnx.errors import RuleError

Value = np.ndarray | int | float | bool
Env = Mapping[str, Value]
Fn = Callable[[Env], Value]


def _ceil(x: Value) -> Value:
    return np.ceil(x).astype(np.int64) if isinstance(x, np.ndarray) else math.ceil(x)


def _floor(x: Value) -> Value:
    return np.floor(x).astype(np.int64) if isinstance(x, np.ndarray) else math.floor(x)


def _ceil_div(a: Value, b: Value) -> Value:
    return -((-np.asarray(a)) // b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else -(-a // b)


def _min(*xs: Value) -> Value:
    out = xs[0]
    for x in xs[1:]:
        out = np.minimum(out, x)
    return out


def _max(*xs: Value) -> Value:
    out = xs[0]
    for x in xs[1:]:
        out = np.maximum(out, x)
    return out


def _log(x: Value) -> Value:
    return np.log(x)


def _log2(x: Value) -> Value:
    return np.log2(x)


def _ceil_log2(x: Value) -> Value:
    """ceil(log2(x)) for x >= 1, exact for integers (no float rounding at powers of two)."""
    arr = np.asarray(x, dtype=np.int64)
    out = np.zeros_like(arr)
    v = np.maximum(arr - 1, 0)
    while np.any(v > 0):
        out += v > 0
        v >>= 1
    return out if isinstance(x, np.ndarray) else int(out)


def _tree_size(c: Value, steps: Value) -> Value:
    """Items left after `steps` halvings that keep the odd one out: ceil(c / 2**steps)."""
    return _ceil_div(c, np.left_shift(1, np.asarray(steps, dtype=np.int64)))


def _tree_pairs(c: Value, steps: Value) -> Value:
    """Pairs compared over `steps` such halvings: sum of floor(m_i / 2), m_0 = c, m_{i+1} = ceil(m_i / 2)."""
    m = np.asarray(c, dtype=np.int64)
    s = np.asarray(steps, dtype=np.int64)
    total = np.zeros(np.broadcast(m, s).shape, dtype=np.int64)
    i = 0
    while np.any(s > i):
        active = s > i
        total += np.where(active, m // 2, 0)
        m = np.where(active, m - m // 2, m)
        i += 1
    return total if total.shape else int(total)


def _halving_levels(n: Value) -> Value:
    """Levels of a tree reduction that halves and sets an odd element aside, folding the set-aside
    elements back one level each: floor(log2 n) + popcount(n) - 1 (SPU's TreeReduce)."""
    arr = np.asarray(n, dtype=np.int64)
    bits = np.zeros_like(arr)
    log = np.full_like(arr, -1)
    v = arr.copy()
    while np.any(v > 0):
        bits += v & 1
        log += v > 0
        v >>= 1
    out = np.maximum(log + bits - 1, 0)
    return out if out.shape else int(out)


def _pow_counts(p: int) -> tuple[int, int]:
    """(squares, products) of CrypTen's recursive integer power (crypten/mpc/mpc.py MPCTensor.pow)."""
    squares = muls = 0
    while p > 1:
        if p == 2:
            return squares + 1, muls
        squares += 1
        if p % 2:
            muls += 1
            p = (p - 1) // 2
        else:
            p //= 2
    return squares, muls


def _pow_squares(p: Value) -> Value:
    return np.vectorize(lambda v: _pow_counts(int(v))[0], otypes=[np.int64])(p)


def _pow_muls(p: Value) -> Value:
    return np.vectorize(lambda v: _pow_counts(int(v))[1], otypes=[np.int64])(p)


def _is_int(x: Value) -> Value:
    return np.equal(np.mod(x, 1), 0)


def _where(c: Value, a: Value, b: Value) -> Value:
    return np.where(c, a, b)


#: The only functions an expression may call, with their arities (None = two or more).
FUNCTIONS: dict[str, tuple[Callable[..., Value], int | None]] = {
    "ceil": (_ceil, 1),
    "floor": (_floor, 1),
    "ceil_div": (_ceil_div, 2),
    "min": (_min, None),
    "max": (_max, None),
    "ln": (_log, 1),
    "log2": (_log2, 1),
    "ceil_log2": (_ceil_log2, 1),
    "where": (_where, 3),
    "tree_size": (_tree_size, 2),
    "tree_pairs": (_tree_pairs, 2),
    "pow_squares": (_pow_squares, 1),
    "pow_muls": (_pow_muls, 1),
    "is_int": (_is_int, 1),
    "halving_levels": (_halving_levels, 1),
}


def register_function(name: str, fn: Callable[..., Value], arity: int | None) -> None:
    """Add a function that formulas may call (e.g. a framework's HE partition heuristic).

    `fn` receives numpy arrays (one entry per node of an op group) or scalars and must return the
    same; keep it vectorised. Registration happens at import of the module that defines it (see
    `hawkeye_onnx.functions`), before any rule file is compiled.
    """
    if not name.isidentifier():
        raise ValueError(f"bad function name {name!r}")
    FUNCTIONS[name] = (fn, arity)


def _div(a: Value, b: Value) -> Value:
    if np.any(np.asarray(b) == 0):
        raise ZeroDivisionError("division by zero")
    return np.true_divide(a, b)


def _floordiv(a: Value, b: Value) -> Value:
    if np.any(np.asarray(b) == 0):
        raise ZeroDivisionError("division by zero")
    return np.floor_divide(a, b)


def _mod(a: Value, b: Value) -> Value:
    if np.any(np.asarray(b) == 0):
        raise ZeroDivisionError("division by zero")
    return np.mod(a, b)


_BINOPS: dict[type, Callable[[Value, Value], Value]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: np.power,
}
_CMPOPS: dict[type, Callable[[Value, Value], Value]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


@dataclass(frozen=True)
class Expr:
    """A compiled expression: its source text, the names it reads, and the closure."""

    text: str
    names: frozenset[str]
    fn: Fn

    def __call__(self, env: Env) -> Value:
        return self.fn(env)


def compile_expr(text: str | int | float, where: str = "<expr>") -> Expr:
    """Compile `text` or raise RuleError naming `where` (a `file:line` string) and the problem."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise RuleError(f"{where}: expected a formula (string or number), got {type(text).__name__}")
    src = str(text)
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except SyntaxError as exc:
        raise RuleError(f"{where}: syntax error in formula {src!r}: {exc.msg}") from None
    names: set[str] = set()
    fn = _compile(tree.body, src, where, names)
    return Expr(src, frozenset(names), fn)


def _compile(node: ast.AST, src: str, where: str, names: set[str]) -> Fn:
    def bad(what: str) -> RuleError:
        return RuleError(f"{where}: {what} is not allowed in formula {src!r}")

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad(f"constant {node.value!r}")
        value = node.value
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in FUNCTIONS:
            raise bad(f"function name {name!r} used as a value")
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise bad(f"operator {type(node.op).__name__}")
        left, right = _compile(node.left, src, where, names), _compile(node.right, src, where, names)
        divides = isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod))
        if divides and isinstance(node.right, ast.Constant) and node.right.value == 0:
            raise RuleError(f"{where}: division by zero in formula {src!r}")
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, src, where, names)
        if isinstance(node.op, ast.USub):
            return lambda env: np.negative(operand(env))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda env: np.logical_not(operand(env))
        raise bad(f"operator {type(node.op).__name__}")
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, src, where, names) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def boolop(env: Env) -> Value:
            out = parts[0](env)
            for p in parts[1:]:
                out = combine(out, p(env))
            return out

        return boolop
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            raise bad("a chained comparison")
        cmp = _CMPOPS.get(type(node.ops[0]))
        if cmp is None:
            raise bad(f"comparison {type(node.ops[0]).__name__}")
        left = _compile(node.left, src, where, names)
        right = _compile(node.comparators[0], src, where, names)
        return lambda env: cmp(left(env), right(env))
    if isinstance(node, ast.IfExp):
        cond = _compile(node.test, src, where, names)
        yes, no = _compile(node.body, src, where, names), _compile(node.orelse, src, where, names)
        return lambda env: np.where(cond(env), yes(env), no(env))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise bad(f"call of {shown!r} (allowed: {', '.join(sorted(FUNCTIONS))})")
        if node.keywords:
            raise bad("a keyword argument")
        func, arity = FUNCTIONS[node.func.id]
        args = [_compile(a, src, where, names) for a in node.args]
        if (arity is None and len(args) < 2) or (arity is not None and len(args) != arity):
            raise RuleError(f"{where}: {node.func.id}() takes {arity or '2 or more'} arguments, "
                            f"got {len(args)} in formula {src!r}")
        return lambda env: func(*(a(env) for a in args))
    if isinstance(node, ast.Attribute):
        raise bad(f"attribute access {ast.unparse(node)!r}")
    if isinstance(node, ast.Subscript):
        raise bad(f"subscript {ast.unparse(node)!r}")
    raise bad(f"syntax {type(node).__name__}")
