"""pytest-benchmark: onexone.conv2d against its peers on KxK layers, one group per layer.

Every implementation of :data:`onexone.bench.KXK_IMPLEMENTATIONS` (onexone.conv2d's direct
kernel with bias and with bias+ReLU, its im2col algorithm, NumPy's im2col
(``onexone.reference.conv2d``), PyTorch NCHW and channels_last, ONNX Runtime) runs on each
layer of ``onexone.bench.KXK_SUITE``, its result checked once against the reference; peers
that are not installed are skipped. Layers, inputs and implementations are those of
``python -m onexone bench --kxk``.

    pytest benches/bench_conv2d.py --benchmark-disable   # correctness smoke test (CI)
    pytest benches/bench_conv2d.py --benchmark-enable --benchmark-only   # the timings, grouped by layer

Environment: ``ONEXONE_BENCH_KXK_LAYERS`` (layer or preset names, default ``all``),
``ONEXONE_BENCH_BATCH`` (default 1), ``ONEXONE_BENCH_THREADS`` (default: onexone's default
thread count).
"""
import functools
import os
import time

import pytest

import onexone
from onexone.bench import (
    KXK_IMPLEMENTATIONS, SETTLE_S, check_result, make_inputs, missing_requirement, select_layers, threads_from_env,
    warm_up,
)

LAYERS = select_layers(os.environ.get("ONEXONE_BENCH_KXK_LAYERS", "all"), kxk=True)
BATCH = int(os.environ.get("ONEXONE_BENCH_BATCH", "1"))
THREADS = threads_from_env()  # every peer gets the same count


@functools.lru_cache(maxsize=1)
def case(layer):
    """Inputs of ``layer`` and the reference results, by activation (the last layer's cached)."""
    x, w, b = make_inputs(layer, BATCH)
    expected = {act: onexone.reference.conv2d(x, w, b, activation=act, **layer.geometry())
                for act in (None, "relu")}
    return x, w, b, expected


@pytest.mark.parametrize("impl", list(KXK_IMPLEMENTATIONS))
@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_conv2d(benchmark, layer, impl):
    spec = KXK_IMPLEMENTATIONS[impl]
    missing = missing_requirement(spec)
    if missing:
        pytest.skip(f"{impl} needs {missing}, which cannot be imported")
    x, w, b, expected = case(layer)
    benchmark.group = layer.name
    benchmark.extra_info.update(
        layer=layer.name, c=layer.c, f=layer.f, h=layer.h, w=layer.w, kernel=f"{layer.kh}x{layer.kw}",
        stride=layer.stride, padding=layer.padding, batch=BATCH, threads=THREADS,
        flop=layer.flop(BATCH), intensity=layer.intensity(BATCH),
    )
    with spec.setup(x, w, b, THREADS, **layer.geometry()) as fn:
        check_result(fn(), expected[spec.activation], x, w)
        if not benchmark.disabled:
            time.sleep(SETTLE_S)  # the previous test's thread pools go idle first
            warm_up(fn)
        benchmark(fn)
    if not benchmark.disabled:
        benchmark.extra_info["gflops"] = round(layer.flop(BATCH) / benchmark.stats.stats.median / 1e9, 2)
