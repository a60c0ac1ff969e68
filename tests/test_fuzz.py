"""Fuzzing against the references (reliability issue): hypothesis draws shapes around every
block and tile size, dtypes, memory layouts and offsets of the inputs and of ``out``, bias,
activation, value scales (down to subnormals) and thread counts, for every op and every ISA
path this CPU has. onexone must equal the naive float64 reference within the C-scaled
tolerance (random floats) or exactly (small integers), be bitwise the same for any thread
count, and write nothing outside ``out``.

Bounded and reproducible for CI: every test is seeded (``@seed``), keeps no example
database and has no deadline; ``EXAMPLES`` cases per (op, ISA, mode), at least 5,000 in all.
``ONEXONE_FUZZ_SCALE=10 pytest tests/test_fuzz.py`` runs ten times as many (nightly).

Adding an op or a parameter: write a ``draw_<op>(data, rng, integer) -> Case`` and append an
``OpSpec`` to ``OPS``; the harness (ISA, threads, ``out``, comparison, counting) is shared.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import onexone
from onexone import reference
from oxo_testing import misaligned, same_bits, tolerance

ISAS = onexone.available_isas()
SCALE = float(os.environ.get("ONEXONE_FUZZ_SCALE", "1"))

# ---- sizes around every block and tile ------------------------------------------------------
# KC = 256 (f32) / 128 (f64) channels; NC = 512 columns; register tiles 8x48 / 8x24 (AVX-512),
# 6x16 / 6x8 (AVX2), 4x16 (scalar); dot kernel 4x4; vectors of 16 / 8 / 4 lanes; the dot
# tail takes the last P mod lanes columns when that is at most half a vector.
C_EDGES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
           127, 128, 129, 255, 256, 257, 383, 384, 385, 511, 512, 513]
F_EDGES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49]
P_EDGES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 19, 20, 23, 24, 25, 28, 31,
           32, 33, 36, 40, 44, 47, 48, 49, 52, 56, 63, 64, 65, 72, 95, 96, 97, 127, 128, 129,
           255, 256, 257, 511, 512, 513, 520, 524, 1023, 1024, 1025, 1100]
MAX_MACS = 1_500_000  # per case: keeps the float64 einsum oracle and the scalar path fast
THREADS = [None, 1, 2, 3, 8]


def _small_or_edge(edges, hi):
    return st.one_of(st.sampled_from(edges), st.integers(1, hi))  # 0 comes from the edges


@st.composite
def spatial(draw, p_edges=P_EDGES):
    """(H, W): a row, a column, a factored P, or free sides."""
    mode = draw(st.sampled_from(["row", "col", "factor", "factor", "free"]))
    if mode == "free":
        return draw(st.integers(1, 40)), draw(st.integers(1, 40))
    p = draw(_small_or_edge(p_edges, 140))
    if mode == "row":
        return 1, p
    if mode == "col":
        return p, 1
    divisors = [d for d in range(2, 16) if p % d == 0] or [1]
    d = draw(st.sampled_from(divisors))
    return d, p // d


def fit_budget(n, c, f, p, budget=MAX_MACS):
    """Shrink F, then C, until n*c*f*p fits the budget (sizes that were 0 stay 0)."""
    if n * c * f * p > budget:
        f = max(1, budget // max(1, n * c * p))
    if n * c * f * p > budget:
        c = max(1, budget // max(1, n * f * p))
    return c, f


# ---- values, dtypes, layouts -----------------------------------------------------------------
FLOAT_DTYPES = [("f4", "f4", "f4"), ("f8", "f8", "f8"), ("f4", "f4", "f4"), ("f8", "f8", "f8"),
                ("f4", "f8", "f4"), ("f8", "f4", "f4"), ("f4", "f4", "f8")]
INT_DTYPES = FLOAT_DTYPES + [("i8", "i8", "i8"), ("i1", "f4", "f4"), ("?", "f8", "f8"),
                             ("u1", "i2", "i4"), ("i4", "f4", "i2")]
# float cases: the scale of x or of the weight (powers of two: the values stay exact);
# "subnormal" puts x or the weight in its dtype's subnormal range.
SCALES = [1.0, 1.0, 1.0, 1.0, 2.0**-40, 2.0**40, "subnormal"]


def values(rng, shape, dt, integer, scale=1.0, lo=-4, hi=4):
    dt = np.dtype(dt)
    if integer or dt.kind in "biu":
        if dt.kind == "b":
            return rng.integers(0, 2, shape).astype(dt)
        if dt.kind == "u":
            return rng.integers(0, hi + 1, shape).astype(dt)
        return rng.integers(lo, hi + 1, shape).astype(dt)
    if scale == "subnormal":
        scale = float(np.finfo(dt).smallest_normal) * 2.0**-6
    return (rng.standard_normal(shape) * scale).astype(dt)


def _embed(a, big_shape, index):
    """a written into a slice of a larger array (a strided view of a)."""
    buf = np.zeros(big_shape, a.dtype)
    view = buf[index]
    view[...] = a
    return view


def _offset_elements(a, k):
    """a, C-contiguous, starting k elements into a flat buffer (alignment mod 64 bytes varies)."""
    buf = np.zeros(a.size + k + 1, a.dtype)
    view = buf[k : k + a.size].reshape(a.shape)
    view[...] = a
    return view


def _readonly(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


# Views of a 4-D x that keep its values (so the oracle and onexone see the same x); "bcast_*"
# change the values (the oracle gets the view too).
X_LAYOUTS: dict[str, Callable] = {
    "c": lambda a: a,
    "fortran": np.asfortranarray,
    "channels_last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "transpose_hw": lambda a: np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
    "step_w": lambda a: _embed(a, a.shape[:3] + (2 * a.shape[3],), np.s_[..., ::2]),
    "step_h_neg_c": lambda a: _embed(a, a.shape[:2] + (2 * a.shape[2], a.shape[3]), np.s_[:, ::-1, ::2]),
    "crop": lambda a: _embed(a, a.shape[:2] + (a.shape[2] + 2, a.shape[3] + 3), np.s_[:, :, 1:-1, 2:-1]),
    "neg_all": lambda a: a[::-1, ::-1, ::-1, ::-1].copy()[::-1, ::-1, ::-1, ::-1],
    "offset_1": lambda a: _offset_elements(a, 1),
    "offset_3": lambda a: _offset_elements(a, 3),
    "offset_7": lambda a: _offset_elements(a, 7),
    "misaligned_byte": lambda a: misaligned(a.shape, a.dtype, 1, fill=a),
    "byteswapped": lambda a: a.astype(a.dtype.newbyteorder("S")),
    "readonly": _readonly,
    "bcast_w": lambda a: np.broadcast_to(a[..., :1], a.shape),
    "bcast_c": lambda a: np.broadcast_to(a[:, :1], a.shape),
}
W_LAYOUTS: dict[str, Callable] = {  # of a 2-D (F, C) weight; "4d*" add the 1x1 kernel axes
    "c": lambda w: w,
    "4d": lambda w: w[:, :, None, None],
    "fortran": np.asfortranarray,
    "4d_fortran": lambda w: np.asfortranarray(w[:, :, None, None]),
    "step_c": lambda w: _embed(w, (w.shape[0], 2 * w.shape[1]), np.s_[:, ::2]),
    "neg": lambda w: w[::-1, ::-1].copy()[::-1, ::-1],
    "offset_5": lambda w: _offset_elements(w, 5),
    "misaligned_byte": lambda w: misaligned(w.shape, w.dtype, 1, fill=w),
    "readonly": _readonly,
}
B_LAYOUTS: dict[str, Callable] = {
    "c": lambda b: b,
    "strided": lambda b: _embed(b, (2 * b.shape[0],), np.s_[::2]),
    "offset_3": lambda b: _offset_elements(b, 3),
    "bcast": lambda b: np.broadcast_to(b[:1], b.shape),
    "list": lambda b: b.tolist(),
}
OUT_KINDS = ["none", "none", "none", "fresh", "offset_guarded", "misaligned_byte"]
SENTINEL = -7.75


def make_out(kind, shape, dtype, rng):
    """(out or None, check) where check() asserts nothing outside out was written."""
    if kind == "none":
        return None, lambda: None
    size = int(np.prod(shape))
    if kind == "fresh":
        return np.full(shape, np.nan, dtype), lambda: None
    if kind == "misaligned_byte":
        return misaligned(shape, dtype, 1, fill=np.full(shape, np.nan)), lambda: None
    k = int(rng.integers(0, 16))  # element offset: every alignment mod 64 bytes
    pad = 64
    buf = np.full(k + size + pad, SENTINEL, dtype)
    out = buf[k : k + size].reshape(shape)
    out[...] = np.nan

    def check():
        assert (buf[:k] == SENTINEL).all(), "written before out"
        assert (buf[k + size :] == SENTINEL).all(), "written past the end of out"

    return out, check


def _amax(a):
    if a is None:
        return 0.0
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


# ---- ops -----------------------------------------------------------------------------------


@dataclass
class Case:
    args: tuple  # positional arguments, the same for onexone and the oracle
    params: dict  # keyword arguments, the same for both (activation, stride, ...)
    # per result: (products summed into one element, max |a|, max |b|, max |added term|)
    # of its sum of products a*b, for the C-scaled tolerance
    tols: tuple


@dataclass(frozen=True)
class OpSpec:
    name: str
    run: Callable  # onexone's op: run(*args, **params, [out=], n_threads=)
    oracle: Callable  # the float64 reference: oracle(*args, **params)
    draw: Callable  # draw(data, rng, integer) -> Case
    takes_out: bool = True


def draw_dtypes(data, integer):
    return data.draw(st.sampled_from(INT_DTYPES if integer else FLOAT_DTYPES), label="dtypes")


def draw_scales(data, integer):
    """(scale of x, scale of the weight): one of them scaled, the other 1."""
    if integer:
        return 1.0, 1.0
    scale = data.draw(st.sampled_from(SCALES), label="scale")
    return (scale, 1.0) if data.draw(st.booleans(), label="scale x (else weight)") else (1.0, scale)


def draw_bias(data, rng, f, dt, integer):
    if not data.draw(st.booleans(), label="bias"):
        return None
    b = values(rng, (f,), dt, integer, 4.0, lo=-64, hi=64)
    return B_LAYOUTS[data.draw(st.sampled_from(sorted(B_LAYOUTS)), label="bias layout")](b) if f else b


def draw_x(data, rng, shape, dt, integer, scale):
    x = values(rng, shape, dt, integer, scale)
    x = X_LAYOUTS[data.draw(st.sampled_from(sorted(X_LAYOUTS)), label="x layout")](x)
    if shape[0] == 1 and data.draw(st.booleans(), label="3-D x"):
        x = x[0]
    return x


def draw_activation(data):
    return data.draw(st.sampled_from([None, "relu", "relu6"]), label="activation")


def draw_conv1x1_problem(data, rng, integer, budget=MAX_MACS):
    """x, weight and the shared parameters of conv1x1 and conv1x1_backward."""
    big = data.draw(st.integers(0, 9), label="big") < 2  # 20%: large enough for several threads
    groups = data.draw(st.sampled_from([1] * 6 + [2, 3, 4, "depthwise"]), label="groups")
    if big:
        n = data.draw(st.integers(1, 3), label="N")
        c = data.draw(_small_or_edge(C_EDGES[9:], 600), label="C")
        f = data.draw(_small_or_edge(F_EDGES[10:], 80), label="F")
        h, w = data.draw(spatial(P_EDGES[40:]), label="H, W")
    else:
        n = data.draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 5]), label="N")
        c = data.draw(_small_or_edge(C_EDGES, 40), label="C")
        f = data.draw(_small_or_edge(F_EDGES, 20), label="F")
        h, w = data.draw(spatial(), label="H, W")
    stride = data.draw(st.sampled_from([1] * 6 + [2, 3, (1, 2), (2, 1), (3, 5)]), label="stride")
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    h, w = h * sh if h else 0, w * sw if w else 0  # about the same output size
    ho, wo = (h - 1) // sh + 1 if h else 0, (w - 1) // sw + 1 if w else 0
    if groups == "depthwise":
        g = max(1, min(c, 64))
        cg, fg = 1, data.draw(st.sampled_from([1, 1, 2]), label="F per group")
    else:
        g = groups
        cg, fg = max(1, c // g) if c else 0, max(1, f // g) if f else 0
    cg, fg = fit_budget(n, cg * g, fg * g, ho * wo, budget)
    cg, fg = max(1, cg // g) if cg else 0, max(1, fg // g) if fg else 0
    c, f = cg * g, fg * g
    layout = data.draw(st.sampled_from(["NCHW", "NCHW", "NHWC"]), label="layout")
    xdt, wdt, bdt = draw_dtypes(data, integer)
    sx, sw_ = draw_scales(data, integer)
    x = draw_x(data, rng, (n, h, w, c) if layout == "NHWC" else (n, c, h, w), xdt, integer, sx)
    wt = W_LAYOUTS[data.draw(st.sampled_from(sorted(W_LAYOUTS)), label="weight layout")](
        values(rng, (f, cg), wdt, integer, sw_))
    params = {"stride": stride, "groups": g, "layout": layout}
    return x, wt, bdt, params, (n, cg, fg * g, ho * wo)


def draw_conv1x1(data, rng, integer):
    x, wt, bdt, params, (_, cg, f, _) = draw_conv1x1_problem(data, rng, integer)
    b = draw_bias(data, rng, f, bdt, integer)
    params["activation"] = draw_activation(data)
    return Case((x, wt, b), params, tols=((cg, _amax(x), _amax(wt), _amax(b)),))


def draw_conv1x1_backward(data, rng, integer):
    x, wt, gdt, params, (n, cg, f, p) = draw_conv1x1_problem(data, rng, integer, MAX_MACS // 3)
    with np.errstate(all="ignore"):
        y_shape = reference.conv1x1(x, wt, **params).shape
    gy = draw_x(data, rng, y_shape, gdt, integer, 1.0) if len(y_shape) == 4 else values(
        rng, y_shape, gdt, integer)
    need = data.draw(st.sampled_from([("x", "w", "b"), ("x",), ("w",), ("b",), ("w", "b"), ("x", "b")]),
                     label="need")
    params["need"] = need
    gmax, xmax, wmax = _amax(gy), _amax(x), _amax(wt)
    tols = ((f // params["groups"] if f else 0, gmax, wmax, 0.0),  # grad_x: a sum over F/groups
            (n * p, gmax, xmax, 0.0),  # grad_w: over images and pixels
            (n * p, gmax, 1.0, 0.0))  # grad_b: over images and pixels
    return Case((gy, x, wt), params, tols)


def draw_conv2d_problem(data, rng, integer, budget=MAX_MACS):
    """x, weight and the shared parameters of conv2d and conv2d_backward."""
    kh = data.draw(st.sampled_from([1, 1, 2, 3, 3, 3, 4, 5, 7]), label="KH")
    kw = data.draw(st.sampled_from([kh] * 3 + [1, 2, 3, 5]), label="KW")
    stride = data.draw(st.sampled_from([1] * 5 + [2, 2, 3, (1, 2), (2, 1)]), label="stride")
    dilation = data.draw(st.sampled_from([1] * 6 + [2, 3, (1, 2)]), label="dilation")
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = data.draw(st.sampled_from([0, 0, 1, 2, 3, (1, 0), (0, 2), "valid"] + (["same"] * 2 if (sh, sw) == (1, 1) else [])),
                        label="padding")
    groups = data.draw(st.sampled_from([1] * 7 + [2, 3, "depthwise"]), label="groups")
    n = data.draw(st.sampled_from([0, 1, 1, 1, 2, 3]), label="N")
    c = data.draw(st.one_of(st.sampled_from([0, 1, 3, 4, 8, 16, 17, 33, 64, 65, 129]), st.integers(1, 20)), label="C")
    f = data.draw(_small_or_edge(F_EDGES, 20), label="F")
    # output sides around the direct kernel's lanes and the im2col GEMM's tiles
    ho = data.draw(st.one_of(st.sampled_from([1, 2, 3, 5, 7, 8, 9, 14, 15, 16, 17, 28]), st.integers(1, 12)), label="Ho")
    wo = data.draw(st.one_of(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 56]),
                             st.integers(1, 40)), label="Wo")
    ph, pw = (0, 0) if padding in ("valid", "same") else ((padding, padding) if isinstance(padding, int) else padding)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = max(1, (ho - 1) * sh + eh - 2 * ph + data.draw(st.integers(0, sh - 1), label="extra rows"))
    w = max(1, (wo - 1) * sw + ew - 2 * pw + data.draw(st.integers(0, sw - 1), label="extra cols"))
    ho, wo = max(1, (h + 2 * ph - eh) // sh + 1), max(1, (w + 2 * pw - ew) // sw + 1)
    if groups == "depthwise":
        g = max(1, min(c, 32))
        cg, fg = 1, data.draw(st.sampled_from([1, 1, 2]), label="F per group")
    else:
        g = groups
        cg, fg = max(1, c // g) if c else 0, max(1, f // g) if f else 0
    taps = kh * kw
    cg, fg = fit_budget(n, cg * g * taps, fg * g, ho * wo, budget)  # the C-side count includes the taps
    cg = max(1, cg // (g * taps)) if cg else 0
    fg = max(1, fg // g) if fg else 0
    c, f = cg * g, fg * g
    xdt, wdt, bdt = draw_dtypes(data, integer)
    sx, sw_ = draw_scales(data, integer)
    x = draw_x(data, rng, (n, c, h, w), xdt, integer, sx)
    wt = values(rng, (f, cg, kh, kw), wdt, integer, sw_)
    wt = data.draw(st.sampled_from([lambda a: a, np.asfortranarray, lambda a: a[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1],
                                    lambda a: _offset_elements(a, 3), _readonly]), label="weight layout")(wt)
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
    return x, wt, bdt, params, (n, cg * taps, f, taps, ho * wo)


def draw_conv2d(data, rng, integer):
    x, wt, bdt, params, (_, k, f, _, _) = draw_conv2d_problem(data, rng, integer)
    b = draw_bias(data, rng, f, bdt, integer)
    params["activation"] = draw_activation(data)
    params["algorithm"] = data.draw(st.sampled_from(["auto", "direct", "direct", "im2col", "im2col"]), label="algorithm")
    return Case((x, wt, b), params, tols=((k, _amax(x), _amax(wt), _amax(b)),))


def draw_conv2d_backward(data, rng, integer):
    x, wt, gdt, params, (n, _, f, taps, p) = draw_conv2d_problem(data, rng, integer, MAX_MACS // 3)
    with np.errstate(all="ignore"):
        y_shape = reference.conv2d(x, wt, **params).shape
    gy = draw_x(data, rng, y_shape, gdt, integer, 1.0) if len(y_shape) == 4 else values(rng, y_shape, gdt, integer)
    params["need"] = data.draw(st.sampled_from([("x", "w", "b"), ("x",), ("w",), ("b",), ("w", "b")]), label="need")
    gmax, xmax, wmax = _amax(gy), _amax(x), _amax(wt)
    tols = ((f // params["groups"] * taps, gmax, wmax, 0.0),  # grad_x: over the filters of a group and the taps
            (n * p, gmax, xmax, 0.0),  # grad_w: over images and output pixels
            (n * p, gmax, 1.0, 0.0))  # grad_b
    return Case((gy, x, wt), params, tols)


OPS = [
    OpSpec("conv1x1", onexone.conv1x1, reference.conv1x1_naive, draw_conv1x1),
    OpSpec("conv2d", onexone.conv2d, reference.conv2d_naive, draw_conv2d),
    OpSpec("conv1x1_backward", onexone.conv1x1_backward, reference.conv1x1_backward, draw_conv1x1_backward,
           takes_out=False),
    OpSpec("conv2d_backward", onexone.conv2d_backward, reference.conv2d_backward, draw_conv2d_backward,
           takes_out=False),
]
# To add as they land (one draw_* each, appended to OPS, or a draw in the op's draw_*): conv2d's
# NHWC layout.

# ---- the harness -----------------------------------------------------------------------------
# Cases per (op, ISA, mode); 3 ISAs: 3 x 2,500 = 7,500 cases, about 45 s on 2 cores.
EXAMPLES = {
    ("conv1x1", "float"): 600, ("conv1x1", "exact"): 400,
    ("conv2d", "float"): 600, ("conv2d", "exact"): 400,
    ("conv1x1_backward", "float"): 150, ("conv1x1_backward", "exact"): 100,
    ("conv2d_backward", "float"): 150, ("conv2d_backward", "exact"): 100,
}
COUNT = {}


def _results(r):
    return r if isinstance(r, tuple) else (r,)


def _correlated_bound(spec: OpSpec, case):
    """For inputs broadcast along an axis (the "bcast" layouts), the sums of each result
    element (the oracle on |inputs|, before any activation), else None. Such inputs repeat
    identical products, whose rounding errors add up instead of averaging out: there the
    a-priori bound of recursive summation, (terms + 1) * eps * sum |a_i b_i| (Higham), applies
    rather than :func:`tolerance`'s typical one."""
    def broadcast(a):
        return isinstance(a, np.ndarray) and any(st == 0 and d > 1 for st, d in zip(a.strides, a.shape))

    if not any(broadcast(a) for a in case.args):
        return None
    args = [np.abs(np.asarray(a)) if isinstance(a, (np.ndarray, list)) else a for a in case.args]
    params = {k: v for k, v in case.params.items() if k != "activation"}
    with np.errstate(all="ignore"):
        sums = _results(spec.oracle(*args, **params))
    return [None if s is None else np.asarray(s, np.float64) for s in sums]


def check_case(spec: OpSpec, isa: str, integer: bool, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    case = spec.draw(data, rng, integer)
    nt = data.draw(st.sampled_from(THREADS), label="n_threads")
    onexone.set_isa(isa)
    COUNT[spec.name, isa, integer] = COUNT.get((spec.name, isa, integer), 0) + 1
    try:
        with np.errstate(all="ignore"):
            expected = _results(spec.oracle(*case.args, **case.params))
    except (ValueError, TypeError) as e:  # a draw the op rejects: onexone must reject it too
        with pytest.raises(type(e)):
            spec.run(*case.args, **case.params, n_threads=nt)
        return
    kw = {}
    out_untouched = lambda: None  # noqa: E731
    if spec.takes_out:
        kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
        kw["out"], out_untouched = make_out(kind, expected[0].shape, expected[0].dtype, rng)
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in case.args]
    got = _results(spec.run(*case.args, **case.params, **kw, n_threads=nt))
    out_untouched()
    if kw.get("out") is not None:
        assert got[0] is kw["out"]
    for a, b in zip(case.args, before):
        if b is not None:
            np.testing.assert_array_equal(a, b, err_msg="an input was modified")
    assert len(got) == len(expected)
    bound = _correlated_bound(spec, case) if not integer else None
    for i, (y, e) in enumerate(zip(got, expected)):
        if e is None:
            assert y is None, f"result {i}: expected None"
            continue
        assert isinstance(y, np.ndarray), f"result {i}: {type(y)}"
        assert y.shape == e.shape and y.dtype == e.dtype, (i, y.shape, y.dtype, e.shape, e.dtype)
        if integer:
            np.testing.assert_array_equal(y, e, err_msg=f"result {i}")
        else:
            terms, a, b, c = case.tols[i]
            tol = tolerance(terms, y.dtype, a, b, c)
            if bound is None or bound[i] is None:
                np.testing.assert_allclose(y, e, rtol=0, atol=tol, err_msg=f"result {i}")
                continue
            tol = np.maximum(tol, (terms + 1) * float(np.finfo(y.dtype).eps) * bound[i])
            ok = np.isclose(y, e, rtol=0, atol=tol, equal_nan=True)
            assert ok.all(), (f"result {i}: {np.count_nonzero(~ok)} of {ok.size} elements beyond the "
                              f"summation bound: {y[~ok][:4]} vs {e[~ok][:4]} (allowed {tol[~ok][:4]})")
    if nt != 1:  # bitwise the same on one thread
        got1 = _results(spec.run(*case.args, **case.params, n_threads=1))
        for i, (y, y1) in enumerate(zip(got, got1)):
            assert (y is None and y1 is None) or same_bits(y, y1), f"result {i}: n_threads={nt} differs from 1"


def examples(spec, mode):
    return int(EXAMPLES[spec.name, mode] * SCALE)


def fuzzer(spec: OpSpec, isa: str, mode: str):
    """The seeded, database-free hypothesis test for one (op, ISA, mode)."""
    integer = mode == "exact"

    @seed(zlib.crc32(f"{spec.name}/{isa}/{mode}".encode()))
    @settings(max_examples=examples(spec, mode), deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(data=st.data())
    def run(data):
        check_case(spec, isa, integer, data)

    return run


@pytest.mark.parametrize("mode", ["float", "exact"])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", OPS, ids=[op.name for op in OPS])
def test_fuzz_against_reference(spec, isa, mode):
    key = (spec.name, isa, mode == "exact")
    before = COUNT.get(key, 0)
    fuzzer(spec, isa, mode)()
    ran = COUNT.get(key, 0) - before
    # hypothesis may stop early only if it exhausts the search space, which these cannot
    assert ran >= examples(spec, mode), f"only {ran} cases ran"


def test_fuzz_budget_is_at_least_5000_cases_per_run():
    assert {(op.name, m) for op in OPS for m in ("float", "exact")} == set(EXAMPLES)
    per_isa = sum(examples(op, m) for op in OPS for m in ("float", "exact"))
    assert per_isa * 3 >= 5000, per_isa  # with the three ISA paths of an AVX-512 machine
    assert len(ISAS) < 3 or per_isa * len(ISAS) >= 5000


# ---- what the fuzzer found -------------------------------------------------------------------
# Minimal reproducers of the failures the fuzzer found, so they stay tested by name: (id, op,
# arguments, keyword arguments); onexone must give the reference's result (here exactly).
def _ones(*shape):
    return np.ones(shape, np.float32)


def _bcast(shape, axis):
    """Ones of `shape` with stride 0 along `axis`."""
    small = list(shape)
    small[axis] = 1
    return np.broadcast_to(_ones(*small), shape)


FOUND = [
    ("nhwc_batch_0", "conv1x1", (_ones(0, 3, 4, 5), _ones(2, 5)), {"layout": "NHWC"}),
    ("nhwc_channels_0", "conv1x1", (_ones(2, 3, 4, 0), _ones(2, 0), _ones(2)), {"layout": "NHWC"}),
    ("nhwc_broadcast_rows_one_column", "conv1x1", (_bcast((2, 97, 1, 15), 1), _ones(11, 15)), {"layout": "NHWC"}),
    ("backward_grad_w_batch_0", "conv1x1_backward", (_ones(0, 4, 1, 2), _ones(0, 3, 1, 2), _ones(4, 3)), {}),
    ("backward_grad_w_channels_0", "conv1x1_backward", (_ones(2, 4, 1, 2), _ones(2, 0, 1, 2), _ones(4, 0)), {}),
    ("backward_grad_w_filters_0", "conv1x1_backward", (_ones(2, 0, 1, 2), _ones(2, 3, 1, 2), _ones(0, 3)), {}),
    ("backward_grad_w_broadcast_grad_y", "conv1x1_backward",
     (_bcast((2, 11, 1, 97), 3), _ones(2, 15, 1, 97), _ones(11, 15)), {"need": "w"}),
    ("backward_grad_w_broadcast_x", "conv1x1_backward",
     (_ones(2, 11, 1, 97), _bcast((2, 15, 1, 97), 3), _ones(11, 15)), {"need": "w"}),
    ("backward_nhwc_grad_x_filters_0", "conv1x1_backward", (_ones(2, 1, 2, 0), _ones(2, 1, 2, 3), _ones(0, 3)),
     {"layout": "NHWC", "need": "x"}),
    ("nhwc_strided_misaligned_batch_0", "conv1x1", (misaligned((0, 4, 118, 3), np.float32, 1), _ones(2, 3)),
     {"layout": "NHWC", "stride": 2}),
    ("nhwc_strided_misaligned_channels_0", "conv1x1", (misaligned((1, 4, 118, 0), np.float32, 1), _ones(2, 0)),
     {"layout": "NHWC", "stride": 2}),
]
REFERENCES = {op.name: op.oracle for op in OPS}


@pytest.mark.parametrize("case", FOUND, ids=[c[0] for c in FOUND])
def test_found_by_fuzzing(case):
    _, op, args, kwargs = case
    expected = _results(REFERENCES[op](*args, **kwargs))
    got = _results(getattr(onexone, op)(*args, **kwargs))
    assert len(got) == len(expected)
    for y, e in zip(got, expected):
        assert (y is None) == (e is None)
        if e is not None:
            assert y.shape == e.shape and y.dtype == e.dtype
            np.testing.assert_array_equal(y, e)


def test_harness_catches_a_wrong_result():
    """The comparison fails on one clearly wrong element (the tolerance is not loose) and
    passes within it; the out guard catches a write just past the end of out."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 300, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 300)).astype(np.float32)
    expected = reference.conv1x1_naive(x, w)
    tol = tolerance(300, np.float32, _amax(x), _amax(w), 0.0)
    assert tol < 1e-2 * _amax(expected)
    y = onexone.conv1x1(x, w)
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol)
    y[0, 1, 2, 3] += 4 * tol
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(y, expected, rtol=0, atol=tol)
    out, check = make_out("offset_guarded", (2, 3), np.float32, rng)
    check()
    buf = out.base
    end = (out.ctypes.data - buf.ctypes.data) // out.itemsize + out.size
    buf[end] = 0.0
    with pytest.raises(AssertionError, match="past the end"):
        check()
