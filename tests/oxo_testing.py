"""Helpers for the test suite: inputs, tolerances and comparisons with the references."""
import os

import numpy as np

from onexone import reference

ACTIVATIONS = (None, "relu", "relu6")


def tolerance(C, dtype, xmax, wmax, bmax=0.0, c=4.0):
    """Absolute error allowed for one output element of a C-term dot product (plus bias).

    A sequential sum of C products errs by about C * eps * max|x| * max|w| in practice (the
    rigorous bound is C times that, never approached by random data); c is a safety factor.
    The ``+ 1`` covers the bias add and the final rounding.
    """
    eps = float(np.finfo(dtype).eps)
    return c * eps * ((C + 1) * float(xmax) * float(wmax) + float(bmax)) + float(np.finfo(dtype).tiny)


def make_inputs(rng, xshape, F, dtype, bias=False, integer=False):
    """x of shape xshape ((N, C, H, W) or (C, H, W)), weight (F, C), bias (F,) or None.

    integer=True draws small integers (exactly representable, and every partial sum of the
    tested sizes too), so a correct kernel must match the references exactly."""
    C = xshape[-3]
    if integer:
        x = rng.integers(-4, 5, xshape).astype(dtype)
        w = rng.integers(-4, 5, (F, C)).astype(dtype)
        b = rng.integers(-64, 65, F).astype(dtype) if bias else None
    else:
        x = rng.standard_normal(xshape).astype(dtype)
        w = rng.standard_normal((F, C)).astype(dtype)
        b = rng.standard_normal(F).astype(dtype) * 4 if bias else None
    return x, w, b


def _amax(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


def assert_matches_references(y, x, w, b=None, activation=None, exact=False):
    """y must be what onexone.conv1x1(x, w, b, activation=activation) should return:
    the naive float64 oracle within the C-scaled tolerance (or exactly), and the np.matmul
    reference within twice that (it rounds in the working dtype too)."""
    naive = reference.conv1x1_naive(x, w, b, activation=activation)
    fast = reference.conv1x1(x, w, b, activation=activation)
    assert isinstance(y, np.ndarray)
    assert y.shape == naive.shape, (y.shape, naive.shape)
    assert y.dtype == naive.dtype, (y.dtype, naive.dtype)
    assert y.flags.c_contiguous
    if exact:
        np.testing.assert_array_equal(y, naive)
        np.testing.assert_array_equal(y, fast)
        return
    C = np.shape(w)[1]
    tol = tolerance(C, y.dtype, _amax(x), _amax(w), 0.0 if b is None else _amax(b))
    np.testing.assert_allclose(y, naive, rtol=0, atol=tol)
    np.testing.assert_allclose(y, fast, rtol=0, atol=2 * tol)


def misaligned(shape, dtype, offset_bytes=1, fill=None):
    """A writeable array of `shape` whose data starts `offset_bytes` into a byte buffer
    (offset 1: not even element-aligned). Filled with `fill` (an array) if given."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    buf = bytearray(n * dtype.itemsize + offset_bytes + 64)
    a = np.frombuffer(buf, dtype=dtype, count=n, offset=offset_bytes).reshape(shape)
    if fill is not None:
        a[...] = fill
    return a


def same_bits(a, b):
    """Bitwise equality, including the signs of zeros and NaN payloads."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def under_sanitizer():
    """True inside ASan (``make sanitize``) or valgrind (``make valgrind``), whose allocators
    keep freed memory and slow every call: checks of memory use or speed do not apply."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "asan" in preload or "vgpreload" in preload:
        return True
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return False
    return "libasan" in maps or "vgpreload" in maps


def traced_peak(fn):
    """fn()'s result and the peak of the Python-traced allocations (NumPy's arrays; not the C
    scratch) while it ran, in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
