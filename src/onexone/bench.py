"""The peer benchmark: onexone against NumPy, PyTorch and ONNX Runtime on 1x1 layers.

``python -m onexone bench`` (or :func:`run` from Python) times, in one process and on the
same arrays, every implementation of ``y = conv1x1(x, w) + b`` on a suite of layers taken
from ResNet-50, MobileNetV2 and Inception, and prints GFLOP/s, onexone's fraction of the
machine's measured fp32 peak and onexone's speed relative to the best peer.

Implementations (see :data:`IMPLEMENTATIONS`), all in float32, all with bias:

* ``onexone``       ``onexone.conv1x1(x, w, b, out=y, n_threads=T)``
* ``onexone_relu``  the same with ``activation="relu"`` (the cost of the fused ReLU)
* ``numpy``         ``np.matmul(W, X.reshape(N, C, P), out=y); y += b[:, None]``, the
  baseline of :func:`onexone.reference.conv1x1`, BLAS limited with threadpoolctl
* ``torch``         ``torch.nn.functional.conv2d`` on NCHW tensors, under ``no_grad``
* ``torch_cl``      the same on channels_last tensors (converted outside the timed region)
* ``ort``           an ONNX Runtime ``Conv`` session on the CPU provider, output bound once

Method. Each implementation is timed in blocks: warm-up calls, then samples, each sample an
inner loop of enough calls to last ``min_sample_s``. The ``repeats`` samples of a layer are
taken in ``rounds`` blocks per implementation, the implementations taking turns block by
block, and the figure is the median time per call over all of them: a burst of load from
elsewhere (on a shared host, a fraction of a second at half speed) then spoils one block of
every implementation alike, not all the samples of one. Implementations are never interleaved
inside a block (the OpenMP and OpenBLAS thread pools of two libraries spinning against each
other on a small machine distort both), and the process pauses ``settle_s`` before a block
that follows another library's block, so that that library's idle worker threads stop
spinning first (onexone's own workers sleep after 20 us: no pause after them), and before a
layer's first block (the NumPy reference it is checked against has just run). Every
implementation is limited to the same thread count and its result is checked once against
the NumPy reference. The one exception to "never interleaved": ``onexone`` and
``onexone_relu`` (one library, one thread pool) share their blocks, their inner loops
alternating (:func:`measure_pair`) and writing into the same ``out`` (each peer too writes one
output buffer, call after call), and the ReLU cost is the median of the per-pair ratios,
so that a burst of load that slows one sample slows its partner too (from the two medians
of blocks taken seconds apart, a single burst showed up as a 5-25% "cost").

The machine peak comes from ``onexone._core.peak_gflops``: a short FMA-throughput probe of
the active ISA on the same threads (12 independent FMA chains per thread).

The KxK suite (``kxk=True``, ``python -m onexone bench --kxk``): the same method on the
KxK layers of :data:`KXK_SUITE` (ResNet-50's 3x3 layers and stem, Inception's 3x3 and 5x5),
with the implementations of :data:`KXK_IMPLEMENTATIONS`: onexone.conv2d's direct kernel (the
``onexone`` column; ``+relu`` with ReLU fused) and its im2col algorithm, NumPy's im2col
(:func:`onexone.reference.conv2d`: ``sliding_window_view`` + ``np.matmul``), PyTorch NCHW
and channels_last, and ONNX Runtime.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import (
    Callable, ContextManager, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union,
)

import numpy as np

from ._args import check_n_threads, cli_positive_int, cli_threads

__all__ = [
    "Layer",
    "SUITE",
    "PRESETS",
    "IMPLEMENTATIONS",
    "PEERS",
    "BANDWIDTH_ROOFS_GBPS",
    "select_layers",
    "make_inputs",
    "check_result",
    "missing_requirement",
    "threads_from_env",
    "busy_fraction",
    "warm_up",
    "measure",
    "measure_pair",
    "SETTLE_S",
    "DEFAULTS",
    "QUICK",
    "run",
    "format_table",
    "save",
    "plot_roofline",
    "main",
]

# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


class Layer(NamedTuple):
    """A convolution layer: ``C`` input channels, ``F`` filters, an ``H x W`` input; a 1x1
    kernel with stride 1 unless ``kh, kw, stride, padding`` say otherwise (the KxK suite)."""

    name: str
    c: int
    f: int
    h: int
    w: int
    kh: int = 1
    kw: int = 1
    stride: int = 1
    padding: int = 0

    def out_hw(self) -> Tuple[int, int]:
        """Output size (PyTorch's formula)."""
        return ((self.h + 2 * self.padding - self.kh) // self.stride + 1,
                (self.w + 2 * self.padding - self.kw) // self.stride + 1)

    def geometry(self) -> Dict[str, int]:
        """The stride and padding arguments of a KxK layer ({} for a plain 1x1 layer)."""
        if (self.kh, self.kw, self.stride, self.padding) == (1, 1, 1, 0):
            return {}
        return {"stride": self.stride, "padding": self.padding}

    def flop(self, batch: int = 1) -> int:
        """Floating-point operations of one call: a multiply and an add per MAC."""
        ho, wo = self.out_hw()
        return 2 * batch * self.c * self.f * self.kh * self.kw * ho * wo

    def nbytes(self, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes of x, w and y, each moved once: the roofline's traffic."""
        ho, wo = self.out_hw()
        return itemsize * (batch * self.c * self.h * self.w + self.f * self.c * self.kh * self.kw
                           + batch * self.f * ho * wo)

    def intensity(self, batch: int = 1, itemsize: int = 4) -> float:
        """Arithmetic intensity, FLOP per byte of x + w + y."""
        return self.flop(batch) / self.nbytes(batch, itemsize)


#: The layer suite of the performance issue: (name, C, F, H, W), stride 1.
SUITE: Tuple[Layer, ...] = tuple(
    Layer(*row)
    for row in [
        ("r50.c2.reduce", 256, 64, 56, 56),
        ("r50.c2.expand", 64, 256, 56, 56),
        ("r50.c3.reduce", 512, 128, 28, 28),
        ("r50.c3.expand", 128, 512, 28, 28),
        ("r50.c4.reduce", 1024, 256, 14, 14),
        ("r50.c4.expand", 256, 1024, 14, 14),
        ("r50.c5.reduce", 2048, 512, 7, 7),
        ("r50.c5.expand", 512, 2048, 7, 7),
        ("mv2.112.proj", 32, 16, 112, 112),
        ("mv2.112.exp", 16, 96, 112, 112),
        ("mv2.56.exp", 24, 144, 56, 56),
        ("mv2.56.proj", 144, 24, 56, 56),
        ("mv2.28.exp", 32, 192, 28, 28),
        ("mv2.14.exp", 96, 576, 14, 14),
        ("mv2.7.exp", 160, 960, 7, 7),
        ("mv2.7.last", 320, 1280, 7, 7),
        ("incep3a.1x1", 192, 64, 28, 28),
        ("incep3a.5x5red", 192, 16, 28, 28),
    ]
)

_BY_NAME: Dict[str, Layer] = {layer.name: layer for layer in SUITE}

#: Named subsets for ``--layers``. ``core`` is the five layers of the foundation issue.
PRESETS: Dict[str, Tuple[str, ...]] = {
    "all": tuple(_BY_NAME),
    "core": ("r50.c2.reduce", "r50.c3.expand", "r50.c5.reduce", "mv2.112.exp", "incep3a.5x5red"),
    "r50": tuple(n for n in _BY_NAME if n.startswith("r50.")),
    "mv2": tuple(n for n in _BY_NAME if n.startswith("mv2.")),
    "incep": tuple(n for n in _BY_NAME if n.startswith("incep")),
}


#: The KxK suite: (name, C, F, H, W, KH, KW, stride, padding), batch 1 in the issue.
KXK_SUITE: Tuple[Layer, ...] = tuple(
    Layer(*row)
    for row in [
        ("r50.c2.3x3", 64, 64, 56, 56, 3, 3, 1, 1),
        ("r50.c3.3x3", 128, 128, 28, 28, 3, 3, 1, 1),
        ("r50.c4.3x3", 256, 256, 14, 14, 3, 3, 1, 1),
        ("r50.c5.3x3", 512, 512, 7, 7, 3, 3, 1, 1),
        ("incep3a.3x3", 96, 128, 28, 28, 3, 3, 1, 1),
        ("incep3a.5x5", 16, 32, 28, 28, 5, 5, 1, 2),
        ("r50.stem", 3, 64, 224, 224, 7, 7, 2, 3),
    ]
)

_KXK_BY_NAME: Dict[str, Layer] = {layer.name: layer for layer in KXK_SUITE}

KXK_PRESETS: Dict[str, Tuple[str, ...]] = {
    "all": tuple(_KXK_BY_NAME),
    "r50": tuple(n for n in _KXK_BY_NAME if n.startswith("r50.c")),
    "incep": tuple(n for n in _KXK_BY_NAME if n.startswith("incep")),
}


def select_layers(spec: Union[str, Iterable[str], None] = None, kxk: bool = False) -> List[Layer]:
    """Layers from a comma-separated string or a list of layer and preset names
    (``None``: the whole suite), in the order first named, without duplicates; from the KxK
    suite with ``kxk``."""
    by_name, presets = (_KXK_BY_NAME, KXK_PRESETS) if kxk else (_BY_NAME, PRESETS)
    if spec is None:
        return list(by_name.values())
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: Dict[str, Layer] = {}
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in presets:
            chosen.update((n, by_name[n]) for n in presets[name])
        elif name in by_name:
            chosen[name] = by_name[name]
        else:
            raise ValueError(
                f"unknown {'KxK ' if kxk else ''}layer or preset {name!r}; presets: "
                f"{', '.join(presets)}; layers: {', '.join(by_name)}"
            )
    if not chosen:
        raise ValueError("no layers selected")
    return list(chosen.values())


def make_inputs(layer: Layer, batch: int = 1, seed: int = 0):
    """float32 ``x`` (N, C, H, W), ``w`` (F, C, KH, KW) and ``b`` (F,), C-contiguous.

    Values are uniform in [-1, 1) with ``w`` scaled by 1/sqrt(C*KH*KW), so about half the
    outputs are negative (ReLU does real work) and their size does not grow with C."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, layer.c, layer.h, layer.w)).astype(np.float32)
    k = layer.c * layer.kh * layer.kw
    w = (rng.uniform(-1, 1, (layer.f, layer.c, layer.kh, layer.kw)) / math.sqrt(k)).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, layer.f).astype(np.float32)
    return x, w, b


def check_result(actual, expected: np.ndarray, x: np.ndarray, w: np.ndarray) -> None:
    """Assert that an implementation's output matches the reference in float32.

    ``rtol`` 1e-4, and an absolute tolerance that scales with the reduction length C*KH*KW
    and the input magnitudes (``C*KH*KW * eps * max|x| * max|w|``), for outputs near zero where
    differently ordered float32 sums legitimately differ."""
    c = int(np.prod(w.shape[1:]))
    eps = np.finfo(np.float32).eps
    atol = 2 * c * eps * float(np.abs(x).max(initial=0)) * float(np.abs(w).max(initial=0))
    np.testing.assert_allclose(np.asarray(actual).reshape(expected.shape), expected, rtol=1e-4, atol=atol)


# --------------------------------------------------------------------------------------
# Implementations: each a context manager that sets one up on (x, w, b, threads) and yields
# a zero-argument callable computing y (an ndarray, or a torch tensor) once.
# --------------------------------------------------------------------------------------

Setup = Callable[[np.ndarray, np.ndarray, np.ndarray, int], ContextManager[Callable[[], object]]]


class Impl(NamedTuple):
    """One implementation: its column ``name``, a ``label``, the modules it ``requires``, its
    ``setup`` factory, the ``activation`` whose reference it is checked against and the
    ``library`` whose thread pool runs it (a pause separates blocks of two libraries)."""

    name: str
    label: str
    requires: Tuple[str, ...]
    setup: Setup
    activation: Optional[str] = None
    library: str = "onexone"


def _output(shape, dtype, buffers: Optional[dict]) -> np.ndarray:
    """A new output array, or the one ``buffers`` already holds for this shape and dtype."""
    key = (tuple(shape), np.dtype(dtype).str)
    if buffers is None or key not in buffers:
        y = np.empty(shape, dtype)
        if buffers is None:
            return y
        buffers[key] = y
    return buffers[key]


@contextlib.contextmanager
def _onexone(x, w, b, threads, activation=None, buffers=None):
    """onexone.conv1x1 into a preallocated ``out``, ``n_threads`` threads (shared with the
    partner's through ``buffers``, see :func:`_time_layer`)."""
    from . import conv1x1

    y = _output((x.shape[0], w.shape[0]) + x.shape[2:], x.dtype, buffers)
    yield lambda: conv1x1(x, w, b, activation=activation, out=y, n_threads=threads)


def _threadpool_limits():
    """threadpoolctl's ``threadpool_limits``, or None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits


def _blas_threads(threads: int) -> ContextManager:
    """NumPy's BLAS limited to ``threads`` with threadpoolctl; unlimited (its own default) when
    threadpoolctl is not installed, which the table then says (:data:`BLAS_NOTE`)."""
    limits = _threadpool_limits()
    return limits(threads, user_api="blas") if limits else contextlib.nullcontext()


#: Printed under the table when NumPy's BLAS could not be limited to the thread count.
BLAS_NOTE = ("numpy: its BLAS threads are not limited to the thread count "
             "(threadpoolctl is not installed: pip install threadpoolctl)")


@contextlib.contextmanager
def _numpy(x, w, b, threads):
    """``np.matmul(W, X, out=y)`` then ``y += b[:, None]``, BLAS limited to ``threads``."""
    n, c, h, wd = x.shape
    f = w.shape[0]
    w2, x3, b2 = w.reshape(f, c), x.reshape(n, c, h * wd), b[:, None]
    y = np.empty((n, f, h * wd), x.dtype)
    y4 = y.reshape(n, f, h, wd)

    def call():
        np.matmul(w2, x3, out=y)
        np.add(y, b2, out=y)
        return y4

    with _blas_threads(threads):
        yield call


@contextlib.contextmanager
def _torch(x, w, b, threads, channels_last=False, stride=1, padding=0):
    """``torch.nn.functional.conv2d`` under ``no_grad`` with ``torch.set_num_threads``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            if channels_last:
                tx = tx.contiguous(memory_format=torch.channels_last)
                tw = tw.contiguous(memory_format=torch.channels_last)
            yield lambda: torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    finally:
        torch.set_num_threads(old)


def onnx_conv_model(w: np.ndarray, b: np.ndarray, x_shape: Sequence[int], stride: int = 1,
                    padding: int = 0) -> bytes:
    """A serialized ONNX model (opset 13): one ``Conv`` with ``w`` and ``b`` as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    kh, kw = w.shape[2:]
    y_shape = [x_shape[0], w.shape[0], *_out_hw(x_shape, w.shape, stride, padding)]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kh, kw],
                          strides=[stride, stride], pads=[padding] * 4)],
        "conv1x1" if (kh, kw) == (1, 1) else "conv2d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # opset 13 needs no newer IR; older runtimes reject newer IRs
    return model.SerializeToString()


@contextlib.contextmanager
def _ort(x, w, b, threads, stride=1, padding=0):
    """An ONNX Runtime session on CPUExecutionProvider, ``intra_op_num_threads = threads``,
    sequential; input and a preallocated output bound once (``run_with_iobinding``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(onnx_conv_model(w, b, x.shape, stride, padding), so,
                                providers=["CPUExecutionProvider"])
    y = np.empty((x.shape[0], w.shape[0]) + _out_hw(x.shape, w.shape, stride, padding), x.dtype)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_ortvalue_output("y", ort.OrtValue.ortvalue_from_numpy(y))

    def call():
        sess.run_with_iobinding(binding)
        return y

    try:
        yield call
    finally:
        del binding, sess


def _out_hw(x_shape, w_shape, stride: int, padding: int) -> Tuple[int, int]:
    return ((x_shape[2] + 2 * padding - w_shape[2]) // stride + 1,
            (x_shape[3] + 2 * padding - w_shape[3]) // stride + 1)


@contextlib.contextmanager
def _onexone_conv2d(x, w, b, threads, algorithm="direct", activation=None, stride=1, padding=0,
                    buffers=None):
    """onexone.conv2d with one ``algorithm`` into a preallocated ``out``."""
    from . import conv2d

    y = _output((x.shape[0], w.shape[0]) + _out_hw(x.shape, w.shape, stride, padding), x.dtype, buffers)
    yield lambda: conv2d(x, w, b, stride=stride, padding=padding, activation=activation, out=y,
                         algorithm=algorithm, n_threads=threads)


@contextlib.contextmanager
def _numpy_im2col(x, w, b, threads, stride=1, padding=0):
    """:func:`onexone.reference.conv2d` (im2col by ``sliding_window_view``, ``np.matmul`` +
    bias), BLAS limited to ``threads``."""
    from .reference import conv2d

    with _blas_threads(threads):
        yield lambda: conv2d(x, w, b, stride=stride, padding=padding)


#: Every implementation, in table order. Peers are the ones onexone is compared with.
IMPLEMENTATIONS: Dict[str, Impl] = {
    impl.name: impl
    for impl in [
        Impl("onexone", "onexone", (), _onexone),
        Impl("onexone_relu", "+relu", (), functools.partial(_onexone, activation="relu"), "relu"),
        Impl("numpy", "numpy", (), _numpy, library="numpy"),
        Impl("torch", "torch", ("torch",), _torch, library="torch"),
        Impl("torch_cl", "torch_cl", ("torch",), functools.partial(_torch, channels_last=True),
             library="torch"),
        Impl("ort", "ort", ("onnxruntime", "onnx"), _ort, library="ort"),
    ]
}
PEERS: Tuple[str, ...] = ("numpy", "torch", "torch_cl", "ort")

#: The KxK suite's implementations: ``onexone`` is conv2d's direct kernel.
KXK_IMPLEMENTATIONS: Dict[str, Impl] = {
    impl.name: impl
    for impl in [
        Impl("onexone", "direct", (), _onexone_conv2d),
        Impl("onexone_relu", "+relu", (), functools.partial(_onexone_conv2d, activation="relu"), "relu"),
        Impl("onexone_im2col", "im2col", (), functools.partial(_onexone_conv2d, algorithm="im2col")),
        Impl("numpy", "numpy", (), _numpy_im2col, library="numpy"),
        Impl("torch", "torch", ("torch",), _torch, library="torch"),
        Impl("torch_cl", "torch_cl", ("torch",), functools.partial(_torch, channels_last=True),
             library="torch"),
        Impl("ort", "ort", ("onnxruntime", "onnx"), _ort, library="ort"),
    ]
}


def missing_requirement(impl: Impl) -> Optional[str]:
    """The first module ``impl`` needs that cannot be imported, or None: its name when it is
    not installed, its name and the error when its import fails otherwise (a broken install,
    e.g. a shared library that cannot be loaded), so that the peer is skipped either way."""
    for module in impl.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            return module
        except Exception as e:  # noqa: BLE001 - any failing import skips the peer
            return f"{module} ({type(e).__name__}: {e})"
    return None


def threads_from_env(name: str = "ONEXONE_BENCH_THREADS") -> int:
    """The thread count of every implementation in ``benches/``: the environment variable
    ``name`` counted as ``n_threads`` counts (-1: all cores, -2: all but one), unset or 0:
    onexone's default."""
    from . import get_num_threads

    return check_n_threads(int(os.environ.get(name, "0")) or None, get_num_threads(), name)


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


class Timing(NamedTuple):
    """Median seconds per call over ``samples`` (seconds per call), each an ``inner`` loop."""

    median_s: float
    inner: int
    samples: List[float]


#: Pause between two implementations' blocks, seconds. OpenBLAS's idle workers keep
#: spinning after a call (measured here: about 0.1 s of CPU, all within 0.25 s), which
#: slowed an onexone block run right after a NumPy one by ~20% on 2 cores.
SETTLE_S = 0.25


def warm_up(fn: Callable[[], object], seconds: float = 0.05, min_calls: int = 3) -> float:
    """Call ``fn`` for ``seconds`` (and at least ``min_calls`` times); return the fastest call."""
    clock = time.perf_counter
    fastest = math.inf
    start = clock()
    calls = 0
    while calls < min_calls or clock() - start < seconds:
        t = clock()
        fn()
        fastest = min(fastest, clock() - t)
        calls += 1
    return fastest


def measure(fn: Callable[[], object], repeats: int = 21, min_sample_s: float = 5e-3,
            warmup_s: float = 0.05) -> Timing:
    """Time ``fn`` as one block: warm up for ``warmup_s`` (at least 3 calls), then take
    ``repeats`` samples of an inner loop long enough to last ``min_sample_s``."""
    inner = max(1, math.ceil(min_sample_s / max(warm_up(fn, warmup_s), 1e-9)))
    samples = [_sample(fn, inner) for _ in range(repeats)]
    return Timing(statistics.median(samples), inner, samples)


def _sample(fn: Callable[[], object], inner: int) -> float:
    """Seconds per call of an inner loop of ``inner`` calls."""
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner


def measure_pair(fa: Callable[[], object], fb: Callable[[], object], repeats: int = 21,
                 min_sample_s: float = 5e-3, warmup_s: float = 0.05) -> Tuple[Timing, Timing, List[float]]:
    """Time two variants of one library's call as one block: warm both up, then take
    ``repeats`` pairs of samples, an inner loop of each (the same count of calls, enough for
    the slower to last ``min_sample_s``), the order alternating from pair to pair. Returns
    both Timings and each pair's ratio (fb's sample time / fa's)."""
    slower = max(warm_up(fa, warmup_s), warm_up(fb, warmup_s), 1e-9)
    inner = max(1, math.ceil(min_sample_s / slower))
    sa: List[float] = []
    sb: List[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            sa.append(_sample(fa, inner))
            sb.append(_sample(fb, inner))
        else:
            sb.append(_sample(fb, inner))
            sa.append(_sample(fa, inner))
    ratios = [b / a for a, b in zip(sa, sb)]
    return Timing(statistics.median(sa), inner, sa), Timing(statistics.median(sb), inner, sb), ratios


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------

#: Bandwidths measured on the project's reference machine (AMD Zen 4, 2 cores), GB/s: the
#: roofline's slanted roofs. On another machine, measure yours and pass them as ``roofs``
#: (:func:`run`, :func:`plot_roofline`) or ``--roofs DRAM=..,L3=..,L2=..``.
BANDWIDTH_ROOFS_GBPS: Dict[str, float] = {"DRAM": 34.0, "L3": 106.0, "L2": 180.0}

#: Timing parameters of :func:`run`, and those of ``quick=True`` (``--quick``).
DEFAULTS = dict(repeats=21, rounds=3, min_sample_s=5e-3, warmup_s=0.05, peak_seconds=0.3)
QUICK = dict(repeats=7, rounds=1, min_sample_s=2e-3, warmup_s=0.02, peak_seconds=0.1)


def _versions() -> Dict[str, Optional[str]]:
    from . import __version__

    out: Dict[str, Optional[str]] = {"onexone": __version__, "python": platform.python_version(),
                                     "numpy": np.__version__}
    for module in ("torch", "onnxruntime", "onnx", "threadpoolctl"):
        try:
            out[module] = importlib.import_module(module).__version__
        except Exception:  # noqa: BLE001 - not installed, or an install whose import fails
            out[module] = None
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CpuSnapshot(NamedTuple):
    """Wall clock, the machine's non-idle CPU seconds (None off Linux), this process's CPU
    seconds: two snapshots tell how much of the machine other processes used in between."""

    wall: float
    machine: Optional[float]
    own: float

    @classmethod
    def take(cls) -> "CpuSnapshot":
        try:
            with open("/proc/stat") as fh:
                ticks = [int(v) for v in fh.readline().split()[1:9]]  # user .. steal
            machine = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # - idle, iowait
        except (OSError, ValueError, IndexError, AttributeError):
            machine = None
        return cls(time.perf_counter(), machine, time.process_time())

    def others_since(self, before: "CpuSnapshot") -> Optional[float]:
        """Fraction of all CPUs used by other processes (or stolen by the hypervisor) since
        ``before``; None where unknown."""
        if self.machine is None or before.machine is None or self.wall <= before.wall:
            return None
        others = (self.machine - before.machine) - (self.own - before.own)
        return max(0.0, others / ((self.wall - before.wall) * (os.cpu_count() or 1)))


def busy_fraction(seconds: float = 0.2) -> Optional[float]:
    """Fraction of the CPUs that other processes use, watched for ``seconds`` (None off Linux)."""
    before = CpuSnapshot.take()
    time.sleep(seconds)
    return CpuSnapshot.take().others_since(before)


#: Above this share of the CPUs used by other processes, figures are flagged as unreliable.
BUSY_LIMIT = 0.1


def _log(progress: bool, *parts, end="\n") -> None:
    if progress:
        print(*parts, end=end, file=sys.stderr, flush=True)


def run(layers=None, batch: int = 1, threads: Optional[int] = None,
        repeats: Optional[int] = None, *, rounds: Optional[int] = None, quick: bool = False,
        relu: bool = True,
        json_path: Optional[str] = None, plot_path: Optional[str] = None, progress: bool = True,
        min_sample_s: Optional[float] = None, warmup_s: Optional[float] = None,
        peak_seconds: Optional[float] = None, settle_s: float = SETTLE_S,
        roofs: Optional[Dict[str, float]] = None, kxk: bool = False) -> dict:
    """Run the peer benchmark and return its results as a JSON-able dict.

    Parameters
    ----------
    layers : str or list of str, optional
        Layer and preset names (see :data:`PRESETS`, or :data:`KXK_PRESETS` with ``kxk``);
        None for the whole suite.
    batch, threads
        Images per call, and the thread count of every implementation (None: onexone's
        default, i.e. all usable cores honouring ``OMP_NUM_THREADS``; a negative count
        counts back from all cores, as ``n_threads`` does).
    repeats, rounds, min_sample_s, warmup_s, peak_seconds
        Samples per implementation and layer, the blocks they are taken in (the
        implementations take turns block by block), the least duration of one sample, the
        warm-up per block (see :func:`measure`) and the duration of the FMA peak probe; None
        takes them from :data:`DEFAULTS`, or from :data:`QUICK` (fewer, shorter) with
        ``quick``.
    relu
        Also time onexone with the fused ReLU.
    settle_s
        Pause between two implementations' blocks, for idle thread pools to stop spinning.
    json_path, plot_path
        Save the results as JSON, and draw the roofline (needs matplotlib).
    roofs
        Bandwidth roofs of the plot, name -> GB/s (default :data:`BANDWIDTH_ROOFS_GBPS`).
    kxk
        Time onexone.conv2d on the KxK suite (:data:`KXK_SUITE`, :data:`KXK_IMPLEMENTATIONS`)
        instead of conv1x1 on the 1x1 suite.
    """
    from . import _core, get_num_threads, show_config

    given = dict(repeats=repeats, rounds=rounds, min_sample_s=min_sample_s, warmup_s=warmup_s,
                 peak_seconds=peak_seconds)
    method = {k: v if v is not None else (QUICK if quick else DEFAULTS)[k] for k, v in given.items()}
    repeats, rounds, min_sample_s, warmup_s, peak_seconds = (method[k] for k in given)
    if batch < 1 or repeats < 1 or rounds < 1:
        raise ValueError(f"batch, repeats and rounds must be >= 1, got batch={batch}, "
                         f"repeats={repeats}, rounds={rounds}")
    method["rounds"] = rounds = min(rounds, repeats)
    # Resolve threads before any peer is imported: torch may change OpenMP's default.
    threads = check_n_threads(threads, get_num_threads())
    chosen = select_layers(layers, kxk)
    impls, skipped = [], {}
    for impl in (KXK_IMPLEMENTATIONS if kxk else IMPLEMENTATIONS).values():
        if impl.name == "onexone_relu" and not relu:
            continue
        missing = missing_requirement(impl)
        if missing:
            skipped[impl.name] = f"{missing} cannot be imported"
        else:
            impls.append(impl)
    for name, why in skipped.items():
        _log(progress, f"skipping {name}: {why}")
    notes = []
    if any(i.name == "numpy" for i in impls) and _threadpool_limits() is None:
        notes.append(BLAS_NOTE)
        _log(progress, "note: " + BLAS_NOTE)

    busy_before = _warn_if_busy(busy_fraction(), progress)
    _log(progress, f"measuring the fp32 FMA peak on {threads} thread(s) ...", end=" ")
    peak = _core.peak_gflops(threads, peak_seconds)
    _log(progress, f"{peak:.1f} GFLOP/s")
    results = {
        "config": show_config(mode="dicts"),
        "cpu": _cpu_name(),
        "versions": _versions(),
        "batch": batch,
        "threads": threads,
        "dtype": "float32",
        "method": dict(method, settle_s=settle_s, statistic="median"),
        "busy_before": busy_before,
        "roofs_gbps": dict(roofs or BANDWIDTH_ROOFS_GBPS),
        "kxk": kxk,
        "implementations": [i.name for i in impls],
        "skipped": skipped,
        "notes": notes,
        "layers": [],
    }
    for k, layer in enumerate(chosen, 1):
        kernel = f" {layer.kh}x{layer.kw}/s{layer.stride}/p{layer.padding}" if kxk else ""
        _log(progress, f"[{k}/{len(chosen)}] {layer.name} (C={layer.c} F={layer.f} "
             f"{layer.h}x{layer.w}{kernel} N={batch})", end="")
        timing = dict(repeats=repeats, rounds=rounds, min_sample_s=min_sample_s, warmup_s=warmup_s)
        results["layers"].append(_time_layer(layer, impls, batch, threads, settle_s, timing,
                                             progress, seed=k))
        _log(progress, "")
    # A probe disturbed by another process reads low: probe again at the end, keep the higher.
    results["peak_gflops_probes"] = [peak, _core.peak_gflops(threads, peak_seconds)]
    results["peak_gflops"] = peak = max(results["peak_gflops_probes"])
    for row in results["layers"]:
        _summarize_layer(row, peak)
    results["summary"] = _summarize(results["layers"], kxk)
    results["busy_after"] = _warn_if_busy(busy_fraction(), progress)
    save(results, json_path, plot_path, roofs, progress)
    return results


def save(results: dict, json_path: Optional[str] = None, plot_path: Optional[str] = None,
         roofs: Optional[Dict[str, float]] = None, progress: bool = True) -> None:
    """Save :func:`run`'s ``results`` as JSON and draw their roofline (either path may be None)."""
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(results, fh, indent=1)
        _log(progress, f"saved {json_path}")
    if plot_path:
        plot_roofline(results, plot_path, roofs)
        _log(progress, f"saved {plot_path}")


def _warn_if_busy(busy: Optional[float], progress: bool) -> Optional[float]:
    if busy is not None and busy > BUSY_LIMIT:
        _log(progress, f"WARNING: other processes use {100 * busy:.0f}% of the CPUs: "
             "the figures are not reliable")
    return busy


def samples_in_round(repeats: int, rounds: int, r: int) -> int:
    """How many of ``repeats`` samples round ``r`` of ``rounds`` takes (the first rounds take
    the remainder, one each)."""
    return repeats // rounds + (r < repeats % rounds)


def _time_layer(layer: Layer, impls: List[Impl], batch: int, threads: int, settle_s: float,
                timing: dict, progress: bool, seed: int) -> dict:
    """Check and time every implementation on one layer; a result row.

    The ``timing["repeats"]`` samples of each implementation are taken in ``timing["rounds"]``
    blocks, the implementations taking turns block by block (see the module's Method)."""
    from . import reference

    x, w, b = make_inputs(layer, batch, seed)
    geometry = layer.geometry()  # stride and padding of a KxK layer, for every setup
    ref = functools.partial(reference.conv2d, **geometry) if geometry else reference.conv1x1
    expected = {act: ref(x, w, b, activation=act) for act in {i.activation for i in impls}}
    row = {"name": layer.name, "c": layer.c, "f": layer.f, "h": layer.h, "w": layer.w,
           "kernel": f"{layer.kh}x{layer.kw}", "stride": layer.stride, "padding": layer.padding,
           "flop": layer.flop(batch), "bytes": layer.nbytes(batch),
           "intensity": layer.intensity(batch), "results": {}}
    rounds, repeats = timing["rounds"], timing["repeats"]
    block = dict(min_sample_s=timing["min_sample_s"], warmup_s=timing["warmup_s"])
    samples: Dict[str, List[float]] = {i.name: [] for i in impls}
    inner: Dict[str, List[int]] = {i.name: [] for i in impls}
    others: Dict[str, List[float]] = {i.name: [] for i in impls}
    ok: Dict[str, bool] = {}
    # onexone with and without the fused ReLU share their blocks (measure_pair)
    by_name = {i.name: i for i in impls}
    partner = by_name.get("onexone_relu") if "onexone" in by_name else None
    relu_ratios: List[float] = []
    previous = "numpy"  # the library of the block before (the reference above ran on NumPy)
    for r in range(rounds):
        for impl in impls:
            if partner is not None and impl is partner:
                continue  # timed with "onexone"
            pair = [impl, partner] if partner is not None and impl.name == "onexone" else [impl]
            if previous not in ("onexone", impl.library):
                time.sleep(settle_s)  # the previous library's idle threads stop spinning first
            before = CpuSnapshot.take()
            with contextlib.ExitStack() as stack:
                # the pair writes one output, as every peer does: two written in turns (26 MB
                # each at batch 8 on r50.c2.expand) went on to DRAM where one stays in cache
                shared = {"buffers": {}} if len(pair) == 2 else {}
                fns = [stack.enter_context(i.setup(x, w, b, threads, **geometry, **shared)) for i in pair]
                if r == 0:
                    for i, fn in zip(pair, fns):
                        try:
                            check_result(fn(), expected[i.activation], x, w)
                            ok[i.name] = True
                        except AssertionError as e:
                            ok[i.name] = False
                            _log(progress, f"\nWARNING: {i.name} differs from the reference on "
                                 f"{layer.name}:{e}")
                n = samples_in_round(repeats, rounds, r)
                if len(pair) == 2:
                    ta, tb, ratios = measure_pair(fns[0], fns[1], repeats=n, **block)
                    timings = [ta, tb]
                    relu_ratios += ratios
                else:
                    timings = [measure(fns[0], repeats=n, **block)]
            load = CpuSnapshot.take().others_since(before)
            for i, t in zip(pair, timings):
                if load is not None:
                    others[i.name].append(load)
                samples[i.name] += t.samples
                inner[i.name].append(t.inner)
            previous = impl.library
    if relu_ratios:
        row["relu_ratios"] = relu_ratios
    for impl in impls:
        median_s = statistics.median(samples[impl.name])
        gflops = layer.flop(batch) / median_s / 1e9
        load = max(others[impl.name]) if others[impl.name] else None
        row["results"][impl.name] = {"median_s": median_s, "gflops": gflops,
                                     "inner": inner[impl.name], "samples_s": samples[impl.name],
                                     "ok": ok[impl.name], "others_load": load}
        _log(progress, f"  {impl.label} {gflops:.1f}" + ("~" if _disturbed(load) else ""), end="")
    return row


def _summarize_layer(row: dict, peak: float) -> None:
    """Add onexone's peak fraction, the best peer, the ratio and the ReLU cost to a row."""
    res = row["results"]
    own = res["onexone"]["gflops"]
    peers = {p: res[p]["gflops"] for p in PEERS if p in res}
    best = max(peers, key=peers.get) if peers else None
    row["peak_fraction"] = own / peak
    row["best_peer"] = best
    row["best_peer_gflops"] = peers[best] if best else None
    row["ratio"] = own / peers[best] if best else None
    torch_best = max((peers[p] for p in ("torch", "torch_cl") if p in peers), default=None)
    row["vs_torch"] = own / torch_best if torch_best else None
    row["vs_numpy"] = own / peers["numpy"] if peers.get("numpy") else None
    # onexone_relu is always timed paired with onexone (measure_pair): the median of the ratios
    row["relu_cost_pct"] = (100.0 * (statistics.median(row["relu_ratios"]) - 1)
                            if row.get("relu_ratios") else None)


#: The KxK issue's targets: direct / torch's best layout >= 1.0x on the ResNet 3x3 layers,
#: direct / NumPy im2col >= 2.0x on every layer (per-row keys of :func:`_summarize_layer`).
KXK_TARGETS = (
    ("vs_torch", "torch's best layout (/torch)", 1.0, {l.name for l in KXK_SUITE if l.name.startswith("r50.c")}),
    ("vs_numpy", "NumPy im2col (/numpy)", 2.0, None),
)


def _target(rows: List[dict], key: str, goal: float, names) -> Optional[dict]:
    """The lowest ratio ``key`` of the rows (of those named, if ``names``) and how many reach ``goal``."""
    got = [(r[key], r["name"]) for r in rows if r.get(key) and (names is None or r["name"] in names)]
    if not got:
        return None
    low = min(got)
    return {"min": low[0], "min_layer": low[1], "at_goal": sum(q >= goal for q, _ in got), "layers": len(got)}


def _summarize(rows: List[dict], kxk: bool = False) -> dict:
    ratios = [(r["ratio"], r["name"]) for r in rows if r["ratio"] is not None]
    relu = [r["relu_cost_pct"] for r in rows if r["relu_cost_pct"] is not None]
    return {
        "geomean_ratio": math.exp(statistics.fmean(math.log(q) for q, _ in ratios)) if ratios else None,
        "min_ratio": min(ratios)[0] if ratios else None,
        "min_ratio_layer": min(ratios)[1] if ratios else None,
        "layers_at_or_above_1x": sum(q >= 1.0 for q, _ in ratios),
        "relu_cost_pct_median": statistics.median(relu) if relu else None,
        "relu_cost_pct_max": max(relu) if relu else None,
        "peak_fraction_geomean": math.exp(statistics.fmean(math.log(r["peak_fraction"]) for r in rows)),
        "targets": {key: _target(rows, key, goal, names) for key, _, goal, names in KXK_TARGETS} if kxk else {},
    }


# --------------------------------------------------------------------------------------
# Output: table and roofline
# --------------------------------------------------------------------------------------


def _disturbed(others_load: Optional[float]) -> bool:
    """Whether other processes used more than :data:`BUSY_LIMIT` of the CPUs meanwhile."""
    return others_load is not None and others_load > BUSY_LIMIT


def _fmt_ratio(r: float) -> str:
    """A ratio with 2 decimals, or 3 where 2 would round one below 1.0 up to "1.00x"."""
    return f"{r:.3f}x" if r < 1.0 <= round(r, 2) else f"{r:.2f}x"


def format_table(results: dict) -> str:
    """The results as a plain-text table (GFLOP/s per implementation) with a summary."""
    impls = results["implementations"]
    kxk = results.get("kxk", False)
    table = KXK_IMPLEMENTATIONS if kxk else IMPLEMENTATIONS
    labels = {n: table[n].label if n in table else n for n in impls}
    cfg = results["config"]
    m = results["method"]
    lines = [
        f"onexone {results['versions']['onexone']} {'KxK conv2d ' if kxk else ''}peer benchmark: {results['cpu']}, "
        f"ISA {cfg['isa']['active']}, {results['threads']} thread(s), batch {results['batch']}, "
        f"float32, median of {m['repeats']} samples in {m.get('rounds', 1)} rounds",
        f"measured fp32 peak: {results['peak_gflops']:.1f} GFLOP/s; figures in GFLOP/s "
        "(onexone and peers with bias; +relu: onexone with bias+ReLU; "
        "2 FLOP per multiply-add of the convolution, the bias and ReLU not counted)",
    ]
    if kxk:
        lines.append("direct: onexone.conv2d's direct kernel (the onexone figure); im2col: its im2col "
                     "algorithm; numpy: onexone.reference.conv2d (sliding_window_view + np.matmul)")
    if results["skipped"]:
        lines.append("not run: " + "; ".join(f"{n} ({why})" for n, why in results["skipped"].items()))
    lines += [f"note: {note}" for note in results.get("notes", [])]
    kcol = f"{'k/s/p':>8}" if kxk else ""
    head = (f"{'layer':<15}{'C':>5}{'F':>6}{'HxW':>8}{kcol}{'MFLOP':>8}"
            + "".join(f"{labels[n]:>9}" for n in impls)
            + f"{'%peak':>7}  {'best peer':<9}{'ratio':>7}{'ReLU cost':>10}"
            + (f"{'/torch':>8}{'/numpy':>8}" if kxk else ""))
    lines += ["", head, "-" * len(head)]
    for r in results["layers"]:
        cells = []
        for n in impls:
            res = r["results"][n]
            mark = "!" if not res["ok"] else "~" if _disturbed(res.get("others_load")) else " "
            cells.append(f"{res['gflops']:>8.1f}{mark}")
        ratio = _fmt_ratio(r["ratio"]) if r["ratio"] is not None else "-"
        relu = f"{r['relu_cost_pct']:+.1f}%" if r["relu_cost_pct"] is not None else "-"
        lines.append(
            f"{r['name']:<15}{r['c']:>5}{r['f']:>6}{str(r['h']) + 'x' + str(r['w']):>8}"
            + (f"{r['kernel'] + '/' + str(r['stride']) + '/' + str(r['padding']):>8}" if kxk else "")
            + f"{r['flop'] / 1e6:>8.1f}" + "".join(cells)
            + f"{100 * r['peak_fraction']:>6.1f}%  {r['best_peer'] or '-':<9}{ratio:>7}{relu:>10}"
            + ("".join(f"{_fmt_ratio(r[k]) if r.get(k) else '-':>8}" for k in ("vs_torch", "vs_numpy"))
               if kxk else "")
        )
    s = results["summary"]
    lines.append("-" * len(head))
    if s["geomean_ratio"] is not None:
        lines.append(
            f"onexone / best peer: geometric mean {s['geomean_ratio']:.2f}x, "
            f"min {_fmt_ratio(s['min_ratio'])} ({s['min_ratio_layer']}), "
            f">= 1.0x on {s['layers_at_or_above_1x']}/{len(results['layers'])} layers"
        )
    for key, what, goal, names in KXK_TARGETS if kxk else ():
        t = s["targets"].get(key)
        if t:
            lines.append(f"direct / {what}: min {_fmt_ratio(t['min'])} ({t['min_layer']}), >= {goal:.1f}x on "
                         f"{t['at_goal']}/{t['layers']} layers" + (" (the r50 3x3 layers)" if names else ""))
    if s["relu_cost_pct_median"] is not None:
        lines.append(f"bias+ReLU vs bias only: median {s['relu_cost_pct_median']:+.1f}%, "
                     f"max {s['relu_cost_pct_max']:+.1f}%")
    disturbed = {r["name"] for r in results["layers"] for res in r["results"].values()
                 if _disturbed(res.get("others_load"))}
    if disturbed:
        lines.append(f"~ = other processes used more than {100 * BUSY_LIMIT:.0f}% of the CPUs during "
                     f"this measurement: unreliable; rerun on a quiet machine with --layers "
                     + ",".join(r["name"] for r in results["layers"] if r["name"] in disturbed))
    if any(not res["ok"] for r in results["layers"] for res in r["results"].values()):
        lines.append("! = result differs from the NumPy reference (see the warnings above)")
    return "\n".join(lines)


def plot_roofline(results: dict, path: str, roofs: Optional[Dict[str, float]] = None) -> None:
    """Draw a log-log roofline of ``results`` (from :func:`run`, or its JSON) into ``path``.

    x: arithmetic intensity (FLOP per byte of x + w + y); y: GFLOP/s. Roofs: the measured
    peak, and ``roofs`` (name -> GB/s; default the results' own, else
    :data:`BANDWIDTH_ROOFS_GBPS`). Each layer is a numbered point for onexone (o) and for
    its best peer (x), joined by a line; the key beside the plot names the numbers."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        raise ImportError("plotting the roofline needs matplotlib: pip install matplotlib "
                          "(or pip install 'onexone[bench]')") from None
    roofs = dict(roofs or results.get("roofs_gbps") or BANDWIDTH_ROOFS_GBPS)
    peak = results["peak_gflops"]
    rows = results["layers"]
    ai = [r["intensity"] for r in rows]
    own = [r["results"]["onexone"]["gflops"] for r in rows]
    peer = [r["best_peer_gflops"] for r in rows]  # None where no peer ran
    every = own + [g for g in peer if g is not None]
    lo, hi = min(min(ai), 1.0) / 2, max(max(ai), peak / min(roofs.values())) * 2
    xs = np.geomspace(lo, hi, 200)

    fig = Figure(figsize=(12, 6.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.09, 0.68, 0.84))
    ax.plot(xs, np.full_like(xs, peak), color="k", lw=1.5)
    ax.text(lo * 1.1, peak * 1.04, f"fp32 peak {peak:.0f} GFLOP/s (measured)", fontsize=9)
    colors = iter(["C3", "C1", "C2", "C4", "C5", "C6"])
    for name, bw in sorted(roofs.items(), key=lambda kv: kv[1]):
        ax.plot(xs, np.minimum(bw * xs, peak), color=next(colors, "0.5"), lw=1, ls="--",
                label=f"{name} {bw:g} GB/s")
    ax.scatter(ai, own, marker="o", color="C0", zorder=3, label="onexone")
    if any(g is not None for g in peer):
        pts = [(a, g) for a, g in zip(ai, peer) if g is not None]
        ax.scatter(*zip(*pts), marker="x", color="C3", zorder=3, label="best peer")
    labelled: List[float] = []
    for k, (a, g, q) in enumerate(zip(ai, own, peer), 1):
        if q is not None:
            ax.plot([a, a], [g, q], color="0.6", lw=0.6, zorder=2)
        # stagger the numbers of layers with (almost) the same intensity
        dx = 4 + 11 * sum(abs(math.log(a / b)) < 0.03 for b in labelled)
        labelled.append(a)
        ax.annotate(str(k), (a, g), xytext=(dx, 3), textcoords="offset points", fontsize=8, color="C0")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(max(0.5, min(every) / 2), max(peak, max(every)) * 1.6)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
    ax.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000, 2000, 5000)
                   if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]])
    ax.set_xlabel("arithmetic intensity (FLOP per byte of x + w + y)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"onexone {'conv2d (direct)' if results.get('kxk') else 'conv1x1'} roofline: {results['cpu']}, ISA {results['config']['isa']['active']}, "
                 f"{results['threads']} thread(s), batch {results['batch']}, float32", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(loc="lower right", fontsize=8)
    key = ["layer: onexone / best peer, GFLOP/s", ""] + [
        f"{k:>2} {r['name']:<15}{g:6.0f}" + (f" / {q:.0f} {r['best_peer']}" if q is not None else "")
        for k, (r, g, q) in enumerate(zip(rows, own, peer), 1)
    ]
    fig.text(0.77, 0.93, "\n".join(key), va="top", ha="left", family="monospace", fontsize=7.5)
    fig.savefig(path)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _parse_roofs(text: str) -> Dict[str, float]:
    """--roofs: NAME=GBPS pairs, each name non-empty and each bandwidth finite and > 0."""
    problem = argparse.ArgumentTypeError(
        f"expected NAME=GBPS[,NAME=GBPS...] with names and positive finite GB/s, got {text!r}")
    try:
        roofs = {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise problem from None
    if any(not k or not (math.isfinite(v) and v > 0) for k, v in roofs.items()):
        raise problem
    return roofs


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m onexone bench") -> int:
    """``python -m onexone bench [options]``: run the peer benchmark and print the table."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="presets for --layers: " + ", ".join(
                                    f"{k} ({len(v)} layers)" for k, v in PRESETS.items())
                                + "; with --kxk: " + ", ".join(
                                    f"{k} ({len(v)} layers)" for k, v in KXK_PRESETS.items()))
    p.add_argument("--batch", type=cli_positive_int, default=1, help="images per call (default 1)")
    p.add_argument("--threads", type=cli_threads, default=None,
                   help="threads of every implementation (default: all usable cores; -1 all, -2 all but one)")
    p.add_argument("--layers", default="all", help="comma list of layer or preset names (default all)")
    p.add_argument("--repeats", type=cli_positive_int, default=None,
                   help=f"timed samples per layer and implementation (default {DEFAULTS['repeats']}, "
                   f"--quick {QUICK['repeats']})")
    p.add_argument("--rounds", type=cli_positive_int, default=None,
                   help="blocks the samples are taken in, the implementations taking turns "
                   f"(default {DEFAULTS['rounds']}, --quick {QUICK['rounds']})")
    p.add_argument("--quick", action="store_true", help="fewer and shorter samples (a rough look)")
    p.add_argument("--no-relu", dest="relu", action="store_false", help="skip onexone with bias+ReLU")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--plot", metavar="PATH.png", help="draw the roofline (needs matplotlib)")
    p.add_argument("--roofs", type=_parse_roofs, default=None, metavar="NAME=GBPS,...",
                   help="bandwidth roofs of the plot (default " + ",".join(
                       f"{k}={v:g}" for k, v in BANDWIDTH_ROOFS_GBPS.items()) + ")")
    p.add_argument("--kxk", action="store_true",
                   help="the KxK suite: onexone.conv2d (direct, im2col) vs NumPy im2col, PyTorch, ORT")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error("--plot needs matplotlib: pip install matplotlib (or 'onexone[bench]')")
    # the output paths are checked before the run, which takes minutes, and written after
    # the table is printed, so that a file that cannot be written loses no figures
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        problem = path and _output_path_problem(path, plot=option == "--plot")
        if problem:
            p.error(f"{option} {path}: {problem}")
    try:
        layers = select_layers(args.layers, args.kxk)
    except ValueError as e:
        p.error(str(e))
    try:
        results = run([l.name for l in layers], batch=args.batch, threads=args.threads,
                      repeats=args.repeats, rounds=args.rounds, relu=args.relu,
                      progress=not args.quiet, quick=args.quick, roofs=args.roofs, kxk=args.kxk)
    except MemoryError as e:
        p.exit(1, f"{p.prog}: error: not enough memory for --batch {args.batch}: {e}\n")
    print(format_table(results))
    try:
        save(results, args.json, args.plot, args.roofs, progress=not args.quiet)
    except (OSError, ValueError) as e:
        p.exit(1, f"{p.prog}: error: could not save the results: {e}\n")
    return 0


def _output_path_problem(path: str, plot: bool) -> Optional[str]:
    """Why ``path`` cannot be written (a missing or read-only folder, a folder, a plot format
    matplotlib does not know), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder; give a file name"
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable"
    if plot:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        formats = sorted(FigureCanvasAgg(Figure()).get_supported_filetypes())
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        if ext not in formats:
            return f"give a file name ending in .png (or another format matplotlib writes: .{', .'.join(formats)})"
    return None


if __name__ == "__main__":
    sys.exit(main())
