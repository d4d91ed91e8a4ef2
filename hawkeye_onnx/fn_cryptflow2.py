"""CrypTFlow2 (SCI) protocol costs that a formula cannot express, as vectorised functions for
`rules/cryptflow2.toml`.

Every function mirrors one loop of the SCI library in `mpc-msri/EzPC` (directory `SCI/src`, the
snapshot the rules cite) and counts the bytes both parties put on the wire, the way SCI's own
counters do (`utils/io_pack.h IOPack::get_comm` sums `NetIO::counter`, the bytes a party *sent*, over
`io`, `io_rev` and `io_GC`; `library_fixed_uniform.cpp EndComputation` adds the two parties' totals).
Base-OT setup (`OTPack::SetupBaseOTs`, `StartComputation`) happens before SCI starts counting and is
not priced. Arguments are numpy int64 arrays (one entry per node of an op group) or scalars
(parameters); loops run over the few threads or stride phases, never over nodes.

Sources (paths under `SCI/src`):

* OT extension: `OT/split-iknp.h SplitIKNP` (`send_pre`/`recv_pre` padding, `got_send_post`,
  `cot_send_post`, `send_batched_cot`), `OT/split-kkot.h SplitKKOT` (1-out-of-N, `got_send_post`),
  `OT/iknp.h IKNP` (`send_cot_moduloAdd`, `send_cot_matmul`: 16384-OT blocks), `utils/constants.h
  AES_BATCH_SIZE = 2048`;
* comparison: `Millionaire/millionaire.h MillionaireProtocol::compare` (`WAN_EXEC` is defined: every
  leaf in one 1-out-of-16 KKOT, bit triples from `_16KKOT_to_4OT`), `Millionaire/millionaire_with_equality.h
  compare_with_eq` (triples from `_8KKOT`), `NonLinear/drelu-field.h DReLUFieldProtocol::compute_drelu`;
* linear layers: `LinearOT/linear-ot.cpp LinearOT::matmul_cross_terms` (`MAX_NUM_OT = 1 << 24` batching,
  `cross_term_cost` picks the OT receiver), `LinearOT/linear-uniform.h MatMulUniform::funcOTSenderInputA`
  (the pre-2022 path), `functionalities_uniform.h funcMatmulThread` (the inner dimension split over
  threads), `LinearHE/conv-field.cpp ConvField::convolution / non_strided_conv / configure`,
  `LinearHE/fc-field.cpp FCField::matrix_multiplication`, `LinearHE/utils-HE.cpp generate_new_keys /
  send_encrypted_vector` with SEAL 3.3.2's `Ciphertext::save` (no compression in 3.3.2).

Only byte counts live here (and the OT-batch rounds of MatMul2D, which depend on the batching); the other
round counts are formulas in rules/cryptflow2.toml, following SCI's counter (`utils/net_io_channel.h
NetIO::send_data / recv_data` count one round each time a party's `io` switches direction; `IOPack::get_rounds`
reads thread 0's `io` and `io_GC`, not `io_rev`).
"""

from __future__ import annotations

import numpy as np

from hawkeye_onnx.expr import register_function

Value = np.ndarray | int | float

AES_BATCH = 2048  # utils/constants.h AES_BATCH_SIZE
IKNP_BLOCK = 16384  # SplitIKNP / SplitKKOT / IKNP block_size (1024 * 16)
MAX_NUM_OT = 1 << 24  # LinearOT/linear-ot.cpp
UNIFORM_BATCH = 1 << 18  # LinearOT/linear-uniform.h MatMulUniform::batchSizeOTs
UNIFORM_MEM = int(2.5 * (1 << 30))  # MatMulUniform::MaxMemToUseInBytes
SEAL_CT_HEADER = 32 + 1 + 8 + 8 + 8 + 8 + 8  # parms_id, is_ntt_form, size, N, coeff_mod_count, scale, IntArray size


def _ret(out: np.ndarray, *inputs: Value) -> Value:
    """Scalars in, scalar out (the expression engine passes scalars for parameter-only calls)."""
    return out if any(isinstance(x, np.ndarray) and x.shape for x in inputs) else out.reshape(-1)[0].item()


def _i64(*xs: Value) -> list[np.ndarray]:
    return [np.asarray(x).astype(np.int64) for x in np.broadcast_arrays(*xs)]


def _cdiv(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return -((-a) // b)


def _sum_ceil8(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """sum over j = 1..n of ceil(m * j / 8), elementwise and exact, without a loop over j (n is a bit width,
    up to 64, and SCI's sender loops over it): ceil(x / 8) = (x + (-x mod 8)) / 8, and -m*j mod 8 repeats
    in j with a period that divides 8."""
    residues = [(-m * j) % 8 for j in range(1, 9)]
    period = sum(residues)
    rest = n % 8
    partial = np.zeros_like(m)
    for j in range(1, 8):
        partial = partial + np.where(j <= rest, residues[j - 1], 0)
    return (m * n * (n + 1) // 2 + n // 8 * period + partial) // 8


def _ceil_log2(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    v = np.maximum(x - 1, 0)
    while np.any(v > 0):
        out += v > 0
        v = v >> 1
    return out


def _next_pow2(x: np.ndarray) -> np.ndarray:
    """LinearHE/defines-HE.h next_pow2: 2^ceil(log2 x)."""
    return np.left_shift(1, _ceil_log2(np.maximum(x, 1)))


# --------------------------------------------------------------------------------------- OT extension

def _pad(n: np.ndarray) -> np.ndarray:
    """OTs a SplitIKNP/SplitKKOT `send_pre(n)` extends: block_size = min(16384, ceil(n/256)*256), then
    n is padded to a multiple of it."""
    small = _cdiv(n, 256) * 256
    big = _cdiv(n, IKNP_BLOCK) * IKNP_BLOCK
    return np.where(n <= IKNP_BLOCK, small, big)


def _chunked(n: np.ndarray, chunk: int, per_chunk) -> np.ndarray:
    """Sum of per_chunk(b) over the chunks of at most `chunk` OTs a sender loop sends."""
    full = n // chunk
    rem = n % chunk
    return full * per_chunk(np.full_like(n, chunk)) + np.where(rem > 0, per_chunk(rem), 0)


def ot_bytes(n: Value, bits: Value, kappa: Value = 128) -> Value:
    """SplitIKNP 1-out-of-2 OT of n pairs of l-bit uint64 messages (`send_pre` + `got_send_post<uint64_t>`):
    the receiver sends 128 bits per padded OT, the sender 8*ceil(2*b*l/64) bytes per chunk of 1024."""
    n_, l_, k_ = _i64(n, bits, kappa)
    out = k_ // 8 * _pad(n_) + _chunked(n_, AES_BATCH // 2, lambda b: 8 * _cdiv(2 * b * l_, 64))
    return _ret(out, n, bits)


def ot8_bytes(n: Value, bits: Value, kappa: Value = 128) -> Value:
    """As `ot_bytes` with uint8 messages (`got_send_post<uint8_t>`: ceil(2*b*l/8) bytes per chunk)."""
    n_, l_, k_ = _i64(n, bits, kappa)
    out = k_ // 8 * _pad(n_) + _chunked(n_, AES_BATCH // 2, lambda b: _cdiv(2 * b * l_, 8))
    return _ret(out, n, bits)


def cot_bytes(n: Value, bits: Value, kappa: Value = 128) -> Value:
    """SplitIKNP correlated OT of l-bit values (`send_cot` -> `cot_send_post`, chunks of 1024)."""
    n_, l_, k_ = _i64(n, bits, kappa)
    out = k_ // 8 * _pad(n_) + _chunked(n_, AES_BATCH // 2, lambda b: 8 * _cdiv(b * l_, 64))
    return _ret(out, n, bits)


def kkot_bytes(n: Value, N: Value, bits: Value, kappa: Value = 128) -> Value:
    """SplitKKOT 1-out-of-N OT of uint8 messages of l bits: the receiver sends 256 bits per padded OT,
    the sender ceil(N*b*l/8) bytes per chunk of 2048 (`got_send_post<uint8_t>`)."""
    n_, N_, l_, k_ = _i64(n, N, bits, kappa)
    out = k_ // 4 * _pad(n_) + _chunked(n_, AES_BATCH, lambda b: _cdiv(N_ * b * l_, 8))
    return _ret(out, n, N, bits)


def kkot64_bytes(n: Value, N: Value, bits: Value, kappa: Value = 128) -> Value:
    """SplitKKOT 1-out-of-N OT of uint64 messages of l bits (`got_send_post<uint64_t>`)."""
    n_, N_, l_, k_ = _i64(n, N, bits, kappa)
    out = k_ // 4 * _pad(n_) + _chunked(n_, AES_BATCH, lambda b: 8 * _cdiv(N_ * b * l_, 64))
    return _ret(out, n, N, bits)


def cotadd_bytes(n: Value, kappa: Value = 128) -> Value:
    """IKNP (non-split) `send_cot_moduloAdd`: extension padded to blocks of 16384 OTs, 8 bytes per OT."""
    n_, k_ = _i64(n, kappa)
    return _ret(k_ // 8 * _cdiv(n_, IKNP_BLOCK) * IKNP_BLOCK + 8 * n_, n)


# ------------------------------------------------------------------------------------ comparisons

def _digits(bits: np.ndarray, radix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(num_digits, num_triples) of MillionaireProtocol::configure: triples = 2D - 2 - bitlen(D),
    with sci::bitlen(x) = ceil(log2 x) (utils/utils.hpp)."""
    d = _cdiv(bits, radix)
    return d, 2 * d - 2 - _ceil_log2(d)


def mill_bytes(n: Value, bits: Value, radix: Value, kappa: Value = 128) -> Value:
    """MillionaireProtocol::compare of n values of `bits` bits (greater-than, WAN_EXEC). bits <= radix:
    one 1-out-of-2^bits KKOT (IKNP for 1 bit). Otherwise n is padded to a multiple of 8; all leaves
    in one 1-out-of-16 KKOT of 2-bit messages; T = 2D-2-ceil(log2 D) bit triples per comparison from
    1-out-of-16 KKOTs (two triples per OT); the AND tree opens e and f, one bit each per triple and
    party (T*n/2 bytes in all)."""
    n_, b_, r_, k_ = _i64(n, bits, radix, kappa)
    small = np.where(b_ == 1, ot8_bytes(n_, 1, k_), kkot_bytes(n_, np.left_shift(1, np.clip(b_, 1, 8)), 1, k_))
    n8 = _cdiv(n_, 8) * 8
    d, t = _digits(b_, r_)
    leaf_n = np.left_shift(1, r_)
    big = kkot_bytes(n8 * d, leaf_n, 2, k_) + kkot_bytes(t * n8 // 2, 16, 2, k_) + t * n8 // 2
    out = np.where(n_ == 0, 0, np.where(b_ <= r_, small, big))
    return _ret(out, n, bits, radix)


def milleq_bytes(n: Value, bits: Value, radix: Value, kappa: Value = 128) -> Value:
    """MillionaireWithEquality::compare_with_eq: leaves by 1-out-of-16 KKOT (the top digit of r bits,
    r = bits % radix, by a 1-out-of-2^r KKOT or an IKNP OT), 2D-2 triples per comparison from
    1-out-of-8 KKOTs (`_8KKOT`); traverse_and_compute_ANDs sends each party's e and f twice
    (`send_data(ei + offset, size_used)` twice, then fi twice): (2D-2)*n bytes of AND openings."""
    n_, b_, r_, k_ = _i64(n, bits, radix, kappa)
    small = np.where(b_ == 1, ot8_bytes(n_, 2, k_), kkot_bytes(n_, np.left_shift(1, np.clip(b_, 1, 8)), 2, k_))
    n8 = _cdiv(n_, 8) * 8
    d = _cdiv(b_, r_)
    rem = b_ % r_
    leaf_n = np.left_shift(1, r_)
    top = np.where(rem == 0, 0,
                   np.where(rem == 1, ot8_bytes(n8, 2, k_), kkot_bytes(n8, np.left_shift(1, rem), 2, k_)))
    leaves = np.where(rem == 0, kkot_bytes(n8 * d, leaf_n, 2, k_), kkot_bytes(n8 * (d - 1), leaf_n, 2, k_) + top)
    t = 2 * d - 2
    big = leaves + kkot_bytes(t * n8 // 2, 8, 2, k_) + t * n8
    out = np.where(n_ == 0, 0, np.where(b_ <= r_, small, big))
    return _ret(out, n, bits, radix)


def dreluf_bytes(n: Value, bits: Value, radix: Value, kappa: Value = 128) -> Value:
    """DReLUFieldProtocol::compute_drelu on n values (padded to a multiple of 4), digits of `bits`
    (= ell + 1) bits: two comparisons per value share each 1-out-of-16 leaf KKOT (4-bit messages);
    the millionaire AND tree on 2n comparisons; a 1-out-of-4 KKOT multiplexer of 1 bit."""
    n_, b_, r_, k_ = _i64(n, bits, radix, kappa)
    n4 = _cdiv(n_, 4) * 4
    d, t = _digits(b_, r_)
    cmps = 2 * n4
    out = (kkot_bytes(n4 * d, np.left_shift(1, r_), 4, k_) + kkot_bytes(t * cmps // 2, 16, 2, k_)
           + t * cmps // 2 + kkot_bytes(n4, 4, 1, k_))
    return _ret(np.where(n_ == 0, 0, out), n, bits, radix)


# -------------------------------------------------------------------------------- linear layers (OT)

def _thread_dims(d2: np.ndarray, threads: int) -> list[np.ndarray]:
    """functionalities_uniform.h funcMatmulThread: the inner dimension in buckets of ceil(d2/threads)."""
    bucket = _cdiv(d2, threads)
    return [np.clip(np.minimum((t + 1) * bucket, d2) - t * bucket, 0, None) for t in range(threads)]


def _cross_term(d1, d2, d3, ell, both, even):
    """LinearOT::matmul_cross_terms(d1, d2, d3) with bwA = bwB = bwC = ell: (bytes, batches).
    With both cross terms (MultMode::None) the receiver is the operand cross_term_cost prefers
    (B when d1 > d3, else A) and the same OTs run straight and reversed; with one (Alice_has_A, the
    model is A, even threads) the receiver is B, and in odd threads, whose roles are swapped
    (MultMode::Bob_has_A, row batching), A. num_ot = rows*cols*ell OTs of the receiver matrix, each carrying
    msgs = the other outer dimension messages of ell - bit_index bits; batches of
    ceil(2^24 / (dim*msgs)) * dim OTs, one send_batched_cot per batch."""
    recv_b = np.where(both, d1 > d3, even)
    dim = np.where(recv_b, d2 * d3, d1 * d2)
    msgs = np.where(recv_b, d1, d3)
    num_ot = dim * ell
    per_batch_bits = np.maximum(_cdiv(MAX_NUM_OT, np.maximum(dim * msgs, 1)), 1)  # bit indices per batch
    batch_ot = per_batch_bits * dim
    batches = _cdiv(ell, per_batch_bits)
    send = dim * _sum_ceil8(msgs, ell)  # sender: dim * sum_{k<ell} ceil(msgs * (ell - k) / 8) bytes
    full = num_ot // np.maximum(batch_ot, 1)
    last = num_ot - full * batch_ot
    recv = 16 * (full * _pad(batch_ot) + np.where(last > 0, _pad(last), 0))
    total = send + recv
    active = (d1 > 0) & (d2 > 0) & (d3 > 0)
    mult = np.where(both, 2, 1)
    return np.where(active, mult * total, 0), np.where(active, batches, 0)


def _uniform(d1, d2, d3, ell):
    """MatMulUniform::funcOTSenderInputA / funcOTReceiverInputB (USE_LINEAR_UNIFORM, before 2022): the
    receiver inputs B bit by bit (d2*d3*ell OTs of IKNP, extended in blocks of 16384), the sender A's
    column as d1 chunks of ell - k bits; batches of min(2^18, 2.5 GiB / (8*d1)) OTs."""
    num_ot = d2 * d3 * ell
    batch = np.minimum(UNIFORM_BATCH, UNIFORM_MEM // np.maximum(8 * d1, 1))
    batches = _cdiv(num_ot, batch)
    full = num_ot // batch
    last = num_ot - full * batch
    recv = 16 * (full * _cdiv(batch, IKNP_BLOCK) * IKNP_BLOCK + _cdiv(last, IKNP_BLOCK) * IKNP_BLOCK)
    send = d2 * d3 * _sum_ceil8(d1, ell)  # sum_{k<ell} d2 * d3 * ceil(d1 * (ell - k) / 8)
    active = (d1 > 0) & (d2 > 0) & (d3 > 0)
    return np.where(active, send + recv, 0), np.where(active, batches, 0)


_last_matmul: list[tuple[tuple, tuple[np.ndarray, np.ndarray]]] = []  # the rule asks for bytes, then rounds


def _matmul(d1, d2, d3, ell, threads, mode):
    d1, d2, d3, ell, mode = _i64(d1, d2, d3, ell, mode)
    threads = int(np.max(threads))
    key = (threads, d1.shape, *(a.tobytes() for a in (d1, d2, d3, ell, mode)))
    if _last_matmul and _last_matmul[0][0] == key:
        total, first = _last_matmul[0][1]
        return total.copy(), first.copy()  # the caller may change its arrays: the kept ones stay as computed
    found = _matmul_of(d1, d2, d3, ell, threads, mode)
    _last_matmul[:] = [(key, found)]
    return found


def _matmul_of(d1, d2, d3, ell, threads, mode):
    total = np.zeros_like(d1)
    first = np.zeros_like(d1)
    for t, part in enumerate(_thread_dims(d2, threads)):
        b2, n2 = _cross_term(d1, part, d3, ell, mode == 2, t % 2 == 0)
        bu, nu = _uniform(d1, part, d3, ell)
        total = total + np.where(mode == 0, bu, b2)
        if t == 0:
            first = np.where(mode == 0, nu, n2)
    return total, first


def matmul_bytes(d1: Value, d2: Value, d3: Value, ell: Value, threads: Value, mode: Value) -> Value:
    """Bytes of library_fixed_uniform.cpp MatMul2D(d1, d2, d3) under SCI_OT, the model being the
    d1 x d2 operand. mode 2: LinearOT::matmul_cross_terms with MultMode::None (TRAINING is defined in
    defines_uniform.h since 2022: both cross terms); mode 1: one cross term (MultMode::Alice_has_A,
    TRAINING undefined); mode 0: MatMulUniform (USE_LINEAR_UNIFORM, the CrypTFlow2-paper code)."""
    total, _ = _matmul(d1, d2, d3, ell, threads, mode)
    return _ret(total, d1, d2, d3, ell, mode)


def matmul_rounds(d1: Value, d2: Value, d3: Value, ell: Value, threads: Value, mode: Value) -> Value:
    """Server `io` switches of thread 0's share of MatMul2D: (recv, send) per OT batch."""
    _, first = _matmul(d1, d2, d3, ell, threads, mode)
    return _ret(2 * first, d1, d2, d3, ell, mode)


# -------------------------------------------------------------------------------- linear layers (HE)

def he_ct_bytes(N: Value, k: Value) -> Value:
    """SEAL 3.3.2 Ciphertext::save of a 2-polynomial BFV ciphertext with k 64-bit primes."""
    N_, k_ = _i64(N, k)
    return _ret(SEAL_CT_HEADER + 8 * 2 * N_ * k_, N, k)


def he_keys_bytes(N: Value) -> Value:
    """LinearHE/utils-HE.cpp generate_new_keys: the client sends pk_size, gk_size, the public key
    (2 polys, 4 primes of {60, 60, 60, 38}) and SEAL 3.3.2 KeyGenerator::galois_keys() (2 log2 N - 2
    distinct elements -- 3^(N/4) is its own inverse -- each 3 key-switching ciphertexts at 4 primes,
    an 8-byte size for each of N slots, a 40-byte header)."""
    (N_,) = _i64(N)
    logn = _ceil_log2(N_)
    ksk = SEAL_CT_HEADER + 8 * 2 * N_ * 4
    gk = 32 + 8 + 8 * N_ + (2 * logn - 2) * 3 * ksk
    return _ret(16 + ksk + gk, N)


def _he_slots(hw: np.ndarray) -> np.ndarray:
    """ConvField::non_strided_conv: slot_count = min(65536, max(8192, 2 * next_pow2(H*W)))."""
    return np.minimum(65536, np.maximum(8192, 2 * _next_pow2(hw)))


def _he_pieces(H, W, kh, kw, pad_h, pad_w, sh, sw):
    """The stride phases ConvField::convolution runs as non-strided convolutions: (lH, lW, lFH, lFW)."""
    out = []
    ph = H + pad_h
    pw = W + pad_w
    limit_h = kh + ((ph - kh) // sh) * sh
    limit_w = kw + ((pw - kw) // sw) * sw
    for s_row in range(int(np.max(sh))):
        for s_col in range(int(np.max(sw))):
            lh = _cdiv(limit_h - s_row, sh)
            lw = _cdiv(limit_w - s_col, sw)
            lfh = _cdiv(kh - s_row, sh)
            lfw = _cdiv(kw - s_col, sw)
            live = (s_row < sh) & (s_col < sw) & (lfh > 0) & (lfw > 0)
            out.append((lh, lw, live))
    return out


def he_conv_bytes(H: Value, W: Value, CI: Value, CO: Value, kh: Value, kw: Value, pad_h: Value,
                  pad_w: Value, sh: Value, sw: Value) -> Value:
    """ConvField::convolution: per stride phase one non_strided_conv; the client sends inp_ct fresh
    ciphertexts (3 primes), the server returns out_ct mod-switched ones (2 primes), each vector
    with an 8-byte size; a slot count other than the preset 8192 / 65536 generates and sends new
    keys. Channels are packed chans_per_half = (N/2) / next_pow2(lH*lW) per half ciphertext."""
    H_, W_, CI_, CO_, kh_, kw_, ph_, pw_, sh_, sw_ = _i64(H, W, CI, CO, kh, kw, pad_h, pad_w, sh, sw)
    total = np.zeros_like(H_)
    for lh, lw, live in _he_pieces(H_, W_, kh_, kw_, ph_, pw_, sh_, sw_):
        n = _he_slots(lh * lw)
        cph = np.maximum((n // 2) // _next_pow2(lh * lw), 1)
        inp_ct = _cdiv(CI_, 2 * cph)
        out_ct = _cdiv(CO_, 2 * cph)
        b = 16 + inp_ct * he_ct_bytes(n, 3) + out_ct * he_ct_bytes(n, 2)
        b = b + np.where((n != 8192) & (n != 65536), he_keys_bytes(n), 0)
        total = total + np.where(live, b, 0)
    return _ret(total, H, W, CI, CO, kh, kw, pad_h, pad_w, sh, sw)


def he_conv_rounds(kh: Value, kw: Value, sh: Value, sw: Value) -> Value:
    """Server switches: (recv inputs [and keys], send result) per live stride phase."""
    kh_, kw_, sh_, sw_ = _i64(kh, kw, sh, sw)
    return _ret(2 * np.minimum(sh_, kh_) * np.minimum(sw_, kw_), kh, kw, sh, sw)


def he_fc_bytes(rows: Value, common: Value) -> Value:
    """FCField::matrix_multiplication (matrix-vector): slot_count = min(max(8192, 2*next_pow2(common)),
    65536), new keys when above 8192; one fresh ciphertext up, one mod-switched ciphertext down."""
    r_, c_ = _i64(rows, common)
    n = np.minimum(np.maximum(8192, 2 * _next_pow2(c_)), 65536)
    out = 16 + he_ct_bytes(n, 3) + he_ct_bytes(n, 2) + np.where(n > 8192, he_keys_bytes(n), 0)
    return _ret(np.where(r_ > 0, out, 0), rows, common)


def he_elemwise_bytes(n: Value) -> Value:
    """ElemWiseProdField::elemwise_product: ceil(n/8192) ciphertexts each way (down mod-switched)."""
    (n_,) = _i64(n)
    ct = _cdiv(n_, 8192)
    return _ret(np.where(n_ > 0, 16 + ct * (he_ct_bytes(8192, 3) + he_ct_bytes(8192, 2)), 0), n)


#: The functions rules/cryptflow2.toml may call: name -> (function, arity). The OT-extension helpers take
#: kappa explicitly so that the rule file's `kappa` parameter reaches them.
FUNCTIONS = {
    "cf2_ot_bytes": (ot_bytes, 3), "cf2_ot8_bytes": (ot8_bytes, 3), "cf2_cot_bytes": (cot_bytes, 3),
    "cf2_kkot_bytes": (kkot_bytes, 4), "cf2_kkot64_bytes": (kkot64_bytes, 4), "cf2_cotadd_bytes": (cotadd_bytes, 2),
    "cf2_mill_bytes": (mill_bytes, 4), "cf2_milleq_bytes": (milleq_bytes, 4), "cf2_dreluf_bytes": (dreluf_bytes, 4),
    "cf2_matmul_bytes": (matmul_bytes, 6), "cf2_matmul_rounds": (matmul_rounds, 6),
    "cf2_he_conv_bytes": (he_conv_bytes, 10), "cf2_he_conv_rounds": (he_conv_rounds, 4),
    "cf2_he_fc_bytes": (he_fc_bytes, 2), "cf2_he_elemwise_bytes": (he_elemwise_bytes, 1),
}
for _name, (_fn, _arity) in FUNCTIONS.items():
    register_function(_name, _fn, _arity)
