"""Depthwise 3x3 convolutions (MobileNet v2's, ``groups == C``) beside PyTorch.

For each layer: onexone.conv2d under "auto" (its depthwise kernel), onexone.conv2d with
algorithm="im2col" (the grouped GEMM path), and PyTorch's conv2d on NCHW and channels_last
when torch is installed; batch 1, bias, padding 1. Each implementation is timed in its own
block of calls (a median of 41), the blocks repeated 3 times and the best median kept, so
that PyTorch's OpenMP threads never spin between two onexone calls. Every result is checked
against onexone.reference first.

    python benches/depthwise.py                  # 2 threads
    python benches/depthwise.py --threads 1
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import onexone
from onexone import reference

# (name, channels, map size, stride)
LAYERS = [("mv2.112.dw", 32, 112, 1), ("mv2.112.dw.s2", 96, 112, 2), ("mv2.56.dw", 144, 56, 1),
          ("mv2.56.dw.s2", 144, 56, 2), ("mv2.28.dw", 192, 28, 1), ("mv2.14.dw", 576, 14, 1),
          ("mv2.7.dw", 960, 7, 1)]


def _best_median(f, blocks: int = 3, calls: int = 41) -> float:
    best = np.inf
    for _ in range(blocks):
        for _ in range(5):
            f()
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        best = min(best, float(np.median(ts)))
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, batch 1, float32; GFLOP/s (best of 3 blocks' medians of 41 calls)")
    head = f"{'layer':14s} {'C':>4s} {'HxW':>7s} {'s':>2s} {'onexone':>8s} {'im2col':>7s}"
    print(head + (f" {'torch':>7s} {'torch_cl':>8s}  onexone / best torch" if torch else ""))
    for name, c, h, s in LAYERS:
        x = rng.standard_normal((1, c, h, h), dtype=np.float32)
        w = rng.standard_normal((c, 1, 3, 3), dtype=np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        kw = dict(stride=s, padding=1, groups=c)
        y = onexone.conv2d(x, w, b, **kw)
        np.testing.assert_allclose(y, reference.conv2d(x, w, b, **kw), rtol=1e-4, atol=1e-4)
        fs = {"onexone": lambda: onexone.conv2d(x, w, b, out=y, n_threads=args.threads, **kw),
              "im2col": lambda: onexone.conv2d(x, w, b, out=y, n_threads=args.threads, algorithm="im2col", **kw)}
        if torch:
            xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            xcl = xt.contiguous(memory_format=torch.channels_last)
            fs["torch"] = lambda: torch.nn.functional.conv2d(xt, wt, bt, **kw)
            fs["torch_cl"] = lambda: torch.nn.functional.conv2d(xcl, wt, bt, **kw)
        ho = (h - 1) // s + 1
        gf = {k: 2 * 9 * c * ho * ho / _best_median(f) / 1e9 for k, f in fs.items()}
        line = f"{name:14s} {c:4d} {h:3d}x{h:<3d} {s:2d} {gf['onexone']:8.1f} {gf['im2col']:7.1f}"
        if torch:
            line += f" {gf['torch']:7.1f} {gf['torch_cl']:8.1f}  {gf['onexone'] / max(gf['torch'], gf['torch_cl']):.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
