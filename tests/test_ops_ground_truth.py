"""Per-operator formulas measured on the real frameworks (shared/ground-truth/README.md), at several sizes.

Expected numbers are computed here from that page's closed forms (it cites the framework source
for each), never from the rule files under test.
"""

from __future__ import annotations

import math

import onnx
import pytest
from onnx import helper

from hawkeye_onnx import profile
from validation import opzoo


def _cost(model: onnx.ModelProto, backend: str, parties: int = 2) -> tuple[int, int]:
    p = profile(model, backends=[backend], params={backend: {"parties": parties}})
    b = p.backends[backend]
    assert b.unsupported == (), b.unsupported
    return b.total.online.bytes, b.total.online.rounds


def _T(n: int) -> int:
    """Levels of SPU's tree reduction: halve, set an odd element aside, fold it back one level later
    (T(4) = 2, T(9) = 4 per the ground truth: "one more level per odd length")."""
    return math.floor(math.log2(n)) + bin(n).count("1") - 1


SIZES = [(2, 10), (3, 7), (1, 64)]


# ----------------------------------------------------------------------------- CrypTen, 2 parties
# Per party: E elements opened in A openings; bytes = 16 E (both parties), rounds = A.

@pytest.mark.parametrize("shape", SIZES)
def test_crypten_mul_private_private(shape):
    n = math.prod(shape)
    assert _cost(opzoo.binary_ss("Mul", shape, shape).model, "crypten") == (32 * n, 1)


@pytest.mark.parametrize("shape", SIZES)
def test_crypten_mul_by_public_is_free(shape):
    assert _cost(opzoo.binary_const("Mul", shape, 0.5).model, "crypten") == (0, 0)


@pytest.mark.parametrize("m,k,q", [(4, 8, 5), (1, 784, 128), (7, 3, 2)])
def test_crypten_matmul(m, k, q):
    assert _cost(opzoo.binary_ss("MatMul", (m, k), (k, q)).model, "crypten") == (16 * (m * k + k * q), 1)


@pytest.mark.parametrize("b,i,o", [(1, 16, 10), (3, 16, 10), (5, 30, 2)])
def test_crypten_gemm(b, i, o):
    model = opzoo.model("g", [helper.make_node("Gemm", ["x", "W", "B"], ["out"], name="/fc/Gemm", transB=1)],
                        {"x": (b, i)}, [opzoo.weight("W", (o, i)), opzoo.weight("B", (o,))]).model
    assert _cost(model, "crypten") == (16 * (b * i + i * o), 1)


@pytest.mark.parametrize("x,w,attrs", [
    ((1, 3, 8, 8), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 3, 9, 9), (4, 3, 3, 3), {"strides": [2, 2]}),
    ((2, 8, 6, 6), (16, 8, 1, 1), {}),
])
def test_crypten_conv_opens_raw_input_and_weight(x, w, attrs):
    model = opzoo.conv("c", x, w, **attrs).model
    assert _cost(model, "crypten") == (16 * (math.prod(x) + math.prod(w)), 1)


def test_crypten_pools_are_free():
    assert _cost(opzoo.pool("a", "AveragePool", (1, 2, 8, 8), kernel_shape=[2, 2], strides=[2, 2]).model,
                 "crypten") == (0, 0)
    assert _cost(opzoo.pool("g", "GlobalAveragePool", (1, 3, 4, 4)).model, "crypten") == (0, 0)


@pytest.mark.parametrize("op,per_elem,rounds", [
    ("Relu", 464, 9), ("Exp", 128, 8), ("Sqrt", 400, 18), ("Sigmoid", 752, 23),
])
@pytest.mark.parametrize("shape", SIZES)
def test_crypten_elementwise(op, per_elem, rounds, shape):
    assert _cost(opzoo.unary(op, shape).model, "crypten") == (per_elem * math.prod(shape), rounds)


@pytest.mark.parametrize("shape", SIZES)
def test_crypten_reciprocal_through_division(shape):
    """from_onnx has no Reciprocal module; x / y runs reciprocal(y) (1104 n, 38 rounds) and one mul."""
    n = math.prod(shape)
    assert _cost(opzoo.binary_ss("Div", shape, shape).model, "crypten") == ((1104 + 32) * n, 39)
    p = profile(opzoo.unary("Reciprocal", shape).model, backends=["crypten"])
    assert [u.op_type for u in p.backends["crypten"].unsupported] == ["Reciprocal"]


@pytest.mark.parametrize("parties", [3])
@pytest.mark.parametrize("shape", SIZES)
def test_crypten_relu_with_more_parties(parties, shape):
    """Comparison: 7(P-1)+1 rounds, (26(P-1)+1) n elements per party; the product with the 0/1 result
    opens 2n more in one round (no truncation: the bit has scale 1). One opening of E elements = 8 P E bytes.
    (For P >= 4 the page's round formula is off: the adder tree has ceil(log2 P) levels, see
    validation/crypten/NOTES.md; those cases are checked against measurements in test_measured.py.)"""
    n = math.prod(shape)
    elements = (26 * (parties - 1) + 1) * n + 2 * n
    want = (8 * parties * elements, 7 * (parties - 1) + 2)
    assert _cost(opzoo.unary("Relu", shape).model, "crypten", parties) == want


@pytest.mark.parametrize("x", [(1, 2, 8, 8), (1, 6, 24, 24), (2, 1, 4, 6)])
def test_crypten_maxpool_2x2(x):
    outputs = x[0] * x[1] * (x[2] // 2) * (x[3] // 2)
    model = opzoo.pool("m", "MaxPool", x, kernel_shape=[2, 2], strides=[2, 2]).model
    assert _cost(model, "crypten") == (16 * 370 * outputs, 46)


# ----------------------------------------------------------------------------- SEMI2K, 2 parties
# The page gives bytes per party; both parties send the same, so the total is twice that.

@pytest.mark.parametrize("shape", SIZES)
def test_semi2k_truncation_after_public_product(shape):
    assert _cost(opzoo.binary_const("Mul", shape, 0.5).model, "semi2k") == (2 * 4 * math.prod(shape), 1)


@pytest.mark.parametrize("shape", SIZES)
def test_semi2k_mul_private_private(shape):
    assert _cost(opzoo.binary_ss("Mul", shape, shape).model, "semi2k") == (2 * 20 * math.prod(shape), 2)


@pytest.mark.parametrize("m,k,q", [(4, 8, 5), (1, 784, 128), (7, 3, 2)])
def test_semi2k_matmul(m, k, q):
    want = 2 * (8 * (m * k + k * q) + 4 * m * q)
    assert _cost(opzoo.binary_ss("MatMul", (m, k), (k, q)).model, "semi2k") == (want, 2)


@pytest.mark.parametrize("x,w,attrs,out_hw", [
    ((1, 3, 8, 8), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}, (8, 8)),
    ((1, 3, 9, 9), (4, 3, 3, 3), {"strides": [2, 2]}, (4, 4)),
    ((2, 8, 6, 6), (16, 8, 1, 1), {}, (6, 6)),
])
def test_semi2k_conv_opens_im2col(x, w, attrs, out_hw):
    n, c, o, kh, kw = x[0], x[1], w[0], w[2], w[3]
    ho, wo = out_hw
    want = 2 * (8 * (n * ho * wo * c * kh * kw + c * kh * kw * o) + 4 * n * o * ho * wo)
    assert _cost(opzoo.conv("c", x, w, **attrs).model, "semi2k") == (want, 2)


@pytest.mark.parametrize("shape", SIZES)
def test_semi2k_relu(shape):
    assert _cost(opzoo.unary("Relu", shape).model, "semi2k") == (2 * 72 * math.prod(shape), 8)


@pytest.mark.parametrize("x,k,stride,outputs", [((1, 2, 8, 8), 2, 2, 32), ((1, 1, 6, 6), 3, 1, 16),
                                                 ((1, 6, 24, 24), 2, 2, 864)])
def test_semi2k_maxpool(x, k, stride, outputs):
    model = opzoo.pool("m", "MaxPool", x, kernel_shape=[k, k], strides=[stride, stride]).model
    assert _cost(model, "semi2k") == (2 * 72 * outputs * (k * k - 1), 8 * _T(k * k))


def test_semi2k_avgpool():
    model = opzoo.pool("a", "AveragePool", (1, 2, 8, 8), kernel_shape=[2, 2], strides=[2, 2]).model
    assert _cost(model, "semi2k") == (2 * 4 * 32, 1)


@pytest.mark.parametrize("op,per_elem,rounds", [("Exp", 100, 17), ("Reciprocal", 505, 36), ("Sigmoid", 605, 53)])
@pytest.mark.parametrize("shape", SIZES)
def test_semi2k_elementwise(op, per_elem, rounds, shape):
    assert _cost(opzoo.unary(op, shape).model, "semi2k") == (2 * per_elem * math.prod(shape), rounds)


@pytest.mark.parametrize("shape", SIZES)
def test_semi2k_division(shape):
    assert _cost(opzoo.binary_ss("Div", shape, shape).model, "semi2k") == (2 * 525 * math.prod(shape), 38)


@pytest.mark.parametrize("rows,c", [(2, 10), (3, 7), (1, 4)])
def test_semi2k_softmax(rows, c):
    model = opzoo.unary("Softmax", (rows, c), axis=-1).model
    assert _cost(model, "semi2k") == (2 * 697 * rows * c, 8 * (_T(c) + 1) + 55)
