"""conv1x1's drop-in features for real networks: stride, groups, channels-last (NHWC),
ReLU6 — against the NumPy references, on every ISA, exact on small integers."""

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import same_bits, traced_peak

# (N, C, F, H, W, stride, groups): odd sizes, tails around the vector widths and tiles,
# ResNet's stride-2 projection, ShuffleNet/ResNeXt groups, depthwise-like groups == C.
CASES = [
    (1, 4, 6, 7, 7, 1, 2),
    (2, 12, 9, 9, 13, 2, 3),
    (1, 16, 16, 14, 14, (2, 1), 16),
    (3, 8, 24, 5, 17, (1, 3), 4),
    (1, 64, 128, 56, 56, 2, 1),
    (1, 96, 48, 13, 7, 1, 8),
    (2, 6, 6, 1, 1, 2, 6),
    (1, 240, 60, 7, 7, 1, 3),
    (1, 33, 11, 20, 3, 3, 11),
]


def _inputs(rng, n, c, f, h, w, groups, dtype, layout):
    x = rng.integers(-4, 5, (n, c, h, w)).astype(dtype)
    weight = rng.integers(-3, 4, (f, c // groups, 1, 1)).astype(dtype)
    bias = rng.integers(-3, 4, f).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, weight, bias


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_stride_groups_layout_exact(isa, dtype, rng, case, layout):
    n, c, f, h, w, stride, groups = case
    x, weight, bias = _inputs(rng, n, c, f, h, w, groups, dtype, layout)
    for act in (None, "relu", "relu6"):
        kw = dict(stride=stride, groups=groups, layout=layout, activation=act)
        y = onexone.conv1x1(x, weight, bias, **kw)
        np.testing.assert_array_equal(y, reference.conv1x1_naive(x, weight, bias, **kw))
        np.testing.assert_array_equal(y, reference.conv1x1(x, weight, bias, **kw))
        assert y.flags.c_contiguous and y.dtype == dtype


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_random_floats_within_tolerance(dtype, rng, layout):
    x, weight, bias = _inputs(rng, 2, 48, 36, 11, 9, 6, dtype, layout)
    x = x + rng.standard_normal(x.shape).astype(dtype)
    kw = dict(stride=2, groups=6, layout=layout, activation="relu6")
    y = onexone.conv1x1(x, weight, bias, **kw)
    r = reference.conv1x1_naive(x, weight, bias, **kw)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y, r, rtol=0, atol=8 * 48 * eps * np.abs(x).max() * 3 + 8 * eps)


def test_relu6_clips_and_keeps_nan():
    x = np.array([[[[-2.0, 3.0, 7.0, np.nan]]]], np.float32)  # (1, 1, 1, 4)
    y = onexone.conv1x1(x, np.ones((1, 1), np.float32), activation="relu6")
    np.testing.assert_array_equal(y[0, 0, 0, :3], [0.0, 3.0, 6.0])
    assert np.isnan(y[0, 0, 0, 3])


def test_nhwc_views_and_3d(isa, dtype, rng):
    base = rng.integers(-4, 5, (3, 10, 12, 8)).astype(dtype)  # (N, H, W, C)
    weight = rng.integers(-3, 4, (5, 8)).astype(dtype)
    # base and base[1:]: the images' pixels continue one sequence (one GEMM over all of
    # them); base[::2], base[::-1]: they do not (a GEMM per image); crops and strided views:
    # the pixels are not one sequence (y^T through the NCHW product, x^T packed in place)
    for x in (base, base[1:], base[::2], base[::-1], base[:, 1:9, 2:11, :], base[:, ::2, ::3, :],
              base[..., ::-1], base[0]):
        y = onexone.conv1x1(x, weight, layout="NHWC")
        np.testing.assert_array_equal(y, reference.conv1x1_naive(x, weight, layout="nhwc"))
        assert y.shape == x.shape[:-1] + (5,)


@pytest.mark.parametrize("n, c, f, h, w, groups, step", [
    (1, 64, 96, 2, 3, 1, 1),
    (3, 96, 64, 3, 1, 4, 1),
    (1, 40, 40, 1, 1, 1, 1),
    (1, 48, 40, 2, 3, 1, 1),  # C*F / (P*(C+F)) = 3.6: the y^T route since its rule asks 2.5
    (12, 512, 512, 7, 7, 1, 2),  # images not in one sequence
    # y^T's tiles stored transposed into y: 4 filters past the last full 8 and 20 pixels (a
    # vector and a 4-column dot-product tail), 28 pixels (a masked second vector), 3 filters
    # past 128 and 49 pixels (3 vectors and a 1-column tail)
    (1, 300, 100, 5, 4, 1, 1),
    (1, 300, 100, 4, 7, 1, 1),
    (2, 2048, 131, 7, 7, 1, 2),
])
def test_nhwc_deep_small_maps(isa, dtype, rng, n, c, f, h, w, groups, step):
    """Deep layers on small maps run NHWC as y^T = W x^T, its tiles stored transposed into y
    (conv1x1.c, nhwc_transposed)."""
    base = rng.integers(-4, 5, (n * step, h, w, c)).astype(dtype)
    x = base[::step]
    weight = rng.integers(-3, 4, (f, c // groups)).astype(dtype)
    bias = rng.integers(-3, 4, f).astype(dtype)
    for act in (None, "relu"):
        kw = dict(groups=groups, layout="NHWC", activation=act)
        y = onexone.conv1x1(x, weight, bias, **kw)
        np.testing.assert_array_equal(y, reference.conv1x1(x, weight, bias, **kw))
    xf = x + rng.standard_normal(x.shape).astype(dtype)
    ys = [onexone.conv1x1(xf, weight, bias, groups=groups, layout="NHWC", n_threads=t) for t in (1, 2, 3)]
    assert same_bits(ys[0], ys[1]) and same_bits(ys[0], ys[2])


@pytest.mark.parametrize("c, f, p", [(5, 24, 13), (300, 21, 9), (144, 24, 3136), (7, 22, 1)])
def test_nhwc_21_to_24_filters(isa, dtype, rng, c, f, p):
    """NHWC with F = 21..24 runs the AVX-512 half-width tile (float32)."""
    x = rng.integers(-4, 5, (1, 1, p, c)).astype(dtype)
    weight = rng.integers(-3, 4, (f, c)).astype(dtype)
    bias = rng.integers(-3, 4, f).astype(dtype)
    for act in (None, "relu6"):
        y = onexone.conv1x1(x, weight, bias, layout="NHWC", activation=act)
        np.testing.assert_array_equal(y, reference.conv1x1(x, weight, bias, layout="NHWC", activation=act))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_stride_does_not_copy_x(rng, layout):
    """The strided pixels are read while packing, never gathered into a copy of x first."""
    x = rng.standard_normal((1, 256, 112, 112)).astype(np.float32)
    w = rng.standard_normal((64, 256)).astype(np.float32)
    out = np.empty((1, 64, 56, 56), np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        out = np.empty((1, 56, 56, 64), np.float32)
    onexone.conv1x1(x, w, stride=2, out=out, layout=layout)
    _, peak = traced_peak(lambda: onexone.conv1x1(x, w, stride=2, out=out, layout=layout))
    assert peak < x.nbytes // 16, f"peak allocation {peak} bytes for x of {x.nbytes}"
    np.testing.assert_allclose(out, reference.conv1x1(x, w, stride=2, layout=layout), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_thread_count_invariance(rng, layout):
    x, weight, bias = _inputs(rng, 3, 96, 64, 15, 15, 4, np.float32, layout)
    x = x + rng.standard_normal(x.shape).astype(np.float32)
    kw = dict(stride=2, groups=4, layout=layout, activation="relu")
    ys = [onexone.conv1x1(x, weight, bias, n_threads=t, **kw) for t in (1, 2, 3, 8)]
    for y in ys[1:]:
        assert same_bits(ys[0], y)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(groups=3), ValueError, r"groups=3 must divide the input channels: x of shape \(1, 8, 4, 4\) has 8"),
        (dict(groups=0), ValueError, "groups must be a positive int"),
        (dict(groups=-2), ValueError, "groups must be a positive int"),
        (dict(groups=2.0), TypeError, "groups must be a positive int"),
        (dict(stride=0), ValueError, "stride must be positive"),
        (dict(stride=-1), ValueError, "stride must be positive"),
        (dict(stride=1.5), TypeError, "stride must be an int or a pair"),
        (dict(stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
        (dict(stride=True), TypeError, "stride must be an int or a pair"),
        (dict(layout="NWHC"), ValueError, "unknown layout 'NWHC'"),
        (dict(activation="gelu"), ValueError, "unknown activation 'gelu'"),
    ],
)
def test_errors(kwargs, exc, match):
    x = np.ones((1, 8, 4, 4), np.float32)
    w = np.ones((6, 8, 1, 1), np.float32)  # checks on groups/stride come before the weight's
    with pytest.raises(exc, match=match):
        onexone.conv1x1(x, w, **kwargs)


def test_group_channel_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"weight of shape \(6, 3, 1, 1\) expects x with 6 channels \(3 per group x groups=2\), got x of shape \(1, 8, 4, 4\)"):
        onexone.conv1x1(np.ones((1, 8, 4, 4)), np.ones((6, 3, 1, 1)), groups=2)
    with pytest.raises(ValueError, match=r"groups=4 must divide the output channels: weight of shape \(6, 2, 1, 1\) has 6 filters"):
        onexone.conv1x1(np.ones((1, 8, 4, 4)), np.ones((6, 2, 1, 1)), groups=4)
