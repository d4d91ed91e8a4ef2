"""Replaying a gradient rule's emission for forward nodes that would get the same backward nodes.

A model repeats a few blocks many times: its 200k nodes have a few hundred distinct (op, attributes, shapes)
combinations, and a gradient rule given the same combination emits the same backward nodes, names and
tensors aside. The first node of a combination runs the rule (`capture`), which records what it emitted as a
`Template`: each node's op, attributes, the tensors it reads (as positions: an input, output or output
gradient of the forward node, or an output emitted before it) and its outputs' shapes. The others get the
template's nodes written straight into the builder's records (`replay`), named as the builder names them,
without running the rule's Python or the builder's generic emission (about 3 us per replayed node, where
the rule and the generic emission took about 10; measured at 200k nodes). The profiler goes further (`defer`):
a replayed node's records are not written at all; the builder keeps one `Instance` per forward node (the
template, the scope and its counter, the given names), only the gradients' names are made at once, the other
names when the expansion ends (`settle`), and the IR takes each instance as a block (`training.graph.build`).

What makes two nodes alike is their `signature`: the op, the attributes' bytes, which inputs need a gradient,
which outputs carry one, the shapes of every tensor the rule is given, and which of those tensors are the same
one. A rule that reads anything else (the value of a constant input, through the builder's producers or
initial values, or the shape of another tensor) or names a tensor from elsewhere gets no template: each of its
nodes runs the rule. tests/test_training_replay.py checks that replayed, deferred and rule-made records are
identical, and tests/test_training_fast.py that the IR built from them is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from hawkeye_onnx.training.builder import Builder

Grads = list[str | None]
_new = tuple.__new__  # a named tuple made without its Python-level __new__


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
    given: int  # names the rule is given (the environment's first positions)
    #: per emitted output, in order (positions `given`...): its step and its index among the step's outputs
    origin: tuple[tuple[int, int], ...]
    #: per step, its node's name after `<scope>/` in a scope that does not number its nodes (the optimizer's
    #: `/optimizer/<parameter>`: `Mul`, `Mul_1`, ...); None in a backward scope (`<Op>_<k>`, `k` the counter)
    tails: tuple[str, ...] | None = None


class Instance(NamedTuple):
    """A template replayed for one forward node, kept as such (`defer`): its nodes come after `at` records."""

    at: int  # len(builder.records) when it was emitted
    template: Template
    scope: str
    k: int  # the scope's counter at its first node: the nodes are `<scope>/<Op>_<k + step>` (0: `tails`)
    env: tuple[str | None, ...]


class Group(NamedTuple):
    """The instances of one template, named (`settle`): per step and per output, a column of names."""

    template: Template
    members: list[int]  # the instances' numbers in `Builder.instances`, in order
    nodes: list[list[str]]  # per step: each member's node name
    outs: list[list[str]]  # per output (the template's `origin` order): each member's output name


class Settled(NamedTuple):
    """Every deferred instance's names, made at once per template (`settle`)."""

    groups: list[Group]
    outs: list[tuple[str, ...]]  # per instance: its outputs' names, in order


def signature(b: Builder, attrs: tuple[bytes, ...], key: str, needs: list[bool], env: list[str | None]) -> tuple:
    """What a gradient rule's emission for a node depends on (see the module doc). `attrs`: its attributes'
    bytes; `env`: its inputs, outputs and output gradients (None where none flows), the names the rule is
    given."""
    shape = b.shapes.get
    # an empty name (an optional input left out) is told apart from a tensor without a static shape
    shapes = tuple([shape(x) if x else False for x in env])
    names = [x for x in env if x is not None]
    alias = None if len(set(names)) == len(names) else tuple([env.index(x) for x in env])
    return (key, attrs, tuple(needs), shapes, alias)


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
            run: Callable[[], Grads], numbered: bool = True) -> tuple[Grads, Template | None]:
    """Run the rule (`run`) for the node whose given names are `env` (see `signature`) and make its template,
    or None where the emission is not a function of the node's signature alone. `numbered`: `scope` numbers its
    nodes (a backward scope), else they are named as the builder names them in any other scope (`tails`)."""
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
    tails: list[str] = []
    for j, (name, op, domain, inputs, outs, attrs, value) in enumerate(b.records[start:]):
        tail = name[len(scope) + 1:]
        if (name != f"{scope}/{op}_{k0 + j}" if numbered else not name.startswith(f"{scope}/") or "/" in tail) \
                or list(outs) != [f"{name}_output_{i}" for i in range(len(outs))]:
            return grads, None  # a name the builder made unique (it was taken): not the plain pattern
        tails.append(tail)
        try:
            refs = tuple(env.index(x) for x in inputs)
        except ValueError:  # a tensor from outside the node's own
            return grads, None
        steps.append(Step(op, domain, refs, len(outs), attrs, value, tuple(shapes.get(o) for o in outs),
                          tuple(b.dtypes.get(o) for o in outs)))
        env += outs
    emitted = set(env[n_given:])
    if b.counters[scope] != k0 + (len(steps) if numbered else 0) or not reads <= set(env) or not writes <= emitted:
        return grads, None  # the rule read a shape of a tensor it was not given, or set one it did not make
    try:
        refs = tuple(None if g is None else env.index(g) for g in grads)
    except ValueError:
        return grads, None
    origin = tuple((s, i) for s, step in enumerate(steps) for i in range(step.n_out))
    return grads, Template(tuple(steps), refs, n_given, origin, None if numbered else tuple(tails))


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
        _write(step, name, outs, env, records, outputs, shapes, dtypes)
        env += outs
    b.counters[scope] = k
    return [None if r is None else env[r] for r in t.grads]


def _write(step: Step, name: str, outs: list[str], env: list[str | None], records: list, outputs: list[str],
           shapes: dict, dtypes: dict) -> None:
    """One replayed node: its record, its outputs, and their shapes and element types."""
    records.append((name, step.op, step.domain, tuple([env[r] for r in step.inputs]), tuple(outs), step.attrs,
                    step.value))
    outputs += outs
    for out, shape, dtype in zip(outs, step.shapes, step.dtypes, strict=True):
        if shape is not None:
            shapes[out] = shape
        if dtype is not None:
            dtypes[out] = dtype


def defer(b: Builder, t: Template, scope: str, env: list[str | None]) -> Grads:
    """`replay`, with the nodes kept as one `Instance` instead of records: only the gradients' names and shapes
    are made now (the later rules read them), the other names when the expansion ends (`settle`), and the IR
    takes the instance's nodes as a block (`training.graph.build`). Names are not made unique here: `settle`
    checks that none was taken, else the expansion is run again with `replay`."""
    tails, steps = t.tails, t.steps
    if tails is None:
        counters = b.counters
        k = counters[scope]
        counters[scope] = k + len(steps)
    else:  # a scope that does not number its nodes: the template's names
        k = 0
    b.instances.append(_new(Instance, (len(b.records), t, scope, k, tuple(env))))
    b.replayed += len(steps)
    out: Grads = []
    given = t.given
    for r in t.grads:
        if r is None or r < given:
            out.append(None if r is None else env[r])
            continue
        s, i = t.origin[r - given]
        step = steps[s]
        name = f"{scope}/{step.op}_{k + s}_output_{i}" if tails is None else f"{scope}/{tails[s]}_output_{i}"
        if step.shapes[i] is not None:
            b.shapes[name] = step.shapes[i]
        if step.dtypes[i] is not None:
            b.dtypes[name] = step.dtypes[i]
        out.append(name)
    return out


def settle(b: Builder) -> bool:
    """Name every deferred instance's nodes and outputs (`Builder.settled`) as `replay` would name them if none
    was taken, a column of names per template step at a time; False if one of those names was taken (by the model or a
    node emitted as a record): `replay` would have made it unique, and the names of everything after it may
    differ. Two instances cannot take one name: a name is `<scope>/<tail>` with no `/` in the tail (op types
    have none); in one backward scope the builder's counter numbers the nodes, and every other scope (one
    parameter's update) has one instance (the caller keeps the scopes of the two kinds apart)."""
    members: dict[int, tuple[Template, list[int]]] = {}
    for j, inst in enumerate(b.instances):
        found = members.get(id(inst.template))
        if found is None:
            found = members[id(inst.template)] = (inst.template, [])
        found[1].append(j)
    instances, disjoint = b.instances, b.used.isdisjoint
    groups: list[Group] = []
    outs_of: list[tuple[str, ...]] = [()] * len(instances)
    for t, js in members.values():
        scopes = [instances[j].scope for j in js]
        if t.tails is None:
            ks = [instances[j].k for j in js]
            nodes = [[f"{sc}/{step.op}_{k + s}" for sc, k in zip(scopes, ks, strict=True)]
                     for s, step in enumerate(t.steps)]
        else:
            nodes = [[f"{sc}/{tail}" for sc in scopes] for tail in t.tails]
        outs = [[f"{name}_output_{i}" for name in nodes[s]] for s, i in t.origin]
        if not all([disjoint(col) for col in nodes]) or not all([disjoint(col) for col in outs]):
            return False
        groups.append(Group(t, js, nodes, outs))
        for j, names in zip(js, zip(*outs, strict=True) if outs else [()] * len(js), strict=True):
            outs_of[j] = names
    b.settled = Settled(groups, outs_of)
    return True


def records(b: Builder) -> tuple[list[tuple], dict[str, tuple[int, ...]], dict[str, int], list[str]]:
    """Every emitted node's record in order, and the shapes, element types and outputs, with the deferred
    instances written out as `replay` writes them (for tests and checks: the IR takes instances as blocks)."""
    out: list[tuple] = []
    shapes, dtypes, outputs = dict(b.shapes), dict(b.dtypes), []
    plain_outputs = iter(b.outputs)
    at = 0
    names: list[tuple[list[str], list[str]]] = [([], [])] * len(b.instances)
    for g in b.settled.groups if b.instances else ():
        for m, j in enumerate(g.members):
            names[j] = ([col[m] for col in g.nodes], [col[m] for col in g.outs])
    for inst, (nodes, outs) in zip(b.instances, names, strict=True):
        for r in b.records[at:inst.at]:
            out.append(r)
            outputs += [next(plain_outputs) for _ in r[4]]
        at = inst.at
        env = [*inst.env, *outs]
        o = 0
        for name, step in zip(nodes, inst.template.steps, strict=True):
            _write(step, name, outs[o:o + step.n_out], env, out, outputs, shapes, dtypes)
            o += step.n_out
    out += b.records[at:]
    outputs += list(plain_outputs)
    return out, shapes, dtypes, outputs
