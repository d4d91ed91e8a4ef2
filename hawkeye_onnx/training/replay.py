"""Replaying a gradient rule's emission for forward nodes that would get the same backward nodes.

A model repeats a few blocks many times: its 200k nodes have a few hundred distinct (op, attributes, shapes)
combinations, and a gradient rule given the same combination emits the same backward nodes, names and
tensors aside. The first node of a combination runs the rule (`capture`), which records what it emitted as a
`Template`: each node's op, attributes, the tensors it reads (as positions: an input, output or output
gradient of the forward node, or an output emitted before it) and its outputs' shapes. The others get the
template's nodes written straight into the builder's records (`replay`), named as the builder names them,
without running the rule's Python or the builder's generic emission (about 3 us per replayed node, where
the rule and the generic emission took about 10; measured at 200k nodes).

What makes two nodes alike is their `signature`: the op, the attributes' bytes, which inputs need a gradient,
which outputs carry one, the shapes of every tensor the rule is given, and which of those tensors are the same
one. A rule that reads anything else (the value of a constant input, through the builder's producers or
initial values, or the shape of another tensor) or names a tensor from elsewhere gets no template: each of its
nodes runs the rule. tests/test_training_replay.py checks that replayed and rule-made records are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import onnx

from hawkeye_onnx.training.builder import Builder

Grads = list[str | None]


class Step(NamedTuple):
    """One emitted node of a template."""

    op: str
    domain: str
    inputs: tuple[int, ...]  # positions in the environment (see `replay`)
    n_out: int
    attrs: Mapping[str, Any]  # decoded, shared with the captured record (records are never changed)
    value: Any  # a small constant's value, else None
    shapes: tuple[tuple[int, ...] | None, ...]  # per output; None: the builder knew no shape
    dtypes: tuple[int | None, ...]  # per output: its element type where the builder keeps one (not float)


class Template(NamedTuple):
    steps: tuple[Step, ...]
    grads: tuple[int | None, ...]  # per forward input: the position of its gradient, or None


def signature(b: Builder, node: onnx.NodeProto, key: str, needs: list[bool], env: list[str | None]) -> tuple:
    """What a gradient rule's emission for `node` depends on (see the module doc). `env`: the node's inputs,
    outputs and output gradients (None where none flows), the names the rule is given."""
    shape = b.shapes.get
    # an empty name (an optional input left out) is told apart from a tensor without a static shape
    shapes = tuple([shape(x) if x else False for x in env])
    names = [x for x in env if x is not None]
    alias = None if len(set(names)) == len(names) else tuple([env.index(x) for x in env])
    return (key, tuple([a.SerializeToString() for a in node.attribute]), tuple(needs), len(node.input), shapes,
            alias)


class _Watch:
    """A stand-in for one of the builder's dicts while a rule runs: records the keys read and written."""

    def __init__(self, data: dict, reads: set, writes: set) -> None:
        self.data, self.reads, self.writes = data, reads, writes

    def __getitem__(self, key: Any) -> Any:
        self.reads.add(key)
        return self.data[key]

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads.add(key)
        return self.data.get(key, default)

    def __contains__(self, key: Any) -> bool:
        self.reads.add(key)
        return key in self.data

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes.add(key)
        self.data[key] = value


def capture(b: Builder, scope: str, env: list[str | None],
            run: Callable[[], Grads]) -> tuple[Grads, Template | None]:
    """Run the rule (`run`) for the node whose given names are `env` (see `signature`) and make its template,
    or None where the emission is not a function of the node's signature alone."""
    start, k0 = len(b.records), b.counters[scope]
    shapes, producers, initial = b.shapes, b.producers, b.initial_values
    reads: set = set()
    writes: set = set()
    other: set = set()
    b.shapes = _Watch(shapes, reads, writes)  # type: ignore[assignment]
    b.producers, b.initial_values = _Watch(producers, other, other), _Watch(initial, other, other)  # type: ignore[assignment]
    try:
        grads = run()
    finally:
        b.shapes, b.producers, b.initial_values = shapes, producers, initial
    if other:
        return grads, None
    env = list(env)
    n_given = len(env)
    steps = []
    for j, (name, op, domain, inputs, outs, attrs, value) in enumerate(b.records[start:]):
        if name != f"{scope}/{op}_{k0 + j}" or list(outs) != [f"{name}_output_{i}" for i in range(len(outs))]:
            return grads, None  # a name the builder made unique (it was taken): not the plain pattern
        try:
            refs = tuple(env.index(x) for x in inputs)
        except ValueError:  # a tensor from outside the node's own
            return grads, None
        steps.append(Step(op, domain, refs, len(outs), attrs, value, tuple(shapes.get(o) for o in outs),
                          tuple(b.dtypes.get(o) for o in outs)))
        env += outs
    emitted = set(env[n_given:])
    if b.counters[scope] != k0 + len(steps) or not reads <= set(env) or not writes <= emitted:
        return grads, None  # the rule read a shape of a tensor it was not given, or set one it did not make
    try:
        refs = tuple(None if g is None else env.index(g) for g in grads)
    except ValueError:
        return grads, None
    return grads, Template(tuple(steps), refs)


def replay(b: Builder, t: Template, scope: str, env: list[str | None]) -> Grads:
    """Emit `t` for the node whose given names are `env` (see `signature`) as its rule would: the same records,
    names, shapes and types."""
    env = list(env)
    unique, records, outputs, shapes, dtypes = b._unique, b.records, b.outputs, b.shapes, b.dtypes
    k = b.counters[scope]
    for step in t.steps:
        name = unique(f"{scope}/{step.op}_{k}")
        k += 1
        outs = [unique(f"{name}_output_{i}") for i in range(step.n_out)]
        records.append((name, step.op, step.domain, tuple([env[r] for r in step.inputs]), tuple(outs),  # type: ignore[misc]
                        step.attrs, step.value))
        outputs += outs
        for out, shape, dtype in zip(outs, step.shapes, step.dtypes, strict=True):
            if shape is not None:
                shapes[out] = shape
            if dtype is not None:
                dtypes[out] = dtype
        env += outs
    b.counters[scope] = k
    return [None if r is None else env[r] for r in t.grads]
