"""conv2d with groups, and conv2d_backward: against the NumPy references (exact on small
integers), against finite differences in float64, bitwise the same for every thread count."""
import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import same_bits

# (N, C, F, H, W, KH, KW, stride, padding, dilation, groups)
CASES = [
    (1, 3, 4, 7, 7, 3, 3, 1, 1, 1, 1),
    (2, 4, 6, 9, 8, 3, 2, 2, 1, 1, 2),
    (1, 6, 6, 8, 11, 3, 3, 1, "same", 2, 6),  # depthwise
    (3, 8, 12, 6, 6, 1, 1, 1, 0, 1, 4),  # grouped 1x1 through conv2d
    (1, 5, 3, 13, 7, 5, 1, (2, 1), (2, 0), 1, 1),
    (2, 16, 8, 5, 5, 4, 4, 1, 2, 1, 2),
    (1, 2, 2, 7, 7, 7, 7, 2, 3, 1, 1),  # a stem-like 7x7 stride 2
    (2, 32, 24, 9, 10, 3, 3, 1, 1, 1, 2),  # 16 channels a group: the direct kernel reads x in place
    (3, 64, 64, 6, 5, 3, 3, 1, 1, 1, 32),  # ResNeXt-like: 2 channels in, 2 out per group
    (1, 24, 12, 11, 9, 3, 3, 2, 1, 2, 4),  # strided and dilated, through the padded copy
]


def _problem(rng, case, dtype):
    n, c, f, h, w, kh, kw, stride, padding, dilation, groups = case
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)
    weight = rng.integers(-2, 3, (f, c // groups, kh, kw)).astype(dtype)
    bias = rng.integers(-2, 3, f).astype(dtype)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, kw_


@pytest.mark.parametrize("case", CASES, ids=str)
def test_grouped_forward_every_algorithm(isa, dtype, rng, case):
    x, weight, bias, kw = _problem(rng, case, dtype)
    want = reference.conv2d_naive(x, weight, bias, activation="relu", **kw)
    np.testing.assert_array_equal(reference.conv2d(x, weight, bias, activation="relu", **kw), want)
    for algorithm in ("auto", "direct", "im2col"):
        got = onexone.conv2d(x, weight, bias, activation="relu", algorithm=algorithm, **kw)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_backward_matches_reference_exactly(isa, dtype, rng, case):
    x, weight, bias, kw = _problem(rng, case, dtype)
    gy = rng.integers(-3, 4, onexone.conv2d(x, weight, **kw).shape).astype(dtype)
    got = onexone.conv2d_backward(gy, x, weight, **kw)
    want = reference.conv2d_backward(gy, x, weight, **kw)
    for g, r, like in zip(got, want, (x, weight, bias)):
        np.testing.assert_array_equal(g, r)
        assert g.shape == like.shape and g.dtype == dtype


def test_finite_differences_float64(rng):
    n, c, f, h, w = 2, 4, 6, 7, 6
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((f, c // 2, 3, 3))
    bias = rng.standard_normal(f)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    r = rng.standard_normal(onexone.conv2d(x, weight, bias, **kw).shape)

    def loss(xx, ww, bb):
        return float((onexone.conv2d(xx, ww, bb, **kw) * r).sum())

    gx, gw, gb = onexone.conv2d_backward(r, x, weight, **kw)
    eps = 1e-6
    for arr, grad, which in ((x, gx, 0), (weight, gw, 1), (bias, gb, 2)):
        for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(12)]:
            args = [x.copy(), weight.copy(), bias.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            down = loss(*args)
            assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-6 * max(1.0, abs(grad[idx]))


def test_grouped_forward_strided_input(rng):
    # x a channel-strided, column-cropped view: each group's channels are read where they are
    big = rng.integers(-3, 4, (2, 48, 12, 15)).astype(np.float32)
    x = big[:, ::2, :, 1:14]
    weight = rng.integers(-2, 3, (12, 8, 3, 3)).astype(np.float32)
    bias = rng.integers(-2, 3, 12).astype(np.float32)
    want = reference.conv2d_naive(x, weight, bias, padding=1, groups=3)
    for algorithm in ("auto", "direct", "im2col"):
        np.testing.assert_array_equal(onexone.conv2d(x, weight, bias, padding=1, groups=3, algorithm=algorithm), want)


@pytest.mark.parametrize(
    "n,c,f,groups,kw",
    [
        (1, 64, 64, 2, dict(padding=1)),  # 32 filters a group: one full block each
        (2, 12, 96, 3, dict(padding=1)),  # 32 a group, 4 channels a group, two images
        (1, 48, 80, 2, dict(padding=2, dilation=2)),  # 40 a group: a full and a part block
        (1, 32, 64, 4, dict(stride=2, padding=1)),  # 16 a group: less than a block
    ],
)
def test_grouped_forward_on_the_channel_kernel(isa, rng, dtype, n, c, f, groups, kw):
    # the channel-vectorized (fv) direct kernel forced on every direct call: grouped calls
    # run on it (where the ISA has it) and match the exact reference group by group
    from onexone import _core

    x = rng.integers(-3, 4, (n, c, 13, 17)).astype(dtype)
    weight = rng.integers(-2, 3, (f, c // groups, 3, 3)).astype(dtype)
    bias = rng.integers(-4, 5, f).astype(dtype)
    want = np.maximum(reference.conv2d_naive(x, weight, bias, groups=groups, **kw), 0)
    _core._allow_direct_fv(2)
    try:
        before = _core._direct_fv_runs()
        got = onexone.conv2d(x, weight, bias, groups=groups, activation="relu", algorithm="direct", **kw)
        runs = _core._direct_fv_runs() - before
    finally:
        _core._allow_direct_fv(1)
    assert runs == (isa == "avx512")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_grouped_forward_thread_count_invariance(rng):
    x = rng.standard_normal((2, 64, 15, 13)).astype(np.float32)
    weight = rng.standard_normal((96, 8, 3, 3)).astype(np.float32)
    runs = [onexone.conv2d(x, weight, padding=1, groups=8, algorithm="direct", n_threads=t) for t in (1, 2, 3, 8)]
    for other in runs[1:]:
        assert same_bits(runs[0], other)


def test_thread_count_invariance(rng):
    x = rng.standard_normal((2, 32, 14, 14)).astype(np.float32)
    weight = rng.standard_normal((48, 16, 3, 3)).astype(np.float32)
    kw = dict(stride=1, padding=1, groups=2)
    gy = rng.standard_normal(onexone.conv2d(x, weight, **kw).shape).astype(np.float32)
    runs = [onexone.conv2d_backward(gy, x, weight, n_threads=t, **kw) for t in (1, 2, 3, 8)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert same_bits(a, b)


def test_errors():
    x, w = np.ones((1, 6, 5, 5)), np.ones((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"groups=4 must divide the input channels"):
        onexone.conv2d(x, w, groups=4)
    with pytest.raises(ValueError, match=r"expects x with 6 channels \(3 per group x groups=2\), got x of shape \(1, 4, 5, 5\)"):
        onexone.conv2d(np.ones((1, 4, 5, 5)), w, groups=2)
    with pytest.raises(ValueError, match=r"grad_y of shape \(1, 4, 5, 5\) does not match"):
        onexone.conv2d_backward(np.ones((1, 4, 5, 5)), x, w, groups=2)
    with pytest.raises(ValueError, match="need has unknown gradients 'y'"):
        onexone.conv2d_backward(np.ones((1, 4, 3, 3)), x, w, groups=2, need="y")


# ---- depthwise (groups == C): its own kernel under "auto" and "direct" ----------------------
# (N, C, multiplier, H, W, KH, KW, stride, padding, dilation)
DEPTHWISE = [
    (1, 32, 1, 17, 17, 3, 3, 1, 1, 1),  # MobileNet's 3x3, odd map: masked last vectors
    (2, 6, 1, 15, 40, 3, 3, 2, 1, 1),  # stride 2: two column phases
    (1, 5, 2, 9, 11, 5, 3, (1, 3), (2, 0), (2, 1)),  # multiplier 2, mixed stride and dilation
    (3, 24, 1, 7, 7, 3, 3, 1, 1, 1),  # 7x7 maps: several channels a unit
    (1, 2, 1, 150, 170, 3, 3, 1, 1, 1),  # a plane over the band size: bands of rows
    (1, 3, 1, 6, 6, 3, 3, 2**40, 1, 1),  # a stride past the input: one output, small scratch
    (1, 4, 3, 1, 33, 1, 5, 1, (0, 2), 1),  # one row
]


@pytest.mark.parametrize("case", DEPTHWISE, ids=str)
def test_depthwise_exact(isa, dtype, rng, case):
    n, c, mult, h, w, kh, kw, stride, padding, dilation = case
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)
    weight = rng.integers(-2, 3, (c * mult, 1, kh, kw)).astype(dtype)
    bias = rng.integers(-2, 3, c * mult).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    for activation in (None, "relu6"):
        want = reference.conv2d_naive(x, weight, bias, activation=activation, **kwargs)
        for algorithm in ("auto", "direct"):
            got = onexone.conv2d(x, weight, bias, activation=activation, algorithm=algorithm, **kwargs)
            np.testing.assert_array_equal(got, want)
            assert got.dtype == dtype and got.flags.c_contiguous


def test_depthwise_random_values_and_threads(isa, dtype, rng):
    """Random values against the float64 oracle within rounding, a weight with a transposed
    layout (copied for the kernel), and bitwise the same result for every thread count."""
    x = rng.standard_normal((2, 12, 23, 29)).astype(dtype)
    weight = np.asfortranarray(rng.standard_normal((12, 1, 3, 3)).astype(dtype))
    bias = rng.standard_normal(12).astype(dtype)
    kwargs = dict(stride=2, padding=1, groups=12, activation="relu")
    want = reference.conv2d_naive(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64), **kwargs)
    first = onexone.conv2d(x, weight, bias, n_threads=1, **kwargs)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(first, want, rtol=tol, atol=tol)
    for nt in (2, 3, 8):
        assert same_bits(onexone.conv2d(x, weight, bias, n_threads=nt, **kwargs), first)


@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
def test_one_channel_without_groups_runs_the_algorithm_asked(algorithm, monkeypatch):
    """groups=1 with C=1 is not routed to the depthwise kernel: "im2col" stays im2col (the
    checked path, taken here with a list input, once sent a 1-channel im2col call there)."""
    from onexone import _core

    calls = []
    for name in ("conv2d_depthwise_nchw", "conv2d_im2col_nchw", "conv2d_direct_nchw"):
        real = getattr(_core, name)
        monkeypatch.setattr(_core, name, lambda *a, _n=name, _f=real: calls.append(_n) or _f(*a))
    x = np.arange(2 * 1 * 6 * 7, dtype=np.float64).reshape(2, 1, 6, 7)
    w = np.arange(3 * 1 * 3 * 3, dtype=np.float64).reshape(3, 1, 3, 3) - 4
    got = onexone.conv2d(x.tolist(), w, padding=1, algorithm=algorithm)
    np.testing.assert_array_equal(got, reference.conv2d_naive(x, w, padding=1))
    assert "conv2d_depthwise_nchw" not in calls
    if algorithm == "im2col":
        assert calls == ["conv2d_im2col_nchw"]
