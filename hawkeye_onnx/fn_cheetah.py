"""OpenCheetah's algorithms that a formula cannot express, as vectorised functions for `rules/cheetah.toml`.

OpenCheetah (Alibaba-Gemini-Lab/OpenCheetah, the code of Huang et al., "Cheetah: Lean and Fast Secure
Two-Party Deep Neural Network Inference", USENIX Security 2022) decides how many RLWE ciphertexts a
linear layer sends by searching over sub-shapes; the rules call these copies of that code. Every
function takes numpy int64 arrays (one entry per node of an op group) or scalars (parameters) and
returns the same; the loops run over the small search spaces, never over nodes.

Sources (all in Alibaba-Gemini-Lab/OpenCheetah):

* convolution: `include/gemini/cheetah/shape_inference.cc` `shape_inference::Conv2D` (slice strides) and
  `include/gemini/cheetah/sliced_3d_tensor.h` `Conv2DSliceHelper` (number of overlapping slices);
* fully connected: `include/gemini/cheetah/hom_fc_ss.cc` `getSplit`;
* batch normalisation: `SCI/src/cheetah/cheetah-api.cpp` `CheetahLinear::setUpForBN` (CRT plain moduli);
* argmax: `SCI/src/NonLinear/argmax.h` `ArgMaxProtocol::ArgMaxMPC` (comparison tree with padding to 8);
* ciphertext sizes: `validation/cheetah/ct_sizes.py` (emulates SEAL 3.7.2's zstd-compressed
  `Ciphertext::save` of the truncated response ciphertexts, `hom_conv2d_ss.cc` `truncate_for_decryption`,
  `remove_unused_coeffs`).
"""

from __future__ import annotations

import numpy as np

from hawkeye_onnx.expr import register_function

Value = np.ndarray | int | float


def _ret(out: np.ndarray, *inputs: Value) -> Value:
    """Scalars in, scalar out (the expression engine passes scalars for parameter-only calls)."""
    return out if any(isinstance(x, np.ndarray) and x.shape for x in inputs) else out.reshape(-1)[0].item()


def _i64(*xs: Value) -> list[np.ndarray]:
    return [np.asarray(x).astype(np.int64) for x in np.broadcast_arrays(*xs)]


# ------------------------------------------------------------------------------------------ convolution


def _conv_strides(c: np.ndarray, hs: np.ndarray, ws: np.ndarray, kh: np.ndarray, kw: np.ndarray,
                  n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`shape_inference::Conv2D` slice_strides for the (padded, strided) input shape C x Hs x Ws."""
    hw = hs * ws
    cw = n // np.maximum(kh * kw, 1)
    small = hw <= n
    s0 = np.where(small, np.minimum(np.minimum(n // np.maximum(hw, 1), c), cw), 1)
    ratio = hs / np.maximum(ws, 1)
    s1 = np.minimum(np.floor(np.sqrt(n * ratio)).astype(np.int64), hs)
    s1 = np.maximum(s1, 1)
    s2 = np.minimum(n // s1, ws)
    near = np.abs(s2 - s1) < 2
    lo = np.minimum(s1, s2)
    s1 = np.where(near, lo, s1)
    s2 = np.where(near, lo, s2)
    return s0, np.where(small, hs, s1), np.where(small, ws, s2)


def _slices_1d(padded: np.ndarray, stride: np.ndarray, f: np.ndarray) -> np.ndarray:
    """`Conv2DSliceHelper`: slices along one spatial dim, neighbours overlapping by f - 1."""
    over = np.maximum(stride - (f - 1), 1)
    split = 1 + -(-(padded - stride) // over)
    whole = -(-padded // np.maximum(stride, 1))
    return np.where(padded > stride, split, whole)


def conv_cslices(c: Value, hs: Value, ws: Value, kh: Value, kw: Value, n: Value) -> Value:
    """Channel groups of a HomConv2DSS input: ceil(C / slice_strides[0]) (one group per ciphertext row)."""
    c_, hs_, ws_, kh_, kw_, n_ = _i64(c, hs, ws, kh, kw, n)
    s0, _, _ = _conv_strides(c_, hs_, ws_, kh_, kw_, n_)
    return _ret(-(-c_ // np.maximum(s0, 1)), c, hs, ws, kh, kw, n)


def conv_hwslices(hs: Value, ws: Value, kh: Value, kw: Value, n: Value) -> Value:
    """Spatial slices of a HomConv2DSS input (and output ciphertexts per filter): slices_H x slices_W."""
    hs_, ws_, kh_, kw_, n_ = _i64(hs, ws, kh, kw, n)
    _, s1, s2 = _conv_strides(np.ones_like(hs_), hs_, ws_, kh_, kw_, n_)
    return _ret(_slices_1d(hs_, s1, kh_) * _slices_1d(ws_, s2, kw_), hs, ws, kh, kw, n)


# ------------------------------------------------------------------------------------------ fully connected


def _fc_split(nrows: Value, ncols: Value, n: Value) -> tuple[np.ndarray, np.ndarray]:
    """`hom_fc_ss.cc` getSplit: the first (d0, d1), d0 ascending then d1 ascending, with d0 * d1 <= N that
    minimises ceil(ncols / d1) + ceil(nrows / d0). For a fixed d0 the cost is lowest at the largest d1,
    d1max = min(N / d0, ncols), and the first d1 reaching it is ceil(ncols / ceil(ncols / d1max))."""
    rows, cols, nn = (x.reshape(-1) for x in _i64(nrows, ncols, n))
    best = np.full(rows.shape, np.iinfo(np.int64).max)
    d0 = np.ones_like(rows)
    d1 = np.ones_like(rows)
    for cand in range(1, int(nn.max()) + 1):
        ok = (cand <= np.minimum(nn, rows))
        if not ok.any():
            break
        d1max = np.minimum(nn // cand, cols)
        ok &= d1max >= 1
        ct_in = -(-cols // np.maximum(d1max, 1))
        cost = ct_in + -(-rows // cand)
        better = ok & (cost < best)
        best = np.where(better, cost, best)
        d0 = np.where(better, cand, d0)
        d1 = np.where(better, -(-cols // np.maximum(ct_in, 1)), d1)
    shape = np.broadcast(np.asarray(nrows), np.asarray(ncols), np.asarray(n)).shape
    return d0.reshape(shape), d1.reshape(shape)


def fc_rows(nrows: Value, ncols: Value, n: Value) -> Value:
    """Output rows packed in one HomFCSS ciphertext (getSplit's d0)."""
    return _ret(_fc_split(nrows, ncols, n)[0], nrows, ncols, n)


def fc_cols(nrows: Value, ncols: Value, n: Value) -> Value:
    """Input entries packed in one HomFCSS ciphertext (getSplit's d1)."""
    return _ret(_fc_split(nrows, ncols, n)[1], nrows, ncols, n)


# ------------------------------------------------------------------------------------------ batch norm


def _bn_crt(ell: np.ndarray, stat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`CheetahLinear::setUpForBN`: CRT plain primes of nbits each covering 2*ell + 1 + kStatBits bits."""
    crt_bits = 2 * ell + 1 + stat
    nbits = np.zeros_like(crt_bits)
    found = np.zeros(crt_bits.shape, dtype=bool)
    for k in range(1, 64):
        cand = -(-(crt_bits + 1) // k)
        take = ~found & (cand <= 50)
        nbits = np.where(take, cand, nbits)
        found |= take
    return -(-crt_bits // nbits), nbits


def bn_crt_count(ell: Value, stat: Value) -> Value:
    """Number of CRT plain primes (ciphertexts per packed vector) of HomBNSS's SIMD path."""
    e, s = _i64(ell, stat)
    return _ret(_bn_crt(e, s)[0], ell, stat)


def bn_crt_bits(ell: Value, stat: Value) -> Value:
    """Bit count of each CRT plain prime of HomBNSS's SIMD path."""
    e, s = _i64(ell, stat)
    return _ret(_bn_crt(e, s)[1], ell, stat)


def pow2_mod(ell: Value, d: Value) -> Value:
    """2^ell mod d (`funcAvgPoolTwoPowerRing`'s ringRem = prime_mod % divisor)."""
    e, dd = _i64(ell, d)
    out = np.array([pow(2, int(a), int(b)) if b > 0 else 0 for a, b in zip(e.reshape(-1), dd.reshape(-1), strict=True)],
                   dtype=np.int64).reshape(e.shape)
    return _ret(out, ell, d)


# ------------------------------------------------------------------------------------------ argmax


def _argmax_tree(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ArgMaxMPC(size)`: an odd size gets one copy of its last element; each level compares pairs, the
    number of children ceil(nodes / 2) padded up to a multiple of 8 (the backend's minimum batch); once the
    children reach 8 the tree keeps 8 nodes, and the fifth time it would compute 8 children it stops
    (`times_stuck_on_8 >= 5`). Returns (levels, comparisons over all levels)."""
    nodes = c + (c & 1)
    stuck = np.zeros_like(c)
    levels = np.zeros_like(c)
    cmps = np.zeros_like(c)
    active = nodes > 1
    while active.any():
        child = -(-nodes // 2)
        child = 8 * -(-child // 8)
        stuck = np.where(active & (child == 8), stuck + 1, stuck)
        active &= stuck < 5
        levels = np.where(active, levels + 1, levels)
        cmps = np.where(active, cmps + child, cmps)
        nodes = np.where(active, child, nodes)
        active &= nodes > 1
    return levels, cmps


def argmax_levels(c: Value) -> Value:
    """Tree levels (sequential comparison rounds) of OpenCheetah's ArgMax over c values."""
    (c_,) = _i64(c)
    return _ret(_argmax_tree(c_)[0], c)


def argmax_cmps(c: Value) -> Value:
    """Comparisons (DReLUs, padding included) of OpenCheetah's ArgMax over c values, all levels together."""
    (c_,) = _i64(c)
    return _ret(_argmax_tree(c_)[1], c)


# ------------------------------------------------------------------------------------------ ciphertext sizes

#: pbits -> (bytes of one response ciphertext with every c0 coefficient zeroed, incl. the 16-byte SEAL
#: header; extra bytes per used c0 coefficient), for N = 4096 and q0 = 60 bits. Printed by
#: validation/cheetah/ct_sizes.py: first the power-of-two plain moduli (2^ell, pbits = ell + 1), then the
#: prime ones (HomBNSS's CRT primes).
_RESP_POW2 = {
    8: (15049, 2.756), 9: (15707, 2.759), 10: (16103, 2.803), 11: (16514, 2.77), 12: (16845, 3.235),
    13: (17106, 3.498), 14: (17328, 3.642), 15: (17469, 3.778), 16: (19234, 3.719), 17: (19846, 3.804),
    18: (20361, 3.846), 19: (20933, 3.905), 20: (21627, 4.263), 21: (22382, 4.373), 22: (22917, 4.53),
    23: (23323, 4.611), 24: (24375, 4.679), 25: (25391, 4.616), 26: (25944, 4.592), 27: (26454, 4.553),
    28: (26790, 4.888), 29: (27021, 5.007), 30: (27210, 5.16), 31: (27317, 5.281), 32: (28133, 5.418),
    33: (28848, 5.531), 34: (29336, 5.647), 35: (29772, 5.693), 36: (30047, 6.075), 37: (30213, 6.261),
    38: (30284, 6.477), 39: (30438, 6.54), 40: (30898, 6.655), 41: (31376, 6.761), 42: (31758, 6.795),
    43: (32131, 6.771), 44: (32302, 7.151), 45: (32836, 7.117), 46: (32836, 7.266), 47: (32836, 7.359),
    48: (32836, 7.395), 49: (32836, 7.39), 50: (32836, 7.399), 51: (32836, 7.406), 52: (32836, 7.829),
    53: (32836, 7.976), 54: (32836, 8.122), 55: (32836, 8.138), 56: (32836, 8.129), 57: (32836, 8.151),
    58: (32836, 8.146),
}
_RESP_PRIME = {
    8: (15096, 2.795), 9: (15669, 2.788), 10: (16131, 2.727), 11: (16530, 3.186), 12: (16881, 3.429),
    13: (17127, 3.623), 14: (17335, 3.753), 15: (17462, 3.853), 16: (19290, 3.716), 17: (19890, 3.773),
    18: (20337, 3.899), 19: (20965, 4.271), 20: (21622, 4.475), 21: (22353, 4.57), 22: (22915, 4.637),
    23: (23441, 4.598), 24: (24306, 4.758), 25: (25296, 4.717), 26: (26008, 4.6), 27: (26500, 4.946),
    28: (26815, 5.059), 29: (27024, 5.156), 30: (27210, 5.258), 31: (27319, 5.389), 32: (28089, 5.551),
    33: (28858, 5.605), 34: (29358, 5.686), 35: (29775, 6.047), 36: (30045, 6.273), 37: (30239, 6.382),
    38: (30333, 6.526), 39: (30444, 6.57), 40: (30940, 6.666), 41: (31382, 6.748), 42: (31775, 6.82),
    43: (32119, 7.077), 44: (32291, 7.267), 45: (32836, 7.234), 46: (32836, 7.321), 47: (32836, 7.373),
    48: (32836, 7.376), 49: (32836, 7.381), 50: (32836, 7.423), 51: (32836, 7.81), 52: (32836, 7.937),
    53: (32836, 8.118), 54: (32836, 8.154), 55: (32836, 8.143), 56: (32836, 8.138), 57: (32836, 8.171),
    58: (32836, 8.162),
}
#: Bytes of a response ciphertext that do not scale with N: SEAL header, member header, zstd frame.
_RESP_FIXED = 16 + 73 + 10


def _resp_table(table: dict[int, tuple[int, float]], pbits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(sorted(table))
    clipped = np.clip(pbits, keys[0], keys[-1])
    base = np.array([table[int(k)][0] for k in clipped.reshape(-1)], dtype=np.float64).reshape(pbits.shape)
    rate = np.array([table[int(k)][1] for k in clipped.reshape(-1)], dtype=np.float64).reshape(pbits.shape)
    return base, rate


def resp_bytes(pbits: Value, pow2: Value, used: Value, cts: Value, n: Value) -> Value:
    """Bytes on the wire of `cts` response ciphertexts that hold `used` output coefficients in all, each
    sent with its 8-byte length prefix (cheetah-api.cpp send_ciphertext). Calibrated for N = 4096; for
    another N the c1 part scales with N."""
    pb, p2, u, c, nn = _i64(pbits, pow2, used, cts, n)
    base2, rate2 = _resp_table(_RESP_POW2, pb)
    basep, ratep = _resp_table(_RESP_PRIME, pb)
    base = np.where(p2 != 0, base2, basep)
    rate = np.where(p2 != 0, rate2, ratep)
    per_ct = _RESP_FIXED + (base - _RESP_FIXED) * nn / 4096.0 + 8
    out = np.ceil(c * per_ct + u * rate).astype(np.int64)
    return _ret(out, pbits, pow2, used, cts, n)


#: The functions rules/cheetah.toml may call: name -> (function, arity).
FUNCTIONS = {
    "cheetah_conv_cslices": (conv_cslices, 6),
    "cheetah_conv_hwslices": (conv_hwslices, 5),
    "cheetah_fc_rows": (fc_rows, 3),
    "cheetah_fc_cols": (fc_cols, 3),
    "cheetah_bn_crt_count": (bn_crt_count, 2),
    "cheetah_bn_crt_bits": (bn_crt_bits, 2),
    "cheetah_pow2_mod": (pow2_mod, 2),
    "cheetah_argmax_levels": (argmax_levels, 1),
    "cheetah_argmax_cmps": (argmax_cmps, 1),
    "cheetah_resp_bytes": (resp_bytes, 5),
}
for _name, (_fn, _arity) in FUNCTIONS.items():
    register_function(_name, _fn, _arity)
