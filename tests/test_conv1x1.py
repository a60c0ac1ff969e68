"""Correctness of onexone.conv1x1 against the NumPy references, on every ISA path.

The shape sweep is a covering design rather than a Cartesian product: every C of the spec's
list meets three F's (and every F three C's), spatial sizes cycle through 1x1, 7x7, 13x17,
56x56 and the sizes around the vector width (16/8 lanes), the register tile's width
(48/24/16/8 columns, 6 or 4 rows), NC = 512 columns and KC = 256 (f32) / 128 (f64)
channels, 21-24 columns (the AVX-512 half-width set); bias/activation variants cycle along. Each case runs for float32 and float64 on
every ISA, once on random floats (C-scaled tolerance) and once on small integers (exact).
"""
import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import ACTIVATIONS, _amax, assert_matches_references, make_inputs, same_bits, tolerance

CS = [1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 300]
FS = [1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 300]
# 1x1, 7x7, 13x17, 56x56, then P around 16/8 lanes and 48/24/16/8-column tiles
HWS = [(1, 1), (7, 7), (13, 17), (56, 56), (3, 5), (4, 4), (1, 17), (6, 8), (1, 47), (97, 1), (5, 19), (8, 12)]
VARIANTS = [(False, None), (True, "relu"), (True, None), (False, "relu"), (True, "relu6"), (False, "relu6")]
MAX_MACS = 3_000_000  # keeps the float64 einsum oracle and the scalar ISA fast


def _cases():
    cases = []
    k = 0

    def add(n, c, f, h, w, tag):
        nonlocal k
        bias, act = VARIANTS[k % len(VARIANTS)]
        k += 1
        cases.append(pytest.param(n, c, f, h, w, bias, act, id=f"{tag}-N{n}C{c}F{f}-{h}x{w}-b{int(bias)}-{act}"))

    # every C with three F's, every F with three C's; spatial sizes cycle, largest that fits
    hw_i = 0
    for i, c in enumerate(CS):
        for j in range(3):
            f = FS[(i + 4 * j + 1) % len(FS)]
            n = 1 + 2 * ((i + j) % 2)
            for _ in range(len(HWS)):
                h, w = HWS[hw_i % len(HWS)]
                hw_i += 1
                if n * c * f * h * w <= MAX_MACS:
                    break
            else:
                h, w = 1, 1
            add(n, c, f, h, w, "sweep")
    # K blocking: KC = 256 (f32), 128 (f64): just below, at, above one and two blocks
    for i, c in enumerate([127, 128, 129, 255, 256, 257, 511, 512, 513]):
        add(1 + 2 * (i % 2), c, (7, 13, 6)[i % 3], 3, 5, "kc")
    # N blocking: NC = 512 columns (P = H*W), one and two blocks
    for i, (h, w) in enumerate([(1, 511), (16, 32), (19, 27), (1023, 1), (32, 32), (25, 41)]):
        add(1 + 2 * (i % 2), (3, 17)[i % 2], (5, 13)[i % 2], h, w, "nc")
    # whole layers (the benchmark's shapes and a wide 56x56 one)
    for n, c, f, h, w in [(1, 256, 64, 56, 56), (1, 2048, 512, 7, 7), (1, 192, 16, 28, 28), (3, 65, 63, 56, 56), (1, 300, 300, 13, 17)]:
        add(n, c, f, h, w, "layer")
    # register tiles: rows (MR = 6, scalar 4) and columns around 8/16/24/48/96
    for i, p in enumerate([7, 8, 9, 15, 16, 17, 23, 24, 25, 47, 48, 49, 95, 96, 97]):
        add(1, (2, 16, 65)[i % 3], (4, 5, 6, 7, 12, 13)[i % 6], 1, p, "tile")
    # 21-24 columns: the half-width set on AVX-512 (f32), with row tails and two K blocks
    for i, (c, p) in enumerate([(300, 21), (17, 22), (520, 24), (3, 23)]):
        add(1 + 2 * (i % 2), c, (9, 17, 3, 8)[i], 1, p, "narrow")
    return cases


CASES = _cases()


@pytest.mark.parametrize("n, c, f, h, w, bias, activation", CASES)
def test_sweep_random(isa, dtype, rng, n, c, f, h, w, bias, activation):
    x, wt, b = make_inputs(rng, (n, c, h, w), f, dtype, bias=bias)
    y = onexone.conv1x1(x, wt.reshape(f, c, 1, 1), b, activation=activation)
    assert_matches_references(y, x, wt, b, activation)


@pytest.mark.parametrize("n, c, f, h, w, bias, activation", CASES)
def test_sweep_exact_integers(isa, dtype, rng, n, c, f, h, w, bias, activation):
    x, wt, b = make_inputs(rng, (n, c, h, w), f, dtype, bias=bias, integer=True)
    y = onexone.conv1x1(x, wt, b, activation=activation)
    assert_matches_references(y, x, wt, b, activation, exact=True)


def test_sweep_covers_the_spec():
    """The covering design really covers: every C and F of the spec's list, with several
    partners each, the named spatial sizes, both batch sizes, every bias/activation variant."""
    seen_c, seen_f, seen_hw, seen_n, seen_var = {}, {}, set(), set(), set()
    for p in CASES:
        n, c, f, h, w, bias, act = p.values
        seen_c.setdefault(c, set()).add(f)
        seen_f.setdefault(f, set()).add(c)
        seen_hw.add((h, w))
        seen_n.add(n)
        seen_var.add((bias, act))
    for c in CS:
        assert len(seen_c[c]) >= 3, c
    for f in FS:
        assert len(seen_f[f]) >= 3, f
    assert {(1, 1), (7, 7), (13, 17), (56, 56)} <= seen_hw
    assert {h * w for h, w in seen_hw} >= {511, 512, 513, 1023, 1024, 1025, 47, 48, 49, 15, 16, 17}
    assert seen_n == {1, 3}
    assert seen_var == set(VARIANTS)


def test_tolerance_is_meaningful():
    """The float32 tolerance is far below the effect of one wrong product term."""
    tol = tolerance(300, np.float32, 4.0, 4.0)
    assert 1e-4 < tol < 0.01


def test_float64_is_computed_in_float64(isa):
    """1 + 2**-40 is not a float32: a float64 kernel that computes in float32 loses it."""
    x = np.zeros((1, 3, 2, 20))
    x[0, 0] = 1.0
    x[0, 1] = 2.0**-40
    x[0, 2] = 2.0**-45
    w = np.ones((2, 3))
    y = onexone.conv1x1(x, w, np.array([0.0, 2.0**-50]))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y[0, 0], 1 + 2.0**-40 + 2.0**-45)
    np.testing.assert_array_equal(y[0, 1], 1 + 2.0**-40 + 2.0**-45 + 2.0**-50)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_3d_input_is_one_image(isa, dtype, rng, activation):
    x, w, b = make_inputs(rng, (17, 9, 11), 13, dtype, bias=True, integer=True)
    y = onexone.conv1x1(x, w, b, activation=activation)
    assert y.shape == (13, 9, 11)
    assert_matches_references(y, x, w, b, activation, exact=True)
    np.testing.assert_array_equal(y, onexone.conv1x1(x[None], w, b, activation=activation)[0])


def test_weight_2d_and_4d_agree(isa, dtype, rng):
    x, w, b = make_inputs(rng, (2, 33, 7, 9), 10, dtype, bias=True)
    y2 = onexone.conv1x1(x, w, b)
    y4 = onexone.conv1x1(x, w[:, :, None, None], b)
    np.testing.assert_array_equal(y2, y4)
    assert_matches_references(y2, x, w, b)


def test_relu_and_relu6_clip(isa, dtype):
    """Values straddling 0 and 6: relu and relu6 cut exactly there (bias-only rows)."""
    x = np.ones((1, 1, 1, 50), dtype)
    w = np.zeros((12, 1), dtype)
    b = np.array([-10, -1, -0.5, 0, 0.5, 1, 5.5, 6, 6.5, 7, 100, -100], dtype)
    ref = b[None, :, None, None] * np.ones((1, 1, 1, 50), dtype)
    np.testing.assert_array_equal(onexone.conv1x1(x, w, b), ref)
    np.testing.assert_array_equal(onexone.conv1x1(x, w, b, activation="relu"), np.maximum(ref, 0))
    np.testing.assert_array_equal(onexone.conv1x1(x, w, b, activation="relu6"), np.clip(ref, 0, 6))


# ---- NaN and Inf ------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nan_inf_propagate_like_the_reference(isa, dtype, rng, activation):
    x, w, b = make_inputs(rng, (2, 21, 3, 37), 9, dtype, bias=True, integer=True)
    x[0, 1, 1, 2] = np.nan
    x[1, 2, 0, 0] = np.inf
    x[1, 3, 2, 36] = -np.inf
    x[0, 20, 2, 17] = np.inf
    w[2, :] = 0  # 0 * Inf and 0 * NaN are NaN: the zero row must not be skipped
    w[3, 3] = 0
    w[4, 20] = 0
    w[5, 7] = np.nan
    b[6] = np.nan
    b[7] = np.inf
    b[8] = -np.inf
    with np.errstate(invalid="ignore"):
        y = onexone.conv1x1(x, w, b, activation=activation)
        ref = reference.conv1x1_naive(x, w, b, activation=activation)
        ref2 = reference.conv1x1(x, w, b, activation=activation)
    np.testing.assert_array_equal(y, ref)  # NaNs compare equal position by position
    np.testing.assert_array_equal(y, ref2)
    # the spec's two examples, explicitly
    assert np.isnan(y[0, 2, 1, 2]) and np.isnan(y[1, 2, 0, 0])  # 0*NaN, 0*Inf
    assert np.isnan(y[:, 5]).all()  # a NaN weight poisons its whole row
    assert np.isnan(y[:, 6]).all()  # ReLU(NaN) is NaN
    if activation is None:
        assert np.isposinf(y[0, 7, 0, 0]) and np.isneginf(y[0, 8, 0, 0])
    else:
        assert y[0, 8, 0, 0] == 0  # ReLU(-Inf)
        assert y[0, 7, 0, 0] == (np.inf if activation == "relu" else 6)


def test_zero_weight_times_inf_is_nan_everywhere(isa, dtype):
    """A weight of all zeros must still multiply: every output next to an Inf is NaN."""
    x = np.full((1, 70, 5, 53), np.inf, dtype)
    w = np.zeros((7, 70), dtype)
    y = onexone.conv1x1(x, w, activation="relu")
    assert np.isnan(y).all()


# ---- empty shapes, C == 0 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "xshape, F",
    [((0, 3, 4, 4), 2), ((2, 3, 0, 4), 2), ((2, 3, 4, 0), 2), ((2, 3, 4, 4), 0), ((0, 0, 0, 0), 0), ((3, 0, 5), 2)],
)
def test_zero_size_gives_empty_result(isa, dtype, xshape, F):
    C = xshape[-3]
    x = np.ones(xshape, dtype)
    w = np.ones((F, C, 1, 1), dtype)
    b = np.ones(F, dtype)
    y = onexone.conv1x1(x, w, b, activation="relu")
    expected_shape = (F,) + xshape[1:] if len(xshape) == 3 else (xshape[0], F) + xshape[2:]
    assert y.shape == expected_shape
    assert y.dtype == dtype
    assert y.shape == reference.conv1x1(x, w, b, activation="relu").shape
    out = np.empty(expected_shape, dtype)
    assert onexone.conv1x1(x, w, b, out=out) is out


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("xshape", [(2, 0, 3, 50), (0, 1, 1), (1, 0, 1, 1)])
def test_zero_channels_give_the_bias(isa, dtype, activation, xshape):
    F = 6
    x = np.empty(xshape, dtype)
    w = np.empty((F, 0), dtype)
    b = np.array([-3, -0.5, 0.5, 4, 7, np.nan], dtype)
    out_shape = (xshape[0], F) + xshape[2:] if len(xshape) == 4 else (F,) + xshape[1:]
    out = np.full(out_shape, 12345, dtype)  # must be overwritten, not accumulated into
    y = onexone.conv1x1(x, w, b, activation=activation, out=out)
    assert y is out
    per_f = reference.activate(b.copy(), activation)
    expected = np.broadcast_to(per_f.reshape((F, 1, 1) if len(xshape) == 3 else (1, F, 1, 1)), out_shape)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y, reference.conv1x1_naive(x, w, b, activation=activation))
    # and without a bias: zeros
    y0 = onexone.conv1x1(x, w, activation=activation, out=np.full(out_shape, np.nan, dtype))
    np.testing.assert_array_equal(y0, np.zeros(out_shape, dtype))


# The GEMM's full-K route (csrc/gemm/gemm.c, run_block_full_k): K longer than one KC block
# and an image's B within half of L2, each micro-kernel call runs all of K. With the route
# switched off, the same numbers go through the KC-blocked route: both must agree bitwise (an
# element's FMA chain over K is the same, and the dot-product tail keeps its KC blocks), with
# B read in place or packed (a view with a gap after each row, stride 2, NHWC), for any thread
# count, and equal the reference exactly on small integers.
FULL_K_CASES = [
    (1, 2048, 512, 7, 7, 1),   # r50.c5.reduce: 3 vectors + a 1-column dot tail, 8 K blocks
    (1, 512, 2048, 7, 7, 1),   # r50.c5.expand
    (2, 600, 37, 6, 8, 1),     # 48 columns (no tail), K not a multiple of KC, a row tail
    (1, 300, 20, 7, 7, 1),     # f64: KC = 128, 3 blocks
    (1, 1024, 64, 7, 7, 2),    # groups: each group's K = 512
    (3, 520, 9, 1, 17, 1),     # 17 columns: one vector and a 1-column tail
    (1, 1030, 13, 14, 14, 1),  # r50.c4.reduce-like: 12 vectors + a 4-column tail
]


def _gapped(x):
    """x's values in a view whose rows are followed by 3 unused elements (B not contiguous)."""
    n, c, h, w = x.shape
    big = np.full((n, c, h, w + 3), np.nan, x.dtype)
    big[..., :w] = x
    return big[..., :w]


@pytest.fixture
def blocked_route():
    """Runs the body with the full-K route switched off, and switches it back on."""
    from onexone import _core

    _core._allow_full_k(False)
    yield
    _core._allow_full_k(True)


@pytest.mark.parametrize("n, c, f, h, w, groups", FULL_K_CASES, ids=str)
def test_full_k_route_exact(isa, dtype, rng, n, c, f, h, w, groups):
    xi = rng.integers(-4, 5, (n, c, h, w)).astype(dtype)
    wi = rng.integers(-4, 5, (f, c // groups, 1, 1)).astype(dtype)
    bi = rng.integers(-64, 65, f).astype(dtype)
    for x in (xi, _gapped(xi)):
        y = onexone.conv1x1(x, wi, bi, groups=groups, activation="relu")
        np.testing.assert_array_equal(y, reference.conv1x1(xi, wi, bi, groups=groups, activation="relu"))


def _route_calls(x, wt, b, groups):
    xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for nt in (1, 2, 3):
        kw = dict(groups=groups, n_threads=nt)
        yield onexone.conv1x1(x, wt, b, **kw)
        yield onexone.conv1x1(_gapped(x), wt, b, **kw)
        yield onexone.conv1x1(x, wt, b, stride=2, **kw)
        yield onexone.conv1x1(xn, wt, b, layout="NHWC", **kw)


@pytest.fixture
def no_pairs():
    """GEMMs that fit the pairs sets on their other tiles: the pairs sets' two chains per sum
    (even and odd k) meet at the end of each K block, so their blocked route rounds
    differently (test_pairs_set checks both of their routes)."""
    from onexone import _core
    _core._pairs_mode(1)
    yield
    _core._pairs_mode(0)


@pytest.mark.parametrize("n, c, f, h, w, groups", FULL_K_CASES, ids=str)
def test_full_k_route_equals_blocked_route(isa, dtype, rng, n, c, f, h, w, groups, request, no_pairs):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    from onexone import _core

    runs = _core._full_k_runs()
    full = list(_route_calls(x, wt, b, groups))
    # the contiguous NCHW calls took it, wherever L2 holds at least 2 * 400 KiB (the c5 case)
    if c * h * w * np.dtype(dtype).itemsize <= _core.l2_bytes() // 2:
        assert _core._full_k_runs() >= runs + 3
    request.getfixturevalue("blocked_route")
    runs = _core._full_k_runs()
    blocked = list(_route_calls(x, wt, b, groups))
    assert _core._full_k_runs() == runs
    for k, (y1, y2) in enumerate(zip(full, blocked)):
        assert same_bits(y1, y2), k
    r = reference.conv1x1_naive(x, wt, b, groups=groups)
    tol = tolerance(c // groups, dtype, np.abs(x).max(), np.abs(wt).max(), np.abs(b).max())
    np.testing.assert_allclose(full[0], r, rtol=0, atol=tol)


@pytest.fixture(params=[0, 1], ids=["peel-by-rule", "peel-always"])
def peel_mode(request):
    """The peel as gemm.c's rule says (on Zen 4 only where the part holding it is 64+
    vectors wide), and always."""
    from onexone import _core
    _core._peel_mode(request.param)
    yield request.param
    _core._peel_mode(0)


# B read in place whose rows start past a vector boundary (NumPy's large arrays start 16 bytes
# past a 64-byte one): the first columns up to the boundary run as a narrow block (the peel:
# where gemm.c's rule says, and always with peel-always), so every later tile loads aligned
# vectors and the threads' column parts start after it. Where x and y start must not
# change a bit of the result: the same values at every offset of a cache line, against the
# 64-byte-aligned copy, on 1-3 threads.
def _at_offset(a, offset_bytes):
    """a's values in a C-contiguous array that starts offset_bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset_bytes
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("n, c, f, h, w, groups", [
    (1, 256, 64, 56, 56, 1),   # r50.c2.reduce: 3136 columns
    (2, 40, 24, 16, 16, 2),    # batch and groups, 256 columns
    (1, 300, 20, 7, 16, 1),    # full-K route (K > KC), 112 columns
    (1, 16, 96, 32, 33, 1),    # rows of 1056 columns: no common phase when es * 1056 % 64 != 0
])
def test_result_does_not_depend_on_where_x_and_y_start(isa, dtype, rng, peel_mode, n, c, f, h, w, groups):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    y0 = onexone.conv1x1(_at_offset(x, 0), wt, b, groups=groups, activation="relu", n_threads=1)
    itemsize = np.dtype(dtype).itemsize
    for off in range(itemsize, 64, itemsize * 3):
        for nt in (1, 2, 3):
            y = np.empty_like(y0)
            yo = _at_offset(y, (64 - off) % 64)
            r = onexone.conv1x1(_at_offset(x, off), wt, b, groups=groups, activation="relu",
                                out=yo, n_threads=nt)
            assert r is yo and same_bits(yo, y0), (off, nt)
    r = reference.conv1x1_naive(x, wt, b, groups=groups, activation="relu")
    tol = tolerance(c // groups, dtype, np.abs(x).max(), np.abs(wt).max(), np.abs(b).max())
    np.testing.assert_allclose(y0, r, rtol=0, atol=tol)


# A channel-strided view whose rows are whole cache lines apart but hold a number of pixels
# that is not a multiple of the vector (132 = 8 x 16 + 4): the column parts of 2-3 threads
# start after the peel, and the last one ends in the dot-product tail (float32; float64's
# vector holds 8). Same bits at every offset and thread count; the values against the
# reference.
@pytest.mark.parametrize("h, w", [(11, 12), (10, 10)])
def test_peel_with_column_parts_and_a_tail(isa, dtype, rng, peel_mode, h, w):
    c, f = 64, 48  # enough work for 2-3 threads (gemm.c: OXO_MIN_FLOPS_PER_THREAD)
    base = rng.standard_normal((1, 4 * c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    y0 = onexone.conv1x1(np.ascontiguousarray(base[:, ::4]), wt, b, n_threads=1)
    itemsize = np.dtype(dtype).itemsize
    for off in range(0, 64, itemsize):
        x = _at_offset(base, off)[:, ::4]
        for nt in (1, 2, 3):
            assert same_bits(onexone.conv1x1(x, wt, b, n_threads=nt), y0), (off, nt)
    r = reference.conv1x1_naive(base[:, ::4], wt, b)
    tol = tolerance(c, dtype, np.abs(base).max(), np.abs(wt).max(), np.abs(b).max())
    np.testing.assert_allclose(y0, r, rtol=0, atol=tol)


# GEMMs 21-24 columns wide run on the half-width set or, where the FMA probe finds 512-bit
# FMAs at full width, on the full set's tile with its second vector masked: NHWC with F = 21-24
# and NCHW maps of 21-24 pixels, with row tails and two K blocks. Both give the same bits.
NARROW_CASES = [(1, 144, 24, 7, 8, "NHWC"), (2, 300, 21, 5, 5, "NHWC"), (1, 520, 23, 3, 3, "NHWC"),
                (3, 17, 22, 1, 1, "NHWC"), (1, 64, 40, 3, 8, "NCHW"), (2, 300, 9, 1, 21, "NCHW")]


@pytest.mark.parametrize("n, c, f, h, w, layout", NARROW_CASES, ids=str)
def test_narrow_columns_both_tiles(isa, dtype, rng, n, c, f, h, w, layout):
    from onexone import _core

    x, wt, b = make_inputs(rng, (n, c, h, w), f, dtype, bias=True)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    ys = []
    _core._pairs_mode(1)  # the pairs set sums in two chains: compared in test_pairs_set
    try:
        for mode in (1, 2, 0):
            _core._narrow_mode(mode)
            for nt in (1, 2):
                y = onexone.conv1x1(xin, wt.reshape(f, c, 1, 1), b, activation="relu", layout=layout, n_threads=nt)
                ys.append(np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if layout == "NHWC" else y)
    finally:
        _core._narrow_mode(0)
        _core._pairs_mode(0)
    assert_matches_references(ys[0], x, wt, b, "relu")
    for y in ys[1:]:
        assert same_bits(y, ys[0])


# GEMMs at most one vector wide run on the ISA's tall set where it has one (16 rows x 1 zmm on
# AVX-512 float32): NHWC with F = 9-16 and NCHW maps of 9-16 pixels (and narrower ones with
# strided pixels), with every row tail of a 16-row tile, two K blocks, batches and a ReLU.
# Exact on small integers, and the same bits as the full set's tile.
TALL_CASES = [(1, 300, 16, 5, 7, "NHWC", 1), (2, 40, 9, 3, 11, "NHWC", 1), (1, 17, 13, 1, 1, "NHWC", 1),
              (3, 64, 12, 2, 3, "NHWC", 1), (1, 300, 37, 4, 4, "NCHW", 1), (2, 33, 16, 3, 3, "NCHW", 1),
              (1, 520, 70, 3, 5, "NCHW", 1), (2, 9, 31, 7, 7, "NCHW", 2), (1, 24, 32, 6, 5, "NHWC", 1)]


@pytest.mark.parametrize("n, c, f, h, w, layout, stride", TALL_CASES, ids=str)
def test_one_vector_wide_gemms_on_the_tall_tile(isa, dtype, rng, n, c, f, h, w, layout, stride):
    from onexone import _core

    x, wt, b = make_inputs(rng, (n, c, h, w), f, dtype, bias=True, integer=True)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    ys = []
    _core._pairs_mode(1)
    try:
        for mode in (2, 0):  # the tall set wherever the ISA has it, then never
            _core._allow_tall(mode)
            for nt in (1, 2):
                y = onexone.conv1x1(xin, wt, b, activation="relu", layout=layout, stride=stride, n_threads=nt)
                ys.append(np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if layout == "NHWC" else y)
    finally:
        _core._allow_tall(True)
        _core._pairs_mode(0)
    assert_matches_references(ys[0], x[:, :, ::stride, ::stride], wt, b, "relu", exact=True)
    for y in ys[1:]:
        assert same_bits(y, ys[0])


# GEMMs 64 or 128 columns wide with B packed (NHWC with F = 64 or 128) run on the wide set's
# 6 x 64 tile where the ISA has one (AVX-512 float32): every row tail of a 6-row tile, two K
# blocks, groups (64 filters a group), batches and 1-3 threads. Exact on small integers, and
# the same bits as the 8 x 48 tile (an element's FMA chain does not depend on the tile).
def _nhwc_integer_case(rng, dtype, n, c, f, h, w, groups, activation):
    """Small-integer NHWC x, weight (f, c/groups, 1, 1) and bias, and the exact result."""
    xi = rng.integers(-4, 5, (n, h, w, c)).astype(dtype)
    wi = rng.integers(-4, 5, (f, c // groups, 1, 1)).astype(dtype)
    bi = rng.integers(-64, 65, f).astype(dtype)
    want = reference.conv1x1_naive(np.ascontiguousarray(xi.transpose(0, 3, 1, 2)), wi, bi, groups=groups,
                                   activation=activation).transpose(0, 2, 3, 1)
    return xi, wi, bi, want


WIDE_CASES = [(1, 144, 64, 7, 8, 1), (2, 300, 128, 5, 5, 1), (1, 520, 64, 3, 7, 1), (3, 17, 128, 1, 1, 1),
              (2, 96, 128, 4, 4, 2), (1, 256, 64, 20, 20, 1)]


@pytest.mark.parametrize("n, c, f, h, w, groups", WIDE_CASES, ids=str)
def test_wide_tile_same_bits(isa, dtype, rng, n, c, f, h, w, groups):
    from onexone import _core

    wt_shape = (f, c // groups, 1, 1)
    xi, wi, bi, want = _nhwc_integer_case(rng, dtype, n, c, f, h, w, groups, "relu")
    xr = rng.standard_normal((n, h, w, c)).astype(dtype)
    wr = rng.standard_normal(wt_shape).astype(dtype)
    ys = []
    try:
        for allow in (True, False):
            _core._allow_wide(allow)
            for nt in (1, 2, 3):
                y = onexone.conv1x1(xi, wi, bi, groups=groups, layout="NHWC", activation="relu", n_threads=nt)
                np.testing.assert_array_equal(y, want)
                ys.append(onexone.conv1x1(xr, wr, bi, groups=groups, layout="NHWC", n_threads=nt))
    finally:
        _core._allow_wide(True)
    for y in ys[1:]:
        assert same_bits(y, ys[0])


# GEMMs at most 24 columns wide whose A is contiguous along K (NHWC with F <= 24) run on the
# pairs set where the ISA has one (AVX-512 float32): a vector holds 8 columns x 2 steps of K,
# each sum two FMA chains (even and odd k). Every tile (8 rows x 1-3 vectors, 16 x 1) with row
# tails, odd K (its last step under a mask), two K blocks (the second continues C), groups and
# batches, and calls big enough for 2-3 threads: rows split between them, and (16 pixels, 24
# filters) columns, a part's block starting at column 8 or 16. Exact on small integers, the
# same bits on 1-3 threads, and within rounding of the other tiles on random data.
PAIRS_CASES = [(1, 144, 24, 7, 8, 1), (2, 33, 21, 5, 5, 1), (1, 301, 17, 3, 5, 1), (3, 17, 16, 1, 3, 1),
               (1, 520, 12, 5, 3, 1), (2, 1, 9, 4, 4, 1), (1, 7, 8, 9, 2, 1), (2, 64, 3, 3, 5, 1),
               (1, 24, 1, 5, 5, 1), (2, 96, 48, 3, 3, 2), (1, 90, 30, 4, 4, 3), (1, 701, 24, 4, 4, 1),
               (2, 144, 24, 16, 16, 1), (1, 333, 8, 20, 20, 1)]


@pytest.mark.parametrize("n, c, f, h, w, groups", PAIRS_CASES, ids=str)
def test_pairs_set(isa, dtype, rng, n, c, f, h, w, groups):
    from onexone import _core

    wt_shape = (f, c // groups, 1, 1)
    xi, wi, bi, want = _nhwc_integer_case(rng, dtype, n, c, f, h, w, groups, "relu6")
    xr = rng.standard_normal((n, h, w, c)).astype(dtype)
    wr = rng.standard_normal(wt_shape).astype(dtype)
    br = rng.standard_normal(f).astype(dtype)
    oracle = reference.conv1x1_naive(np.ascontiguousarray(xr.transpose(0, 3, 1, 2)), wr, br, groups=groups)
    tol = tolerance(c // groups, dtype, _amax(xr), _amax(wr), _amax(br))
    try:
        for mode in (2, 1):
            _core._pairs_mode(mode)
            for full_k in (True, False):
                _core._allow_full_k(full_k)
                y1 = onexone.conv1x1(xr, wr, br, groups=groups, layout="NHWC", n_threads=1)
                np.testing.assert_allclose(y1, oracle.transpose(0, 2, 3, 1), rtol=0, atol=tol)
                for nt in (1, 2, 3):
                    y = onexone.conv1x1(xi, wi, bi, groups=groups, layout="NHWC", activation="relu6", n_threads=nt)
                    np.testing.assert_array_equal(y, want)
                    assert same_bits(onexone.conv1x1(xr, wr, br, groups=groups, layout="NHWC", n_threads=nt), y1)
                # weights every other channel of a wider array (B's rows 2 elements apart)
                ws = np.repeat(wi, 2, axis=1)[:, ::2]
                y = onexone.conv1x1(xi, ws, bi, groups=groups, layout="NHWC", activation="relu6", n_threads=2)
                np.testing.assert_array_equal(y, want)
    finally:
        _core._pairs_mode(0)
        _core._allow_full_k(True)


@pytest.mark.parametrize("c", [5, 8, 17, 24])
def test_pairs_set_weight_gradient(isa, dtype, rng, c):
    """grad_w of an NCHW layer with 5-8 or 17-24 channels is such a GEMM too (dY's rows
    contiguous along the pixels, x^T packed): summed over the images in K blocks of pixels,
    exact on small integers with and without the pairs sets, on 1 and 2 threads."""
    from onexone import _core

    n, f, h, w = 2, 40, 23, 29  # 667 pixels an image: K blocks of 256 and a tail
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)
    wt = rng.integers(-3, 4, (f, c, 1, 1)).astype(dtype)
    dy = rng.integers(-3, 4, (n, f, h, w)).astype(dtype)
    want = np.einsum("nfhw,nchw->fc", dy.astype(np.float64), x.astype(np.float64)).reshape(f, c, 1, 1)
    try:
        for mode in (2, 1, 0):
            _core._pairs_mode(mode)
            for nt in (1, 2):
                _, gw, _ = onexone.conv1x1_backward(dy, x, wt, need=("w",), n_threads=nt)
                np.testing.assert_array_equal(gw, want)
    finally:
        _core._pairs_mode(0)


def test_pairs_set_propagates_inf_and_nan(isa, dtype, rng):
    """An odd K's last step runs on the even lanes only: an Inf there gives the reference's
    +-Inf (not Inf * 0 = NaN from the odd lanes), a NaN gives NaN, on every tile."""
    from onexone import _core

    n, c, f = 1, 33, 24
    x = rng.integers(-4, 5, (n, 6, 7, c)).astype(dtype)
    wt = rng.integers(1, 5, (f, c, 1, 1)).astype(dtype) * rng.choice([-1, 1], (f, 1, 1, 1)).astype(dtype)
    x[0, 0, :3, c - 1] = np.inf
    x[0, 1, 2, c - 1] = -np.inf
    x[0, 2, 4, c - 1] = np.nan
    x[0, 3, 1, c - 2] = np.inf
    want = reference.conv1x1_naive(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), wt).transpose(0, 2, 3, 1)
    assert np.isinf(want).sum() == 5 * f and np.isnan(want).sum() == f
    try:
        for mode in (2, 1):
            _core._pairs_mode(mode)
            for ff in (24, 16, 8):
                y = onexone.conv1x1(x, wt[:ff], layout="NHWC")
                np.testing.assert_array_equal(y, want[..., :ff])
    finally:
        _core._pairs_mode(0)


@pytest.mark.parametrize("xdt, wdt, bdt, expect", [
    (np.uint8, np.float32, np.float32, np.float32),   # integers beside a float follow it
    (np.int16, np.float32, None, np.float32),
    (np.int32, np.float32, None, np.float64),         # as np.result_type(int32, float32)
    (np.uint8, np.float64, np.float32, np.float64),
    (np.int64, np.int64, np.int64, np.float64),       # all integers: float64
    (np.bool_, np.int8, None, np.float64),
    (np.bool_, np.bool_, None, np.float64),
])
@pytest.mark.parametrize("op", ["conv1x1", "conv2d"])
def test_integer_and_bool_operands_promote_as_documented(xdt, wdt, bdt, expect, op):
    """The result dtype is np.result_type(x, w, b) when it is a float, float64 when every
    operand is an integer or bool; the values are the exact integer products."""
    rng = np.random.default_rng(7)
    hi = 2 if xdt is np.bool_ else 9
    x = rng.integers(0, hi, (2, 5, 3, 4)).astype(xdt)
    w = rng.integers(0 if wdt is np.bool_ else -4, 2 if wdt is np.bool_ else 5, (6, 5, 1, 1)).astype(wdt)
    b = None if bdt is None else rng.integers(-3, 4, 6).astype(bdt)
    y = getattr(onexone, op)(x, w, b)
    assert y.dtype == expect
    want = np.einsum("fc,nchw->nfhw", w[:, :, 0, 0].astype(np.int64), x.astype(np.int64))
    if b is not None:
        want = want + b.astype(np.int64)[None, :, None, None]
    np.testing.assert_array_equal(y, want.astype(expect))
