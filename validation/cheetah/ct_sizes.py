"""Calibrate the sizes of OpenCheetah's serialized response ciphertexts (SEAL 3.7.2 + zstd).

OpenCheetah sends every RLWE ciphertext with `seal::Ciphertext::save` (SCI/src/cheetah/cheetah-api.cpp
send_ciphertext), which zstd-compresses the serialized members at zstd's default level (SEAL 3.7.2,
native/src/seal/util/ztools.cpp zstd_deflate_array_inplace sets no level; OpenCheetah builds SEAL with
-DSEAL_USE_ZSTD=ON, scripts/build-deps.sh). The server's responses carry information in far fewer bits
than 64 per coefficient, and the size on the wire is what zstd makes of them:

* after `truncate_for_decryption` (include/gemini/cheetah/hom_conv2d_ss.cc) the ciphertext is at the last
  modulus q0 (60 bits); c0 keeps its top pbits+1+one_more_bit bits (pbits = plain modulus bit count,
  one_more_bit = 1 unless the plain modulus is a power of two), c1 its top pbits + n_var_bits bits
  (n_var_bits = floor(log2(12 N sqrt(1/18))) = 13 for N = 4096);
* `remove_unused_coeffs` zeroes the c0 coefficients no output lives in (c1 stays full).

This script emulates that byte layout (SEAL header, member header, c0 then c1 as little-endian uint64)
with random coefficients and compresses it with the zstd command line at level 3. It prints, per plain
modulus bit count, the fixed bytes of one response ciphertext (c1 and headers, c0 all zero) and the
extra bytes per used c0 coefficient (mean over a convolution-like layout of runs and a strided
fully-connected layout). `hawkeye_onnx/fn_cheetah.py` holds the table it printed. Needs `zstd` on PATH.

    python validation/cheetah/ct_sizes.py > /tmp/table.txt
"""

from __future__ import annotations

import math
import subprocess

import numpy as np

N = 4096
Q0_BITS = 60
HEADER = 16  # SEALHeader, not compressed
MEMBERS = 32 + 1 + 8 + 8 + 8 + 8 + 8  # parms_id, is_ntt, size, N, L, scale, DynArray size


def zstd_len(buf: bytes) -> int:
    out = subprocess.run(["zstd", "-3", "-c", "-q", "--no-check"], input=buf, capture_output=True, check=True)
    return len(out.stdout)


def kept(rng: np.random.Generator, bits: int, n: int) -> np.ndarray:
    v = rng.integers(0, 1 << Q0_BITS, n, dtype=np.uint64)
    low = np.uint64(max(0, Q0_BITS - bits))
    return (v >> low) << low


def size(rng: np.random.Generator, c0_bits: int, c1_bits: int, idx: np.ndarray) -> int:
    c0 = np.zeros(N, np.uint64)
    c0[idx] = kept(rng, c0_bits, N)[idx]
    c1 = kept(rng, c1_bits, N)
    blob = rng.integers(0, 256, 32, dtype=np.uint8).tobytes() + bytes(MEMBERS - 32)
    return HEADER + zstd_len(blob + c0.tobytes() + c1.tobytes())


def layouts(used: int) -> list[np.ndarray]:
    runs = np.concatenate([np.arange(s, min(s + 54, N)) for s in range(0, N, 56)])[:used]
    stride = N // used
    return [runs, np.arange(0, stride * used, stride)]


def main() -> None:
    rng = np.random.default_rng(2022)
    n_var = int(math.log2(12.0 * N * math.sqrt(1 / 18.0)))
    print("# pbits pow2 base_bytes per_used_coeff")
    for pow2 in (1, 0):
        for pbits in range(8, 59):
            delta = Q0_BITS - pbits
            c0_bits = Q0_BITS - max(0, min(63, delta - 1 - (0 if pow2 else 1)))
            c1_bits = Q0_BITS - max(0, min(63, delta - n_var))
            base = size(rng, c0_bits, c1_bits, np.arange(0))
            rates = [(size(rng, c0_bits, c1_bits, idx) - base) / len(idx)
                     for used in (1024, 2048, 3136) for idx in layouts(used)]
            print(pbits, pow2, base, round(float(np.mean(rates)), 3))


if __name__ == "__main__":
    main()
