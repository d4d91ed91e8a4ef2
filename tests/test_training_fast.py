"""The training profiler's shortcuts give what the plain pipeline gives (issue 8: train mode on big graphs).

Each shortcut is checked against the slow path it replaces, computed in the test by the core pipeline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import MODELS

from hawkeye_onnx.ir import build_graph
from hawkeye_onnx.load import infer_shapes, load
from hawkeye_onnx.rules import load_backends
from hawkeye_onnx.training.expand import TrainOptions, expand
from hawkeye_onnx.training.profile import BACKWARD, TRAIN, _context, _parameters, _training_mode


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "transformer_block.onnx"])
def test_context_groups_equal_a_rebuild(name: str) -> None:
    """`_context` regroups only the moved nodes; `ir` recomputing the columns from the nodes must agree."""
    loaded = load(MODELS / name, batch=2)
    moved = 0
    for style in ("onnx", "crypten"):
        train, phases = expand(loaded.model, TrainOptions(style=style))
        graph = build_graph(infer_shapes(train))
        for backend in load_backends(None, {}):
            ctx = _context(graph, backend, phases["backward"], BACKWARD)
            ctx = _context(ctx, backend, phases["forward"], TRAIN, _training_mode)
            fresh = dataclasses.replace(ctx)  # a new instance: `columns` computed from its nodes
            assert "columns" not in fresh.__dict__
            ours, want = ctx.columns.groups, fresh.columns.groups
            assert list(ours) == list(want)  # pricing walks the groups in this order
            for key in want:
                assert np.array_equal(ours[key], want[key]), key
            moved += sum(k.startswith((f"{BACKWARD}::", f"{TRAIN}::")) for k in ours)
    assert moved > 0  # some backend has a backward:: or train:: rule for these graphs


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "mlp.onnx", "transformer_block_dynamo.onnx"])
def test_header_parameters_as_the_ir_counts_them(name: str) -> None:
    model = load(MODELS / name, batch=2).model
    assert _parameters(model.graph) == build_graph(model).parameters > 0
