"""CrypTFlow2 (SCI) backend: rules/cryptflow2.toml and hawkeye_onnx/fn_cryptflow2.py.

Expected numbers are derived by hand from the SCI source named in each docstring (mpc-msri/EzPC, SCI/src,
mirror HEAD f24bf3e), or published: the CrypTFlow2 paper's end-to-end communication (Rathee et al., CCS
2020) and the HawkEye paper's per-class round counts measured on CrypTFlow2
(../shared/reference/hawkeye-profiles.md section 3.3). Defaults: ell = 37, f = 12, m = 4, kappa = 128.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import backend_with, primitive_cost
from onnx import TensorProto, helper

import hawkeye_onnx
from hawkeye_onnx import fn_cryptflow2 as fn
from validation.cryptflow2 import compare


def _backend(**params):
    return backend_with("cryptflow2", **params)


def prim(name: str, backend=None, **args: int) -> tuple[int, int]:
    return primitive_cost(backend or _backend(), name, **args)


# ------------------------------------------------------------------------------ OT extension


def test_iknp_ot_bytes() -> None:
    """OT/split-iknp.h: send_pre pads n to a multiple of 256 (n <= 16384) and the receiver sends 128 bits per
    padded OT; got_send_post<uint64_t> sends 8 ceil(2 b l / 64) bytes per chunk of b <= 1024 OTs.
    n = 256, l = 37: 256 x 16 + 8 x ceil(18944 / 64) = 4096 + 2368."""
    assert fn.ot_bytes(256, 37, 128) == 4096 + 2368
    # 2000 OTs: padded to 2048; chunks of 1024 and 976
    assert fn.ot_bytes(2000, 1, 128) == 2048 * 16 + 8 * 32 + 8 * 31
    assert prim("ot", n=256, l=37) == (6464, 2)


def test_kkot_and_cot_bytes() -> None:
    """OT/split-kkot.h: 256 bits up per padded OT, ceil(N b l / 8) bytes down per chunk of 2048 (uint8);
    SplitIKNP::send_cot: 8 ceil(b l / 64) bytes per chunk of 1024."""
    assert fn.kkot_bytes(72, 16, 2, 128) == 256 * 32 + 16 * 72 * 2 // 8
    assert fn.cot_bytes(256, 12, 128) == 256 * 16 + 8 * (256 * 12 // 64)


# ------------------------------------------------------------------------------ comparisons


def test_millionaire_36_bits() -> None:
    """Millionaire/millionaire.h compare (WAN_EXEC) on 8 values of 36 bits (ReLU's DReLU at ell = 37):
    D = 9 digits, 72 leaf OTs 1-out-of-16 of 2 bits (8192 + 288 bytes); 2D - 2 - ceil(log2 D) = 12 AND
    gates per value, 48 triples-OTs 1-out-of-16 (8192 + 192), AND openings 12 x 8 / 2 = 48 bytes.
    Direction changes of the server's io (utils/net_io_channel.h counts one round when send_data follows a
    recv or recv_data a send): leaf KKOT recv, send (2); triple KKOT recv, send (2); the AND levels only
    SEND on the server's io (the client's e, f arrive on io_rev, traverse_and_compute_ANDs): 0. Total 4."""
    assert prim("millionaire", n=8, L=36) == (8480 + 8384 + 48, 4)
    # fewer values are padded to 8
    assert prim("millionaire", n=3, L=36) == prim("millionaire", n=8, L=36)
    # L <= m: one 1-out-of-2^L KKOT of 1-bit messages (compare's first branch)
    assert prim("millionaire", n=8, L=3) == (fn.kkot_bytes(8, 8, 1, 128), 2)


def test_and_is_one_kkot_per_two_gates() -> None:
    """BuildingBlocks/aux-protocols.cpp AuxProtocols::AND: size rounded up to even, kkot[3] (1-out-of-16)
    send of size / 2 messages of 2 bits; no opening: 2 rounds on the server's io."""
    assert prim("and_gate", n=7) == (fn.kkot_bytes(4, 16, 2, 128), 2)


def test_compare_with_eq_rounds() -> None:
    """Millionaire/millionaire_with_equality.h compare_with_eq: leaf kkot[3] send, then (L mod 4 != 0) a
    second leaf OT for the top digit, then _8KKOT triples; AND openings are sends on the server's io.
    L = 25 (ell 37 - f 12): 2 + 2 + 2 = 6; L = 24: 4."""
    assert prim("millionaire_eq", n=8, L=25)[1] == 6
    assert prim("millionaire_eq", n=8, L=24)[1] == 4


def test_relu_is_drelu_plus_two_ots() -> None:
    """NonLinear/relu-ring.h ReLURingProtocol::relu: millionaire on ell - 1 bits, then iknp_straight send and
    iknp_reversed recv of ell-bit messages; io_rev is not counted in rounds (utils/io_pack.h get_rounds)."""
    mill = prim("millionaire", n=1000, L=36)
    ot = fn.ot_bytes(1000, 37, 128)
    assert prim("relu", n=1000) == (mill[0] + 2 * ot, mill[1] + 2)


def test_truncation_with_and_without_msb() -> None:
    """BuildingBlocks/truncation.cpp Truncation::truncate: MSB unknown = wrap (millionaire on s bits) +
    compare_with_eq on ell - s bits + AND + 2 B2A; MSB known = wrap + MSB_to_Wrap (1-out-of-4 KKOT) + 2 B2A."""
    n, s = 64, 12
    b2a = fn.cot_bytes(n, s, 128) + fn.cot_bytes(n, 37, 128)
    unknown = prim("trunc", n=n, s=s)[0]
    known = prim("trunc_msb", n=n, s=s)[0]
    assert known == prim("millionaire", n=n, L=s)[0] + fn.kkot_bytes(n, 4, 1, 128) + b2a
    assert unknown == (prim("millionaire", n=n, L=s)[0] + fn.milleq_bytes(n, 25, 4, 128) + prim("and_gate", n=n)[0]
                       + b2a)
    assert unknown > known


# ------------------------------------------------------------------------------ linear layers


def test_matmul_rounds_are_two_per_ot_batch() -> None:
    """LinearOT/linear-ot.cpp matmul_cross_terms: one OT per bit of the receiver matrix, batches of
    ceil(2^24 / (dim msgs)) bit indices; 2 flights per batch. A 1024 x 1024 x 1024 product on one thread:
    dim msgs = 2^30 >= 2^24 -> 1 bit per batch -> ell batches -> 2 ell rounds; a 1 x 64 x 10 product fits
    in one batch."""
    assert fn.matmul_rounds(1024, 1024, 1024, 37, 1, 2) == 74
    assert fn.matmul_rounds(1, 64, 10, 37, 1, 2) == 2
    # both cross terms (TRAINING) send twice the bytes of one cross term (square outer dims: same receiver size)
    assert fn.matmul_bytes(32, 16, 32, 37, 1, 2) == 2 * fn.matmul_bytes(32, 16, 32, 37, 1, 1)


def _single(op, x_shape, w_shape=None, **attrs) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    names = ["x"]
    if w_shape is not None:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w_shape)))
        names.append("w")
    node = helper.make_node(op, names, ["y"], name=f"/{op}", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _cost(model, **params):
    return hawkeye_onnx.profile(model, backends=["cryptflow2"], params={"cryptflow2": params}).backends["cryptflow2"]


def test_grouped_conv_runs_groups_in_sequence() -> None:
    """networks/main_*.cpp Conv2DGroup: for g < G: MatMul2D(CO/G, FH FW CI/G, N Ho Wo): a depthwise conv of
    32 channels costs 32 sequential matmuls (rounds x 32), the under-count HawkEye's merged instructions
    make (about 5x on MobileNetV3)."""
    dw = _cost(_single("Conv", (1, 32, 14, 14), (32, 1, 3, 3), group=32, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
               trunc_after_linear=0)
    one = prim("matmul_ot", d1=1, d2=9, d3=196)
    assert (dw.total.online.bytes, dw.total.online.rounds) == (32 * one[0], 32 * one[1])
    he = _cost(_single("Conv", (1, 32, 14, 14), (32, 1, 3, 3), group=32, kernel_shape=[3, 3]), linear=1)
    assert [u.op_type for u in he.unsupported] == ["Conv"] and "Grouped" in he.unsupported[0].reason


def test_conv_adds_scaledown_and_no_offline() -> None:
    b = _cost(_single("Conv", (1, 16, 8, 8), (8, 16, 3, 3), pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
    mm = prim("matmul_ot", d1=8, d2=144, d3=64)
    sd = prim("scaledown", n=8 * 64)
    assert (b.total.online.bytes, b.total.online.rounds) == (mm[0] + sd[0], mm[1] + sd[1])
    assert (b.total.offline.bytes, b.total.offline.rounds) == (0, 0)


def test_maxpool_is_k_minus_1_relus() -> None:
    """NonLinear/maxpool.h funcMaxMPC: k - 1 sequential ReLUs on the output positions."""
    b = _cost(_single("MaxPool", (1, 8, 16, 16), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    one = prim("relu", n=8 * 8 * 8)
    assert (b.total.online.bytes, b.total.online.rounds) == (8 * one[0], 8 * one[1])


def test_unsupported_ops_are_named() -> None:
    b = _cost(_single("Softmax", (1, 10)))
    assert [u.op_type for u in b.unsupported] == ["Softmax"] and b.total.online.bytes == 0


# ------------------------------------------------------------------------------ published numbers


@pytest.mark.parametrize("name", sorted(compare.PUBLISHED_GIB))
def test_sci_ot_matches_the_paper(name: str) -> None:
    """SCI's own networks with the paper's parameters (SCI bitlength, scale 12, 4 threads, MatMulUniform):
    end-to-end SCI_OT communication within 5% of the CrypTFlow2 paper's table."""
    b = compare.replica_cost(name, 0)
    ours = b.total.online.bytes / 2**30
    want = compare.PUBLISHED_GIB[name][0]
    assert abs(ours / want - 1) < 0.05, ours
    assert not b.unsupported


def _first_conv_keys(name: str) -> int:
    """Bytes of the Galois and public keys SCI_HE re-sends for the first convolution's stride phases, whose
    slot counts (32768) are neither preset (8192, 65536): LinearHE/conv-field.cpp non_strided_conv ->
    generate_new_keys, once per phase."""
    _, h, w, _, fh, fw, _, phl, phr, pwl, pwr, sh, sw = next(
        c for c in compare.networks()[name] if c[0] == "Conv2DWrapper")[1:14]
    phases = [(lh, lw) for lh, lw, live in fn._he_pieces(*(np.array([v]) for v in (h, w, fh, fw, phl + phr,
                                                                                 pwl + pwr, sh, sw))) if live[0]]
    slots = [int(fn._he_slots(lh * lw)[0]) for lh, lw in phases]
    return sum(fn.he_keys_bytes(s) for s in slots if s not in (8192, 65536))


@pytest.mark.parametrize("name", sorted(compare.PUBLISHED_GIB))
def test_sci_he_matches_the_paper(name: str) -> None:
    """SCI's own networks under SCI_HE (HE convolutions and BatchNorms, field ReLU / division, every Relu4
    truncating with the MSB known): within 15% of the paper (ResNet-50 +5.3%, DenseNet-121 +6.9%, SqueezeNet
    +13.8%); without the keys the first convolution re-sends (0.67 GiB, generate_new_keys for 32768-slot
    stride phases) +3.2%, +5.0%, +1.1%: the paper's counts most likely exclude them (unverified)."""
    b = compare.replica_cost(name, 1)
    want = compare.PUBLISHED_GIB[name][1] * 2**30
    assert not b.unsupported
    assert abs(b.total.online.bytes / want - 1) < 0.15
    assert abs((b.total.online.bytes - _first_conv_keys(name)) / want - 1) < 0.06


def test_grouped_conv_rounds_match_cryptflow2_not_hawkeye() -> None:
    """HawkEye's Scripts/CrypTFlow2_round_res.py: MobileNetV3 conv rounds 12131 measured on CrypTFlow2,
    2232 by HawkEye's profile; ShuffleNetV2 6827 vs 1745. Running the groups in sequence lands within 5%
    of the measured counts (ell = 60, one thread: the setting all four measured conv counts agree with), the
    merged-instruction count (3.9-5.4x lower) does not."""
    for name, measured, hawkeye in (("mobilenet_v3_large", 12131, 2232), ("shufflenet_v2_x1_0", 6827, 1745)):
        conv = compare.class_rounds(name, **compare.HAWKEYE_SETUP)["conv"]
        assert abs(conv / measured - 1) < 0.05, (name, conv)
        assert conv > 3.5 * hawkeye


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_dense_conv_rounds_match_cryptflow2_with_one_thread(name: str) -> None:
    """HawkEye's measured conv rounds (ResNet-50 7155, DenseNet-121 10317): 2 rounds per OT batch of
    MatMul2D (ell = 60 batches for every large conv) + the ScaleDown, with MatMul2D on one thread, agree
    within 5%; the networks' default of 4 threads (larger batches of the split inner dimension) does not."""
    measured = compare.HAWKEYE_ROUNDS[name][0]
    assert abs(compare.class_rounds(name, **compare.HAWKEYE_SETUP)["conv"] / measured - 1) < 0.05
    assert compare.class_rounds(name, **{**compare.HAWKEYE_SETUP, "threads": 4})["conv"] < 0.8 * measured


@pytest.mark.parametrize("name", sorted(compare.HAWKEYE_NONLINEAR))
def test_nonlinear_rounds_match_cryptflow2_measurement(name: str) -> None:
    """HawkEye's measured CrypTFlow2 non-linear rounds (Scripts/CrypTFlow2_round_res.py: ResNet-50 438,
    DenseNet-121 720, ShuffleNetV2 270), with the networks HawkEye ran (its Programs/Source/*.mpc, not
    torchvision's: its ResNet-50 Bottleneck has a 4th ReLU after bn3, 65 in all; its DenseNet-121 has an
    AvgPool stem and 120 ReLUs): 6 rounds per ReLU (millionaire 4 + the OT 2) and 8 sequential ReLUs per 3x3
    MaxPool reproduce all three exactly."""
    assert compare.nonlinear_rounds(*compare.HAWKEYE_NONLINEAR[name]) == compare.HAWKEYE_ROUNDS[name][2]


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "shufflenet_v2_x1_0"])
def test_other_linear_rounds_residual_is_the_bn_product(name: str) -> None:
    """HawkEye's measured other-linear rounds (ResNet-50 582, DenseNet-121 1340, ShuffleNetV2 608) with its
    known-MSB BatchNorm truncation (bn_trunc_known_msb = 1): ours are 17-22% high, and the excess is the OT
    batches of the BatchNorm products (ElemWiseActModelVectorMult): without them all three are within 5%.
    Why HawkEye's run paid no round for them is not known (its CrypTFlow2 programs are not published)."""
    measured = compare.HAWKEYE_ROUNDS[name][1]
    other = compare.class_rounds(name, **compare.HAWKEYE_SETUP)["other"]
    assert other > 1.1 * measured
    assert abs((other - compare.bn_product_rounds(name)) / measured - 1) < 0.05


def test_bn_known_msb_truncation_parameter() -> None:
    """bn_trunc_known_msb = 1 swaps the BatchNorm's ScaleDown (Truncation::truncate, MSB unknown: wrap +
    compare_with_eq on ell - f bits + AND + 2 B2A) for the known-MSB truncation (wrap + MSB_to_Wrap + 2 B2A):
    the rounds saved are compare_with_eq's and AND's, less MSB_to_Wrap's (truncation.cpp, aux-protocols.cpp).
    At ell = 60, f = 23: compare_with_eq on 37 bits (37 mod 4 != 0: leaf KKOT 2 + top-digit OT 2 + triple
    KKOT 2 = 6, as in test_compare_with_eq_rounds), AND's KKOT 2, MSB_to_Wrap's 1-out-of-4 KKOT 2: 6 fewer
    (16 -> 10)."""
    model = _single("BatchNormalization", (1, 8, 4, 4))
    model.graph.input.extend(helper.make_tensor_value_info(p, TensorProto.FLOAT, [8]) for p in "sbmv")
    model.graph.node[0].input.extend(["s", "b", "m", "v"])
    base = {"ring_bits": 60, "frac_bits": 23}
    unknown = _cost(model, **base).total.online.rounds
    known = _cost(model, **base, bn_trunc_known_msb=1).total.online.rounds
    b = _backend(**base)
    saved = (prim("millionaire_eq", b, n=128, L=60 - 23)[1] + prim("and_gate", b, n=128)[1]
             - prim("kkot", b, n=128, N=4, l=1)[1])
    assert saved == 6 + 2 - 2
    assert unknown - known == saved


def test_sender_bit_sums_in_closed_form_equal_the_loop() -> None:
    """The OT sender's bytes sum ceil(m * j / 8) over the bit widths j = 1..ell (SCI loops over them;
    `_sum_ceil8` sums them in closed form): equal, exactly, for every width and residue of m mod 8."""
    rng = np.random.default_rng(7)
    m = np.concatenate([np.arange(0, 40), rng.integers(1, 1 << 40, size=200)]).astype(np.int64)
    n = np.concatenate([np.arange(0, 40), rng.integers(0, 65, size=200)]).astype(np.int64)
    loop = np.array([sum(-(-int(a) * j // 8) for j in range(1, int(b) + 1)) for a, b in zip(m, n, strict=True)])
    assert np.array_equal(fn._sum_ceil8(m, n), loop)
