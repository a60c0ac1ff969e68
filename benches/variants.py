"""The forward variants of the drop-in-op issue beside the plain NCHW call, and beside PyTorch.

For each layer of the suite: onexone.conv1x1 on NCHW, on channels-last (``layout="NHWC"``,
x already NHWC), and with ``stride=2`` (ResNet's projection shortcut: the same x, a quarter
of the output pixels), each with bias; PyTorch's conv2d on the same three (NCHW,
channels_last, stride 2 on NCHW) when torch is installed. GFLOP/s count the FLOPs of the
pixels computed. Every result is checked against onexone.reference first. Each variant's
samples are taken in rounds, the variants taking turns block by block, so a burst of load
from elsewhere spoils one block of each rather than every sample of one.

    python benches/variants.py                     # 2 threads, batch 1, the whole suite
    python benches/variants.py --threads 1 --layers core
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np

import onexone
from onexone import bench, reference


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", default="all")
    ap.add_argument("--repeats", type=int, default=15, help="samples per variant and layer")
    ap.add_argument("--rounds", type=int, default=3, help="blocks the samples are taken in")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False

    cols = ["NCHW", "NHWC", "stride2"] + (["torch", "torch_cl", "torch_s2"] if have_torch else [])
    print(f"batch {args.batch}, {args.threads} thread(s), GFLOP/s (medians of {args.repeats} samples "
          f"in {args.rounds} rounds)")
    print(f"{'layer':16s}" + "".join(f"{c:>10s}" for c in cols) + f"{'NHWC/NCHW':>11s}{'NHWC/cl':>9s}{'s2/torch':>9s}")
    for layer in bench.select_layers(args.layers):
        x, w, b = bench.make_inputs(layer, args.batch)
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        n, c, h, wd = x.shape
        flop1 = layer.flop(args.batch)
        flop2 = flop1 * ((h + 1) // 2) * ((wd + 1) // 2) / (h * wd)
        t = args.threads
        y = np.empty((n, layer.f, h, wd), np.float32)
        y_nhwc = np.empty((n, h, wd, layer.f), np.float32)
        y2 = np.empty((n, layer.f, (h + 1) // 2, (wd + 1) // 2), np.float32)
        fns = {
            "NCHW": (lambda: onexone.conv1x1(x, w, b, out=y, n_threads=t), flop1,
                     reference.conv1x1(x, w, b)),
            "NHWC": (lambda: onexone.conv1x1(x_nhwc, w, b, layout="NHWC", out=y_nhwc, n_threads=t),
                     flop1, reference.conv1x1(x, w, b).transpose(0, 2, 3, 1)),
            "stride2": (lambda: onexone.conv1x1(x, w, b, stride=2, out=y2, n_threads=t), flop2,
                        reference.conv1x1(x[:, :, ::2, ::2], w, b)),
        }
        g = {}
        with contextlib.ExitStack() as stack:
            if have_torch:  # bench's PyTorch setup (no_grad, thread count restored after)
                def torch_fn(**kw):
                    return stack.enter_context(bench._torch(x, w, b, t, **kw))

                fns["torch"] = (torch_fn(), flop1, fns["NCHW"][2])
                fns["torch_cl"] = (torch_fn(channels_last=True), flop1, fns["NCHW"][2])
                fns["torch_s2"] = (torch_fn(stride=2), flop2, fns["stride2"][2])
            for name, (fn, flop, expected) in fns.items():
                bench.check_result(np.asarray(fn()), expected, x, w)
            # the samples in rounds, the variants taking turns block by block (as bench.run)
            samples = {name: [] for name in fns}
            previous = None
            for r in range(args.rounds):
                for name, (fn, flop, expected) in fns.items():
                    library = "torch" if name.startswith("torch") else "onexone"
                    if library != previous:
                        time.sleep(bench.SETTLE_S)  # the other library's threads go idle first
                    n_samples = bench.samples_in_round(args.repeats, args.rounds, r)
                    samples[name] += bench.measure(fn, repeats=n_samples).samples
                    previous = library
            for name, (fn, flop, expected) in fns.items():
                g[name] = flop / statistics.median(samples[name]) / 1e9
        line = f"{layer.name:16s}" + "".join(f"{g[c]:10.1f}" for c in cols)
        line += f"{g['NHWC'] / g['NCHW']:10.2f}x"
        if have_torch:
            line += f"{g['NHWC'] / g['torch_cl']:8.2f}x{g['stride2'] / g['torch_s2']:8.2f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
