"""onexone.conv2d: every algorithm against the NumPy references, on every ISA path.

The shape sweep is a covering design rather than a Cartesian product: every kernel size of
the spec (KH, KW in {1, 2, 3, 4, 5, 7}, and 1x3, 3x1, 2x5) meets every (stride, padding)
pair of the spec (stride 1 and 2; padding 0, 1, 2 and "same", which needs stride 1), with
dilation 1 and 2 alternating along that list (and the other dilation in a second pass), while
batch 1/3, odd C, F, H and W, and the bias/activation variants cycle along. Each case runs
for float32 and float64 on every ISA with all three algorithms, once on random floats
(tolerance scaled with the reduction length C*KH*KW) and once on small integers (exact).
"""
import itertools
import re

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import misaligned, same_bits, tolerance

ALGORITHMS = ("direct", "im2col", "auto")
KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (7, 7), (1, 3), (3, 1), (2, 5)]
STRIDE_PADDING = [(1, 0), (1, 1), (1, 2), (1, "same"), (2, 0), (2, 1), (2, 2)]
VARIANTS = [(False, None), (True, "relu"), (True, None), (False, "relu"), (True, "relu6")]
CS, FS = [1, 3, 5, 7], [1, 3, 5, 9, 13]
HWS = [(13, 17), (15, 11), (9, 19), (17, 13), (11, 15)]


def _cases():
    cases = []
    for k, ((kh, kw), (s, p), dil_pass) in enumerate(itertools.product(KERNELS, STRIDE_PADDING, (0, 1))):
        d = 1 + (k + dil_pass) % 2
        h, w = HWS[k % len(HWS)]
        n = 1 + 2 * (k % 2)
        c, f = CS[k % len(CS)], FS[(k // 2) % len(FS)]
        bias, act = VARIANTS[k % len(VARIANTS)]
        # every kernel fits: the dilated kernel is at most 13 wide, the inputs at least 9
        h, w = max(h, d * (kh - 1) + 1), max(w, d * (kw - 1) + 1)
        cases.append(pytest.param(n, c, f, h, w, kh, kw, s, p, d, bias, act,
                                  id=f"k{kh}x{kw}-s{s}-p{p}-d{d}-N{n}C{c}F{f}-{h}x{w}-b{int(bias)}-{act}"))
    return cases


CASES = _cases()


def _inputs(rng, n, c, f, h, w, kh, kw, dtype, bias, integer):
    if integer:
        x = rng.integers(-4, 5, (n, c, h, w)).astype(dtype)
        wt = rng.integers(-4, 5, (f, c, kh, kw)).astype(dtype)
        b = rng.integers(-64, 65, f).astype(dtype) if bias else None
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((f, c, kh, kw)).astype(dtype)
        b = (rng.standard_normal(f) * 4).astype(dtype) if bias else None
    return x, wt, b


def _amax(a):
    return float(np.max(np.abs(a))) if a is not None and np.size(a) else 0.0


def assert_conv2d_matches(y, x, wt, b, exact=False, **kw):
    """y must be conv2d(x, wt, b, **kw): the float64 oracle within the tolerance of a
    C*KH*KW-term sum (or exactly), the NumPy im2col baseline within twice that."""
    naive = reference.conv2d_naive(x, wt, b, **kw)
    base = reference.conv2d(x, wt, b, **kw)
    assert y.shape == naive.shape and y.dtype == naive.dtype and y.flags.c_contiguous
    if exact:
        np.testing.assert_array_equal(y, naive)
        np.testing.assert_array_equal(y, base)
        return
    k = int(np.prod(np.shape(wt)[1:]))
    tol = tolerance(k, y.dtype, _amax(x), _amax(wt), _amax(b))
    np.testing.assert_allclose(y, naive, rtol=0, atol=tol)
    np.testing.assert_allclose(y, base, rtol=0, atol=2 * tol)


@pytest.mark.parametrize("n, c, f, h, w, kh, kw, s, p, d, bias, activation", CASES)
def test_sweep_random(isa, dtype, rng, n, c, f, h, w, kh, kw, s, p, d, bias, activation):
    x, wt, b = _inputs(rng, n, c, f, h, w, kh, kw, dtype, bias, integer=False)
    for algorithm in ALGORITHMS:
        y = onexone.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation=activation,
                           algorithm=algorithm)
        assert_conv2d_matches(y, x, wt, b, stride=s, padding=p, dilation=d, activation=activation)


@pytest.mark.parametrize("n, c, f, h, w, kh, kw, s, p, d, bias, activation", CASES)
def test_sweep_exact_integers(isa, dtype, rng, n, c, f, h, w, kh, kw, s, p, d, bias, activation):
    x, wt, b = _inputs(rng, n, c, f, h, w, kh, kw, dtype, bias, integer=True)
    for algorithm in ALGORITHMS:
        y = onexone.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation=activation,
                           algorithm=algorithm)
        assert_conv2d_matches(y, x, wt, b, exact=True, stride=s, padding=p, dilation=d,
                              activation=activation)


# Larger shapes: several register tiles of output channels (F > 6) and of pixels, channel
# blocks inside the micro-kernel (C beyond one block), 7x7 and 14x14 maps, a wide stem.
LAYERS = [
    ("r50.c5-like", 1, 40, 20, 7, 7, 3, 3, 1, 1, 1),
    ("r50.c4-like", 1, 33, 17, 14, 14, 3, 3, 1, 1, 1),
    ("deep-C", 2, 130, 7, 30, 30, 3, 3, 1, 1, 1),
    ("incep-5x5", 1, 16, 32, 28, 28, 5, 5, 1, 2, 1),
    ("stem", 1, 3, 8, 64, 64, 7, 7, 2, 3, 1),
    ("valid-wide", 1, 9, 11, 21, 70, 3, 5, 1, 0, 1),
    ("dilated-same", 3, 11, 10, 23, 29, 3, 3, 1, "same", 3),
    ("stride3", 1, 5, 7, 31, 29, 4, 4, 3, 1, 1),
    ("rect-stride", 1, 6, 9, 25, 33, 3, 3, (2, 1), (1, 0), (1, 2)),
    # grids that end 1-4 lanes past whole vectors: those pixels by dot products (direct)
    ("7x7-tail", 2, 24, 13, 7, 7, 3, 3, 1, 1, 1),
    ("14x14-tail", 1, 9, 6, 14, 14, 3, 3, 1, 1, 1),
    ("1-wide-tail", 1, 8, 5, 17, 1, 3, 1, 1, (1, 0), 1),
]


@pytest.mark.parametrize("case", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_layers(isa, dtype, rng, case):
    _, n, c, f, h, w, kh, kw, s, p, d = case
    x, wt, b = _inputs(rng, n, c, f, h, w, kh, kw, dtype, True, integer=False)
    for algorithm in ALGORITHMS:
        y = onexone.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation="relu",
                           algorithm=algorithm)
        assert_conv2d_matches(y, x, wt, b, stride=s, padding=p, dilation=d, activation="relu")


# ---- threads ------------------------------------------------------------------------------

THREAD_SHAPES = [
    # (id, N, C, F, H, W, K, stride, padding): split by pixels, by output channels, by images,
    # and the stride-2 path through the phase-split copy
    ("pixels", 1, 24, 16, 40, 40, 3, 1, 1),
    ("channels", 1, 64, 96, 7, 7, 3, 1, 1),
    ("images", 3, 10, 12, 15, 17, 5, 1, 2),
    # a grid ending 4 lanes past whole vectors (their dot products run in the unit that has
    # the image's last vectors), split by pixels on 3 and 8 threads, two images
    ("pixels-dot-tail", 2, 16, 8, 14, 14, 3, 1, 1),
    ("stride2", 1, 3, 20, 50, 50, 7, 2, 3),
]


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("case", THREAD_SHAPES, ids=[t[0] for t in THREAD_SHAPES])
def test_bitwise_identical_for_any_thread_count(isa, dtype, algorithm, case):
    _, n, c, f, h, w, k, s, p = case
    rng = np.random.default_rng(c * 100 + f)
    x, wt, b = _inputs(rng, n, c, f, h, w, k, k, dtype, True, integer=False)
    kwargs = dict(stride=s, padding=p, activation="relu", algorithm=algorithm)
    y1 = onexone.conv2d(x, wt, b, n_threads=1, **kwargs)
    for nt in (2, 3, 8, None, -1):
        assert same_bits(onexone.conv2d(x, wt, b, n_threads=nt, **kwargs), y1), f"n_threads={nt}"
    assert_conv2d_matches(y1, x, wt, b, stride=s, padding=p, activation="relu")


# ---- layouts, out=, dtypes, special values ----------------------------------------------


def _views(rng, dtype):
    base = rng.standard_normal((2, 5, 12, 30)).astype(dtype)
    return {
        "contiguous": np.ascontiguousarray(base[:, :, :, :13]),
        "row_pitch": base[:, :, :, :13],           # rows wider than the image: read in place
        "step_w": base[:, :, :, ::2],               # columns of stride 2: copied
        "fortran": np.asfortranarray(base[:, :, :, :13]),
        "reversed": base[::-1, ::-1, ::-1, ::-1][..., :13],
        "misaligned": misaligned((2, 5, 12, 13), dtype, fill=base[:, :, :, :13]),
        "readonly": np.ascontiguousarray(base[:, :, :, :13]),
    }


@pytest.mark.parametrize("view", list(_views(np.random.default_rng(0), np.float32)))
def test_input_layouts(isa, dtype, rng, view):
    x = _views(rng, dtype)[view]
    if view == "readonly":
        x.flags.writeable = False
    wt = rng.standard_normal((7, 5, 3, 3)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    for algorithm, padding in itertools.product(ALGORITHMS, (0, 1, 2)):
        y = onexone.conv2d(x, wt, b, padding=padding, algorithm=algorithm)
        assert_conv2d_matches(y, np.ascontiguousarray(x), wt, b, padding=padding)


@pytest.mark.parametrize("view", ["transposed", "step", "fortran", "reversed_kernel"])
def test_weight_layouts(isa, rng, view):
    dtype = np.float32
    x = rng.standard_normal((1, 4, 11, 9)).astype(dtype)
    w0 = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    wt = {
        "transposed": np.ascontiguousarray(w0.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
        "step": np.repeat(w0, 2, axis=0)[::2],     # rows of twice the stride: a view
        "fortran": np.asfortranarray(w0),
        "reversed_kernel": np.ascontiguousarray(w0[:, :, ::-1, ::-1])[:, :, ::-1, ::-1],
    }[view]
    np.testing.assert_array_equal(wt, w0)
    for algorithm in ALGORITHMS:
        y = onexone.conv2d(x, wt, padding=1, algorithm=algorithm)
        assert_conv2d_matches(y, x, w0, None, padding=1)


def test_single_image_and_out(isa, rng):
    x = rng.standard_normal((3, 10, 12)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    for algorithm in ALGORITHMS:
        out = np.full((4, 8, 11), np.nan, np.float32)
        y = onexone.conv2d(x, wt, stride=1, dilation=(1, 1), out=out, algorithm=algorithm)
        assert y is out
        assert_conv2d_matches(y, x, wt, None)


def test_same_padding_even_kernel_is_pytorchs():
    """'same' with an even kernel pads one more at the bottom/right (PyTorch's rule)."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 1  # the top-left pixel
    w = np.zeros((1, 1, 2, 2), np.float32)
    w[0, 0, 0, 0] = 1  # tap (0, 0) reads pixel (ho, wo) itself: no top/left padding
    for algorithm in ALGORITHMS:
        y = onexone.conv2d(x, w, padding="same", algorithm=algorithm)
        assert y.shape == (1, 1, 4, 4)
        assert y[0, 0, 0, 0] == 1 and y.sum() == 1


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 17, 14)).astype(np.float32)
    for (kh, kw), s, p, d in [((3, 3), 1, 1, 1), ((4, 2), 1, "same", 2), ((5, 5), 2, 2, 1),
                              ((7, 7), 2, 3, 1), ((2, 3), (2, 1), (0, 1), (2, 1))]:
        wt = rng.standard_normal((5, 6, kh, kw)).astype(np.float32)
        b = rng.standard_normal(5).astype(np.float32)
        with torch.no_grad():
            expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                                                  torch.from_numpy(b), stride=s, padding=p,
                                                  dilation=d).numpy()
        for algorithm in ALGORITHMS:
            y = onexone.conv2d(x, wt, b, stride=s, padding=p, dilation=d, algorithm=algorithm)
            np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_integer_inputs_promote_to_float64(isa):
    x = np.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    w = np.ones((2, 3, 3, 3), np.int32)
    y = onexone.conv2d(x, w, padding=1)
    assert y.dtype == np.float64
    assert_conv2d_matches(y, x.astype(np.float64), w.astype(np.float64), None, exact=True, padding=1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_inf_propagate_as_the_reference(isa, algorithm):
    """Padding is zeros that are multiplied: an Inf weight makes NaN where it meets padding,
    as in the reference (0 * Inf), and NaN inputs reach every output that reads them."""
    x = np.ones((1, 2, 6, 7), np.float32)
    x[0, 1, 3, 4] = np.nan
    w = np.ones((3, 2, 3, 3), np.float32)
    w[1, 0, 0, 0] = np.inf
    y = onexone.conv2d(x, w, padding=1, activation="relu", algorithm=algorithm)
    expected = reference.conv2d_naive(x, w, padding=1, activation="relu")
    np.testing.assert_array_equal(y, expected)
    assert np.isnan(y).any() and np.isinf(y).any()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_and_degenerate_sizes(isa, algorithm):
    f32 = np.float32
    assert onexone.conv2d(np.ones((0, 3, 5, 5), f32), np.ones((2, 3, 3, 3), f32), algorithm=algorithm).shape == (0, 2, 3, 3)
    assert onexone.conv2d(np.ones((1, 3, 5, 5), f32), np.ones((0, 3, 3, 3), f32), algorithm=algorithm).shape == (1, 0, 3, 3)
    # no input channels: the bias (activated)
    y = onexone.conv2d(np.ones((1, 0, 5, 5), f32), np.ones((2, 0, 3, 3), f32), np.array([1.5, -2], f32),
                       padding=1, activation="relu", algorithm=algorithm)
    np.testing.assert_array_equal(y, np.broadcast_to(np.array([1.5, 0], f32)[None, :, None, None], (1, 2, 5, 5)))
    # an empty image with padding: the output reads padding only
    y = onexone.conv2d(np.ones((1, 2, 0, 3), f32), np.ones((1, 2, 1, 1), f32), np.array([4.0], f32),
                       padding=1, algorithm=algorithm)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 5), 4.0, f32))
    # a kernel exactly as large as the padded input: one output pixel
    x = np.arange(2 * 4 * 3, dtype=f32).reshape(1, 2, 4, 3)
    y = onexone.conv2d(x, np.ones((1, 2, 6, 5), f32), padding=1, algorithm=algorithm)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == x.sum()


# ---- errors -------------------------------------------------------------------------------

FUNCS = [onexone.conv2d, reference.conv2d, reference.conv2d_naive]


def f32(*shape):
    return np.ones(shape, np.float32)


_ro_out = np.empty((1, 2, 2, 2), np.float32)
_ro_out.flags.writeable = False

ERRORS = [
    # (id, x, weight, kwargs, exception, regex the message must match)
    ("x_2d", f32(4, 4), f32(2, 3, 3, 3), {}, ValueError, r"x of shape \(4, 4\)"),
    ("x_5d", f32(1, 1, 3, 4, 4), f32(2, 3, 3, 3), {}, ValueError, r"x of shape \(1, 1, 3, 4, 4\)"),
    ("weight_2d", f32(1, 3, 4, 4), f32(2, 3), {}, ValueError, r"weight of shape \(F, C, KH, KW\), got weight of shape \(2, 3\)"),
    ("weight_5d", f32(1, 3, 4, 4), f32(2, 3, 3, 3, 1), {}, ValueError, r"weight of shape \(2, 3, 3, 3, 1\)"),
    ("kernel_0x3", f32(1, 3, 4, 4), f32(2, 3, 0, 3), {}, ValueError, r"kernel of at least 1x1.*\(2, 3, 0, 3\)"),
    ("channels", f32(1, 4, 8, 8), f32(2, 3, 3, 3), {}, ValueError,
     re.escape("weight of shape (2, 3, 3, 3) expects x with 3 channels, got x of shape (1, 4, 8, 8)")),
    ("bias_long", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"bias": f32(3)}, ValueError, r"bias of shape \(3,\).*\(2, 3, 3, 3\)"),
    ("bias_2d", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"bias": f32(2, 1)}, ValueError, r"bias of shape \(2, 1\)"),
    ("kernel_larger", f32(1, 3, 2, 5), f32(2, 3, 3, 3), {}, ValueError,
     re.escape("kernel of size (3, 3) is larger than the padded input of size (2, 5)")),
    ("kernel_larger_dilated", f32(1, 3, 6, 6), f32(2, 3, 3, 3), {"dilation": 4, "padding": 1}, ValueError,
     re.escape("kernel of size (3, 3) (dilated to (9, 9)) is larger than the padded input of size (8, 8)")),
    ("kernel_larger_w", f32(1, 3, 9, 9), f32(2, 3, 1, 12), {"padding": (0, 1)}, ValueError, r"\(1, 12\).*\(9, 11\)"),
    ("stride_0", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"stride": 0}, ValueError, r"stride must be positive, got stride=0"),
    ("stride_neg_pair", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"stride": (1, -2)}, ValueError, r"stride must be positive, got stride=\(1, -2\)"),
    ("dilation_0", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"dilation": (0, 1)}, ValueError, r"dilation must be positive"),
    ("padding_neg", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"padding": -1}, ValueError, r"padding must be non-negative, got padding=-1"),
    ("padding_neg_pair", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"padding": (1, -1)}, ValueError, r"padding must be non-negative"),
    ("padding_word", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"padding": "full"}, ValueError, r"padding must be .*'valid' or 'same', got 'full'"),
    ("padding_same_strided", f32(1, 3, 8, 8), f32(2, 3, 3, 3), {"padding": "same", "stride": 2}, ValueError,
     r"padding='same' is not supported for strided convolutions"),
    ("stride_triple", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"stride": (1, 1, 1)}, TypeError, r"stride must be an int or a pair"),
    ("stride_float", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"stride": 1.5}, TypeError, r"stride must be an int or a pair.*1\.5"),
    ("dilation_str", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"dilation": "2"}, TypeError, r"dilation must be an int or a pair"),
    ("padding_bool", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"padding": True}, TypeError, r"padding must be an int or a pair"),
    ("algorithm", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"algorithm": "winograd"}, ValueError, r"unknown algorithm 'winograd'"),
    ("activation", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"activation": "gelu"}, ValueError, r"activation 'gelu'"),
    ("out_shape", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"out": f32(1, 2, 4, 4)}, ValueError, r"out has shape \(1, 2, 4, 4\).*\(1, 2, 2, 2\)"),
    ("out_dtype", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"out": np.empty((1, 2, 2, 2))}, ValueError, r"out has dtype float64"),
    ("out_readonly", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"out": _ro_out}, ValueError, r"read-only"),
    ("dtype", f32(1, 3, 4, 4).astype(np.complex64), f32(2, 3, 3, 3), {}, TypeError, r"complex64"),
    ("n_threads_0", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {"n_threads": 0}, ValueError, r"n_threads.*0"),
]


@pytest.mark.parametrize("fn", FUNCS, ids=["onexone", "reference", "naive"])
@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_arguments(fn, case):
    _, x, w, kwargs, exc, match = case
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", None)
    with pytest.raises(exc, match=match):
        fn(x, w, bias, **kwargs)


def test_out_overlapping_x_is_an_error():
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"overlaps x"):
        onexone.conv2d(x, f32(2, 2, 1, 1), out=x)


@pytest.mark.parametrize("shape, kwargs, expected", [
    ((1, 64, 56, 56), dict(k=3, padding=1), "direct"),         # r50.c2.3x3
    ((1, 3, 224, 224), dict(k=7, stride=2, padding=3), "direct"),  # the stem
    ((1, 16, 28, 28), dict(k=7, stride=2, padding=3, f=8), "direct"),  # few filters: im2col packs for 8 rows
    ((1, 2048, 2, 2), dict(k=3, padding=1), "im2col"),         # 4 pixels: the GEMM's dot tail
    ((1, 512, 7, 7), dict(k=3, padding=1), "direct"),          # r50.c5.3x3: 48 lanes + 1 dot
    ((1, 512, 7, 7), dict(k=3, stride=2, padding=1), "direct"),  # 16 pixels + a 4-lane dot tail, F = 64
    ((1, 512, 7, 7), dict(k=3, stride=2, padding=1, f=512), "im2col"),  # the same, F = 512
    ((1, 64, 56, 56), dict(k=1), "1x1"),
    ((1, 64, 56, 56), dict(k=1, stride=2), "1x1"),
])
def test_auto_rule(shape, kwargs, expected):
    """algorithm="auto": the 1x1 GEMM path for 1x1 kernels, the direct kernel unless its grid
    leaves most lanes idle where im2col's would not (all three give the same numbers)."""
    from onexone._args import check_conv2d
    from onexone._ops import _auto_algorithm

    onexone.set_isa("avx512" if "avx512" in onexone.available_isas() else onexone.get_isa())
    k, f = kwargs.pop("k"), kwargs.pop("f", 64)
    x, w = np.ones(shape, np.float32), np.ones((f, shape[1], k, k), np.float32)
    a = check_conv2d(x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0), 1, None, None, "auto")
    if onexone.get_isa() == "avx512" or expected == "1x1":
        assert _auto_algorithm(a) == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fast_path_equals_full_checks(isa, dtype, rng, algorithm):
    """Plain calls (ints, C-contiguous arrays) take a Cython fast path; the same call spelled
    with pairs takes the full checks in _args.py: bitwise the same result."""
    x = rng.standard_normal((2, 9, 13, 11)).astype(dtype)
    w = rng.standard_normal((7, 9, 3, 4)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    for s, p, d in [(1, 1, 1), (2, 2, 1), (1, 0, 2), (1, "same", 2), (1, "valid", 1)]:
        pair = lambda v: v if isinstance(v, str) else (v, v)  # noqa: E731
        fast = onexone.conv2d(x, w, b, stride=s, padding=p, dilation=d, activation="relu", algorithm=algorithm)
        full = onexone.conv2d(x, w, b, stride=pair(s), padding=pair(p), dilation=pair(d), activation="relu",
                              algorithm=algorithm)
        assert same_bits(fast, full), (s, p, d)
        out = np.empty_like(fast)
        assert onexone.conv2d(x, w, b, stride=s, padding=p, dilation=d, activation="relu", algorithm=algorithm,
                              out=out) is out
        assert same_bits(out, fast)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
def test_stride_beyond_the_input(algorithm):
    """A stride larger than the input gives one output pixel per image, as in PyTorch, without
    scratch proportional to the stride (the direct kernel's phase copy used to hold stride**2
    planes per channel: stride=2**40 was a MemoryError)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    for stride in (7, 2000, 2**40, (2**40, 3)):
        y = onexone.conv2d(x, w, b, stride=stride, padding=1, algorithm=algorithm)
        expected = reference.conv2d_naive(x, w, b, stride=stride, padding=1)
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_padding_as_a_numpy_array():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(onexone.conv2d(x, w, padding=np.array([1, 1])), onexone.conv2d(x, w, padding=1))
    np.testing.assert_array_equal(onexone.conv2d(x, w, padding=np.int64(2)), onexone.conv2d(x, w, padding=2))


# ---- the kernel vectorized along output channels (AVX-512) ------------------------------
# The direct algorithm runs it where the ISA has one, 512-bit FMAs run at full width and the
# layer is large enough (192+ output pixels or a small map's rule, 50 MFLOP, output rows of
# 7+ pixels, blocks of 32 channels at least half used); a private switch forces it onto every
# direct call, so the sweep above runs through it too, and another applies the shape tests
# alone, so the rule's shapes are tested on every AVX-512 CPU.


@pytest.fixture
def fv_forced():
    """Runs the body with the channel-vectorized kernel on every direct call, then back to
    the rule."""
    from onexone import _core

    _core._allow_direct_fv(2)
    yield
    _core._allow_direct_fv(1)


@pytest.fixture
def fv_rule_shapes():
    """Runs the body with the rule's shape tests alone deciding (as on a CPU whose 512-bit
    FMAs run at full width, where the rule uses the kernel), then back to the rule."""
    from onexone import _core

    _core._allow_direct_fv(3)
    yield
    _core._allow_direct_fv(1)


def _fv_runs():
    from onexone import _core

    return _core._direct_fv_runs()


@pytest.mark.parametrize("n, c, f, h, w, kh, kw, s, p, d, bias, activation", CASES)
def test_fv_kernel_sweep_exact(isa, dtype, rng, fv_forced, n, c, f, h, w, kh, kw, s, p, d, bias, activation):
    """Every kernel size, stride, padding and dilation of the sweep (taps in runs of 1, 2,
    3, 5 and 7 columns, and at stride 2 in runs that alternate between 2 and 1, 3 and 2, 4
    and 3 columns), rows of 1-7 pixels past whole tiles, F not a multiple of the block."""
    x, wt, b = _inputs(rng, n, c, f, h, w, kh, kw, dtype, bias, integer=True)
    runs = _fv_runs()
    y = onexone.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation=activation, algorithm="direct")
    assert_conv2d_matches(y, x, wt, b, exact=True, stride=s, padding=p, dilation=d, activation=activation)
    assert _fv_runs() == runs + (isa == "avx512")


def test_fv_kernel_only_where_512_bit_fmas_are_full_width(isa, rng):
    """By default the rule uses the kernel only where the FMA probe finds 512-bit FMAs at
    full width (on Zen 4 the pixel kernel is as fast or faster); the same layer with the
    width test left out (the shape tests alone) runs it on every AVX-512 CPU."""
    from onexone import _core

    x, wt, b = _inputs(rng, 1, 48, 40, 42, 42, 3, 3, np.float32, True, integer=True)
    runs = _fv_runs()
    y = onexone.conv2d(x, wt, b, padding=1, algorithm="direct")
    assert _fv_runs() == runs + (isa == "avx512" and _core.fv_full_width())
    assert_conv2d_matches(y, x, wt, b, exact=True, padding=1)
    _core._allow_direct_fv(3)
    try:
        y3 = onexone.conv2d(x, wt, b, padding=1, algorithm="direct")
    finally:
        _core._allow_direct_fv(1)
    assert _fv_runs() == runs + (isa == "avx512") * (1 + _core.fv_full_width())
    assert same_bits(y3, y)  # exact integer sums: the same on either kernel


# Shapes the rule itself sends to the kernel (the packing by 16 x 16 transposes where W's
# columns are contiguous, by a scalar copy for the transposed view and the stem's reordered
# taps: the same bits): 2 blocks of channels (the second part-used),
# rows of 42 and 45 pixels (a 3-pixel tile), runs of 3 and 5, a stride-2 stem (runs of 1),
# dilation 2, a batch of 2, a strided (gapped) input.
FV_LAYERS = [
    ("3x3", 1, 48, 40, 42, 42, 3, 3, 1, 1, 1),
    ("5x5-odd-rows", 1, 24, 33, 30, 45, 5, 5, 1, 2, 1),
    ("stem-s2", 1, 3, 64, 120, 120, 7, 7, 2, 3, 1),
    ("dilated-batch", 2, 48, 40, 26, 30, 3, 3, 1, 2, 2),
    # a small map (196 pixels) and a batch of 10x10 maps: the pixels of the whole call count,
    # C not a multiple of the packing's 16 channels
    ("small-map", 1, 264, 56, 14, 14, 3, 3, 1, 1, 1),
    ("batch-of-small-maps", 2, 260, 64, 10, 10, 3, 3, 1, 1, 1),
    # on one thread each unit packs its own block into the thread's scratch; on 2 and 3,
    # row parts share the blocks, each thread packing the blocks it runs
    ("pack-in-unit", 1, 256, 64, 20, 20, 3, 3, 1, 1, 1),
    # a batch: on one thread W (1.3 MB) packed in a pass (where it fits in half of L2) or
    # block by block, images in block order; on 2 and 3 threads block by block
    ("batch-in-block-order", 2, 520, 70, 10, 10, 3, 3, 1, 1, 1),
    # 7 blocks (the last 8 channels of 32): each unit packs its block on 1, 2 and 3 threads,
    # every thread into its own scratch
    ("pack-in-unit-threads", 1, 96, 200, 14, 14, 3, 3, 1, 1, 1),
]


@pytest.mark.parametrize("case", FV_LAYERS, ids=[c[0] for c in FV_LAYERS])
def test_fv_kernel_by_the_rule(isa, dtype, rng, fv_rule_shapes, case):
    _, n, c, f, h, w, kh, kw, s, p, d = case
    x, wt, b = _inputs(rng, n, c, f, h, w, kh, kw, dtype, True, integer=False)
    kwargs = dict(stride=s, padding=p, dilation=d, activation="relu", algorithm="direct")
    runs = _fv_runs()
    y1 = onexone.conv2d(x, wt, b, n_threads=1, **kwargs)
    assert _fv_runs() == runs + (isa == "avx512")
    assert_conv2d_matches(y1, x, wt, b, stride=s, padding=p, dilation=d, activation="relu")
    for nt in (2, 3):
        assert same_bits(onexone.conv2d(x, wt, b, n_threads=nt, **kwargs), y1), f"n_threads={nt}"
    # a gapped input (copied: the same bits; the pixel-vectorized kernel reads it in place,
    # with another pitch and so other channel blocks) and the weights as a transposed view
    gapped = np.full((n, c, h, w + 5), np.nan, dtype)
    gapped[..., :w] = x
    wt_t = np.ascontiguousarray(wt.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    for y in (onexone.conv2d(gapped[..., :w], wt, b, **kwargs), onexone.conv2d(x, wt_t, b, n_threads=1, **kwargs)):
        if isa == "avx512":
            assert same_bits(y, y1)
        assert_conv2d_matches(y, x, wt, b, stride=s, padding=p, dilation=d, activation="relu")


def test_fv_kernel_on_a_small_map(isa, dtype, rng, fv_rule_shapes):
    # 49 pixels, 100 MFLOP, stride 1: the rule sends float32 to the kernel (each unit packs
    # its block; 11 blocks, the last 10 channels of 32), float64 to the pixel kernel
    x, wt, b = _inputs(rng, 1, 344, 330, 7, 7, 3, 3, dtype, True, integer=False)
    runs = _fv_runs()
    y1 = onexone.conv2d(x, wt, b, padding=1, activation="relu", algorithm="direct", n_threads=1)
    assert _fv_runs() == runs + (isa == "avx512" and dtype == np.float32)
    assert_conv2d_matches(y1, x, wt, b, padding=1, activation="relu")
    for nt in (2, 3):
        y = onexone.conv2d(x, wt, b, padding=1, activation="relu", algorithm="direct", n_threads=nt)
        assert same_bits(y, y1), f"n_threads={nt}"


def test_fv_kernel_exact_on_a_layer(isa, dtype, rng, fv_rule_shapes):
    x, wt, b = _inputs(rng, 1, 48, 40, 42, 42, 3, 3, dtype, True, integer=True)
    runs = _fv_runs()
    y = onexone.conv2d(x, wt, b, padding=1, activation="relu6", algorithm="direct")
    assert _fv_runs() == runs + (isa == "avx512")
    assert_conv2d_matches(y, x, wt, b, exact=True, padding=1, activation="relu6")


@pytest.mark.parametrize(
    "h, w, kh, kw, stride, padding, dw, groups",
    [
        (9, 1, 1, 3, (1, 2), (0, 3), 1, 1),  # one column, wide padding: the pair's edges only
        (5, 70, 3, 3, (2, 2), (1, 1), 1, 1),  # rows of 36 outputs: whole 16-output steps
        (4, 40, 2, 5, (1, 2), (0, 0), 1, 2),  # no padding: the plain loads
        (7, 2, 2, 3, (2, 2), (1, 1), 1, 2),
        (11, 13, 3, 5, (3, 2), (2, 3), 1, 1),  # odd width, padding wider than a phase step
        (8, 12, 3, 3, (1, 2), (0, 0), 3, 2),  # dilation 3: both column phases again
        (13, 17, 7, 7, (2, 2), (3, 3), 1, 1),  # the stem's kernel
    ],
)
@pytest.mark.parametrize("view", [False, True])
def test_stride_two_columns_exact(isa, dtype, rng, fv_forced, h, w, kh, kw, stride, padding, dw, groups, view):
    """At stride 2 along the width the copy makes both column phases of a row in one pass
    (csrc/conv/conv2d.c, phase_copy's pairs): exact against the oracle on every edge, on a
    contiguous x and on a cropped view of a larger one."""
    c, f = 2 * groups, 3 * groups
    big = rng.integers(-4, 5, (2, c, h + 3, w + 5)).astype(dtype)
    x = big[:, :, 1:h + 1, 2:w + 2] if view else np.ascontiguousarray(big[:, :, :h, :w])
    wt = rng.integers(-4, 5, (f, c // groups, kh, kw)).astype(dtype)
    b = rng.integers(-8, 9, f).astype(dtype)
    kw_ = dict(stride=stride, padding=padding, dilation=(1, dw), groups=groups)
    y = onexone.conv2d(x, wt, b, algorithm="direct", **kw_)
    np.testing.assert_array_equal(y, reference.conv2d_naive(x, wt, b, **kw_))


@pytest.mark.parametrize("f_per_group", [16, 32])
def test_fv_kernel_grouped_by_the_rule(isa, dtype, rng, fv_rule_shapes, f_per_group):
    """By the rule's shape tests, a grouped layer runs the channel-vectorized kernel when its
    groups have a block of output channels (32 in float32, 16 in float64), the same bits on
    1, 2 and 3 threads, and the pixel kernel otherwise."""
    groups, c = 2, 96
    x, wt, b = _inputs(rng, 1, c, groups * f_per_group, 48, 48, 3, 3, dtype, True, integer=False)
    wt = np.ascontiguousarray(wt[:, : c // groups])
    kwargs = dict(padding=1, groups=groups, activation="relu", algorithm="direct")
    block = 32 if dtype == np.float32 else 16
    runs = _fv_runs()
    y1 = onexone.conv2d(x, wt, b, n_threads=1, **kwargs)
    assert _fv_runs() == runs + (isa == "avx512" and f_per_group >= block)
    want = reference.conv2d_naive(x, wt, b, padding=1, groups=groups, activation="relu")
    tol = tolerance(c // groups * 9, dtype, _amax(x), _amax(wt), _amax(b))
    np.testing.assert_allclose(y1, want, rtol=0, atol=tol)
    for nt in (2, 3):
        assert same_bits(onexone.conv2d(x, wt, b, n_threads=nt, **kwargs), y1), f"n_threads={nt}"
