"""Memory layouts: strided, transposed, Fortran-order, negative-stride, broadcast, misaligned,
byte-swapped and read-only inputs; array-likes; ``out=``. All on exact-integer data, so every
result must equal the references exactly, on every ISA path."""

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import assert_matches_references, misaligned, traced_peak

# ---- x ----------------------------------------------------------------------------------


def _byte_strided(a):
    """A view whose strides are not multiples of the item size (a field of a packed record)."""
    rec = np.zeros(a.shape, dtype=np.dtype([("pad", "u1"), ("v", a.dtype)]))
    rec["v"] = a
    v = rec["v"]
    assert any(s % a.itemsize for s in v.strides)
    return v


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


X_VIEWS = {
    "contiguous": lambda a: a,
    "step_h": lambda a: a[:, :, ::2],
    "step_w": lambda a: a[:, :, :, ::3],
    "step_c": lambda a: a[:, ::2],
    "step_n": lambda a: a[::2],
    "crop_hw": lambda a: a[:, :, 1:-1, 2:-3],  # rows of a plane not adjacent
    "transpose_hw": lambda a: a.transpose(0, 1, 3, 2),
    "transpose_nc": lambda a: a.transpose(1, 0, 2, 3),
    "fortran": np.asfortranarray,
    "channels_last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "neg_hw": lambda a: a[:, :, ::-1, ::-1],
    "neg_w": lambda a: a[..., ::-1],
    "neg_c": lambda a: a[:, ::-1],
    "neg_n": lambda a: a[::-1],
    "neg_steps_all": lambda a: a[::-1, ::-2, ::-3, ::-2],
    "single_row_strided": lambda a: a[:, :, 3:4, ::2],  # H == 1
    "single_col_strided": lambda a: a[:, :, ::2, 5:6],  # W == 1
    "broadcast_w": lambda a: np.broadcast_to(a[..., :1], a.shape),  # zero strides
    "broadcast_c": lambda a: np.broadcast_to(a[:, :1], a.shape),
    "broadcast_hw": lambda a: np.broadcast_to(a[:, :, :1, :1], a.shape),
    "readonly": _readonly,
    "readonly_strided": lambda a: _readonly(a)[:, ::-1, ::2],
    "byte_strided": _byte_strided,
    "misaligned_1_byte": lambda a: misaligned(a.shape, a.dtype, 1, fill=a),
    "misaligned_1_element": lambda a: misaligned(a.shape, a.dtype, a.itemsize, fill=a),
    "misaligned_3_bytes_strided": lambda a: misaligned(a.shape, a.dtype, 3, fill=a)[:, :, ::2, ::-1],
    "byteswapped": lambda a: a.astype(a.dtype.newbyteorder("S")),
}


@pytest.mark.parametrize("view", list(X_VIEWS), ids=list(X_VIEWS))
def test_x_layouts(isa, dtype, rng, view):
    base = rng.integers(-4, 5, (4, 20, 11, 53)).astype(dtype)
    x = X_VIEWS[view](base)
    if view not in ("contiguous", "misaligned_1_element"):  # the latter: aligned to 1 item only
        assert not (x.flags.c_contiguous and x.flags.aligned and x.flags.writeable and x.dtype.isnative)
    before = np.array(x, copy=True)
    C = x.shape[1]
    w = rng.integers(-4, 5, (13, C)).astype(dtype)
    b = rng.integers(-9, 10, 13).astype(dtype)
    y = onexone.conv1x1(x, w, b, activation="relu")
    assert y.dtype == dtype  # byte order normalised, dtype kept
    assert_matches_references(y, x, w, b, "relu", exact=True)
    np.testing.assert_array_equal(x, before)  # the input is not written


@pytest.mark.parametrize("view", ["step_w", "fortran", "neg_hw", "misaligned_1_byte", "readonly"])
def test_x_layouts_3d(isa, dtype, rng, view):
    base = rng.integers(-4, 5, (1, 18, 9, 41)).astype(dtype)
    x = X_VIEWS[view](base)[0]
    w = rng.integers(-4, 5, (7, 18)).astype(dtype)
    y = onexone.conv1x1(x, w)
    assert y.shape == (7,) + x.shape[1:]
    assert_matches_references(y, x, w, exact=True)


# ---- weight and bias -----------------------------------------------------------------------

W_VIEWS = {
    "fortran_2d": lambda w: np.asfortranarray(w),
    "fortran_4d": lambda w: np.asfortranarray(w[:, :, None, None]),
    "transposed_copy": lambda w: np.ascontiguousarray(w.T).T,
    "step_c": lambda w: np.repeat(w, 2, axis=1)[:, ::2],
    "step_f": lambda w: np.repeat(w, 3, axis=0)[::3],
    "neg": lambda w: w[::-1, ::-1].copy()[::-1, ::-1],
    "4d_strided": lambda w: np.repeat(w[:, :, None, None], 2, axis=3)[:, :, :, ::2],
    "readonly": _readonly,
    "byte_strided": _byte_strided,
    "misaligned_1_byte": lambda w: misaligned(w.shape, w.dtype, 1, fill=w),
    "misaligned_1_element": lambda w: misaligned(w.shape, w.dtype, w.itemsize, fill=w),
    "byteswapped": lambda w: w.astype(w.dtype.newbyteorder("S")),
}


@pytest.mark.parametrize("view", list(W_VIEWS), ids=list(W_VIEWS))
def test_weight_layouts(isa, dtype, rng, view):
    x = rng.integers(-4, 5, (2, 37, 5, 29)).astype(dtype)
    w0 = rng.integers(-4, 5, (14, 37)).astype(dtype)
    w = W_VIEWS[view](w0)
    np.testing.assert_array_equal(w.reshape(14, 37), w0)
    b = rng.integers(-9, 10, 14).astype(dtype)
    y = onexone.conv1x1(x, w, b, activation="relu6")
    assert_matches_references(y, x, w0, b, "relu6", exact=True)


B_VIEWS = {
    "strided": lambda b: np.repeat(b, 2)[::2],
    "negative": lambda b: b[::-1].copy()[::-1],
    "readonly": _readonly,
    "misaligned_1_byte": lambda b: misaligned(b.shape, b.dtype, 1, fill=b),
    "byteswapped": lambda b: b.astype(b.dtype.newbyteorder("S")),
    "list_of_floats": lambda b: [float(v) for v in b],  # float64: promotes a float32 result
}


@pytest.mark.parametrize("view", list(B_VIEWS), ids=list(B_VIEWS))
def test_bias_layouts(isa, dtype, rng, view):
    x = rng.integers(-4, 5, (1, 9, 7, 31)).astype(dtype)
    w = rng.integers(-4, 5, (11, 9)).astype(dtype)
    b0 = rng.integers(-30, 31, 11).astype(dtype)
    b = B_VIEWS[view](b0)
    y = onexone.conv1x1(x, w, b, activation="relu")
    assert y.dtype == np.result_type(x, w, np.asarray(b)).newbyteorder("=")
    assert_matches_references(y, x, w, b, "relu", exact=True)
    np.testing.assert_array_equal(y, reference.conv1x1_naive(x, w, b0, activation="relu"))


def test_bias_with_zero_stride(isa, dtype, rng):
    x = rng.integers(-4, 5, (2, 9, 7, 31)).astype(dtype)
    w = rng.integers(-4, 5, (11, 9)).astype(dtype)
    b = np.broadcast_to(np.array(-3, dtype), (11,))
    y = onexone.conv1x1(x, w, b, activation="relu")
    assert_matches_references(y, x, w, np.full(11, -3, dtype), "relu", exact=True)


# ---- array-likes ---------------------------------------------------------------------------


def test_nested_lists_of_ints_give_float64(isa, rng):
    x = rng.integers(-4, 5, (2, 3, 4, 5))
    w = rng.integers(-4, 5, (6, 3, 1, 1))
    b = rng.integers(-4, 5, 6)
    y = onexone.conv1x1(x.tolist(), w.tolist(), b.tolist(), activation="relu")
    assert y.dtype == np.float64
    assert_matches_references(y, x.astype(float), w.astype(float), b.astype(float), "relu", exact=True)


def test_tuples_and_python_floats(isa):
    x = (((1.5, -2.0), (0.25, 4.0)), ((3.0, 1.0), (-1.0, 0.5)))  # (C=2, H=2, W=2)
    w = ((1.0, 2.0), (-1.0, 0.5), (0.0, 0.0))
    y = onexone.conv1x1(x, w, [0.5, 0.0, -1.0])
    assert y.dtype == np.float64 and y.shape == (3, 2, 2)
    expected = np.einsum("fc,chw->fhw", np.array(w), np.array(x)) + np.array([0.5, 0, -1])[:, None, None]
    np.testing.assert_array_equal(y, expected)


def test_mixed_array_and_list(isa, rng):
    x = rng.integers(-4, 5, (1, 5, 3, 17)).astype(np.float32)
    w = rng.integers(-4, 5, (4, 5))
    y = onexone.conv1x1(x, w.tolist())  # a list of Python ints is an int64 array: float64
    assert y.dtype == np.result_type(x, w) == np.float64
    assert_matches_references(y, x, w.astype(np.float64), exact=True)


# ---- out= --------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu"])
def test_out_is_written_and_returned(isa, dtype, rng, activation):
    x = rng.integers(-4, 5, (3, 19, 6, 23)).astype(dtype)
    w = rng.integers(-4, 5, (17, 19)).astype(dtype)
    b = rng.integers(-9, 10, 17).astype(dtype)
    out = np.full((3, 17, 6, 23), np.nan, dtype)  # stale contents must not leak in
    y = onexone.conv1x1(x, w, b, activation=activation, out=out)
    assert y is out
    assert_matches_references(out, x, w, b, activation, exact=True)
    # called again into the same out: overwritten, not accumulated
    y2 = onexone.conv1x1(x, w, b, activation=activation, out=out)
    assert y2 is out
    assert_matches_references(out, x, w, b, activation, exact=True)


def test_out_3d(isa, dtype, rng):
    x = rng.integers(-4, 5, (7, 5, 33)).astype(dtype)
    w = rng.integers(-4, 5, (9, 7)).astype(dtype)
    out = np.empty((9, 5, 33), dtype)
    assert onexone.conv1x1(x, w, out=out) is out
    assert_matches_references(out, x, w, exact=True)


def test_out_misaligned(isa, dtype, rng):
    """A C-contiguous out that is not element-aligned is still a valid out."""
    x = rng.integers(-4, 5, (2, 11, 3, 29)).astype(dtype)
    w = rng.integers(-4, 5, (7, 11)).astype(dtype)
    out = misaligned((2, 7, 3, 29), dtype, 1)
    assert onexone.conv1x1(x, w, activation="relu", out=out) is out
    assert_matches_references(out, x, w, None, "relu", exact=True)


@pytest.mark.parametrize("F, P", [(1, 1), (5, 7), (7, 15), (13, 17), (4, 47), (11, 49), (6, 513), (3, 1025)])
def test_out_edges_are_not_overrun(isa, dtype, rng, F, P):
    """Edge tiles write exactly their elements: a sentinel around out stays untouched."""
    x = rng.integers(-4, 5, (2, 9, 1, P)).astype(dtype)
    w = rng.integers(-4, 5, (F, 9)).astype(dtype)
    b = rng.integers(-9, 10, F).astype(dtype)
    size, pad = 2 * F * P, 256
    buf = np.full(size + 2 * pad, -777.0, dtype)
    out = buf[pad : pad + size].reshape(2, F, 1, P)
    onexone.conv1x1(x, w, b, activation="relu", out=out)
    assert_matches_references(out, x, w, b, "relu", exact=True)
    assert (buf[:pad] == -777).all() and (buf[pad + size :] == -777).all()


def test_out_may_share_a_base_without_overlapping(isa, dtype, rng):
    """x and out carved from disjoint halves of one buffer do not overlap: allowed."""
    buf = np.zeros(2 * 3 * 8 * 9, dtype)
    x = buf[: 3 * 8 * 9].reshape(1, 3, 8, 9)
    out = buf[3 * 8 * 9 :].reshape(1, 3, 8, 9)
    x[...] = rng.integers(-4, 5, x.shape)
    w = rng.integers(-4, 5, (3, 3)).astype(dtype)
    assert onexone.conv1x1(x, w, out=out) is out
    assert_matches_references(out, x, w, exact=True)


def test_result_is_a_fresh_c_contiguous_array(isa, dtype, rng):
    x = np.asfortranarray(rng.standard_normal((2, 8, 5, 7)).astype(dtype))
    x.flags.writeable = False
    w = rng.standard_normal((3, 8)).astype(dtype)
    y = onexone.conv1x1(x, w)
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned
    assert not np.shares_memory(y, x) and not np.shares_memory(y, w)


# ---- packing instead of copying --------------------------------------------------------------


@pytest.mark.parametrize(
    "view",
    [lambda a: a[:, :, :, ::2], lambda a: np.asfortranarray(a)[:, :, :, ::2], lambda a: a[:, ::-1, ::2]],
    ids=["step_w", "fortran_step_w", "neg_c_step_h"],
)
def test_strided_x_is_not_copied_whole(view):
    """Spec: non-contiguous x is handled by packing, not a full ascontiguousarray copy.
    NumPy's allocations are traced by tracemalloc; the C scratch (posix_memalign) is not.
    So the traced peak of a call is its output, unless x gets copied."""
    base = np.ones((1, 256, 64, 64), np.float32)
    x = view(base)  # 2 MiB as a contiguous copy
    w = np.ones((4, 256), np.float32)
    out_bytes = 4 * x.shape[2] * x.shape[3] * 4
    onexone.conv1x1(x, w)  # warm up (first-call allocations)
    y, peak = traced_peak(lambda: onexone.conv1x1(x, w))
    assert y[0, 0, 0, 0] == 256
    assert peak < out_bytes + 256 * 1024, f"peak {peak} bytes: x ({x.nbytes} bytes as a copy) was copied"
