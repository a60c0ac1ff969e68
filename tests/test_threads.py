"""Threads: results bitwise independent of the thread count, the thread-count settings, many
Python threads calling at once, and the GIL released during the C call."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import assert_matches_references, same_bits

# (id, N, C, F, H, W, x view): shapes where the work is split over threads by images, by
# column blocks of the pixels, and (small P, deep C) by row blocks of F.
SPLIT_SHAPES = [
    ("r50.c2.reduce", 1, 256, 64, 56, 56, None),
    ("r50.c5.reduce", 1, 2048, 512, 7, 7, None),
    ("batch3", 3, 96, 40, 28, 28, None),
    ("pixels1_deep", 1, 2048, 512, 1, 1, None),
    ("strided_x", 1, 128, 40, 30, 30, "step_w"),
    ("fortran_x", 2, 70, 33, 17, 19, "fortran"),
    # a short reduction over long rows: rows outermost even when threads split the columns
    ("short_k", 1, 16, 96, 56, 57, None),
    ("short_k_strided", 1, 12, 21, 48, 50, "step_w"),
]


def _split_inputs(dtype, n, c, f, h, w, view):
    rng = np.random.default_rng(c * 1000 + f)
    if view == "step_w":
        x = rng.standard_normal((n, c, h, 2 * w)).astype(dtype)[..., ::2]
    elif view == "fortran":
        x = np.asfortranarray(rng.standard_normal((n, c, h, w)).astype(dtype))
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b


@pytest.mark.parametrize("case", SPLIT_SHAPES, ids=[s[0] for s in SPLIT_SHAPES])
def test_bitwise_identical_for_any_thread_count(isa, dtype, case):
    _, n, c, f, h, w, view = case
    x, wt, b = _split_inputs(dtype, n, c, f, h, w, view)
    y1 = onexone.conv1x1(x, wt, b, activation="relu", n_threads=1)
    for nt in (2, 3, 8, None, -1):
        y = onexone.conv1x1(x, wt, b, activation="relu", n_threads=nt)
        assert same_bits(y, y1), f"n_threads={nt} differs from n_threads=1"
    # and the common result is right
    assert_matches_references(y1, x, wt, b, "relu")


@pytest.mark.parametrize("nt", [2**31, 2**40])
def test_huge_n_threads_is_a_cap_not_an_error(nt):
    """Spec: an int n_threads caps the thread count; a cap beyond the machine means all cores."""
    x = np.ones((1, 64, 8, 8), np.float32)
    w = np.ones((16, 64), np.float32)
    y = onexone.conv1x1(x, w, n_threads=nt)
    np.testing.assert_array_equal(y, np.full((1, 16, 8, 8), 64, np.float32))


# ---- settings ------------------------------------------------------------------------------


def _omp_max():
    return onexone.show_config(mode="dicts")["threads"]["omp_max_threads"]


_OPENMP = onexone.show_config(mode="dicts")["threads"]["openmp"]


def _runs(n):
    """What get_num_threads() reports after set_num_threads(n): n, or 1 in a build without
    OpenMP (every call on the calling thread)."""
    return n if _OPENMP else 1


def test_set_and_get_num_threads():
    default = onexone.get_num_threads()
    assert default >= 1
    assert default == _omp_max()
    onexone.set_num_threads(3)
    assert onexone.get_num_threads() == _runs(3)
    assert onexone.show_config(mode="dicts")["threads"]["default"] == _runs(3)
    onexone.set_num_threads(1)
    assert onexone.get_num_threads() == 1
    onexone.set_num_threads(None)
    assert onexone.get_num_threads() == default


def test_set_num_threads_negative_counts_back_from_all_cores():
    onexone.set_num_threads(-1)
    assert onexone.get_num_threads() == _omp_max()
    onexone.set_num_threads(-2)
    assert onexone.get_num_threads() == max(1, _omp_max() - 1)
    onexone.set_num_threads(-10_000)
    assert onexone.get_num_threads() == 1


@pytest.mark.parametrize("bad, exc", [(0, ValueError), ("2", TypeError), (1.5, TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    onexone.set_num_threads(2)
    with pytest.raises(exc, match=r"set_num_threads: n must be"):
        onexone.set_num_threads(bad)
    assert onexone.get_num_threads() == _runs(2)  # unchanged


def test_set_num_threads_is_the_default_for_calls(rng):
    x = rng.standard_normal((1, 256, 28, 28)).astype(np.float32)
    w = rng.standard_normal((64, 256)).astype(np.float32)
    y1 = onexone.conv1x1(x, w, n_threads=1)
    for n in (1, 2, 8):
        onexone.set_num_threads(n)
        assert same_bits(onexone.conv1x1(x, w), y1)


def test_set_num_threads_huge_then_call():
    """A huge default must not make every later call fail."""
    onexone.set_num_threads(2**40)
    y = onexone.conv1x1(np.ones((1, 4, 2, 2)), np.ones((3, 4)))
    np.testing.assert_array_equal(y, np.full((1, 3, 2, 2), 4.0))


def _child(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ONEXONE_ISA")}
    full.update(env)
    r = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_default_threads_honour_omp_num_threads():
    code = "import onexone; print(onexone.get_num_threads(), onexone.show_config(mode='dicts')['threads']['openmp'])"
    one, omp = _child(code, OMP_NUM_THREADS="1").split()
    three, _ = _child(code, OMP_NUM_THREADS="3").split()
    assert int(one) == 1
    assert int(three) == (3 if omp == "True" else 1)


def test_default_threads_honour_omp_thread_limit_and_the_cap():
    """OMP_THREAD_LIMIT caps the default as it caps OpenMP's teams; a huge OMP_NUM_THREADS
    reads as the 1024 a call can use."""
    code = "import onexone; print(onexone.get_num_threads(), onexone.show_config(mode='dicts')['threads']['openmp'])"
    limited, omp = _child(code, OMP_NUM_THREADS="3", OMP_THREAD_LIMIT="1").split()
    huge, _ = _child(code, OMP_NUM_THREADS="100000").split()
    assert int(limited) == 1
    assert int(huge) == (1024 if omp == "True" else 1)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")
def test_default_threads_are_all_usable_cores():
    cfg = onexone.show_config(mode="dicts")["threads"]
    n = int(_child("import onexone; print(onexone.get_num_threads())"))
    assert n == (len(os.sched_getaffinity(0)) if cfg["openmp"] else 1)


_BOUND_WORKERS = """
import os, numpy as np, onexone
x = np.ones((1, 64, 64, 64), np.float32); w = np.ones((32, 64, 1, 1), np.float32)
before = set(int(t) for t in os.listdir("/proc/self/task"))
y = onexone.conv1x1(x, w, n_threads=2)
assert (y == 64).all()
main = os.sched_getaffinity(0)
new = [os.sched_getaffinity(t) for t in set(int(t) for t in os.listdir("/proc/self/task")) - before]
print(sorted(main), [sorted(m) for m in new])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and 2 usable CPUs")
@pytest.mark.parametrize("env", [{"OMP_PROC_BIND": "true"}, {"OMP_PLACES": "cores"}])
def test_workers_follow_openmp_binding(env):
    """Under OMP_PROC_BIND / OMP_PLACES, libgomp binds the main thread to its first place at
    import; onexone's worker must go to the next place (as OpenMP's thread 1 would), not
    inherit that one CPU (2 threads then ran as slowly as 1)."""
    if not onexone.show_config(mode="dicts")["threads"]["openmp"]:
        pytest.skip("a build without OpenMP runs on the calling thread")
    out = _child(_BOUND_WORKERS, **env)
    main, workers = out.split(" ", 1)
    main, workers = eval(main), eval(workers)
    assert workers, "the 2-thread call started no worker"
    assert any(not set(m) & set(main) for m in workers), (main, workers)


def test_threadpoolctl_limits_apply():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not onexone.show_config(mode="dicts")["threads"]["openmp"]:
        pytest.skip("built without OpenMP")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert onexone.get_num_threads() == 1


# ---- many Python threads at once ----------------------------------------------------------


def _concurrent_cases(rng):
    def arr(*shape, dt=np.float32):
        return rng.standard_normal(shape).astype(dt)

    return [
        (arr(1, 64, 28, 28), arr(32, 64), arr(32), "relu", None),
        (arr(2, 33, 13, 17, dt=np.float64), arr(65, 33, dt=np.float64), None, None, 2),
        (arr(1, 256, 7, 7), arr(128, 256), arr(128), "relu6", 1),
        (arr(3, 17, 30, 60)[..., ::2], arr(15, 17), None, "relu", 2),  # packed x
        (np.asfortranarray(arr(1, 300, 9, 9, dt=np.float64)), arr(16, 300, dt=np.float64), None, None, None),
        (arr(96, 14, 14), arr(24, 96), arr(24), None, 3),  # 3-D x
        (arr(1, 16, 56, 56), arr(96, 16, 1, 1), None, "relu", 2),
        (arr(1, 513, 5, 5), arr(7, 513), arr(7), None, 1),
    ]


def _run_concurrently(calls, repeats=4):
    """Run calls[i]() in thread i, all released together, `repeats` times each."""
    barrier = threading.Barrier(len(calls))
    results = [[] for _ in calls]
    errors = []

    def worker(i):
        try:
            barrier.wait()
            for _ in range(repeats):
                results[i].append(calls[i]())
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


def test_8_threads_different_shapes(isa, rng):
    cases = _concurrent_cases(rng)
    assert len(cases) == 8
    serial = [onexone.conv1x1(x, w, b, activation=a, n_threads=nt) for x, w, b, a, nt in cases]
    for y, (x, w, b, a, _) in zip(serial, cases):
        assert_matches_references(y, x, w, b, a)
    calls = [lambda c=c: onexone.conv1x1(c[0], c[1], c[2], activation=c[3], n_threads=c[4]) for c in cases]
    results = _run_concurrently(calls)
    for i, rs in enumerate(results):
        for y in rs:
            assert same_bits(y, serial[i]), f"thread {i} differs from the serial result"


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_8_threads_same_shape(isa, rng, dt):
    x = rng.standard_normal((2, 128, 20, 20)).astype(dt)
    w = rng.standard_normal((64, 128)).astype(dt)
    b = rng.standard_normal(64).astype(dt)
    serial = onexone.conv1x1(x, w, b, activation="relu")
    outs = [np.empty_like(serial) for _ in range(8)]
    calls = [lambda o=o, i=i: onexone.conv1x1(x, w, b, activation="relu", out=o, n_threads=1 + i % 3).copy()
             for i, o in enumerate(outs)]
    for rs in _run_concurrently(calls):
        for y in rs:
            assert same_bits(y, serial)


def test_gil_is_released_during_the_call():
    """While one long call runs (tens to hundreds of ms on one thread), another Python thread
    keeps running. It ticks once per ~1 ms sleep, and only counts ticks while the call is in
    flight. With the GIL held through the C call it could tick at most once or twice (at the
    call's edges); released, it ticks for the whole call."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 256, 56, 56), dtype=np.float32)
    w = rng.standard_normal((256, 256), dtype=np.float32)
    in_call = threading.Event()
    finished = threading.Event()
    ticks = [0]

    def ticker():
        while not finished.is_set():
            if in_call.is_set():
                ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.01)
        in_call.set()
        t0 = time.perf_counter()
        y = onexone.conv1x1(x, w, n_threads=1)
        elapsed = time.perf_counter() - t0
        in_call.clear()
    finally:
        finished.set()
        t.join()
    assert ticks[0] >= 10, f"only {ticks[0]} ticks of another thread during a {elapsed * 1e3:.0f} ms call"
    np.testing.assert_allclose(y[3], reference.conv1x1(x[3], w), rtol=0, atol=0.02)


def test_forked_child_runs_single_threaded_instead_of_hanging():
    """Threads do not survive fork(); a child that calls onexone must neither hang nor differ."""
    import multiprocessing as mp

    x = np.arange(1 * 64 * 28 * 28, dtype=np.float32).reshape(1, 64, 28, 28) % 7
    w = (np.arange(32 * 64, dtype=np.float32).reshape(32, 64) % 5) - 2
    expected = onexone.conv1x1(x, w, n_threads=2)  # the parent's pool now exists
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(onexone.conv1x1(x, w, n_threads=2)))
    p.start()
    try:  # read before join: a child cannot exit while its queue still holds data
        got = q.get(timeout=60)
    except Exception:
        got = None
    p.join(10)
    if p.is_alive():
        p.kill()
    assert got is not None, "onexone hung in a forked child"
    np.testing.assert_array_equal(got, expected)


# ---- 16 Python threads over every op (reliability issue) -----------------------------------


def _op_calls(rng):
    """16 calls of different shapes and ops: the 8 conv1x1 cases above, strided/grouped/NHWC
    conv1x1, conv2d on both algorithms, and the gradients of both. Each returns a tuple."""
    def arr(*shape, dt=np.float32):
        return rng.standard_normal(shape).astype(dt)

    calls = [lambda c=c: (onexone.conv1x1(c[0], c[1], c[2], activation=c[3], n_threads=c[4]),)
             for c in _concurrent_cases(rng)]
    x1, w1 = arr(2, 14, 14, 48), arr(24, 12)
    x2, w2, b2 = arr(1, 16, 30, 30), arr(32, 16, 3, 3), arr(32)
    x3, w3 = arr(2, 5, 17, 23, dt=np.float64), arr(7, 5, 5, 5, dt=np.float64)
    x4, w4 = arr(1, 24, 20, 20), arr(12, 8, 3, 3)
    gy5, x5, w5 = arr(2, 40, 9, 11), arr(2, 24, 18, 22), arr(40, 12)
    gy6, x6, w6 = arr(1, 9, 9, 18, dt=np.float64), arr(1, 9, 9, 30, dt=np.float64), arr(18, 30, dt=np.float64)
    gy7 = arr(1, 32, 15, 15)
    calls += [
        lambda: (onexone.conv1x1(x1, w1, groups=4, layout="NHWC", stride=2, activation="relu"),),
        lambda: (onexone.conv2d(x2, w2, b2, padding=1, algorithm="direct", activation="relu"),),
        lambda: (onexone.conv2d(x3, w3, stride=2, padding=2, algorithm="im2col", n_threads=2),),
        lambda: (onexone.conv2d(x4, w4, groups=3, dilation=2, padding="same", n_threads=3),),
        lambda: (onexone.conv2d(x2[:, :, ::2], w2, b2, algorithm="im2col", n_threads=8),),
        lambda: onexone.conv1x1_backward(gy5, x5, w5, stride=2, groups=2),
        lambda: onexone.conv1x1_backward(gy6, x6, w6, layout="NHWC", n_threads=3),
        lambda: onexone.conv2d_backward(gy7, x2[:, :8], w2[:, :8], stride=2, padding=1),
    ]
    return calls


def _assert_all_like(results, serial):
    for i, rs in enumerate(results):
        for got in rs:
            for y, e in zip(got, serial[i]):
                assert (y is None and e is None) or same_bits(y, e), f"thread {i} differs from the serial result"


def test_16_threads_different_shapes_and_ops(isa, rng):
    calls = _op_calls(rng)
    assert len(calls) == 16
    serial = [call() for call in calls]
    _assert_all_like(_run_concurrently(calls, repeats=3), serial)


@pytest.mark.parametrize("op", ["conv1x1", "conv2d", "conv1x1_backward", "conv2d_backward"])
def test_16_threads_same_shape(isa, rng, op):
    x = rng.standard_normal((2, 48, 18, 18)).astype(np.float32)
    if op == "conv1x1":
        w = rng.standard_normal((40, 48)).astype(np.float32)
        call = lambda nt: (onexone.conv1x1(x, w, activation="relu", n_threads=nt),)  # noqa: E731
    elif op == "conv2d":
        w = rng.standard_normal((20, 48, 3, 3)).astype(np.float32)
        call = lambda nt: (onexone.conv2d(x, w, padding=1, algorithm=("direct", "im2col")[nt % 2], n_threads=nt),)  # noqa: E731
    elif op == "conv1x1_backward":
        w = rng.standard_normal((40, 48)).astype(np.float32)
        gy = rng.standard_normal((2, 40, 18, 18)).astype(np.float32)
        call = lambda nt: onexone.conv1x1_backward(gy, x, w, n_threads=nt)  # noqa: E731
    else:
        w = rng.standard_normal((16, 24, 3, 3)).astype(np.float32)
        gy = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
        call = lambda nt: onexone.conv2d_backward(gy, x, w, stride=2, padding=1, groups=2, n_threads=nt)  # noqa: E731
    if op == "conv2d":  # the two algorithms round differently: one serial result each
        serial = [call(2 - (1 + i % 8) % 2) for i in range(16)]
    else:
        serial = [call(1)] * 16
    calls = [lambda i=i: call(1 + i % 8) for i in range(16)]
    _assert_all_like(_run_concurrently(calls, repeats=3), serial)


@pytest.mark.parametrize("op", ["conv2d", "conv1x1_backward", "conv2d_backward"])
def test_gil_is_released_during_other_ops(op):
    """As test_gil_is_released_during_the_call, for the other ops' C calls."""
    rng = np.random.default_rng(1)
    if op == "conv2d":
        x = rng.standard_normal((16, 64, 56, 56), dtype=np.float32)  # ~60 ms on one thread
        w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
        call = lambda: onexone.conv2d(x, w, padding=1, n_threads=1)  # noqa: E731
    elif op == "conv2d_backward":
        x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)  # ~100 ms on one thread
        gy = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
        w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
        call = lambda: onexone.conv2d_backward(gy, x, w, padding=1, need=("x", "w"), n_threads=1)  # noqa: E731
    else:
        x = rng.standard_normal((8, 256, 56, 56), dtype=np.float32)  # ~100 ms on one thread
        gy = rng.standard_normal((8, 128, 56, 56), dtype=np.float32)
        w = rng.standard_normal((128, 256), dtype=np.float32)
        call = lambda: onexone.conv1x1_backward(gy, x, w, need=("x", "w"), n_threads=1)  # noqa: E731
    in_call, finished, ticks = threading.Event(), threading.Event(), [0]

    def ticker():
        while not finished.is_set():
            if in_call.is_set():
                ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.01)
        in_call.set()
        t0 = time.perf_counter()
        call()
        elapsed = time.perf_counter() - t0
        in_call.clear()
    finally:
        finished.set()
        t.join()
    print(f"{op}: {ticks[0]} ticks during a {elapsed * 1e3:.0f} ms call")
    assert ticks[0] >= 10, f"only {ticks[0]} ticks of another thread during a {elapsed * 1e3:.0f} ms call"


# ---- beside NumPy's BLAS -------------------------------------------------------------------


def _seconds_per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def interleave_ratio(rng, rounds=9, calls=40):
    """Median over rounds of pair / (conv1x1 alone + matmul alone), each round timing the
    three back to back (so a burst of load from elsewhere hits all three), and the median
    seconds per call of each."""
    x = rng.standard_normal((1, 64, 28, 28)).astype(np.float32)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    y = np.empty((1, 64, 28, 28), np.float32)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal((64, 784)).astype(np.float32)
    c = np.empty((64, 784), np.float32)

    def conv():
        onexone.conv1x1(x, w, out=y)

    def mm():
        np.matmul(a, b, out=c)

    def pair():
        conv()
        mm()

    for fn in (conv, mm, pair):
        _seconds_per_call(fn, 20)
    times = np.array([[_seconds_per_call(fn, calls) for fn in (conv, mm, pair)] for _ in range(rounds)])
    ratio = float(np.median(times[:, 2] / (times[:, 0] + times[:, 1])))
    t_conv, t_mm, t_pair = np.median(times, axis=0)
    return t_pair, t_conv, t_mm, ratio


def test_alternating_with_numpy_matmul_does_not_collapse(rng):
    """A loop alternating onexone.conv1x1 (64->64 on 28x28) with NumPy's 64x64 @ 64x784
    matmul costs about 1.1-1.2x the sum of the two alone here; an OpenMP-style busy-waiting
    pool beside OpenBLAS's made it 60x on 2 cores. Fails on a 10x collapse (medians, and one
    retry, so a noisy machine does not make it fail). The ratio is benchmarked by
    benches/bench_reliability.py."""
    from oxo_testing import under_sanitizer

    if under_sanitizer():
        pytest.skip("timings under ASan/valgrind mean nothing")
    for _ in range(2):
        t_pair, t_conv, t_mm, ratio = interleave_ratio(rng)
        if ratio < 10:
            break
    assert ratio < 10, (
        f"alternating costs {ratio:.1f}x the sum alone: pair {t_pair * 1e3:.3f} ms, "
        f"conv1x1 {t_conv * 1e3:.3f} ms, matmul {t_mm * 1e3:.3f} ms"
    )
