"""Memory safety (reliability issue): no read or write outside the user's buffers, no leak,
MemoryError (never a crash) for what cannot be allocated, 64-bit index arithmetic.

* Guard pages: x, weight, bias, out (and grad_y) are placed flush against an inaccessible
  page, at their end or at their start, for every op and ISA path: edge tiles, masked lanes,
  the dot-product tail and the packers must stay inside. A stray access is a SIGSEGV, so each
  ISA runs in a child process (``python tests/test_memory.py guard ISA``) and the test reports
  the case it died on.
* 10,000 calls of mixed shapes grow the resident set by less than 1 MiB.
* Results too large to allocate raise MemoryError naming the shape before touching memory;
  a scratch allocation that fails raises MemoryError too.
* ``-m slow``: outputs of more than 2**31 elements, checked on a sample.

Also run by ``make sanitize`` (ASan/UBSan) and, in part, ``make valgrind``.
"""
from __future__ import annotations

import ctypes
import gc
import mmap
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import onexone
from onexone import reference

from oxo_testing import under_sanitizer

HERE = os.path.dirname(os.path.abspath(__file__))

PAGE = mmap.PAGESIZE
PROT_NONE = 0
LINUX = sys.platform.startswith("linux")

# ---- guard pages ----------------------------------------------------------------------------


def _mprotect():
    libc = ctypes.CDLL(None, use_errno=True)
    f = libc.mprotect
    f.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    f.restype = ctypes.c_int
    return f


def guarded(shape, dtype, where="end", order="C"):
    """A zero-filled array of `shape` in a fresh mapping between two inaccessible pages,
    flush against the one after it (where="end": its last byte is the last accessible one)
    or the one before it (where="start"). order="F" gives a Fortran-ordered array."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    nbytes = size * dtype.itemsize
    pages = max(1, -(-nbytes // PAGE))
    mm = mmap.mmap(-1, (pages + 2) * PAGE)
    addr = np.frombuffer(mm, np.uint8, count=1).ctypes.data  # the mapping's first byte
    prot = _mprotect()
    for page in (addr, addr + (pages + 1) * PAGE):
        if prot(page, PAGE, PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
    offset = PAGE + (pages * PAGE - nbytes if where == "end" else 0)
    flat = np.frombuffer(mm, dtype, count=size, offset=offset)  # keeps the mapping alive
    return flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)


def placed(a, where, view="c"):
    """A copy of `a` (4-D or less) whose memory is guarded at `where`, seen through `view`:
    "c", "fortran", "step" (every other element of the last axis: the one at the guard is
    used), "neg" (all axes reversed)."""
    if view == "fortran":
        g = guarded(a.shape, a.dtype, where, order="F")
        g[...] = a
        return g
    if view == "step":
        shape = a.shape[:-1] + (2 * a.shape[-1],)
        g = guarded(shape, a.dtype, where)
        v = g[..., 1::2] if where == "end" else g[..., ::2]
        v[...] = a
        return v
    g = guarded(a.shape, a.dtype, where)
    if view == "neg":
        v = g[(slice(None, None, -1),) * a.ndim]
        v[...] = a
        return v
    g[...] = a
    return g


def _ints(rng, shape, dtype, lo=-4, hi=4):
    return rng.integers(lo, hi + 1, shape).astype(dtype)


# Shapes (N, C, F, H, W) whose pixel counts leave every tail of 16/8/4-lane vectors and of the
# register tiles' widths, with F around the tiles' rows and C around the K blocks.
GUARD_SHAPES = [
    (1, 1, 1, 1, 1), (2, 3, 5, 1, 3), (1, 17, 7, 1, 7), (1, 5, 9, 2, 4), (2, 3, 3, 3, 3),
    (1, 9, 13, 1, 15), (1, 4, 6, 1, 17), (1, 129, 5, 3, 7), (2, 2, 8, 1, 23), (1, 7, 17, 5, 5),
    (1, 3, 4, 1, 33), (1, 257, 3, 1, 9), (1, 6, 11, 7, 7), (1, 2, 25, 1, 47), (1, 33, 6, 7, 9),
    (1, 5, 9, 1, 97), (1, 1, 3, 19, 27), (1, 65, 49, 3, 171), (1, 130, 20, 1, 520),
]
PLACEMENTS = [  # (where, view of x, view of weight, view of out/grad): every array guarded at once
    ("end", "c", "c", "c"), ("start", "c", "c", "c"), ("end", "step", "fortran", "c"),
    ("start", "step", "fortran", "c"), ("end", "neg", "step", "c"), ("start", "neg", "neg", "c"),
    ("end", "fortran", "c", "c"),
]


def _guard_cases(dtype):
    """(label, thunk) pairs: each thunk makes guarded inputs, calls onexone and checks the
    result against the reference (exact integers)."""
    rng = np.random.default_rng(7)
    cases = []

    def conv1x1_case(n, c, f, h, w, where, xv, wv, stride=1, groups=1, layout="NCHW", act="relu"):
        xs = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
        x0, w0, b0 = _ints(rng, xs, dtype), _ints(rng, (f, c // groups), dtype), _ints(rng, (f,), dtype, -30, 30)

        def run():
            x, wt, b = placed(x0, where, xv), placed(w0, where, wv), placed(b0, where)
            expected = reference.conv1x1_naive(x0, w0, b0, stride=stride, groups=groups, layout=layout, activation=act)
            out = guarded(expected.shape, expected.dtype, where)
            y = onexone.conv1x1(x, wt, b, stride=stride, groups=groups, layout=layout, activation=act, out=out)
            np.testing.assert_array_equal(y, expected)
            y = onexone.conv1x1(x, wt[..., None, None] if wv == "c" else wt, b, stride=stride, groups=groups,
                                layout=layout, activation=act)  # a fresh out, 4-D weight
            np.testing.assert_array_equal(y, expected)

        return run

    def conv2d_case(n, c, f, h, w, where, xv, k, stride, padding, dilation, algorithm, groups=1):
        x0, w0 = _ints(rng, (n, c, h, w), dtype), _ints(rng, (f, c // groups, k, k), dtype)
        b0 = _ints(rng, (f,), dtype, -30, 30)

        def run():
            x, wt, b = placed(x0, where, xv), placed(w0, where), placed(b0, where)
            kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation="relu6")
            expected = reference.conv2d_naive(x0, w0, b0, **kw)
            out = guarded(expected.shape, expected.dtype, where)
            y = onexone.conv2d(x, wt, b, out=out, algorithm=algorithm, **kw)
            np.testing.assert_array_equal(y, expected)

        return run

    def backward_case(n, c, f, h, w, where, xv, wv, stride=1, groups=1, layout="NCHW"):
        xs = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
        x0, w0 = _ints(rng, xs, dtype), _ints(rng, (f, c // groups), dtype)
        y_shape = reference.conv1x1(x0, w0, stride=stride, groups=groups, layout=layout).shape
        g0 = _ints(rng, y_shape, dtype)

        def run():
            kw = dict(stride=stride, groups=groups, layout=layout)
            gy, x, wt = placed(g0, where, xv), placed(x0, where, xv), placed(w0, where, wv)
            got = onexone.conv1x1_backward(gy, x, wt, **kw)
            for a, e in zip(got, reference.conv1x1_backward(g0, x0, w0, **kw)):
                np.testing.assert_array_equal(a, e)

        return run

    for i, (n, c, f, h, w) in enumerate(GUARD_SHAPES):
        for where, xv, wv, _ in PLACEMENTS:
            cases.append((f"conv1x1 {(n, c, f, h, w)} {where} x:{xv} w:{wv}", conv1x1_case(n, c, f, h, w, where, xv, wv)))
        where = ("end", "start")[i % 2]
        g = (1, 3)[i % 2] if c % 3 == 0 and f % 3 == 0 else 1
        cases.append((f"conv1x1 {(n, c, f, h, w)} {where} stride 2 groups {g}",
                      conv1x1_case(n, c, f, 2 * h, 2 * w - 1, where, "c", "c", stride=2, groups=g)))
        for xv in ("c", "step"):
            cases.append((f"conv1x1 NHWC {(n, c, f, h, w)} {where} x:{xv}",
                          conv1x1_case(n, c, f, h, w, where, xv, "c", layout="NHWC")))
        if n * c * f * h * w < 200_000:
            cases.append((f"conv1x1_backward {(n, c, f, h, w)} {where}", backward_case(n, c, f, h, w, where, "c", "c")))
            cases.append((f"conv1x1_backward NHWC {(n, c, f, h, w)} {where} stride 2",
                          backward_case(n, c, f, 2 * h, 2 * w, ("start", "end")[i % 2], "step", "fortran",
                                        stride=2, layout="NHWC")))
            cases.append((f"conv1x1_backward {(n, c, f, h, w)} {where} stride 2 groups {g}",
                          backward_case(n, c, f, 2 * h - 1, 2 * w, where, "c", "c", stride=2, groups=g)))
    # conv2d: the direct kernel's masked taps and lanes, the im2col packer, padding, strides
    conv2d_shapes = [(1, 1, 1, 3, 3), (1, 3, 5, 5, 7), (2, 4, 9, 7, 17), (1, 5, 13, 9, 15),
                     (1, 2, 7, 11, 33), (1, 17, 6, 6, 25), (1, 3, 17, 20, 49)]
    geoms = [(3, 1, 0, 1), (3, 1, 1, 1), (5, 1, 2, 1), (3, 2, 1, 1), (2, 1, 0, 2), (1, 1, 0, 1), (3, 1, "same", 1),
             (7, 2, 3, 1)]
    for i, (n, c, f, h, w) in enumerate(conv2d_shapes):
        for j, (k, s, p, d) in enumerate(geoms):
            if d * (k - 1) + 1 > min(h, w) + 2 * (p if isinstance(p, int) else k // 2):
                continue
            for algorithm in ("direct", "im2col"):
                where = ("end", "start")[(i + j) % 2]
                xv = ("c", "step", "neg", "fortran")[(i + j) % 4]
                cases.append((f"conv2d {algorithm} {(n, c, f, h, w)} k{k} s{s} p{p} d{d} {where} x:{xv}",
                              conv2d_case(n, c, f, h, w, where, xv, k, s, p, d, algorithm)))
            # depthwise (groups == C, multiplier 1 or 2): its own kernel
            where, xv = ("start", "end")[(i + j) % 2], ("c", "neg", "step", "fortran")[(i + j) % 4]
            cases.append((f"conv2d depthwise {(n, c, f, h, w)} k{k} s{s} p{p} d{d} {where} x:{xv}",
                          conv2d_case(n, c, c * (1 + j % 2), h, w, where, xv, k, s, p, d, "direct", groups=c)))
    return cases


def guard_main(isa: str) -> int:
    """Child process: run every guard case on one ISA, printing each before it runs."""
    onexone.set_isa(isa)
    done = 0
    for dtype in (np.float32, np.float64):
        for label, run in _guard_cases(dtype):
            print(f"case {np.dtype(dtype).name} {label}", flush=True)
            run()
            done += 1
    print(f"guard: {done} cases passed on {isa}", flush=True)
    return 0


def test_guarded_helper_really_guards():
    """An access one element past a guarded array is a SIGSEGV (in a child process)."""
    code = textwrap.dedent(
        """
        import sys, faulthandler; sys.path.insert(0, %r)
        faulthandler.disable()
        import numpy as np, test_memory as m
        a = m.guarded((3, 5), np.float32, "end")
        a[...] = 1
        print("inside ok", float(a.sum()), flush=True)
        base = a.ravel()
        wider = np.lib.stride_tricks.as_strided(base, (16,), (4,))  # one element past the end
        print(float(wider[15]))
        """
        % HERE
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "inside ok 15.0" in r.stdout
    assert r.returncode != 0, "reading past the guarded array did not fault"


@pytest.mark.skipif(not LINUX, reason="mmap guard pages via mprotect: Linux")
@pytest.mark.parametrize("isa", onexone.available_isas())
def test_guard_pages(isa):
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, os.path.join(HERE, "test_memory.py"), "guard", isa],
                       capture_output=True, text=True, timeout=600, env=env)
    cases = [line for line in r.stdout.splitlines() if line.startswith("case ")]
    assert r.returncode == 0, (
        f"child exited with {r.returncode} after {len(cases)} cases; last case: "
        f"{cases[-1] if cases else None}\n{r.stderr[-3000:]}"
    )
    m = re.search(r"guard: (\d+) cases passed", r.stdout)
    assert m and int(m.group(1)) == len(cases) >= 500, r.stdout[-500:]


# ---- no leak --------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _mixed_calls():
    """Calls of many shapes and paths (fast and checked paths, strided, NHWC, groups, conv2d,
    gradients, out=, errors): each returns nothing."""
    rng = np.random.default_rng(3)

    def f32(*s):
        return rng.standard_normal(s).astype(np.float32)

    x1, w1, b1 = f32(1, 64, 28, 28), f32(32, 64), f32(32)
    out1 = np.empty((1, 32, 28, 28), np.float32)
    x2 = rng.standard_normal((2, 17, 9, 31))
    w2 = rng.standard_normal((13, 17, 1, 1))
    x3 = f32(1, 40, 30, 60)[..., ::2]
    x4 = f32(2, 7, 9, 24)  # NHWC
    w4 = f32(12, 12)
    x5, w5, b5 = f32(1, 8, 20, 20), f32(16, 8, 3, 3), f32(16)
    gy6, x6, w6 = f32(2, 10, 6, 7), f32(2, 12, 6, 7), f32(10, 12)
    bad_w = f32(3, 5)

    def error():
        try:
            onexone.conv1x1(x2, bad_w)
        except ValueError:
            pass

    return [
        lambda: onexone.conv1x1(x1, w1, b1, activation="relu"),
        lambda: onexone.conv1x1(x1, w1, b1, out=out1, n_threads=1),
        lambda: onexone.conv1x1(x2, w2, activation="relu6"),
        lambda: onexone.conv1x1(x3, w1[:, :40], n_threads=2),
        lambda: onexone.conv1x1(x4, w4, layout="NHWC", groups=2, stride=2),
        lambda: onexone.conv1x1(x1[0, :, :5, :5].tolist(), w1[:4].tolist()),
        lambda: onexone.conv2d(x5, w5, b5, padding=1, algorithm="direct"),
        lambda: onexone.conv2d(x5, w5, b5, stride=2, algorithm="im2col"),
        lambda: onexone.conv1x1_backward(gy6, x6, w6),
        error,
    ]


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
@pytest.mark.skipif(under_sanitizer(), reason="ASan's quarantine and valgrind hold freed memory")
def test_10000_calls_do_not_grow_rss():
    calls = _mixed_calls()
    for i in range(2000):  # warm-up: pools, caches, the allocator's arenas
        calls[i % len(calls)]()
    gc.collect()
    before = rss_bytes()
    for i in range(10_000):
        calls[i % len(calls)]()
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 1 << 20, f"RSS grew by {grown / 1024:.0f} KiB over 10,000 calls"


# ---- what cannot be allocated ---------------------------------------------------------------


def _bcast(shape, dtype=np.float32):
    return np.broadcast_to(np.ones((1,) * len(shape), dtype), shape)


# Valid requests whose result needs more than 2**47 bytes (beyond any x86-64 user address
# space, so no overcommit setting can hand it out): (id, call, shape of the result). The
# message must name that shape, or the input whose copy was attempted first.
HUGE = [
    ("conv1x1_1PiB", lambda: onexone.conv1x1(_bcast((1, 1, 2**20, 2**20)), np.ones((2**8, 1), np.float32)),
     (1, 256, 2**20, 2**20)),
    ("conv1x1_batch", lambda: onexone.conv1x1(_bcast((2**36, 3, 1, 1)), np.ones((1024, 3), np.float32)),
     (2**36, 1024, 1, 1)),
    ("conv1x1_float64", lambda: onexone.conv1x1(_bcast((1, 2, 2**22, 2**22), np.float64), np.ones((4, 2))),
     (1, 4, 2**22, 2**22)),
    ("conv1x1_nhwc", lambda: onexone.conv1x1(_bcast((1, 2**22, 2**22, 1)), np.ones((64, 1), np.float32), layout="NHWC"),
     (1, 2**22, 2**22, 64)),
    ("conv2d", lambda: onexone.conv2d(_bcast((1, 1, 2**21, 2**21)), np.ones((64, 1, 3, 3), np.float32), padding=1),
     (1, 64, 2**21, 2**21)),
    ("conv1x1_backward_grad_x", lambda: onexone.conv1x1_backward(
        _bcast((1, 1, 2**22, 2**22)), _bcast((1, 2**10, 2**22, 2**22)), np.ones((1, 2**10), np.float32), need="x"),
     (1, 2**10, 2**22, 2**22)),
    ("conv2d_backward_grad_x", lambda: onexone.conv2d_backward(
        _bcast((1, 1, 2**21, 2**21)), _bcast((1, 2**8, 2**21, 2**21)), np.ones((1, 2**8, 1, 1), np.float32), need="x"),
     (1, 2**8, 2**21, 2**21)),
]


INPUT_SHAPES = {"conv1x1_backward_grad_x": [(1, 1, 2**22, 2**22)],  # grad_y, gathered first
                "conv2d_backward_grad_x": [(1, 1, 2**21, 2**21)]}


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("case", HUGE, ids=[c[0] for c in HUGE])
def test_huge_valid_request_is_a_memory_error_naming_the_shape(case):
    _, call, shape = case
    before = rss_bytes()
    with pytest.raises(MemoryError) as info:
        call()
    names = [str(shape)] + [str(s) for s in INPUT_SHAPES.get(case[0], ())]
    assert any(name in str(info.value) for name in names), str(info.value)
    assert rss_bytes() - before < 64 << 20, "memory was touched before the MemoryError"


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS")
@pytest.mark.skipif(under_sanitizer(), reason="ASan reserves terabytes of shadow memory: no RLIMIT_AS")
def test_failed_scratch_allocation_is_a_memory_error():
    """The C engine's scratch (packed blocks, per thread) cannot be allocated: MemoryError,
    out untouched beyond what is defined, and the next call (with memory back) is right."""
    code = textwrap.dedent(
        """
        import resource, numpy as np, onexone
        from onexone import reference
        rng = np.random.default_rng(0)
        x = rng.integers(-4, 5, (1, 300, 64, 128)).astype(np.float32)[..., ::2]  # packed: scratch
        w = rng.integers(-4, 5, (64, 300)).astype(np.float32)
        out = np.empty((1, 64, 64, 64), np.float32)
        expected = reference.conv1x1_naive(x, w)
        def vm():
            for line in open("/proc/self/status"):
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm() + (3 << 20), hard))
        try:
            onexone.conv1x1(x, w, out=out, n_threads=8)
            print("no error")
        except MemoryError as e:
            print("MemoryError:", e)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        y = onexone.conv1x1(x, w, out=out, n_threads=8)
        print("after:", bool((y == expected).all()))
        """
    )
    # glibc: large blocks always mmap-ed and returned, so no free heap can serve the scratch
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "MemoryError:" in r.stdout, r.stdout
    assert "after: True" in r.stdout, r.stdout


# ---- 64-bit indices -------------------------------------------------------------------------

BIG = 2**31 + 2**26  # elements: past 2**31 with room


def _pattern(c_index, p, dtype):
    """Cheap exact-integer channel data: values in -2..2."""
    return (((np.arange(p, dtype=np.int64) * (2 * c_index + 1) + c_index) % 5) - 2).astype(dtype)


def _check_sample(y, x, w, rng, pixel_axis_last=True):
    """y (N, F, P-ish) against W @ x on a sample of pixels, including the very last ones."""
    n, f = y.shape[0], y.shape[1]
    p = y.shape[2] * y.shape[3]
    yv = y.reshape(n, f, p)
    xv = x.reshape(n, x.shape[1], p)
    picks = np.concatenate([rng.integers(0, p, 20_000), np.arange(max(0, p - 600), p), np.arange(min(p, 600))])
    for img in {0, n - 1}:
        ref = w.astype(np.float64) @ xv[img][:, picks].astype(np.float64)
        np.testing.assert_array_equal(yv[img][:, picks], ref)


@pytest.mark.slow
@pytest.mark.parametrize("n, c, f", [(1, 4, 65), (3, 2, 22)], ids=["one_image", "batch"])
def test_output_over_2_31_elements(n, c, f):
    """More than 2**31 output elements (8 GiB float32), in one image (row offsets past 2**31)
    or over a batch (image offsets past 2**31)."""
    p = -(-BIG // (n * f))
    w = (np.arange(f * c).reshape(f, c) % 5 - 2).astype(np.float32)
    x = np.empty((n, c, 1, p), np.float32)
    for i in range(n):
        for ch in range(c):
            x[i, ch, 0] = _pattern(ch + i, p, np.float32)
    y = onexone.conv1x1(x, w)
    assert y.size > 2**31
    _check_sample(y, x, w, np.random.default_rng(0))


@pytest.mark.slow
def test_input_over_2_31_elements():
    """x of more than 2**31 elements (channel offsets past 2**31), deep enough to be read in
    several K blocks."""
    c, f = 520, 3
    p = -(-BIG // c)
    x = np.empty((1, c, 1, p), np.float32)
    for ch in range(c):
        x[0, ch, 0] = _pattern(ch % 7, p, np.float32)
    w = (np.arange(f * c).reshape(f, c) % 3 - 1).astype(np.float32)
    y = onexone.conv1x1(x, w)
    assert x.size > 2**31
    _check_sample(y, x, w, np.random.default_rng(1))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_conv2d_output_over_2_31_elements(algorithm):
    f = 66
    h, w_ = 2**12, -(-BIG // (f * 2**12))
    x = _pattern(1, h * w_, np.float32).reshape(1, 1, h, w_)
    wt = (np.arange(f * 9).reshape(f, 1, 3, 3) % 5 - 2).astype(np.float32)
    y = onexone.conv2d(x, wt, padding=1, algorithm=algorithm)
    assert y.size > 2**31
    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.integers(0, h, 6), [0, h - 1]])
    for r in rows:
        lo, hi = max(0, r - 1), min(h, r + 2)
        ref = reference.conv2d_naive(x[:, :, lo:hi], wt, padding=1)  # rows around r
        np.testing.assert_array_equal(y[:, :, r], ref[:, :, r - lo])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "guard":  # "all": every ISA this process can run
        isas = onexone.available_isas() if sys.argv[2] == "all" else [sys.argv[2]]
        sys.exit(max(guard_main(isa) for isa in isas))
    sys.exit(f"usage: {sys.argv[0]} guard ISA|all")


# ---- scratch kept between calls ---------------------------------------------------------------
# Large scratch blocks (the padded copy of x, packed weights, the GEMM's packed blocks, W^T's
# blocks in NHWC) are kept for the next call instead of being freed. A block filled
# with NaN by one call must not leak into the next one, which gets it back for a smaller shape.


@pytest.mark.parametrize("case", ["direct-copy", "direct-fv", "im2col", "nhwc", "strided-1x1"])
def test_kept_scratch_does_not_leak_into_the_next_call(case):
    rng = np.random.default_rng(7)

    def call(x, w):
        if case == "direct-copy":  # stride 2: the phase-split copy
            return onexone.conv2d(x, w, stride=2, padding=1, algorithm="direct")
        if case == "direct-fv":  # a layer the channel-vectorized kernel takes (AVX-512)
            return onexone.conv2d(x, w, padding=1, algorithm="direct")
        if case == "im2col":
            return onexone.conv2d(x, w, padding=1, algorithm="im2col")
        if case == "nhwc":
            return onexone.conv1x1(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w[:, :, :1, :1], layout="NHWC")
        return onexone.conv1x1(x, w[:, :, :1, :1], stride=2)

    def reference_of(x, w):
        if case == "direct-copy":
            return reference.conv2d_naive(x, w, stride=2, padding=1)
        if case in ("direct-fv", "im2col"):
            return reference.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
        y = reference.conv1x1_naive(x if case == "nhwc" else x[:, :, ::2, ::2], w[:, :, :1, :1])
        return y.transpose(0, 2, 3, 1) if case == "nhwc" else y

    c, f = 48, 40
    w = rng.integers(-3, 4, (f, c, 3, 3)).astype(np.float32)
    poison = np.full((1, c, 44, 44), np.nan, np.float32)
    call(poison, w)  # leaves NaN in every kept block
    x = rng.integers(-3, 4, (1, c, 42, 42)).astype(np.float32)
    np.testing.assert_array_equal(call(x, w), reference_of(x, w))
