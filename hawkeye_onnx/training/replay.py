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
names only when asked (`Group`, once `settle` has checked that the model took none), and the IR takes each
instance as a block (`training.graph.build`).

What makes two nodes alike is their `signature`: the op, the attributes' bytes, which inputs need a gradient,
which outputs carry one, the shapes of every tensor the rule is given, and which of those tensors are the same
one. A rule that reads anything else (the value of a constant input, through the builder's producers or
initial values, or the shape of another tensor) or names a tensor from elsewhere gets no template: each of its
nodes runs the rule. tests/test_training_replay.py checks that replayed, deferred and rule-made records are
identical, and tests/test_training_fast.py that the IR built from them is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from hawkeye_onnx.training.builder import Builder, block_scope, output_name

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
    #: the outputs (positions among them) that nodes after an instance may read: its gradients (`grads`); no later
    #: node knows another's name
    read: tuple[int, ...] = ()


class Instance(NamedTuple):
    """A template replayed for one forward node, kept as such (`defer`): its nodes come after `at` records."""

    at: int  # len(builder.records) when it was emitted
    template: Template
    scope: str
    k: int  # the scope's counter at its first node: the nodes are `<scope>/<Op>_<k + step>` (0: `tails`)
    env: tuple[str | None, ...]
    read: tuple[str, ...]  # the names of the template's `read` outputs, made at once


def node_name(t: Template, scope: str, k: int, s: int) -> str:
    """The name of step `s`'s node of an instance of `t` in `scope` whose first node took the counter `k`: the
    builder's `<scope>/<Op>_<k>` in a scope that numbers its nodes, else `<scope>/<tail>` (`Template.tails`).
    `Group.nodes` spells the same pattern a column at a time."""
    return f"{scope}/{t.steps[s].op}_{k + s}" if t.tails is None else f"{scope}/{t.tails[s]}"


class Group(NamedTuple):
    """The instances of one template (`settle`), whose names are made when asked, a column of them at a time: a
    big model's blocks have millions, and only the module tree's text needs the nodes' (`nodes`), and nothing
    but a check or a test all of them (`columns`)."""

    template: Template
    members: list[int]  # the instances' numbers in `Builder.instances`, in order
    scopes: list[str]  # per member: its scope
    ks: list[int]  # per member: its scope's counter at its first node

    def nodes(self, s: int, members: Sequence[int] | None = None) -> list[str]:
        """Each member's node name of step `s` (`node_name`, without a call per name); of the members whose
        positions in the group are `members`, if given."""
        t = self.template
        scopes, ks = self.scopes, self.ks
        if members is not None:
            scopes, ks = [scopes[m] for m in members], [ks[m] for m in members]
        if t.tails is None:
            op = t.steps[s].op
            return [f"{scope}/{op}_{k + s}" for scope, k in zip(scopes, ks, strict=True)]
        tail = t.tails[s]
        return [f"{scope}/{tail}" for scope in scopes]

    def columns(self) -> tuple[list[list[str]], list[list[str]]]:
        """Every name of the members: per step, a column of node names (`nodes`), and per output (the template's
        `origin` order), a column of output names."""
        nodes = [self.nodes(s) for s in range(len(self.template.steps))]
        return nodes, [[output_name(name, i) for name in nodes[s]] for s, i in self.template.origin]


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
                or list(outs) != [output_name(name, i) for i in range(len(outs))]:
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
    read = tuple(sorted({r - n_given for r in refs if r is not None and r >= n_given}))
    return grads, Template(tuple(steps), refs, n_given, origin, None if numbered else tuple(tails), read)


def replay(b: Builder, t: Template, scope: str, env: list[str | None]) -> Grads:
    """Emit `t` for the node whose given names are `env` (see `signature`) as its rule would: the same records,
    names, shapes and types."""
    env = list(env)
    unique, records, outputs, shapes, dtypes = b._unique, b.records, b.outputs, b.shapes, b.dtypes
    k = b.counters[scope]
    for step in t.steps:
        name = unique(f"{scope}/{step.op}_{k}")
        k += 1
        outs = [unique(output_name(name, i)) for i in range(step.n_out)]
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
    are made now (the later rules read them), the other names when asked (`Group`), and the IR takes the
    instance's nodes as a block (`training.graph.build`). Names are not made unique here: `settle` checks that
    none was taken, else the expansion is run again with `replay`."""
    steps = t.steps
    if t.tails is None:
        counters = b.counters
        k = counters.get(scope, 0)
        counters[scope] = k + len(steps)
    else:  # a scope that does not number its nodes: the template's names
        k = 0
    read = []
    for o in t.read:
        s, i = t.origin[o]
        step = steps[s]
        name = output_name(node_name(t, scope, k, s), i)
        if step.shapes[i] is not None:
            b.shapes[name] = step.shapes[i]
        if step.dtypes[i] is not None:
            b.dtypes[name] = step.dtypes[i]
        read.append(name)
    b.instances.append(_new(Instance, (len(b.records), t, scope, k, tuple(env), tuple(read))))
    b.replayed += len(steps)
    given = t.given
    return [None if r is None else env[r] if r < given else read[t.read.index(r - given)] for r in t.grads]


def settle(b: Builder) -> bool:
    """Group the deferred instances by template (`Builder.settled`: their names are made when asked), after
    checking that none of the names `replay` would give them is taken; False if one is: `replay` would have made
    it unique, and the names of everything after it may differ.

    Every block name is `<scope>/<tail>` in its instance's scope (`_output_<i>` after it for an output), with no
    `/` in the tail (op types have none), so only a name of the same scope can be one. A record's cannot: a
    backward scope (`<fwd>_Grad`) numbers its nodes, records' and blocks' alike, with one counter, and a
    parameter's update is either one block or records. Nor can another block's, for the same reasons. So only
    the model's names are checked, and only for the instances of a scope that one of them is in
    (`ModelBase.taken_scopes`); an instance of any other kind of scope is checked against every name taken."""
    instances, taken_scopes, used = b.instances, b.taken_scopes, b.used
    members: dict[int, tuple[Template, list[int]]] = {}
    for j, inst in enumerate(instances):
        found = members.get(id(inst.template))
        if found is None:
            found = members[id(inst.template)] = (inst.template, [])
        found[1].append(j)
        scope = inst.scope
        if block_scope(scope) and scope not in taken_scopes:
            continue
        t, k = inst.template, inst.k
        nodes = [node_name(t, scope, k, s) for s in range(len(t.steps))]
        if not used.isdisjoint(nodes) or not used.isdisjoint([output_name(nodes[s], i) for s, i in t.origin]):
            return False
    b.settled = [Group(t, js, [instances[j].scope for j in js], [instances[j].k for j in js])
                 for t, js in members.values()]
    return True


def records(b: Builder) -> tuple[list[tuple], dict[str, tuple[int, ...]], dict[str, int], list[str]]:
    """Every emitted node's record in order, and the shapes, element types and outputs, with the deferred
    instances written out as `replay` writes them (for tests and checks: the IR takes instances as blocks)."""
    out: list[tuple] = []
    shapes, dtypes, outputs = dict(b.shapes), dict(b.dtypes), []
    plain_outputs = iter(b.outputs)
    at = 0
    names: list[tuple[list[str], list[str]]] = [([], [])] * len(b.instances)
    for g in b.settled if b.instances else ():
        nodes, outs = g.columns()
        for m, j in enumerate(g.members):
            names[j] = ([col[m] for col in nodes], [col[m] for col in outs])
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
