"""onexone.dask.conv1x1 against the in-memory onexone.conv1x1, and onexone inside dask's
threaded scheduler and distributed's LocalCluster workers. Skipped without dask."""
import doctest
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import onexone
from oxo_testing import same_bits, tolerance

da = pytest.importorskip("dask.array")
import onexone.dask  # noqa: E402 - after the importorskip

THREADS = onexone.show_config(mode="dicts")["threads"]


def test_importing_onexone_does_not_import_dask():
    code = (
        "import sys, onexone, onexone.layers, onexone.reference\n"
        "assert not [m for m in sys.modules if m == 'dask' or m.startswith('dask.')], 'dask imported'\n"
        "import onexone.dask\n"
        "assert 'dask.array' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# ---- the numbers ----------------------------------------------------------------------------

# (id, x shape (NCHW), chunks (NCHW order), stride, groups): along N only, H, W, both, odd
# offsets, chunks smaller than the stride (empty output chunks), and along C (rechunked)
CHUNKINGS = [
    ("N", (4, 12, 13, 11), (1, 12, 13, 11), 1, 1),
    ("N_stride2_groups3", (3, 12, 13, 11), (2, 12, 13, 11), 2, 3),
    ("H", (2, 12, 17, 9), (2, 12, 5, 9), 1, 1),
    ("H_stride2_odd_offsets", (2, 12, 17, 9), (2, 12, 3, 9), 2, 2),
    ("W_stride3", (2, 12, 9, 23), (2, 12, 9, 4), 3, 1),
    ("HW_stride_2x3", (2, 12, 15, 14), (1, 12, 4, 5), (2, 3), 4),
    ("tiny_chunks_stride3", (1, 12, 7, 8), (1, 12, 1, 2), 3, 1),
    ("C", (2, 12, 10, 10), (1, 1, 10, 4), 1, 1),
    ("C_and_stride", (2, 12, 10, 10), (2, 5, 3, 10), 2, 6),
]


def _inputs(rng, shape, dtype, layout, f=24, groups=1):
    x = rng.standard_normal(shape).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w = rng.standard_normal((f, shape[1] // groups)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, w, b


def _nhwc_chunks(chunks, layout):
    n, c, h, w = chunks
    return (n, h, w, c) if layout == "NHWC" else chunks


def _assert_same_as_in_memory(got, want, x, w, b, bitwise):
    assert got.shape == want.shape and got.dtype == want.dtype
    if bitwise:
        assert same_bits(got, want)
    else:  # another pixel count per call: the kernel may sum in another order
        tol = tolerance(w.shape[1], want.dtype, np.abs(x).max(), np.abs(w).max(), np.abs(b).max())
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.mark.parametrize("case", CHUNKINGS, ids=[c[0] for c in CHUNKINGS])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_equals_in_memory_call(rng, dtype, case, layout, activation):
    _, shape, chunks, stride, groups = case
    x, w, b = _inputs(rng, shape, dtype, layout, groups=groups)
    kw = dict(stride=stride, groups=groups, layout=layout, activation=activation)
    xd = da.from_array(x, chunks=_nhwc_chunks(chunks, layout))
    yd = onexone.dask.conv1x1(xd, w, b, **kw)
    want = onexone.conv1x1(x, w, b, **kw)
    assert yd.shape == want.shape and yd.dtype == want.dtype
    got = yd.compute(scheduler="threads")
    spatial_chunks = chunks[2:] != shape[2:]
    _assert_same_as_in_memory(got, want, x, w, b, bitwise=not spatial_chunks)


def test_without_bias_and_one_image(rng):
    x = rng.standard_normal((12, 30, 20)).astype(np.float32)  # (C, H, W): a raster stack
    w = rng.standard_normal((3, 12)).astype(np.float32)
    yd = onexone.dask.conv1x1(da.from_array(x, chunks=(1, 30, 20)), w, n_threads=1)
    assert yd.chunks == ((3,), (30,), (20,))
    assert same_bits(yd.compute(), onexone.conv1x1(x, w))
    yd = onexone.dask.conv1x1(da.from_array(x, chunks=(12, 7, 20)), w, stride=2)
    assert yd.chunks == ((3,), (4, 3, 4, 3, 1), (10,))  # rows 0-6 hold 0, 2, 4, 6; 7-13 hold 8, 10, 12; ...
    _assert_same_as_in_memory(yd.compute(), onexone.conv1x1(x, w, stride=2), x, w, np.zeros(1), False)


def test_numpy_input_and_4d_weight(rng):
    x = rng.standard_normal((2, 8, 5, 5))
    w = rng.standard_normal((4, 8, 1, 1))
    yd = onexone.dask.conv1x1(x, w)
    assert isinstance(yd, da.Array) and yd.numblocks == (1, 1, 1, 1)
    assert same_bits(yd.compute(), onexone.conv1x1(x, w))


@pytest.mark.parametrize(
    "chunks, stride, expected",
    [
        ((4, 4, 4, 1), 2, (2, 2, 2, 1)),
        ((3, 3, 3, 4), 2, (2, 1, 2, 2)),  # offsets 0, 3, 6, 9
        ((1,) * 7, 3, (1, 0, 0, 1, 0, 0, 1)),  # empty chunks
        ((5, 8), 1, (5, 8)),
    ],
)
def test_output_chunks(chunks, stride, expected):
    h = sum(chunks)
    xd = da.zeros((2, 3, h, 6), chunks=(1, 3, chunks, 6), dtype=np.float32)
    yd = onexone.dask.conv1x1(xd, np.ones((5, 3), np.float32), stride=(stride, 1))
    assert yd.chunks == ((1, 1), (5,), expected, (6,))
    assert yd.compute().shape == (2, 5, (h - 1) // stride + 1, 6)


@pytest.mark.parametrize(
    "xdt, wdt, bdt, expected",
    [
        (np.float32, np.float32, None, np.float32),
        (np.float32, np.float64, None, np.float64),
        (np.int16, np.float32, np.float32, np.float32),  # as NumPy's result_type
        (np.int32, np.float32, np.float32, np.float64),
        (np.uint8, np.int64, None, np.float64),
        (np.float64, np.float32, np.float32, np.float64),
    ],
)
def test_dtype_is_result_type(xdt, wdt, bdt, expected):
    x = np.arange(2 * 4 * 3 * 3).reshape(2, 4, 3, 3).astype(xdt)
    w = np.arange(8).reshape(2, 4).astype(wdt)
    b = None if bdt is None else np.ones(2, bdt)
    yd = onexone.dask.conv1x1(da.from_array(x, chunks=(1, 4, 2, 3)), w, b)
    want = onexone.conv1x1(x, w, b)
    assert yd.dtype == want.dtype == expected
    assert yd._meta.dtype == expected and yd._meta.ndim == 4
    np.testing.assert_array_equal(yd.compute(), want)  # small integers: exact


def test_lazy_until_compute(monkeypatch):
    """Building the graph reads no chunk and runs no convolution; compute runs one per chunk."""
    reads, calls = [], []

    def counted_identity(block):
        reads.append(block.shape)
        return block

    real = onexone.dask._conv1x1
    monkeypatch.setattr(onexone.dask, "_conv1x1", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = np.ones((4, 6, 8, 8), np.float32)
    xd = da.from_array(x, chunks=(1, 3, 4, 8)).map_blocks(counted_identity, meta=x[:0, :0, :0, :0])
    yd = onexone.dask.conv1x1(xd, np.ones((2, 6), np.float32), stride=2, activation="relu")
    yd = yd + 1  # and graphs built on it stay lazy
    assert reads == [] and calls == []
    y = yd.compute(scheduler="sync")
    assert len(reads) == xd.npartitions and len(calls) == 4 * 2  # C rechunked to one chunk
    np.testing.assert_array_equal(y, np.full((4, 2, 4, 4), 7, np.float32))


# ---- errors: onexone's checks and messages, when the graph is built ----------------------


@pytest.mark.parametrize(
    "xshape, wshape, bshape, kw",
    [
        ((2, 5, 4, 4), (3, 4), None, {}),  # channels
        ((2, 6, 4, 4), (3, 4), None, {"groups": 2}),  # groups must divide F
        ((2, 6, 4, 4), (4, 3), None, {"groups": 4}),  # ... and C
        ((2, 6, 4, 4), (3, 6), (4,), {}),  # bias
        ((2, 6, 4), (3, 6), None, {"layout": "NHWC"}),  # channels-last channels
        ((6, 4), (3, 6), None, {}),  # ndim
        ((2, 6, 4, 4), (3, 6, 3, 3), None, {}),  # not 1x1
        ((2, 6, 4, 4), (3, 6), None, {"stride": 0}),
        ((2, 6, 4, 4), (3, 6), None, {"activation": "gelu"}),
        ((2, 6, 4, 4), (3, 6), None, {"layout": "CHWN"}),
        ((2, 6, 4, 4), (3, 6), None, {"n_threads": 0}),
    ],
)
def test_errors_match_the_in_memory_call(xshape, wshape, bshape, kw):
    b = None if bshape is None else np.zeros(bshape)
    with pytest.raises(ValueError) as in_memory:
        onexone.conv1x1(np.zeros(xshape), np.zeros(wshape), b, **kw)
    with pytest.raises(ValueError) as lazy:
        onexone.dask.conv1x1(da.zeros(xshape, chunks=1), np.zeros(wshape), b, **kw)
    assert str(lazy.value) == str(in_memory.value)


@pytest.mark.parametrize(
    "arg, value, exc",
    [("dtype", np.float16, TypeError), ("dtype", np.complex64, TypeError), ("groups", 1.5, TypeError),
     ("n_threads", 1.5, TypeError), ("n_threads", "2", TypeError)],
)
def test_type_errors(arg, value, exc):
    dt = value if arg == "dtype" else np.float32
    kw = {arg: value} if arg != "dtype" else {}
    x, w = np.zeros((1, 4, 2, 2), dt), np.zeros((2, 4), dt)
    with pytest.raises(exc) as lazy:
        onexone.dask.conv1x1(da.from_array(x), w, **kw)
    with pytest.raises(exc) as in_memory:
        onexone.conv1x1(x, w, **kw)
    assert str(lazy.value) == str(in_memory.value)


def test_unknown_chunk_sizes_are_an_error():
    xd = da.from_array(np.zeros((4, 3, 2, 2)), chunks=(2, 3, 2, 2))
    xd = xd[xd[:, 0, 0, 0] >= 0]  # boolean indexing: sizes unknown until computed
    with pytest.raises(ValueError, match="unknown size; call x.compute_chunk_sizes"):
        onexone.dask.conv1x1(xd, np.ones((2, 3)))


def test_docstring_example():
    result = doctest.testmod(onexone.dask, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0


# ---- onexone's threads inside dask ----------------------------------------------------------


def _threads_seen_by_tasks(scheduler="threads", n=16):
    """onexone.get_num_threads() in each of n tasks of the scheduler."""

    def probe(block):
        return np.full(block.shape, onexone.get_num_threads())

    return set(da.zeros(n, chunks=1).map_blocks(probe, dtype=int).compute(scheduler=scheduler).tolist())


def test_threaded_scheduler_threads():
    """Tasks of the threaded scheduler get onexone's process-wide default, and
    onexone.set_num_threads changes it for them too."""
    assert _threads_seen_by_tasks() == {onexone.get_num_threads()}
    onexone.set_num_threads(1)  # restored by conftest
    assert _threads_seen_by_tasks() == {1}


@pytest.mark.skipif(
    not THREADS["openmp"] or "libgomp" not in os.path.basename(THREADS["openmp_runtime"] or "")
    or THREADS["default"] < 2,
    reason="checked for GNU libgomp with 2 or more threads",
)
def test_threadpool_limits_do_not_reach_the_threaded_schedulers_threads():
    """As the README warns: threadpool_limits (OpenMP's per-thread limit) around .compute()
    limits the calling thread only, not the scheduler's worker threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        assert onexone.get_num_threads() == 1
        assert _threads_seen_by_tasks() == {THREADS["default"]}


def test_concurrent_tasks_give_the_serial_result(rng):
    """Many threaded-scheduler tasks calling onexone at once (each with the default thread
    count: the one holding onexone's pool uses it, the others run on their own thread)."""
    x = rng.standard_normal((16, 64, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    want = onexone.conv1x1(x, w)
    for _ in range(3):
        got = onexone.dask.conv1x1(da.from_array(x, chunks=(1, 64, 24, 24)), w).compute(
            scheduler="threads", num_workers=8)
        assert same_bits(got, want)


@pytest.fixture
def distributed():
    return pytest.importorskip("distributed")


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_local_cluster(distributed, rng, processes):
    """On a LocalCluster over loopback TCP: the numbers of the in-memory call, and the thread
    count onexone takes in the workers: 1 in worker processes (their nanny sets
    OMP_NUM_THREADS=1), the process default in in-process workers."""
    x = rng.standard_normal((6, 32, 20, 20)).astype(np.float32)
    w = rng.standard_normal((24, 32)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    want = onexone.conv1x1(x, w, b, stride=2, activation="relu")
    with distributed.LocalCluster(
        processes=processes, n_workers=2, threads_per_worker=1, dashboard_address=":0",
        host="127.0.0.1", protocol="tcp",
    ) as cluster, distributed.Client(cluster) as client:
        threads = client.run(onexone.get_num_threads)
        omp_env = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        yd = onexone.dask.conv1x1(da.from_array(x, chunks=(1, 32, 20, 20)), w, b, stride=2, activation="relu")
        got = client.compute(yd).result()
    assert len(threads) == 2
    if processes:
        assert set(omp_env.values()) == {"1"} and set(threads.values()) == {1}
    else:
        assert set(threads.values()) == {onexone.get_num_threads()}
    assert same_bits(got, want)
    assert cluster.status.name == "closed"

