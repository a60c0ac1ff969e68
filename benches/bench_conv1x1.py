"""pytest-benchmark: onexone.conv1x1 against its peers, one benchmark group per layer.

Every implementation of :data:`onexone.bench.IMPLEMENTATIONS` (onexone with bias, with
bias+ReLU, NumPy's np.matmul + bias, PyTorch NCHW and channels_last, ONNX Runtime) runs on
each layer, its result checked once against :func:`onexone.reference.conv1x1`; peers that
are not installed are skipped. The layers, inputs and implementations are those of
``python -m onexone bench`` (``onexone.bench``).

    pytest benches/ --benchmark-disable     # correctness smoke test (CI), a few seconds
    pytest benches/ --benchmark-enable --benchmark-only   # the timings, grouped by layer

Environment: ``ONEXONE_BENCH_LAYERS`` (layer or preset names, default ``core``: the five
layers of the foundation issue; ``all`` for the whole suite), ``ONEXONE_BENCH_BATCH``
(default 1), ``ONEXONE_BENCH_THREADS`` (default: onexone's default thread count).
"""
import functools
import os
import time

import pytest

import onexone
from onexone.bench import (
    IMPLEMENTATIONS, SETTLE_S, check_result, make_inputs, missing_requirement, select_layers, threads_from_env,
    warm_up,
)

LAYERS = select_layers(os.environ.get("ONEXONE_BENCH_LAYERS", "core"))
BATCH = int(os.environ.get("ONEXONE_BENCH_BATCH", "1"))
THREADS = threads_from_env()  # every peer gets the same count


@functools.lru_cache(maxsize=1)
def case(layer):
    """Inputs of ``layer`` and the reference results, by activation (the last layer's cached)."""
    x, w, b = make_inputs(layer, BATCH)
    expected = {act: onexone.reference.conv1x1(x, w, b, activation=act) for act in (None, "relu")}
    return x, w, b, expected


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_conv1x1(benchmark, layer, impl):
    spec = IMPLEMENTATIONS[impl]
    missing = missing_requirement(spec)
    if missing:
        pytest.skip(f"{impl} needs {missing}, which cannot be imported")
    x, w, b, expected = case(layer)
    benchmark.group = layer.name
    benchmark.extra_info.update(
        layer=layer.name, c=layer.c, f=layer.f, h=layer.h, w=layer.w, batch=BATCH,
        threads=THREADS, flop=layer.flop(BATCH), intensity=layer.intensity(BATCH),
    )
    with spec.setup(x, w, b, THREADS) as fn:
        check_result(fn(), expected[spec.activation], x, w)
        if not benchmark.disabled:
            time.sleep(SETTLE_S)  # the previous test's thread pools go idle first
            warm_up(fn)
        benchmark(fn)
    if not benchmark.disabled:
        benchmark.extra_info["gflops"] = round(layer.flop(BATCH) / benchmark.stats.stats.median / 1e9, 2)
