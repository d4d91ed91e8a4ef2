"""Shared fixtures: paths to the ground truth and the repo's models, and a CLI runner."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # validation.opzoo builds the single-op models

SHARED = Path(os.environ.get("HAWKEYE_SHARED", ROOT.parent / "shared"))
GROUND_TRUTH = SHARED / "ground-truth"
MODELS = ROOT / "models"


def backend_with(name: str, **params: object):
    """The shipped rule file of backend `name` with parameter overrides (as `--param name.k=v` gives them)."""
    from hawkeye_onnx.rules import load_backends

    return load_backends([name], {name: {k: str(v) for k, v in params.items()}})[0]


def primitive_cost(backend, name: str, **args: int) -> tuple[int, int]:
    """Online (bytes, rounds) of one call of `backend`'s primitive `name` with scalar arguments."""
    import numpy as np

    from hawkeye_onnx.cost import _Evaluator

    cost = _Evaluator(backend).primitive(backend.primitives[name], {k: np.array([v]) for k, v in args.items()}, 1)
    return int(cost[0, 0]), int(cost[0, 1])


def ground_truth_cases(mode: str) -> list[dict]:
    """Cases of shared/ground-truth/vectors.json (measured on the real frameworks)."""
    path = GROUND_TRUTH / "vectors.json"
    if not path.exists():
        return []
    return [c for c in json.loads(path.read_text())["cases"] if c["mode"] == mode]


@pytest.fixture
def gt_dir() -> Path:
    if not GROUND_TRUTH.exists():
        pytest.skip("shared/ground-truth is not beside the project")
    return GROUND_TRUTH


def no_children() -> bool:
    """No child process left running or unreaped (a forked worker is waited for, or killed on errors)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def first_then_killed(work: Callable[..., Iterator[object]]) -> Callable[..., Iterator[object]]:
    """`work` (a background child's generator function) sending its first result, then killed (SIGKILL, as
    the kernel's out-of-memory killer does): what the parent must survive."""
    def run(*args: object) -> Iterator[object]:
        yield next(work(*args))
        os.kill(os.getpid(), 9)

    return run


def counting(fn: Callable[..., T], calls: list) -> Callable[..., T]:
    """`fn`, appending its arguments to `calls` on each call (a forked child appends to its own copy)."""
    def run(*args: object) -> T:
        calls.append(args)
        return fn(*args)

    return run
