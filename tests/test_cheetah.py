"""OpenCheetah backend: rules/cheetah.toml and hawkeye_onnx/fn_cheetah.py.

Every expected number below is derived by hand from the OpenCheetah source named in the test's docstring
(Alibaba-Gemini-Lab/OpenCheetah at f71d4d4, emp-ot 7f3d4f0, SEAL 3.7.2), or measured by OpenCheetah
itself (the client log in OpenCheetah issue #26), or published in the Cheetah paper (Huang et al.,
USENIX Security 2022). Defaults: ell = 37, f = 12, N = 4096, 4 threads, ferret_cot_bytes = 0.05593.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import backend_with, primitive_cost
from onnx import TensorProto, helper

import hawkeye_onnx
from hawkeye_onnx import fn_cheetah

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ROOT / "validation" / "cheetah" / "opencheetah_networks.json"
FERRET = 0.05593
#: ct_fresh_bytes as measured in the client log of OpenCheetah issue #26 (test_client_bytes_match_opencheetah_log)
FRESH = 62420


def _backend(**params):
    return backend_with("cheetah", **params)


def prim(name: str, backend=None, **args: int) -> tuple[int, int]:
    """Online (bytes, rounds) of one primitive call with scalar arguments."""
    return primitive_cost(backend or _backend(), name, **args)


def ferret(m: int) -> int:
    return math.ceil(FERRET * m)


# ------------------------------------------------------------------------------ silent-OT building blocks


def test_cot_packs_l_bits_per_ot() -> None:
    """SCI/src/OT/ferret/silent_ot.h send_ot_cam_cc: per 8 OTs ceil(8 l / 64) uint64 words; the receiver's
    choice corrections go through emp's recv_bool / SCI io_channel.h send_bool_aligned (8 per byte); one
    16-byte seed (mitccrh.setS). m = 8, l = 37: 5 words = 40 bytes, 1 byte of bits, 16 bytes of seed."""
    assert prim("cot", m=8, l=37, k=1) == (40 + 1 + 16 + ferret(8), 2)
    # 4 calls (threads) of 16 OTs each, l = 12: 2 bytes per OT, 8 bytes of bits, 4 seeds
    assert prim("cot", m=64, l=12, k=4) == (128 + 8 + 64 + ferret(64), 2)


def test_ot2_and_otn_message_packing() -> None:
    """silent_ot.h send_ot_cm_cc<uint8_t>(T **data, length, l): ceil(2 * 8 * l / 8) bytes per 8 OTs.
    send_ot_cm_cc(T **data, length, N, l): log2 N random-message OTs per instance (bits + one seed) and
    ceil(8 N l / 8) bytes (uint8_t) or 8 ceil(8 N l / 64) bytes (uint64_t) per 8 instances."""
    assert prim("ot2", m=8, l=1, k=1) == (2 + 1 + 16 + ferret(8), 2)
    # the millionaire leaves: 1-out-of-16 of 2-bit messages: 32 bytes per 8, 4 choice bits each
    assert prim("otn", m=8, b=4, l=2, k=1) == (32 + 4 + 16 + ferret(32), 2)
    # the ring division's 1-out-of-4 of (37 + 9)-bit messages in uint64 words: 23 words per 8
    assert prim("otn_u64", m=8, b=2, l=46, k=1) == (184 + 2 + 16 + ferret(16), 2)


def _and_gates(q: int) -> tuple[int, int]:
    """Gates and levels of MillionaireProtocol::traverse_and_compute_ANDs (USE_CHEETAH): per level i (1, 2,
    4, ...) the pair at j = 0 needs one AND (cmp), every other pair two (cmp and eq)."""
    gates = levels = 0
    i = 1
    while i < q:
        levels += 1
        for j in range(0, q, 2 * i):
            if j + i < q:
                gates += 1 if j == 0 else 2
        i *= 2
    return gates, levels


@pytest.mark.parametrize("q", range(2, 17))
def test_and_gate_count_matches_the_traversal(q: int) -> None:
    """millionaire.h configure: num_triples = 2 q - 2 - bitlen(q), sci::bitlen(x) = ceil(log2 x)
    (SCI/src/utils/utils.hpp: 'doesn't return bitlen. It returns log_alpha')."""
    gates, levels = _and_gates(q)
    assert gates == 2 * q - 2 - math.ceil(math.log2(q))
    assert levels == math.ceil(math.log2(q))
    # What rules/cheetah.toml's millionaire primitive charges for 8 comparisons of L = 4 q bits (q digits),
    # Ferret's traffic off: the leaves (8 q OTs 1-out-of-16 of 2-bit messages, 4 choice bits each, one
    # seed), the sync (2), the triples' 2 seeds (32), then 1/2 byte per AND gate of the traversal; flights:
    # 3, then 2 per AND level of the traversal.
    leaves = 8 * q * 16 * 2 // 8 + 8 * q * 4 // 8 + 16
    charged = prim("millionaire", _backend(ferret_cot_bytes=0), n=8, L=4 * q, k=1)
    assert charged == (leaves + 2 + 32 + 8 * gates // 2, 3 + 2 * levels)
    # Ferret COTs: 4 per leaf OT (log2 16 random OTs), 2 per AND gate (a _2ROT bit triple)
    ferret_cots = prim("millionaire", _backend(ferret_cot_bytes=1), n=8, L=4 * q, k=1)[0] - charged[0]
    assert ferret_cots == 8 * q * 4 + 2 * 8 * gates


def test_millionaire_36_bits() -> None:
    """MillionaireProtocol::compare on 8 values of 36 bits (the exact ReLU's DReLU): q = 9 digits of 4
    bits; 72 leaf OTs 1-out-of-16 (4 B each + 4 choice bits), seed 16; NetIO::sync 1 + 1 bytes;
    12 AND gates per value from _2ROT triples (2 random OTs each: 2 seeds, 192 COTs), opened in
    4 levels at 4 bits (e, f, both parties) per gate = 48 bytes. Flights: leaf bits B->A, messages and
    sync A->B, sync and triple seed B->A, seed and level 1 A->B, level 1 B->A, 2 per further level."""
    leaf = 72 * 4 + 72 * 4 // 8 + 16
    assert prim("millionaire", n=8, L=36, k=1) == (leaf + 2 + 32 + 12 * 8 // 2 + ferret(72 * 4 + 2 * 96), 3 + 2 * 4)
    # fewer than 8 values are padded to 8 (compare: num_cmps = ceil(num_cmps / 8) * 8)
    assert prim("millionaire", n=5, L=36, k=1) == prim("millionaire", n=8, L=36, k=1)
    # L <= beta: one 1-out-of-2^L OT of 1-bit messages (compare's first branch, kkot[L - 1])
    assert prim("millionaire", n=8, L=3, k=1) == (8 + 3 + 16 + ferret(24), 2)


def test_mux_b2a_and_truncation() -> None:
    """aux-protocols.cpp multiplexer: one COT of ell-bit correlations each way, 3 flights; B2A: one COT of
    bw_y bits; truncation-cheetah.cpp truncate_msb0 = msb1_to_wrap (1-out-of-2, 1-bit messages) + B2A
    to `shift` bits."""
    assert prim("mux", n=8, l=37, k=1) == (2 * (40 + 1 + 16) + ferret(16), 3)
    assert prim("b2a", n=8, l=12, k=1) == (16 + 1 + 16 + ferret(8), 2)
    assert prim("b2a", n=8, l=1, k=1) == (0, 0)
    assert prim("trunc_msb0", n=8, s=12, k=1) == (2 + 1 + 16 + ferret(8) + 16 + 1 + 16 + ferret(8), 4)
    wrap = prim("millionaire", n=8, L=37, k=1)
    assert prim("trunc_wrap", n=8, s=12, k=1) == (wrap[0] + 34, wrap[1] + 2)


def test_relu_bit_width_follows_the_heuristic() -> None:
    """relu-ring.h ReLURingProtocol::relu: approx (OpenCheetah since 2023-09-15): lo = 3 kScale / 2 = 18
    before a truncation, this_l = 37 - 18 = 19, this_l -= (this_l - 1) % 4 -> 17, compare on 16 bits;
    without truncation lo = 12 -> 25 -> compare on 24 bits; exact (2022): compare on ell - 1 = 36 bits.
    Then multiplexer on 37 bits and (kDoExtractTruncate) truncate_msb0 by 12, all on 4 threads."""
    parts = prim("mux", n=64, l=37, k=4)[0] + prim("trunc_msb0", n=64, s=12, k=4)[0]
    assert prim("relu", n=60)[0] == prim("millionaire", n=64, L=16, k=4)[0] + parts
    exact = _backend(heuristics=0)
    assert prim("relu", exact, n=64)[0] == prim("millionaire", n=64, L=36, k=4)[0] + parts
    no_trunc = _backend(relu_trunc=0)
    assert prim("relu", no_trunc, n=64)[0] == prim("millionaire", n=64, L=24, k=4)[0] + prim("mux", n=64, l=37, k=4)[0]
    assert prim("relu", exact, n=64)[1] == 11 + 3 + 4


def test_ring_division_of_avgpool() -> None:
    """functionalities_uniform.h funcAvgPoolTwoPowerRing by d = 49 on 2048 values: DReLU (36-bit
    millionaire), 1-out-of-4 OT of 37 + ceil(log2 294) = 46 bits, 2 comparisons per value (2 (2^37 mod 49) = 46
    < 49) of 8 bits, and 2 x 2048 IKNP COTs: per thread the receiver sends 16 B x 16384 (iknp.h
    padded_length), the sender 8 B per OT."""
    assert pow(2, 37, 49) == fn_cheetah.pow2_mod(37, 49) == 23
    want = (prim("millionaire", n=2048, L=36, k=4)[0] + prim("otn_u64", m=2048, b=2, l=46, k=4)[0]
            + prim("millionaire", n=4096, L=8, k=4)[0] + 4 * 16 * 16384 + 8 * 4096)
    assert prim("avgpool_div", n=2048, d=49)[0] == want


# ------------------------------------------------------------------------------ HE partition heuristics


@pytest.mark.parametrize("c,hs,ws,k,cts_c,cts_hw", [
    # HomConv #1 of OpenCheetah's ResNet-50 (230x230x3 pre-padded, 7x7, VALID): HW > N -> 1 channel,
    # 64x64 tiles overlapping by 6 -> 1 + ceil((230 - 64) / 58) = 4 per side -> 3 x 16 = 48 ciphertexts
    (3, 230, 230, 7, 3, 16),
    # 56x56x64, 3x3 SAME: padded 58x58 = 3364 <= 4096 -> min(4096 // 3364, 64, 4096 // 9) = 1 channel
    (64, 58, 58, 3, 64, 1),
    # 14x14x256 1x1 -> 196: min(20, 256, 4096) = 20 channels per ciphertext -> 13
    (256, 14, 14, 1, 13, 1),
    # 14x14x1024 1x1 stride 2 -> strided 7x7: 83 channels -> 13
    (1024, 7, 7, 1, 13, 1),
    # 112x112, 3x3 SAME -> 114: 64x64 tiles overlapping by 2 -> 1 + ceil(50 / 62) = 2 per side
    (32, 114, 114, 3, 32, 4),
])
def test_conv_partition(c: int, hs: int, ws: int, k: int, cts_c: int, cts_hw: int) -> None:
    """include/gemini/cheetah/shape_inference.cc shape_inference::Conv2D (slice_strides) and
    sliced_3d_tensor.h Conv2DSliceHelper (slices = 1 + ceil((padded - s) / (s - (h - 1))))."""
    assert fn_cheetah.conv_cslices(c, hs, ws, k, k, 4096) == cts_c
    assert fn_cheetah.conv_hwslices(hs, ws, k, k, 4096) == cts_hw
    vec = fn_cheetah.conv_cslices(np.array([c, c]), np.array([hs, hs]), np.array([ws, ws]), np.array([k, k]),
                                  np.array([k, k]), 4096)
    assert vec.tolist() == [cts_c, cts_c]


def _get_split_brute(nrows: int, ncols: int, n: int) -> tuple[int, int]:
    """hom_fc_ss.cc getSplit, literally: d0 ascending, d1 ascending, keep the first strict minimum of
    ceil(ncols / d1) + ceil(nrows / d0) over d0 * d1 <= N (vectorised over d1)."""
    best, ret = None, (0, 0)
    for d0 in range(1, min(n, nrows) + 1):
        d1 = np.arange(1, min(n, ncols) + 1)
        ok = d0 * d1 <= n
        cost = -(-ncols // d1) + -(-nrows // d0)
        cost = np.where(ok, cost, np.iinfo(np.int64).max)
        i = int(np.argmin(cost))
        if best is None or cost[i] < best:
            best, ret = int(cost[i]), (d0, int(d1[i]))
    return ret


@pytest.mark.parametrize("nrows,ncols", [(1001, 2048), (1000, 1024), (10, 100), (4096, 512), (3, 5000)])
def test_fc_split_matches_get_split(nrows: int, ncols: int) -> None:
    d0, d1 = _get_split_brute(nrows, ncols, 4096)
    assert (fn_cheetah.fc_rows(nrows, ncols, 4096), fn_cheetah.fc_cols(nrows, ncols, 4096)) == (d0, d1)


def test_fc_split_of_resnet50_classifier() -> None:
    """The 2048 -> 1001 FC: getSplit picks d0 = 39 rows, d1 = 103 columns: 20 + 26 = 46 ciphertexts (the
    first of the ties, e.g. 45 x 91 also costs 46)."""
    assert (fn_cheetah.fc_rows(1001, 2048, 4096), fn_cheetah.fc_cols(1001, 2048, 4096)) == (39, 103)


def test_bn_crt_primes() -> None:
    """cheetah-api.cpp CheetahLinear::setUpForBN: crt_bits = 2 ell + 1 + 40; the first nCRT with
    ceil((crt_bits + 1) / nCRT) <= 50 bits per prime: ell = 37 -> 115 bits, 3 primes of 39 bits (the
    '* 3' of FusedBatchNorm4411); ell = 41 -> 123 bits, 3 primes of 42 bits."""
    assert (fn_cheetah.bn_crt_count(37, 40), fn_cheetah.bn_crt_bits(37, 40)) == (3, 39)
    assert (fn_cheetah.bn_crt_count(41, 40), fn_cheetah.bn_crt_bits(41, 40)) == (3, 42)


#: Constants of OpenCheetah's response ciphertexts (N = 4096): q0 = 60 bits, the last of the coefficient
#: moduli {60, 49} (SCI/src/cheetah/cheetah-api.cpp CheetahLinear::CheetahLinear); after
#: include/gemini/cheetah/hom_conv2d_ss.cc truncate_for_decryption c0 keeps its top pbits + 1 bits (+1 more
#: for a prime plain modulus, one_more_bit) and c1 its top pbits + n_var_bits, n_var_bits =
#: floor(log2(12 N sqrt(1/18))) = 13; SEAL 3.7.2 Ciphertext::save writes a 16-byte SEALHeader, 73 bytes of
#: members (parms_id, is_ntt_form, size, N, L, scale, DynArray size), then c0 and c1 as N uint64 each;
#: cheetah-api.cpp send_ciphertext prefixes 8 bytes of length.
Q0_BITS, N_VAR_BITS, SEAL_HEADER, SEAL_MEMBERS, LEN_PREFIX = 60, 13, 16, 73, 8


def _kept_bits(pbits: int, pow2: int) -> tuple[int, int]:
    """Bits of c0 and c1 coefficients that truncate_for_decryption keeps (random, so incompressible)."""
    drop = Q0_BITS - pbits
    return Q0_BITS - max(0, drop - 1 - (0 if pow2 else 1)), Q0_BITS - max(0, drop - N_VAR_BITS)


#: The plain moduli the backend produces: 2^ell with ell < 45 (CheetahLinear), pbits = ell + 1; the BN CRT
#: primes have at most 50 bits (setUpForBN).
PLAIN_MODULI = [(p, 1) for p in range(9, 46)] + [(p, 0) for p in range(8, 51)]


@pytest.mark.parametrize("pbits,pow2", PLAIN_MODULI)
def test_response_ciphertext_size_bounds(pbits: int, pow2: int) -> None:
    """A response ciphertext can be neither smaller than the random bits it keeps (zstd cannot compress them)
    nor larger than SEAL's uncompressed serialization; each used c0 coefficient costs between its kept bits
    and a full uint64; and keeping more plaintext bits never makes a full ciphertext smaller."""
    n = 4096
    c0_bits, c1_bits = _kept_bits(pbits, pow2)
    empty = fn_cheetah.resp_bytes(pbits, pow2, 0, 1, n)
    full = fn_cheetah.resp_bytes(pbits, pow2, n, 1, n)
    assert empty >= LEN_PREFIX + SEAL_HEADER + n * c1_bits / 8
    assert full >= LEN_PREFIX + SEAL_HEADER + n * (c0_bits + c1_bits) / 8
    assert full <= LEN_PREFIX + SEAL_HEADER + SEAL_MEMBERS + 2 * n * 8
    assert c0_bits / 8 <= (full - empty) / n <= 8
    if (pbits - 1, pow2) in PLAIN_MODULI:
        assert full >= fn_cheetah.resp_bytes(pbits - 1, pow2, n, 1, n)
    # cts ciphertexts cost cts times the fixed part; a length prefix per ciphertext
    assert fn_cheetah.resp_bytes(pbits, pow2, 0, 3, n) in range(3 * empty - 2, 3 * empty + 3)


def _ct_sizes():
    spec = importlib.util.spec_from_file_location("ct_sizes", ROOT / "validation" / "cheetah" / "ct_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("zstd") is None, reason="validation/cheetah/ct_sizes.py needs zstd on PATH")
@pytest.mark.parametrize("pbits,pow2", [(38, 1), (39, 0)])
def test_response_ciphertext_sizes_match_the_emulation(pbits: int, pow2: int) -> None:
    """fn_cheetah's size tables against a fresh run of their source, validation/cheetah/ct_sizes.py (SEAL
    3.7.2's byte layout compressed by the zstd command line at level 3), with another random seed, for the
    response of ell = 37 (plain modulus 2^37, 38 bits) and of a 39-bit BN CRT prime: the size with c0 empty
    within 0.5%, the bytes per used c0 coefficient (the emulation's mean over its layouts of 1024, 2048 and
    3136 used coefficients) within 2% (the spread between seeds is about 0.7%)."""
    ct = _ct_sizes()
    rng = np.random.default_rng(7)
    c0_bits, c1_bits = _kept_bits(pbits, pow2)
    empty = ct.size(rng, c0_bits, c1_bits, np.arange(0))
    rate = np.mean([(ct.size(rng, c0_bits, c1_bits, idx) - empty) / len(idx)
                    for used in (1024, 2048, 3136) for idx in ct.layouts(used)])
    ours_empty = fn_cheetah.resp_bytes(pbits, pow2, 0, 1, 4096) - LEN_PREFIX
    ours_rate = (fn_cheetah.resp_bytes(pbits, pow2, 4096, 1, 4096) - LEN_PREFIX - ours_empty) / 4096
    assert abs(ours_empty - empty) / empty < 0.005, (ours_empty, empty)
    assert abs(ours_rate - rate) / rate < 0.02, (ours_rate, rate)


def _single(op: str, x_shape, w_shape=None, **attrs) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    names = ["x"]
    if w_shape is not None:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w_shape)))
        names.append("w")
    node = helper.make_node(op, names, ["y"], name=f"/{op}", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _bn(c: int, h: int) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, h])]
    inputs += [helper.make_tensor_value_info(p, TensorProto.FLOAT, [c]) for p in "sbmv"]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="/bn")
    g = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _cost(model: onnx.ModelProto, **params):
    b = hawkeye_onnx.profile(model, backends=["cheetah"], params={"cheetah": params}).backends["cheetah"]
    return b


#: The layers of the issue #26 log (OpenCheetah's ResNet-50, networks/main_resnet50.cpp), as single ONNX nodes
#: with the same input shape, filter and stride (the output channels do not change what the client sends).
LOGGED_LAYERS = {
    "HomConv #1 230x230x3 7x7 s2": lambda: _single("Conv", (1, 3, 230, 230), (64, 3, 7, 7), kernel_shape=[7, 7],
                                                   strides=[2, 2]),
    "HomConv #43 14x14x256 1x1": lambda: _single("Conv", (1, 256, 14, 14), (1024, 256, 1, 1), kernel_shape=[1, 1]),
    "HomConv #44 14x14x1024 1x1 s2": lambda: _single("Conv", (1, 1024, 14, 14), (2048, 1024, 1, 1),
                                                     kernel_shape=[1, 1], strides=[2, 2]),
    "HomConv #45 14x14x1024 1x1": lambda: _single("Conv", (1, 1024, 14, 14), (256, 1024, 1, 1), kernel_shape=[1, 1]),
    "HomBN #1 [64, 56, 56]": lambda: _bn(64, 56),
}


@pytest.mark.parametrize("what,mib", [
    ("HomConv #1 230x230x3 7x7 s2", 2.85732),
    ("HomConv #43 14x14x256 1x1", 0.773769),
    ("HomConv #44 14x14x1024 1x1 s2", 0.773945),
    ("HomConv #45 14x14x1024 1x1", 3.09553),
    ("HomBN #1 [64, 56, 56]", 3.8101),
])
def test_client_bytes_match_opencheetah_log(what: str, mib: float) -> None:
    """OpenCheetah issue #26 (Alibaba-Gemini-Lab/OpenCheetah, client log of `run-client.sh cheetah
    resnet50`, ell = 37): 'Time in sec for current conv = [...] sent [X] MB' is the client's NetIO counter
    (library_fixed_uniform_cheetah.cpp Conv2DWrapper, BatchNorm) = 4 + ct_in x (8 + ciphertext); the MiB
    figures are the golden values. What the backend says the client sends: ct_in, the number of client
    ciphertexts rules/cheetah.toml computes for the layer (its he_linear step, from the partition functions
    cheetah_conv_cslices x cheetah_conv_hwslices or the BN tiles), read off as the growth of the layer's
    bytes per extra byte of ct_fresh_bytes, times the backend's ct_fresh_bytes."""
    model = LOGGED_LAYERS[what]()
    fresh = _backend().param_values["ct_fresh_bytes"]
    base = _cost(model).total.online.bytes
    ct_in = _cost(model, ct_fresh_bytes=fresh + 1).total.online.bytes - base
    assert ct_in > 0
    measured = mib * 2**20
    assert abs(4 + ct_in * fresh - measured) / measured < 5e-4, (what, ct_in)


# ------------------------------------------------------------------------------ op rules on small graphs


def test_conv_rule() -> None:
    """Conv2DWrapper 56x56x64 -> 64, 3x3, pad 1 (SAME): 64 client ciphertexts, 64 responses holding the
    56 x 56 outputs of each filter; 2 flights."""
    b = _cost(_single("Conv", (1, 64, 56, 56), (64, 64, 3, 3), pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
    want = 8 + 64 * FRESH + fn_cheetah.resp_bytes(38, 1, 64 * 56 * 56, 64, 4096)
    assert (b.total.online.bytes, b.total.online.rounds) == (want, 2)
    assert b.total.offline.bytes == 0


def test_conv_stride2_keeps_stride1_coefficients() -> None:
    """removeUnusedCoeffs indexes the (padded) input with stride 1: a 3x3 stride-2 SAME conv on 56x56
    returns 56 x 56 nonzero coefficients per filter, not 28 x 28."""
    b = _cost(_single("Conv", (1, 64, 56, 56), (32, 64, 3, 3), pads=[1, 1, 1, 1], strides=[2, 2], kernel_shape=[3, 3]))
    assert b.total.online.bytes == 8 + 64 * FRESH + fn_cheetah.resp_bytes(38, 1, 32 * 56 * 56, 32, 4096)


def test_gemm_rule() -> None:
    """MatMul2D 1 x 2048 by 2048 x 1001: one CheetahLinear::fc, 20 client and 26 server ciphertexts,
    one used coefficient per output."""
    b = _cost(_single("Gemm", (1, 2048), (2048, 1001)))
    assert b.total.online.bytes == 8 + 20 * FRESH + fn_cheetah.resp_bytes(38, 1, 1001, 26, 4096)


def test_batchnorm_chooses_packing_like_fused_batchnorm() -> None:
    """FusedBatchNorm4411: 56x56x256: ceil(3136/4096) 256 = 256 < 3 ceil(802816/4096) = 588 -> one
    ciphertext per channel (bn_direct); 7x7x1024: 1024 >= 3 x 13 = 39 -> SIMD over 3 CRT primes."""
    direct = 8 + 256 * FRESH + fn_cheetah.resp_bytes(38, 1, 256 * 3136, 256, 4096)
    simd = 8 + 39 * FRESH + fn_cheetah.resp_bytes(39, 0, 39 * 4096, 39, 4096)
    assert _cost(_bn(256, 56)).total.online.bytes == direct
    assert _cost(_bn(1024, 7)).total.online.bytes == simd


def test_maxpool_is_k_minus_1_exact_relus() -> None:
    """maxpool.h funcMaxMPC: k - 1 exact ReLUs (approx = false) on the output positions."""
    b = _cost(_single("MaxPool", (1, 64, 112, 112), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    one = prim("relu_exact", n=64 * 56 * 56)
    assert (b.total.online.bytes, b.total.online.rounds) == (8 * one[0], 8 * one[1])


def test_unsupported_ops() -> None:
    dw = _cost(_single("Conv", (1, 32, 14, 14), (32, 1, 3, 3), group=32, pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
    assert [u.op_type for u in dw.unsupported] == ["Conv"] and "grouped" in dw.unsupported[0].reason
    mm = _cost(_single("MatMul", (2, 4, 8, 16), (2, 4, 16, 8)))
    assert [u.op_type for u in mm.unsupported] == ["MatMul"]


@pytest.mark.parametrize("c,levels,cmps", [
    # 1001 logits (ResNet-50): 1002 (odd: the last one doubled) -> 501 children, padded to 504; 252 -> 256;
    # 128, 64, 32, 16, 8 (1st time on 8), then three more levels of 8 (the 5th time it stops): 10 levels
    (1001, 10, 504 + 256 + 128 + 64 + 32 + 16 + 8 + 8 + 8 + 8),
    (1000, 10, 1032),
    # 10 -> 5 children -> 8 (1st), 8, 8, 8
    (10, 4, 32),
    # 17 -> 18 -> 9 -> 16; 8 (1st), 8, 8, 8
    (17, 5, 48),
])
def test_argmax_tree_follows_argmax_mpc(c: int, levels: int, cmps: int) -> None:
    """SCI/src/NonLinear/argmax.h ArgMaxProtocol::ArgMaxMPC: an odd size gets its last element doubled;
    each level has ceil(nodes / 2) children padded to a multiple of 8 (next_eight_multiple); a level with
    8 children increments times_stuck_on_8, and the loop breaks when it reaches 5."""
    assert (fn_cheetah.argmax_levels(c), fn_cheetah.argmax_cmps(c)) == (levels, cmps)


def _argmax_model(shape) -> onnx.ModelProto:
    node = helper.make_node("ArgMax", ["x"], ["y"], name="/ArgMax", axis=-1, keepdims=1)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_argmax_of_resnet50_logits() -> None:
    """networks/main_resnet50.cpp ends with ArgMax1(1, 1, 1001, ...) -> library_fixed_uniform.cpp ArgMax (main
    thread) -> ArgMaxMPC: 10 levels, 1032 comparisons. Per level (argmax_this_level_super_32, ell = 37 > 32):
    relu_oracle->relu(..., skip_ot = true), i.e. only the exact DReLU, the millionaire protocol on 36 bits
    (q = 9 digits: 9 leaf OTs 1-out-of-16 of 2-bit leaves = 36 B and 4.5 B of choice bits; 2q - 2 - 4 = 12
    AND gates = 6 B; per call a 16-byte seed, a 2-byte sync and 2 triple seeds; Ferret 36 + 24 COTs), then
    iknp_straight->send / iknp_reversed->recv of block128 messages: SilentOT::send_ot_cm_cc(const block *,
    ...) sends 2 x 16 B per OT, 1/8 B of choice bits and a 16-byte seed per direction.
    Flights per level: 3 + 2 ceil(log2 9) = 11 for the millionaire, 3 for the two OTs."""
    cmps, levels = 1032, 10
    mill = cmps * (36 + 4.5 + 6) + levels * (16 + 2 + 32) + math.ceil(FERRET * cmps * (36 + 24))
    ots = 2 * (cmps * 32 + cmps // 8 + 16 * levels) + math.ceil(FERRET * 2 * cmps)
    b = _cost(_argmax_model((1, 1001)))
    assert (b.total.online.bytes, b.total.online.rounds) == (mill + ots, levels * (11 + 3))
    assert b.total.online.bytes == 118694
    # the heuristics do not touch it (ArgMax's DReLU is exact); more than one row cannot run
    assert _cost(_argmax_model((1, 1001)), heuristics=0).total == b.total
    two = _cost(_argmax_model((2, 1001)))
    assert [u.op_type for u in two.unsupported] == ["ArgMax"] and "s1 == 1" in two.unsupported[0].reason


def _mul_by_weight(x_shape, w_shape, weight_first: bool = False) -> onnx.ModelProto:
    w = onnx.numpy_helper.from_array(np.ones(w_shape, np.float32), "w")
    node = helper.make_node("Mul", ["w", "x"] if weight_first else ["x", "w"], ["y"], name="/bn/Mul")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize("x,w,weight_first,want", [
    ((1, 16, 5, 5), (1, 16, 1, 1), False, (1, 1, 16, 25, 1)),   # tf2onnx BatchNorm scale
    ((2, 16, 5, 5), (16, 1, 1), True, (1, 2, 16, 25, 1)),       # weight first, rank 3
    ((1, 16, 5, 5), (5,), False, (1, 1, 16, 25, 0)),             # right-aligned: broadcasts along W
    ((1, 16, 5, 5), (16, 5, 5), False, (1, 1, 16, 25, 0)),       # a full weight
    ((2, 4, 8), (8,), False, (1, 2, 4, 8, 0)),                   # LayerNorm's gamma on the last dim
])
def test_mul_weight_variables(x, w, weight_first, want) -> None:
    """opvars.py `Mul` variables (wmul, N, C, spatial, per_channel) on graphs built here."""
    from hawkeye_onnx.ir import build_graph
    from hawkeye_onnx.opvars import REGISTRY
    g = build_graph(_mul_by_weight(x, w, weight_first))
    node = g.nodes[0]
    assert tuple(REGISTRY["Mul"].compute(node, g)) == want
    pub = build_graph(_mul_by_weight(x, w, weight_first), public_weights=True)
    assert REGISTRY["Mul"].compute(pub.nodes[0], pub)[0] == 1  # still a weight; `s1` says it is public


def test_mul_by_a_weight_is_the_batchnorm_protocol() -> None:
    """A Mul by the server's per-channel weight (tf2onnx's BatchNorm: Mul by a [1, C, 1, 1] initializer, then
    Add) is FusedBatchNorm4411 (networks/main_densenet121.cpp): 56x56x256 -> BatchNorm -> bn_direct, one
    ciphertext per channel; 7x7x1024 -> ElemWiseActModelVectorMult -> CheetahLinear::bn over 3 CRT primes.
    A weight that is not per-channel is ElemWiseActModelVectorMult on the whole vector (SIMD)."""
    direct = 8 + 256 * FRESH + fn_cheetah.resp_bytes(38, 1, 256 * 3136, 256, 4096)
    simd = 8 + 39 * FRESH + fn_cheetah.resp_bytes(39, 0, 39 * 4096, 39, 4096)
    assert _cost(_mul_by_weight((1, 256, 56, 56), (1, 256, 1, 1))).total.online.bytes == direct
    assert _cost(_mul_by_weight((1, 256, 56, 56), (256, 1, 1), weight_first=True)).total.online.bytes == direct
    assert _cost(_mul_by_weight((1, 1024, 7, 7), (1, 1024, 1, 1))).total.online.bytes == simd
    # a [C, H, W] weight on 56x56x256: SIMD over 802,816 values = 3 x 196 ciphertexts
    full = 8 + 588 * FRESH + fn_cheetah.resp_bytes(39, 0, 588 * 4096, 588, 4096)
    assert _cost(_mul_by_weight((1, 256, 56, 56), (256, 56, 56))).total.online.bytes == full
    # public weights: a local product, then a ScaleDown; two activations: unsupported
    pub = hawkeye_onnx.profile(_mul_by_weight((1, 256, 56, 56), (1, 256, 1, 1)), backends=["cheetah"],
                               public_weights=True).backends["cheetah"]
    assert pub.total.online.bytes == prim("scaledown", n=256 * 56 * 56)[0]
    ss = _cost(_single("Mul", (1, 8, 4, 4), (1, 8, 4, 4)))
    assert [u.op_type for u in ss.unsupported] == ["Mul"]


# ------------------------------------------------------------------------------ whole networks vs the paper


def replica(calls: list[list[int]]) -> onnx.ModelProto:
    """OpenCheetah's own network (validation/cheetah/opencheetah_networks.json, extracted from
    networks/main_*.cpp) as a list of independent ONNX nodes with the calls' shapes: Conv2DWrapper and
    FusedBN -> Conv, FusedBatchNorm4411 -> BatchNormalization, Relu4 -> Relu, ScaleDown4 -> Mul by a
    public constant (priced as ScaleDown), MaxPool / AvgPool -> MaxPool / AveragePool, MatMul2D -> MatMul.
    ArgMax1 / ArgMax3 -> ArgMax. Additions, ScaleUp and Concat are local."""
    nodes, inputs, outputs = [], [], []

    def inp(name, shape):
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    for i, (fn, *a) in enumerate(calls):
        x, y = f"x{i}", f"y{i}"
        if fn in ("Conv2DWrapper", "FusedBN"):
            n, h, w, ci, fh, fw, co, phl, phr, pwl, pwr, sh, sw = a[:13]
            inp(x, [n, ci, h, w])
            inp(f"w{i}", [co, ci, fh, fw])
            nodes.append(helper.make_node("Conv", [x, f"w{i}"], [y], name=f"{fn}_{i}", kernel_shape=[fh, fw],
                                          pads=[phl, pwl, phr, pwr], strides=[sh, sw]))
        elif fn == "FusedBatchNorm4411":
            n, h, w, c = a[:4]
            inp(x, [n, c, h, w])
            nodes.append(helper.make_node("BatchNormalization", [x, *(inp(f"{p}{i}", [c]) for p in "sbmv")], [y],
                                          name=f"{fn}_{i}"))
        elif fn == "Relu4":
            n, h, w, c = a[:4]
            nodes.append(helper.make_node("Relu", [inp(x, [n, c, h, w])], [y], name=f"{fn}_{i}"))
        elif fn == "ScaleDown4":
            n, h, w, c = a[:4]
            inp(x, [n, c, h, w])
            nodes.append(helper.make_node("Constant", [], [f"c{i}"], name=f"const_{i}",
                                          value=helper.make_tensor(f"cv{i}", TensorProto.FLOAT, [], [0.5])))
            nodes.append(helper.make_node("Mul", [x, f"c{i}"], [y], name=f"{fn}_{i}"))
        elif fn in ("MaxPool", "AvgPool"):
            n, h, w, c, kh, kw, phl, phr, pwl, pwr, sh, sw, _, ih, iw, _ = a[:16]
            inp(x, [n, c, ih, iw])
            nodes.append(helper.make_node("MaxPool" if fn == "MaxPool" else "AveragePool", [x], [y],
                                          name=f"{fn}_{i}", kernel_shape=[kh, kw], pads=[phl, pwl, phr, pwr],
                                          strides=[sh, sw]))
        elif fn in ("ArgMax1", "ArgMax3"):
            rows, c = (a[1], a[2]) if fn == "ArgMax1" else (a[3] * a[4] * a[5], a[6])
            nodes.append(helper.make_node("ArgMax", [inp(x, [rows, c])], [y], name=f"{fn}_{i}", axis=1))
            outputs.append(helper.make_tensor_value_info(y, TensorProto.INT64, None))
            continue
        elif fn == "MatMul2D":
            d0, d1, d2 = a[:3]
            nodes.append(helper.make_node("MatMul", [inp(x, [d0, d1]), inp(f"w{i}", [d1, d2])], [y], name=f"{fn}_{i}"))
        else:
            continue
        outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "opencheetah", inputs, outputs)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _networks() -> dict[str, list]:
    return json.loads(NETWORKS.read_text())["networks"]


#: The paper's parameters: the 2022 protocols (heuristics = 0), ell = 37, f = 12 (scripts/common.sh), 4
#: threads; OpenCheetah's networks already contain their ScaleDowns (avgpool_trunc = 0).
PAPER = {"heuristics": 0, "ring_bits": 37, "frac_bits": 12, "threads": 4, "avgpool_trunc": 0}
#: Published end-to-end communication (both directions) in GiB. Only ResNet-50's is in the searchable
#: corpora: "2.3 gigabytes of communication" (abstract of Huang et al., USENIX Security 2022 / ePrint
#: 2022/207). OpenCheetah prints MiB (SCI/src/library_fixed_uniform.cpp EndComputation, divides by
#: 2^20), so the figure is read as 2.3 x 2^30 bytes. The paper's table (DenseNet-121, SqueezeNet) and
#: rounds are not in the corpora.
PUBLISHED_GIB = {"resnet50": 2.3}


def test_replica_resnet50_matches_the_paper() -> None:
    """OpenCheetah's ResNet-50 (networks/main_resnet50.cpp, the network the paper measured) priced with
    the paper's parameters is within 5% of the published 2.3 GB. Rounds are not published."""
    b = _cost(replica(_networks()["resnet50"]), **PAPER)
    ours = b.total.online.bytes / 2**30
    assert abs(ours - PUBLISHED_GIB["resnet50"]) / PUBLISHED_GIB["resnet50"] < 0.05, ours
    assert not b.unsupported


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "sqnet"])
def test_every_replica_is_priced_whole_and_online_only(name: str) -> None:
    """Each of OpenCheetah's networks profiles with every call supported, and Cheetah has no offline traffic (no
    preprocessing phase; docs/backends/cheetah.md, "offline")."""
    b = _cost(replica(_networks()[name]), **PAPER)
    assert not b.unsupported
    assert b.total.online.bytes > 0 and b.total.online.rounds > 0
    assert (b.total.offline.bytes, b.total.offline.rounds) == (0, 0)


def test_zoo_resnet50_differs_from_the_replica_by_its_architecture_only() -> None:
    """The zoo's torchvision ResNet-50 v1.5 (BN folded into the convs) is 27% below the published 2.3 GB while
    OpenCheetah's own ResNet-50 (test_replica_resnet50_matches_the_paper) is within 1%. The difference is the
    architecture, not the protocols: both have the same 53 convolutions (same shapes and strides, priced to
    the byte alike), the same max pool, global average pool and 49 ReLUs of the same sizes except the stem's,
    which torchvision runs on the 112x112x64 conv output and networks/main_resnet50.cpp after the max pool
    (56x56x64); OpenCheetah's network adds 18 HE BatchNorms (FusedBatchNorm4411) and 18 ScaleDowns (its
    pre-activation blocks) and the final ArgMax over 1001 logits, which the zoo (1000 logits, no ArgMax)
    lacks. So zoo = replica - BatchNorms - ScaleDowns - ArgMax + stem ReLU difference, exactly in rounds
    and to within the few bytes of 1000 vs 1001 FC outputs in bytes."""
    zoo = pytest.importorskip("hawkeye_onnx.zoo")
    params = {k: v for k, v in PAPER.items() if k != "avgpool_trunc"}
    z = _cost(zoo.build("resnet50"), **params)
    r = _cost(replica(_networks()["resnet50"]), **PAPER)
    published = PUBLISHED_GIB["resnet50"] * 2**30
    assert abs(r.total.online.bytes - published) / published < 0.05
    assert z.total.online.bytes / published < 0.75  # the 27% gap documented in docs/backends/cheetah.md

    def op(b, name):
        return b.ops[name].totals.online if name in b.ops else type(b.total.online)(0, 0)

    for same, other in (("Conv", "Conv"), ("MaxPool", "MaxPool"), ("GlobalAveragePool", "AveragePool")):
        assert op(z, same) == op(r, other), same
    assert op(z, "Relu").rounds == op(r, "Relu").rounds and z.ops["Relu"].count == r.ops["Relu"].count == 49
    exact = _backend(heuristics=0)
    stem = prim("relu", exact, n=64 * 112 * 112)[0] - prim("relu", exact, n=64 * 56 * 56)[0]
    assert op(z, "Relu").bytes - op(r, "Relu").bytes == stem
    assert not {"BatchNormalization", "Mul", "ArgMax"} & set(z.ops)
    assert (r.ops["BatchNormalization"].count, r.ops["Mul"].count, r.ops["ArgMax"].count) == (18, 18, 1)
    missing = [op(r, name) for name in ("BatchNormalization", "Mul", "ArgMax")]
    fc = op(z, "Gemm").bytes - op(r, "MatMul").bytes  # 1000 vs 1001 used coefficients: ~6.5 bytes each
    assert abs(fc) < 16
    assert z.total.online.bytes == r.total.online.bytes - sum(c.bytes for c in missing) + stem + fc
    assert z.total.online.rounds == r.total.online.rounds - sum(c.rounds for c in missing)
