"""conv1x1_backward: against the NumPy reference (exact on small integers), against finite
differences in float64, bitwise the same for every thread count, and its errors."""

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import same_bits, traced_peak

CASES = [  # (N, C, F, H, W, stride, groups)
    (1, 4, 6, 5, 7, 1, 1),
    (2, 12, 9, 9, 13, 2, 3),
    (3, 16, 8, 7, 7, (1, 2), 4),
    (1, 64, 32, 28, 28, 1, 1),
    (2, 33, 22, 6, 11, 3, 11),
    (1, 300, 40, 7, 7, 1, 2),
    (2, 40, 24, 9, 10, 2, 1),  # strided grad_w: packed columns and a transposed tail of 8
    (1, 96, 20, 11, 12, (3, 2), 2),
]


def _problem(rng, case, dtype, layout):
    n, c, f, h, w, stride, groups = case
    x = rng.integers(-4, 5, (n, c, h, w)).astype(dtype)
    weight = rng.integers(-3, 4, (f, c // groups, 1, 1)).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = onexone.conv1x1(x, weight, stride=stride, groups=groups, layout=layout)
    gy = rng.integers(-3, 4, y.shape).astype(dtype)
    return x, weight, gy, dict(stride=stride, groups=groups, layout=layout)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_reference_exactly(isa, dtype, rng, case, layout):
    x, weight, gy, kw = _problem(rng, case, dtype, layout)
    got = onexone.conv1x1_backward(gy, x, weight, **kw)
    want = reference.conv1x1_backward(gy, x, weight, **kw)
    for g, r, like in zip(got, want, (x, weight, weight[:, 0, 0, 0])):
        np.testing.assert_array_equal(g, r)
        assert g.shape == like.shape and g.dtype == dtype


def test_need_selects_gradients(rng):
    x, weight, gy, kw = _problem(rng, CASES[1], np.float64, "NCHW")
    full = onexone.conv1x1_backward(gy, x, weight, **kw)
    for need in (("x",), ("w",), ("b",), ("x", "b"), "w"):
        got = onexone.conv1x1_backward(gy, x, weight, need=need, **kw)
        for name, g, f in zip("xwb", got, full):
            if name in need:
                np.testing.assert_array_equal(g, f)
            else:
                assert g is None


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_finite_differences_float64(rng, layout):
    """d/dp of L = sum(conv1x1(x, w, b) * R) by central differences, at sampled entries."""
    n, c, f, h, w, stride, groups = 2, 6, 4, 5, 6, 2, 2
    x = rng.standard_normal((n, c, h, w))
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    weight = rng.standard_normal((f, c // groups, 1, 1))
    bias = rng.standard_normal(f)
    kw = dict(stride=stride, groups=groups, layout=layout)
    r = rng.standard_normal(onexone.conv1x1(x, weight, bias, **kw).shape)

    def loss(xx, ww, bb):
        return float((onexone.conv1x1(xx, ww, bb, **kw) * r).sum())

    gx, gw, gb = onexone.conv1x1_backward(r, x, weight, **kw)
    eps = 1e-6
    for arr, grad, which in ((x, gx, 0), (weight, gw, 1), (bias, gb, 2)):
        for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(12)]:
            args = [x.copy(), weight.copy(), bias.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            down = loss(*args)
            assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-6 * max(1.0, abs(grad[idx]))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_thread_count_invariance(rng, layout, stride):
    n, c, f, h, w = 3, 96, 64, 14, 14
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    weight = rng.standard_normal((f, c // 2, 1, 1)).astype(np.float32)
    kw = dict(stride=stride, groups=2, layout=layout)
    gy = rng.standard_normal(onexone.conv1x1(x, weight, **kw).shape).astype(np.float32)
    runs = [onexone.conv1x1_backward(gy, x, weight, n_threads=t, **kw) for t in (1, 2, 3, 8)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert same_bits(a, b)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_strided_weight_gradient_reads_x_in_place(rng, layout):
    """grad_w of a stride-2 1x1 reads the pixels x[:, :, ::2, ::2] in place (each image's rows
    as a batch of the GEMM), never gathered into a copy of x first."""
    x = rng.standard_normal((2, 128, 56, 56)).astype(np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    weight = rng.standard_normal((32, 128, 1, 1)).astype(np.float32)
    kw = dict(stride=2, layout=layout, need=("w",))
    gy = rng.standard_normal(onexone.conv1x1(x, weight, stride=2, layout=layout).shape).astype(np.float32)
    onexone.conv1x1_backward(gy, x, weight, **kw)
    (_, gw, _), peak = traced_peak(lambda: onexone.conv1x1_backward(gy, x, weight, **kw))
    assert peak < x.nbytes // 16, f"peak allocation {peak} bytes for x of {x.nbytes}"
    want = reference.conv1x1_backward(gy, x, weight, stride=2, layout=layout)[1]
    np.testing.assert_allclose(gw, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("op, kernel", [("conv1x1_backward", 1), ("conv2d_backward", 3)])
def test_backward_allocates_no_forward_result(rng, op, kernel):
    """The backward pass writes no y: asked only for grad_b (or grad_w), it allocates nothing
    of y's size (the argument checks take y's shape, not its memory)."""
    x = rng.standard_normal((2, 8, 64, 64)).astype(np.float32)
    weight = rng.standard_normal((64, 8, kernel, kernel)).astype(np.float32)
    pad = {} if kernel == 1 else {"padding": 1}
    gy = rng.standard_normal((2, 64, 64, 64)).astype(np.float32)  # 2 MiB, y's size
    fn = getattr(onexone, op)
    for need in (("b",), ("w",)):
        fn(gy, x, weight, need=need, **pad)
        got, peak = traced_peak(lambda: fn(gy, x, weight, need=need, **pad))
        assert peak < gy.nbytes // 4, f"{op} need={need}: peak allocation {peak} bytes, y is {gy.nbytes}"
        want = getattr(reference, op)(gy, x, weight, need=need, **pad)
        for g, r in zip(got, want):
            assert (g is None) == (r is None)
            if g is not None:
                np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("op, layout", [("conv1x1_backward", "NCHW"), ("conv1x1_backward", "NHWC"),
                                        ("conv2d_backward", "NCHW")])
def test_weight_gradient_sums_many_pixels_accurately(isa, rng, op, layout):
    """grad_w in float32 sums over every pixel of every image (here 32 x 56 x 56 = 100352
    terms): in blocks, each block's sum added once, its relative error is near NumPy's
    matmul's (a few 1e-7), not the 2e-5 of one running float32 sum over all of them."""
    n, c, f, h = 32, 24, 64, 56
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    gy = rng.standard_normal((n, f, h, h)).astype(np.float32)
    kernel = 1 if op == "conv1x1_backward" else 3
    weight = rng.standard_normal((f, c, kernel, kernel)).astype(np.float32)
    kw = {"padding": 1} if kernel == 3 else {"layout": layout}
    if layout == "NHWC":
        x_in, gy_in = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, gy))
    else:
        x_in, gy_in = x, gy
    _, gw, _ = getattr(onexone, op)(gy_in, x_in, weight, need=("w",), **kw)
    want = getattr(reference, op)(gy_in.astype(np.float64), x_in.astype(np.float64),
                                  weight.astype(np.float64), need=("w",), **kw)[1]
    err = np.abs(gw - want).max() / np.abs(want).max()
    assert err < 4e-6, f"relative error {err:.2e}"


def test_backward_of_a_kxk_weight_names_conv2d_backward():
    """conv1x1_backward given a 3x3 weight points to conv2d_backward, not the forward op."""
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"use onexone\.conv2d_backward for kernels larger"):
        onexone.conv1x1_backward(np.zeros((1, 3, 5, 5), np.float32), x, np.zeros((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"use onexone\.conv2d for kernels larger"):
        onexone.conv1x1(x, np.zeros((3, 2, 3, 3), np.float32))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_gapped_grad_y_and_x(isa, dtype, rng, layout):
    """grad_y and x whose pixel rows have gaps (crops of larger arrays): exact, no copy needed."""
    big = rng.integers(-4, 5, (2, 12, 9, 15)).astype(dtype)
    x = big[:, :, 1:8, 2:13]
    if layout == "NHWC":
        x = big.transpose(0, 2, 3, 1)[:, 1:8, 2:13, :]
    weight = rng.integers(-3, 4, (10, 6, 1, 1)).astype(dtype)
    shape = onexone.conv1x1(x, weight, stride=(2, 3), groups=2, layout=layout).shape
    gbig = rng.integers(-3, 4, shape[:1] + tuple(s + 3 for s in shape[1:])).astype(dtype)
    gy = gbig[:, 1 : 1 + shape[1], 2 : 2 + shape[2], :shape[3]]
    kw = dict(stride=(2, 3), groups=2, layout=layout)
    got = onexone.conv1x1_backward(gy, x, weight, **kw)
    want = reference.conv1x1_backward(gy, x, weight, **kw)
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)


def test_errors():
    x, w = np.ones((1, 8, 4, 4)), np.ones((6, 8, 1, 1))
    with pytest.raises(ValueError, match=r"grad_y of shape \(1, 6, 2, 2\) does not match .* y of shape \(1, 6, 4, 4\)"):
        onexone.conv1x1_backward(np.ones((1, 6, 2, 2)), x, w)
    with pytest.raises(ValueError, match="need has unknown gradients 'bias'"):
        onexone.conv1x1_backward(np.ones((1, 6, 4, 4)), x, w, need=("x", "bias"))
    with pytest.raises(ValueError, match=r"groups=5 must divide the input channels"):
        onexone.conv1x1_backward(np.ones((1, 6, 4, 4)), x, w, groups=5)
