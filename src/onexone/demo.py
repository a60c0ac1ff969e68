"""``python -m onexone demo``: why 1x1 convolutions pay, measured with onexone's own kernels.

A 1x1 convolution changes the depth of a feature map cheaply, so Inception puts 1x1
reductions (with ReLU) before its expensive 3x3 and 5x5 convolutions, and FCN turns fully
connected layers into 1x1 convolutions. Three tables, FLOPs and measured time side by side:

1. On a 28x28 map of depth 256: "1x1 conv to 64, then 4x4 conv to 256" versus "4x4 conv
   straight to 256". FLOP ratio 256*256*16 / (256*64 + 64*256*16) = 3.76x.
2. GoogLeNet's inception (3a) on 28x28x192 (Szegedy et al., "Going Deeper with
   Convolutions", 2015, Table 1): the naive module (1x1 64, 3x3 128, 5x5 32, 3x3 max pool)
   versus the module with reductions (3x3 reduce 96, 5x5 reduce 16, pool projection 32).
3. A fully connected layer as a 1x1 convolution (Long et al., "Fully Convolutional Networks",
   2015): fc7 (4096 features) on an 8x8 map -> fc8 (2048), equal to the dense layer applied at
   every position.

Conventions: batch 1, float32; ReLU after every convolution of 1 and 2 (3's fc8, the scores,
has none), fused into onexone's kernels;
convolutions keep the map size (stride 1, "same" padding; an even 4x4 kernel pads one more
row and column at the bottom/right, as PyTorch does); 3x3 max pooling (stride 1, padding 1)
is a small NumPy helper (:func:`max_pool_3x3`), not an onexone kernel; branches are
concatenated along the channels by writing into slices of one output. FLOPs are 2 per
multiply-add of the convolutions (bias adds, ReLU and pooling are not counted); parameters are
weights plus biases. Times are medians of repeated calls (``onexone.bench.measure``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ._args import check_n_threads, cli_nonnegative_int, cli_threads

__all__ = [
    "conv_flops",
    "conv_params",
    "max_pool_3x3",
    "Backend",
    "ONEXONE",
    "REFERENCE",
    "reduction_params",
    "reduction_straight",
    "reduction_reduced",
    "inception_params",
    "inception_naive",
    "inception_reduced",
    "fcn_params",
    "fcn_fc8_conv",
    "fcn_fc8_dense",
    "module_flops",
    "module_params",
    "run",
    "format_tables",
    "main",
]

# ---- counting ---------------------------------------------------------------------------


def conv_flops(c: int, f: int, kh: int, kw: int, ho: int, wo: int, n: int = 1) -> int:
    """FLOPs of a convolution: 2 per multiply-add, ``2 * N * C * F * KH * KW * Ho * Wo``."""
    return 2 * n * c * f * kh * kw * ho * wo


def conv_params(c: int, f: int, kh: int, kw: int) -> int:
    """Weights plus biases of a convolution."""
    return f * c * kh * kw + f


Params = Dict[str, Tuple[np.ndarray, np.ndarray]]  # name -> (weight (F, C, KH, KW), bias (F,))


def module_flops(params: Params, h: int, w: int) -> int:
    """FLOPs of every convolution of a module whose convolutions all keep the h x w map."""
    return sum(conv_flops(wt.shape[1], wt.shape[0], wt.shape[2], wt.shape[3], h, w) for wt, _ in params.values())


def module_params(params: Params) -> int:
    return sum(wt.size + b.size for wt, b in params.values())


def _make(rng: np.random.Generator, shapes: Dict[str, Tuple[int, int, int]]) -> Params:
    """Weights (F, C, K, K) uniform with variance 2/(C*K*K) (He), biases small."""
    out = {}
    for name, (c, f, k) in shapes.items():
        bound = np.sqrt(6.0 / (c * k * k))
        out[name] = (rng.uniform(-bound, bound, (f, c, k, k)).astype(np.float32),
                     rng.uniform(-0.1, 0.1, f).astype(np.float32))
    return out


# ---- the building blocks, for onexone and for the NumPy reference --------------------------


def max_pool_3x3(x: np.ndarray, out: Optional[np.ndarray] = None, work: Optional[dict] = None) -> np.ndarray:
    """3x3 max pooling, stride 1, padding 1 (a NumPy helper, separable: the max over rows
    i-1..i+1, then over columns j-1..j+1; padding never wins a max, so it is left out).

    The whole array is taken as one flat sequence, so that every pass is one np.maximum of
    two long shifted slices: the row above or below is a shift by W, the column to the left
    or right a shift by one. Those shifts cross the planes' first and last rows and the
    rows' first and last columns, which are then redone from their in-plane neighbours.
    ``out`` (C-contiguous, the result's shape) and ``work`` (a dict the helper keeps its
    buffer in) let repeated calls allocate nothing: a fresh buffer of a few hundred KiB
    costs its page faults on every call. Inception (3a)'s pool, 192 x 28 x 28, on this
    project's Zen 4 machine: 0.8-1.07 ms with nine shifted views of a padded copy (NumPy runs
    element-wise ops on 2-D or 4-D shifted views at a quarter of their flat speed here),
    0.14 ms so.
    """
    n, c, h, w = x.shape
    work = {} if work is None else work
    xf = np.ascontiguousarray(x).reshape(-1)
    v = _buffer(work, "rows", xf.shape, x.dtype)
    out = np.empty(x.shape, x.dtype) if out is None else out
    if out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {x.dtype} array of shape {x.shape}, got "
                         f"{out.dtype} {out.shape}{'' if out.flags.c_contiguous else ' (not C-contiguous)'}")
    o = out.reshape(-1)  # a view: out is C-contiguous
    x3, v3, o3 = xf.reshape(-1, h, w), v.reshape(-1, h, w), o.reshape(-1, h, w)
    # rows: the max of each element and the ones a row above and below
    np.copyto(v, xf)
    if h > 1:
        np.maximum(v[w:], xf[:-w], out=v[w:])
        np.maximum(v[:-w], xf[w:], out=v[:-w])
        np.maximum(x3[:, 0], x3[:, 1], out=v3[:, 0])  # a plane's first and last rows had
        np.maximum(x3[:, -1], x3[:, -2], out=v3[:, -1])  # a neighbouring plane's row in them
    # columns: the same along each row of that
    np.copyto(o, v)
    if w > 1:
        np.maximum(o[1:], v[:-1], out=o[1:])
        np.maximum(o[:-1], v[1:], out=o[:-1])
        np.maximum(v3[:, :, 0], v3[:, :, 1], out=o3[:, :, 0])
        np.maximum(v3[:, :, -1], v3[:, :, -2], out=o3[:, :, -1])
    return out


class Backend(NamedTuple):
    """How a module computes ``relu(conv(x, w) + b)`` with "same" padding, into ``out``."""

    name: str
    conv: Callable[..., np.ndarray]  # conv(x, (w, b), out=None, threads=None) -> y


def _onexone_conv(x, wb, out=None, threads=None):
    from . import conv1x1, conv2d

    w, b = wb
    if w.shape[2:] == (1, 1):
        return conv1x1(x, w, b, activation="relu", out=out, n_threads=threads)
    return conv2d(x, w, b, padding="same", activation="relu", out=out, n_threads=threads)


def _reference_conv(x, wb, out=None, threads=None):
    from . import reference

    w, b = wb
    return reference.conv2d(x, w, b, padding="same", activation="relu", out=out)


ONEXONE = Backend("onexone", _onexone_conv)
REFERENCE = Backend("NumPy reference", _reference_conv)


def _into(out: np.ndarray, lo: int, hi: int, compute: Callable[[Optional[np.ndarray]], np.ndarray]) -> None:
    """Write channels [lo, hi) of ``out``: in place when that slice is C-contiguous (batch 1),
    else through a temporary."""
    view = out[:, lo:hi]
    if view.flags.c_contiguous:
        compute(view)
    else:
        view[...] = compute(None)


# ---- 1. a 1x1 reduction before a 4x4 convolution -------------------------------------------

REDUCTION = dict(c=256, mid=64, f=256, k=4, h=28, w=28)


def reduction_params(rng: np.random.Generator) -> Tuple[Params, Params]:
    """(straight, reduced): 4x4 256->256; 1x1 256->64 then 4x4 64->256."""
    c, m, f, k = (REDUCTION[key] for key in ("c", "mid", "f", "k"))
    return _make(rng, {"4x4": (c, f, k)}), _make(rng, {"1x1": (c, m, 1), "4x4": (m, f, k)})


def reduction_straight(x, p: Params, be: Backend = ONEXONE, threads=None, out=None):
    return be.conv(x, p["4x4"], out=out, threads=threads)


def reduction_reduced(x, p: Params, be: Backend = ONEXONE, threads=None, out=None, mid=None):
    mid = be.conv(x, p["1x1"], out=mid, threads=threads)
    return be.conv(mid, p["4x4"], out=out, threads=threads)


# ---- 2. GoogLeNet inception (3a) ---------------------------------------------------------

INCEPTION_3A = dict(c=192, h=28, w=28, n1x1=64, n3x3red=96, n3x3=128, n5x5red=16, n5x5=32, pool_proj=32)


def inception_params(rng: np.random.Generator) -> Tuple[Params, Params]:
    """(naive, reduced) parameters of inception (3a)."""
    s = INCEPTION_3A
    c = s["c"]
    naive = _make(rng, {"1x1": (c, s["n1x1"], 1), "3x3": (c, s["n3x3"], 3), "5x5": (c, s["n5x5"], 5)})
    reduced = _make(rng, {
        "1x1": (c, s["n1x1"], 1),
        "3x3_reduce": (c, s["n3x3red"], 1), "3x3": (s["n3x3red"], s["n3x3"], 3),
        "5x5_reduce": (c, s["n5x5red"], 1), "5x5": (s["n5x5red"], s["n5x5"], 5),
        "pool_proj": (c, s["pool_proj"], 1),
    })
    return naive, reduced


def _depths(p: Params, names: Sequence[str]) -> List[int]:
    return [p[n][0].shape[0] for n in names]


def _buffer(work: dict, key: str, shape: tuple, dtype) -> np.ndarray:
    """work[key] if it is an array of that shape and dtype, else a new one kept there."""
    a = work.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = work[key] = np.empty(shape, dtype)
    return a


def inception_naive(x, p: Params, be: Backend = ONEXONE, threads=None, out=None, work=None):
    """Concatenation of 1x1, 3x3 and 5x5 convolutions of x and its 3x3 max pool (all of its
    channels: the naive module's output is deeper than its input). ``work``: a dict that
    keeps the pool's buffer between calls."""
    n, c, h, w = x.shape
    d1, d3, d5 = _depths(p, ("1x1", "3x3", "5x5"))
    edges = np.cumsum([0, d1, d3, d5, c])
    if out is None:
        out = np.empty((n, int(edges[-1]), h, w), x.dtype)
    _into(out, edges[0], edges[1], lambda o: be.conv(x, p["1x1"], out=o, threads=threads))
    _into(out, edges[1], edges[2], lambda o: be.conv(x, p["3x3"], out=o, threads=threads))
    _into(out, edges[2], edges[3], lambda o: be.conv(x, p["5x5"], out=o, threads=threads))
    _into(out, edges[3], edges[4], lambda o: max_pool_3x3(x, out=o, work=work))
    return out


def inception_reduced(x, p: Params, be: Backend = ONEXONE, threads=None, out=None, work=None):
    """The module of the paper: 1x1 reductions (with ReLU) before the 3x3 and 5x5
    convolutions, and a 1x1 projection after the pool. ``work``: a dict that keeps the
    reductions' outputs, the pooled map and the pool's buffer between calls."""
    n, c, h, w = x.shape
    d1, d3, d5, dp = _depths(p, ("1x1", "3x3", "5x5", "pool_proj"))
    edges = np.cumsum([0, d1, d3, d5, dp])
    if out is None:
        out = np.empty((n, int(edges[-1]), h, w), x.dtype)
    _into(out, edges[0], edges[1], lambda o: be.conv(x, p["1x1"], out=o, threads=threads))
    work = {} if work is None else work
    r3 = be.conv(x, p["3x3_reduce"], threads=threads,
                 out=_buffer(work, "r3", (n, p["3x3_reduce"][0].shape[0], h, w), out.dtype))
    _into(out, edges[1], edges[2], lambda o: be.conv(r3, p["3x3"], out=o, threads=threads))
    r5 = be.conv(x, p["5x5_reduce"], threads=threads,
                 out=_buffer(work, "r5", (n, p["5x5_reduce"][0].shape[0], h, w), out.dtype))
    _into(out, edges[2], edges[3], lambda o: be.conv(r5, p["5x5"], out=o, threads=threads))
    pooled = max_pool_3x3(x, out=_buffer(work, "pooled", x.shape, x.dtype), work=work)
    _into(out, edges[3], edges[4], lambda o: be.conv(pooled, p["pool_proj"], out=o, threads=threads))
    return out


# ---- 3. a fully connected layer as a 1x1 convolution ---------------------------------------

FCN = dict(c=4096, f=2048, h=8, w=8)


def fcn_params(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """fc8 as a dense layer: weight (2048, 4096), bias (2048,)."""
    bound = np.sqrt(6.0 / FCN["c"])
    return (rng.uniform(-bound, bound, (FCN["f"], FCN["c"])).astype(np.float32),
            rng.uniform(-0.1, 0.1, FCN["f"]).astype(np.float32))


def fcn_fc8_conv(x, w, b, threads=None, out=None):
    """fc8 over the whole map: one 1x1 convolution with the dense layer's weight."""
    from . import conv1x1

    return conv1x1(x, w, b, out=out, n_threads=threads)


def fcn_fc8_dense(x, w, b):
    """fc8 as a classifier applies it: the dense layer ``w @ v + b`` on the feature vector
    ``v`` of every position, one position at a time (NumPy)."""
    n, c, h, wd = x.shape
    out = np.empty((n, w.shape[0], h, wd), x.dtype)
    for i in range(n):
        for r in range(h):
            for s in range(wd):
                out[i, :, r, s] = w @ x[i, :, r, s] + b
    return out


# ---- the demo ---------------------------------------------------------------------------


def _time(fn: Callable[[], object], quick: bool) -> float:
    """Median seconds per call (onexone.bench.measure), after a pause for NumPy's BLAS
    threads to stop spinning: each row is checked against a NumPy reference just before it
    is timed, and OpenBLAS's idle workers spin for up to 0.25 s after a call, on the cores
    onexone's threads need (the 4x4 256->256 row measured 190-220 GFLOP/s without the pause,
    310-360 with it)."""
    import time

    from .bench import SETTLE_S, measure

    time.sleep(SETTLE_S)
    return measure(fn, repeats=5 if quick else 15, min_sample_s=2e-3 if quick else 5e-3,
                   warmup_s=0.02).median_s


def _time_slow(fn: Callable[[], object], calls: int = 3) -> float:
    """Median seconds of a few calls, for a slow baseline (one call already ran)."""
    import statistics
    import time

    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def run(threads: Optional[int] = None, quick: bool = False, seed: int = 0, check: bool = True) -> dict:
    """Build the three comparisons, check each module against its NumPy reference, time them;
    return the tables as a JSON-able dict. ``threads`` as ``n_threads`` (None: the default;
    -1 all cores, -2 all but one, ...)."""
    from . import get_num_threads, reference

    threads = check_n_threads(threads, get_num_threads())
    rng = np.random.default_rng(seed)
    tol = dict(rtol=1e-3, atol=1e-3)
    results: dict = {"threads": threads}

    # 1
    s = REDUCTION
    x = rng.uniform(-1, 1, (1, s["c"], s["h"], s["w"])).astype(np.float32)
    straight, reduced = reduction_params(rng)
    y1 = np.empty((1, s["f"], s["h"], s["w"]), np.float32)
    y2, mid = np.empty_like(y1), np.empty((1, s["mid"], s["h"], s["w"]), np.float32)
    if check:
        np.testing.assert_allclose(reduction_straight(x, straight, threads=threads, out=y1),
                                   reduction_straight(x, straight, REFERENCE), **tol)
        np.testing.assert_allclose(reduction_reduced(x, reduced, threads=threads, out=y2, mid=mid),
                                   reduction_reduced(x, reduced, REFERENCE), **tol)
    results["reduction"] = [
        {"path": f"4x4 conv {s['c']}->{s['f']} straight", "depth": s["f"],
         "flops": module_flops(straight, s["h"], s["w"]), "params": module_params(straight),
         "time_s": _time(lambda: reduction_straight(x, straight, threads=threads, out=y1), quick)},
        {"path": f"1x1 conv {s['c']}->{s['mid']}, then 4x4 conv {s['mid']}->{s['f']}", "depth": s["f"],
         "flops": module_flops(reduced, s["h"], s["w"]), "params": module_params(reduced),
         "time_s": _time(lambda: reduction_reduced(x, reduced, threads=threads, out=y2, mid=mid), quick)},
    ]

    # 2
    s = INCEPTION_3A
    x = rng.uniform(-1, 1, (1, s["c"], s["h"], s["w"])).astype(np.float32)
    naive, red = inception_params(rng)
    work_n, work_r = {}, {}  # buffers kept between the timed calls, as out_n and out_r are
    out_n = inception_naive(x, naive, threads=threads, work=work_n)
    out_r = inception_reduced(x, red, threads=threads, work=work_r)
    if check:
        np.testing.assert_allclose(out_n, inception_naive(x, naive, REFERENCE), **tol)
        np.testing.assert_allclose(out_r, inception_reduced(x, red, REFERENCE), **tol)
    results["inception"] = [
        {"path": "naive (1x1 64, 3x3 128, 5x5 32, pool)", "depth": out_n.shape[1],
         "flops": module_flops(naive, s["h"], s["w"]), "params": module_params(naive),
         "time_s": _time(lambda: inception_naive(x, naive, threads=threads, out=out_n, work=work_n), quick)},
        {"path": "with 1x1 reductions (96, 16, pool proj 32)", "depth": out_r.shape[1],
         "flops": module_flops(red, s["h"], s["w"]), "params": module_params(red),
         "time_s": _time(lambda: inception_reduced(x, red, threads=threads, out=out_r, work=work_r), quick)},
    ]

    # 3
    s = FCN
    x = rng.uniform(0, 1, (1, s["c"], s["h"], s["w"])).astype(np.float32)  # post-ReLU features
    w, b = fcn_params(rng)
    y = fcn_fc8_conv(x, w, b, threads=threads)
    dense = fcn_fc8_dense(x, w, b)
    max_diff = float(np.max(np.abs(y - dense)))
    if check:
        np.testing.assert_allclose(y, dense, **tol)
    flops = conv_flops(s["c"], s["f"], 1, 1, s["h"], s["w"])
    params = conv_params(s["c"], s["f"], 1, 1)
    results["fcn"] = {
        "max_abs_diff": max_diff,
        "rows": [
            {"path": f"dense layer at each of the {s['h'] * s['w']} positions (NumPy)",
             "flops": flops, "params": params, "time_s": _time_slow(lambda: fcn_fc8_dense(x, w, b))},
            {"path": "one 1x1 conv over the map (onexone.conv1x1)", "flops": flops, "params": params,
             "time_s": _time(lambda: fcn_fc8_conv(x, w, b, threads=threads, out=y), quick)},
        ],
    }
    return results


def _table(title: str, rows: List[dict], depth: bool = True) -> List[str]:
    lines = [title, ""]
    head = f"  {'':<48}" + (f"{'depth':>6}" if depth else "") + f"{'MFLOP':>10}{'params':>11}{'time ms':>10}{'GFLOP/s':>9}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    for r in rows:
        lines.append(f"  {r['path']:<48}" + (f"{r['depth']:>6}" if depth else "")
                     + f"{r['flops'] / 1e6:>10.1f}{r['params']:>11,}{r['time_s'] * 1e3:>10.2f}"
                     f"{r['flops'] / r['time_s'] / 1e9:>9.1f}")
    if len(rows) == 2:
        a, b = rows
        lines.append(f"  {'ratio (first / second)':<48}" + (" " * 6 if depth else "")
                     + f"{a['flops'] / b['flops']:>9.2f}x{a['params'] / b['params']:>10.2f}x"
                     f"{a['time_s'] / b['time_s']:>9.2f}x")
    return lines + [""]


def format_tables(results: dict) -> str:
    from . import get_isa

    lines = [f"onexone demo: why 1x1 convolutions pay (float32, batch 1, {results['threads']} thread(s), "
             f"ISA {get_isa()}; ReLU after every conv in tables 1 and 2; times are medians)", ""]
    s = REDUCTION
    lines += _table(f"1. A 1x1 reduction before a 4x4 convolution, on {s['h']}x{s['w']}x{s['c']}", results["reduction"])
    s = INCEPTION_3A
    lines += _table(f"2. GoogLeNet inception (3a) on {s['h']}x{s['w']}x{s['c']} (3x3 max pool: a NumPy helper)",
                    results["inception"])
    s = FCN
    fcn = results["fcn"]
    lines += _table(f"3. FCN: fc7 ({s['c']} features) on an {s['h']}x{s['w']} map -> fc8 ({s['f']}) as a 1x1 conv;\n"
                    f"   equal to the dense layer at every position (max |difference| {fcn['max_abs_diff']:.1e})",
                    fcn["rows"], depth=False)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m onexone demo") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=cli_threads, default=None,
                   help="threads (default: all usable cores; -1 all, -2 all but one)")
    p.add_argument("--quick", action="store_true", help="fewer timing samples")
    p.add_argument("--seed", type=cli_nonnegative_int, default=0, help="seed of the random inputs and weights")
    args = p.parse_args(argv)
    print(format_tables(run(threads=args.threads, quick=args.quick, seed=args.seed)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
