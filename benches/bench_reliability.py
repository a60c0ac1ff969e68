"""Reliability benchmarks: onexone beside NumPy's BLAS, and subnormal (denormal) inputs.

* Interleave: a loop alternating onexone.conv1x1 (64->64 on 28x28, float32) with NumPy's
  64x64 @ 64x784 matmul, against the two alone: the ratio pair / (conv1x1 + matmul). About
  1.0-1.2 means they share the cores well; an OpenMP runtime that busy-waits beside
  OpenBLAS's busy-waiting threads makes it tens (PyTorch's conv2d in the same loop is shown
  for comparison when it is installed).
* Subnormals: conv1x1 (r50.c2.reduce, 256->64 on 56x56) with normal inputs, with x or the
  weight in the subnormal range, and with products that underflow into it, per ISA and dtype:
  the slowdown against normal inputs (NumPy's matmul for comparison).

    python benches/bench_reliability.py            # both, as tables
    python benches/bench_reliability.py --interleave --rounds 21
    pytest benches/bench_reliability.py --benchmark-enable --benchmark-only   # ratios in extra_info
    pytest benches/bench_reliability.py --benchmark-disable  # CI smoke test: one call each

The test that fails on a 10x collapse is tests/test_threads.py
(test_alternating_with_numpy_matmul_does_not_collapse).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Dict, Optional

import numpy as np
import pytest

import onexone
from onexone import reference

# ---- interleave -------------------------------------------------------------------------------


def _per_call(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def interleave_setup(peer: str = "onexone", seed: int = 0):
    """(conv, matmul, pair) callables: the layer 64->64 on 28x28 by `peer` ("onexone" or
    "torch"), NumPy's 64x64 @ 64x784, and the two alternated."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 64, 28, 28)).astype(np.float32)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    y = np.empty((1, 64, 28, 28), np.float32)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal((64, 784)).astype(np.float32)
    c = np.empty((64, 784), np.float32)
    if peer == "torch":
        import torch

        tx, tw = torch.from_numpy(x), torch.from_numpy(w.reshape(64, 64, 1, 1))

        def conv():
            torch.nn.functional.conv2d(tx, tw)
    else:

        def conv():
            onexone.conv1x1(x, w, out=y)

    def matmul():
        np.matmul(a, b, out=c)

    def pair():
        conv()
        matmul()

    return conv, matmul, pair


def interleave(peer: str = "onexone", rounds: int = 15, calls: int = 100, seed: int = 0) -> Dict[str, float]:
    """Seconds per call (medians over rounds) of conv alone, matmul alone and the pair, each
    round timing the three back to back, and the median over rounds of the ratio
    pair / (conv + matmul)."""
    conv, matmul, pair = interleave_setup(peer, seed)
    for fn in (conv, matmul, pair):
        _per_call(fn, 20)
    t = np.array([[_per_call(fn, calls) for fn in (conv, matmul, pair)] for _ in range(rounds)])
    return {
        "peer": peer,
        "conv_ms": float(np.median(t[:, 0])) * 1e3,
        "matmul_ms": float(np.median(t[:, 1])) * 1e3,
        "pair_ms": float(np.median(t[:, 2])) * 1e3,
        "ratio": float(np.median(t[:, 2] / (t[:, 0] + t[:, 1]))),
        "ratio_min": float(t[:, 2].min() / (t[:, 0].min() + t[:, 1].min())),
        "rounds": rounds,
        "calls": calls,
    }


# ---- subnormals ------------------------------------------------------------------------------

DENORMAL_CASES = ("normal", "subnormal_x", "subnormal_weight", "underflowing_products")


def denormal_inputs(case: str, dtype, c: int = 256, f: int = 64, hw: int = 56, seed: int = 0):
    """x (1, c, hw, hw) and w (f, c) for a case: "normal" N(0, 1) data; x or the weight
    scaled into the subnormal range (smallest normal * 2**-8); or both normal but tiny enough
    (2**-70 each in float32, 2**-520 in float64) that every product is subnormal."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c, hw, hw))
    w = rng.standard_normal((f, c))
    tiny = float(np.finfo(dt).smallest_normal)
    if case == "subnormal_x":
        x *= tiny * 2.0**-8
    elif case == "subnormal_weight":
        w *= tiny * 2.0**-8
    elif case == "underflowing_products":
        s = 2.0**-70 if dt == np.float32 else 2.0**-520
        x *= s
        w *= s
    elif case != "normal":
        raise ValueError(case)
    return x.astype(dt), w.astype(dt)


def _time(fn, repeats: int = 7, min_s: float = 0.02) -> float:
    fn()
    n = max(1, int(min_s / max(_per_call(fn, 1), 1e-6)))
    return float(np.median([_per_call(fn, n) for _ in range(repeats)]))


def denormals(isas=None, dtypes=(np.float32, np.float64), threads: Optional[int] = None,
              with_numpy: bool = True) -> list:
    """Rows of (impl, isa, dtype, case, ms, slowdown against normal data)."""
    rows = []
    old = onexone.get_isa()
    try:
        for isa in isas or onexone.available_isas():
            onexone.set_isa(isa)
            for dt in dtypes:
                base = None
                for case in DENORMAL_CASES:
                    x, w = denormal_inputs(case, dt)
                    y = np.empty((1, w.shape[0]) + x.shape[2:], x.dtype)
                    t = _time(lambda: onexone.conv1x1(x, w, out=y, n_threads=threads))
                    base = t if case == "normal" else base
                    rows.append({"impl": "onexone", "isa": isa, "dtype": np.dtype(dt).name, "case": case,
                                 "ms": t * 1e3, "slowdown": t / base})
    finally:
        onexone.set_isa(old)
    if with_numpy:
        for dt in dtypes:
            base = None
            for case in DENORMAL_CASES:
                x, w = denormal_inputs(case, dt)
                t = _time(lambda: reference.conv1x1(x, w))
                base = t if case == "normal" else base
                rows.append({"impl": "numpy", "isa": "-", "dtype": np.dtype(dt).name, "case": case,
                             "ms": t * 1e3, "slowdown": t / base})
    return rows


# ---- pytest-benchmark -------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["conv1x1", "matmul", "pair"])
def test_interleave(benchmark, what):
    conv, matmul, pair = interleave_setup()
    fn = {"conv1x1": conv, "matmul": matmul, "pair": pair}[what]
    benchmark.group = "interleave: onexone.conv1x1 64->64 @28x28 with np.matmul 64x64 @ 64x784"
    if not benchmark.disabled and what == "pair":
        benchmark.extra_info.update(interleave(rounds=9))
    benchmark(fn)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", DENORMAL_CASES)
def test_subnormals(benchmark, case, dtype):
    x, w = denormal_inputs(case, dtype)
    y = onexone.conv1x1(x, w)
    # the results are right however slow: within the C-scaled tolerance of the float64 reference
    ref = reference.conv1x1_naive(x, w)
    eps = float(np.finfo(dtype).eps)
    tol = 4 * eps * (x.shape[1] + 1) * float(np.abs(x).max()) * float(np.abs(w).max()) + float(np.finfo(dtype).tiny)
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol)
    benchmark.group = f"subnormals {dtype} (r50.c2.reduce, ISA {onexone.get_isa()})"
    benchmark.extra_info.update(case=case, dtype=dtype, isa=onexone.get_isa())
    benchmark(lambda: onexone.conv1x1(x, w, out=y))


# ---- command line ----------------------------------------------------------------------------


def _table(rows, cols):
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(wd) for c, wd in zip(cols, widths))]
    lines += ["  ".join(r[c].ljust(wd) for c, wd in zip(cols, widths)) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interleave", action="store_true", help="only the interleave benchmark")
    p.add_argument("--denormal", action="store_true", help="only the subnormal benchmark")
    p.add_argument("--rounds", type=int, default=15, help="interleave rounds (default 15)")
    p.add_argument("--calls", type=int, default=100, help="calls per interleave round (default 100)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch's conv2d in the interleave")
    p.add_argument("--json", metavar="PATH", help="save the results as JSON")
    args = p.parse_args(argv)
    both = not (args.interleave or args.denormal)
    cfg = onexone.show_config(mode="dicts")
    print(f"onexone {onexone.__version__}, ISA {cfg['isa']['active']}, {onexone.get_num_threads()} threads, "
          f"NumPy {np.__version__}")
    results = {}
    if both or args.interleave:
        peers = ["onexone"]
        if not args.no_torch:
            try:
                import torch  # noqa: F401

                peers.append("torch")
            except ImportError:
                pass
        rows = [interleave(peer, args.rounds, args.calls) for peer in peers]
        results["interleave"] = rows
        print("\nAlternating a 64->64 1x1 conv on 28x28 with np.matmul 64x64 @ 64x784 (ms per call, medians):")
        print(_table([{"conv": r["peer"], "conv alone": f"{r['conv_ms']:.3f}", "matmul alone": f"{r['matmul_ms']:.3f}",
                       "pair": f"{r['pair_ms']:.3f}", "pair / sum": f"{r['ratio']:.2f}x",
                       "best pair / best sum": f"{r['ratio_min']:.2f}x"} for r in rows],
                     ["conv", "conv alone", "matmul alone", "pair", "pair / sum", "best pair / best sum"]))
    if both or args.denormal:
        rows = denormals()
        results["denormal"] = rows
        print("\nconv1x1 256->64 on 56x56 with subnormal data (ms per call, slowdown against normal data):")
        print(_table([{"impl": r["impl"], "isa": r["isa"], "dtype": r["dtype"], "case": r["case"],
                       "ms": f"{r['ms']:.3f}", "slowdown": f"{r['slowdown']:.2f}x"} for r in rows],
                     ["impl", "isa", "dtype", "case", "ms", "slowdown"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
