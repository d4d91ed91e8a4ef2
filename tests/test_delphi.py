"""Delphi backend: rules/delphi.toml, and the node-set parameters it uses for `approx_relu`.

Expected numbers are derived by hand from the Delphi source named in each docstring (mc2-project/delphi,
mirror HEAD 92bc007): the ReLU circuit (rust/crypto-primitives/src/gc.rs), the HE packing
(rust/protocols-sys/c++/src/lib/conv2d.cpp conv_metadata, fc_layer.cpp fc_metadata) and the messages of
rust/protocols/src/{linear_layer,gc,quad_approx}.rs. Defaults: p of 41 bits, 8 fraction bits, N = 8192.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from conftest import backend_with
from onnx import TensorProto, helper

import hawkeye_onnx
from hawkeye_onnx.errors import RuleError
from hawkeye_onnx.rules import load_backend, node_in_set

CT = 2 * 8192 * (43 + 43 + 44 + 44 + 44) // 8  # ct_bytes: one BFVDefault(8192) ciphertext
B = 42  # num_bits(p) for p = 2061584302081 (gc.rs num_bits: trailing_zeros(next_pow2(p) * 2))


def _model(nodes, inputs, opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)])
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _cost(model, **params):
    return hawkeye_onnx.profile(model, backends=["delphi"], params={"delphi": params}).backends["delphi"]


def _relu(n_ch=4, hw=8, name="/block/relu/Relu"):
    return _model([helper.make_node("Relu", ["x"], ["y"], name=name)], [("x", [1, n_ch, hw, hw])])


def test_relu_circuit_gate_count() -> None:
    """crypto-primitives/src/gc.rs relu on b = 42 bits, E = 8: bin_addition_no_carry b - 1 ANDs, mod_p_helper
    (bin_addition b + mux b), neg_p_over_2_helper b - 1, relu_res E + 8, and_many over 2 wires 1, or_many
    over 5 wires 4, or 1, mux_single_bit E + 3, then addition b - 1 and mod_p 2 b: 7 b + 2 E + 14 = 324."""
    gates = (B - 1) + 2 * B + (B - 1) + (8 + 8) + 1 + 4 + 1 + (8 + 3) + (B - 1) + 2 * B
    assert gates == 324
    # What the rule charges for one ReLU: its offline bytes are gates x and_bytes plus, per bit of b,
    # an output block, a randomizer Wire and an ALSZ OT (kappa / 8 up, two labels down); b is the number of
    # garbler labels it sends online (8-byte Vec length + b Wires). Recover b and the gate count from them.
    delphi = backend_with("delphi")
    v = delphi.param_values
    one = _cost(_relu(n_ch=1, hw=1))
    b_charged, rest = divmod(one.total.online.bytes - 8, v["wire_bytes"])
    assert (b_charged, rest) == (B, 0)
    per_bit = v["label_bytes"] + v["wire_bytes"] + v["kappa"] // 8 + 2 * v["label_bytes"]
    charged, rest = divmod(one.total.offline.bytes - b_charged * per_bit, v["and_bytes"])
    assert (charged, rest) == (gates, 0)


def test_relu_online_and_offline() -> None:
    """gc.rs: online the server sends b garbler labels per ReLU (Vec<Wire>: 8-byte length + b x 20 bytes);
    offline 324 AND gates x 32 bytes, b output blocks, b randomizer labels (Wire, 20 bytes), and b ALSZ OTs
    (16 bytes up, two 16-byte labels down)."""
    n = 4 * 8 * 8
    b = _cost(_relu())
    assert (b.total.online.bytes, b.total.online.rounds) == (n * (8 + B * 20), 1)
    assert b.total.offline.bytes == n * (324 * 32 + B * 16 + B * 20 + B * 48)
    assert b.total.offline.bytes > 10 * b.total.online.bytes  # preprocessing is most of Delphi's cost


def test_approx_relu_selects_nodes() -> None:
    """quad_approx.rs / beavers_mul.rs: a selected ReLU costs one Beaver multiplication online (4 shares of
    9 bytes per value) and HE triples offline (Enc(a), Enc(b) up, Enc(c) down: 3 ceil(n / 8192) ciphertexts)."""
    n = 4 * 8 * 8
    quad = _cost(_relu(), approx_relu="/block/relu/Relu")
    assert (quad.total.online.bytes, quad.total.offline.bytes) == (4 * n * 9, 3 * CT)
    assert _cost(_relu(), approx_relu="/block/*").total.online.bytes == 4 * n * 9
    assert _cost(_relu(), approx_relu="/block").total.online.bytes == 4 * n * 9  # scope prefix
    assert _cost(_relu(), approx_relu="/other").total.online.bytes == n * (8 + B * 20)


def test_conv_packing() -> None:
    """conv2d.cpp conv_metadata on 32x32 inputs: image_size = 1024, chans_per_half = 4096 / 1024 = 4;
    16 -> 32 channels, 3x3: the client sends ceil(16 / 8) x 9 = 18 rotated ciphertexts, the server returns
    ceil(32 / 8) = 4; online the client sends its 16 x 32 x 32 input shares (9 bytes each)."""
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="/conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    b = _cost(_model([conv], [("x", [1, 16, 32, 32]), ("w", [32, 16, 3, 3])]))
    assert (b.total.offline.bytes, b.total.offline.rounds) == ((18 + 4) * CT, 2)
    assert (b.total.online.bytes, b.total.online.rounds) == (16 * 32 * 32 * 9, 1)


def test_gemm_packing() -> None:
    """fc_layer.cpp fc_metadata: 64 -> 10: pack_num = 8192 / 64 = 128 rows per ciphertext, result
    ceil(16 / 128) = 1 ciphertext; the client sends one."""
    g = helper.make_node("Gemm", ["x", "w"], ["y"], name="/fc")
    b = _cost(_model([g], [("x", [1, 64]), ("w", [64, 10])]))
    assert (b.total.offline.bytes, b.total.online.bytes) == (2 * CT, 64 * 9)


@pytest.mark.parametrize("what,nodes,inputs,op", [
    ("big channel", [helper.make_node("Conv", ["x", "w"], ["y"], name="/c", kernel_shape=[3, 3])],
     [("x", [1, 3, 64, 64]), ("w", [8, 3, 3, 3])], "Conv"),
    ("depthwise", [helper.make_node("Conv", ["x", "w"], ["y"], name="/c", kernel_shape=[3, 3], group=8)],
     [("x", [1, 8, 16, 16]), ("w", [8, 1, 3, 3])], "Conv"),
    ("maxpool", [helper.make_node("MaxPool", ["x"], ["y"], name="/p", kernel_shape=[2, 2])],
     [("x", [1, 8, 16, 16])], "MaxPool"),
    ("softmax", [helper.make_node("Softmax", ["x"], ["y"], name="/s")], [("x", [1, 10])], "Softmax"),
])
def test_unsupported(what, nodes, inputs, op) -> None:
    """conv2d.cpp asserts image_size < slot_count / 2; Delphi's layers have no groups, no max pooling, no
    softmax (rust/neural-network/src/layers/mod.rs)."""
    b = _cost(_model(nodes, inputs))
    assert [u.op_type for u in b.unsupported] == [op], what


def test_node_in_set() -> None:
    assert node_in_set("/layer1/layer1.0/relu/Relu", "/layer1/layer1.0")
    assert node_in_set("/layer1/layer1.0/relu/Relu", "/x, /layer1/*")
    assert node_in_set("/a/Relu", "*")
    assert not node_in_set("/layer10/relu/Relu", "/layer1")
    assert not node_in_set("/a/Relu", "")


def test_node_sets_must_name_string_params(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[backend]\nname = "bad"\nnode_sets = ["n"]\n\n[params.n]\ndefault = 1\n')
    with pytest.raises(RuleError, match=r"bad\.toml:3: node_sets"):
        load_backend(bad)


def test_resnet32_relu_bytes() -> None:
    """ResNet-32 has 303,104 ReLU activations (resnet32.rs, test_delphi_networks_relu_counts), each garbled:
    8 + b x 20 bytes online (test_relu_online_and_offline)."""
    zoo = pytest.importorskip("hawkeye_onnx.zoo")
    b = _cost(zoo.build("resnet32_cifar"))
    assert not b.unsupported
    assert b.ops["Relu"].totals.online.bytes == 303104 * (8 + B * 20)


# ---------------------------------------------------------------- Delphi's own experiment networks
# validation/delphi/networks.py lays out the networks of mc2-project/delphi rust/experiments/src/resnet32.rs
# (construct_resnet_32) and minionn.rs (construct_minionn) with their planner configurations (num_poly).

def _delphi_net():
    return pytest.importorskip("validation.delphi.networks")


def test_delphi_networks_relu_counts() -> None:
    """resnet32.rs: conv 3->16 on 32x32, then 10 activations at 16x32x32, 10 at 32x16x16, 10 at 64x8x8:
    16384 + 10 (16384 + 8192 + 4096) = 303,104. minionn.rs: 2 x 64x32x32, 2 x 64x16x16, 64x8x8 and 16x8x8
    after the 1x1 convs (64 and 16 channels): 2 (65536 + 16384) + 4096 + 4096 + 1024 = 173,056."""
    net = _delphi_net()
    assert net.garbled("resnet32", 0) == 16384 + 10 * (16384 + 8192 + 4096) == 303104
    assert net.garbled("minionn", 0) == 2 * (65536 + 16384) + 4096 + 4096 + 1024 == 173056


@pytest.mark.parametrize("name", ["resnet32", "minionn"])
def test_zoo_is_delphis_network(name: str) -> None:
    """The zoo's CIFAR networks cost what Delphi's own experiment networks cost (all ReLUs garbled): same
    convolutions and activations; the heads differ (Delphi: AvgPool 2x2 + FC 1024 -> 10; the zoo's head),
    a few ciphertexts out of thousands."""
    zoo = pytest.importorskip("hawkeye_onnx.zoo")
    ours, theirs = _cost(zoo.build(f"{name}_cifar")), _delphi_net().price(name, 0)
    assert ours.ops["Relu"].totals == theirs.ops["Relu"].totals
    assert ours.ops["Conv"].totals == theirs.ops["Conv"].totals
    assert ours.total.offline.bytes == pytest.approx(theirs.total.offline.bytes, rel=0.005)
    assert ours.total.online.bytes == pytest.approx(theirs.total.online.bytes, rel=0.005)


@pytest.mark.parametrize("name,num_poly,quad", [
    # resnet32.rs poly_layers for 6: l = 3, 5 (16x32x32), 18, 19 (32x16x16), 26, 27 (64x8x8)
    ("resnet32", 6, 2 * 16384 + 2 * 8192 + 2 * 4096),
    # minionn.rs relu_layers for 3: [3, 11, 13, 15]: the activations of layers 1 (64x32x32), 6 and 8
    # (64x16x16) are quadratic (layers: 0 conv, 1 act, 2 conv, 3 act, 4 pool, 5 conv, 6 act, 7 conv, 8 act, ...)
    ("minionn", 3, 65536 + 2 * 16384),
    ("minionn", 7, 173056),
])
def test_delphi_planner_configs(name: str, num_poly: int, quad: int) -> None:
    """Delphi's planner configurations: a quadratic activation costs one Beaver multiplication online
    (4 shares of 9 bytes), a garbled one 8 + 42 x 20 bytes (test_relu_online_and_offline)."""
    net = _delphi_net()
    total = net.garbled(name, 0)
    b = net.price(name, num_poly)
    assert net.garbled(name, num_poly) == total - quad
    assert b.ops["Relu"].totals.online.bytes == (total - quad) * (8 + B * 20) + quad * 4 * 9
    if quad == total:  # no garbled circuit left: preprocessing is HE only (linear layers and triples)
        assert b.ops["Relu"].totals.offline.bytes == 3 * sum(-(-n // 8192) for n in (65536, 65536, 16384, 16384,
                                                                                  4096, 4096, 1024)) * CT


def test_delphi_doc_table_is_generated() -> None:
    """docs/backends/delphi.md carries the table validation/delphi/networks.py prints, row for row."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "backends" / "delphi.md").read_text()
    missing = [row for row in _delphi_net().table() if row not in doc]
    assert not missing, "regenerate with: PYTHONPATH=. python validation/delphi/networks.py"
