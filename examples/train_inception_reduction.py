"""Train a tiny NumPy network with an Inception-style 1x1 reduction, on onexone's layers.

The network, in the CS231n style of ``onexone.layers`` (forward/backward pairs):

    x (N, 16, 8, 8)
    -> 1x1 conv 16 -> 4 + ReLU          the reduction: a 1x1 conv that makes the next layer cheap
    -> 3x3 conv 4 -> 8, pad 1 + ReLU    (the 1x1 convs run on onexone.conv1x1, the 3x3 on conv2d)
    -> global average pool -> affine 8 -> 4 -> softmax

trained with plain minibatch SGD on synthetic images: four classes of noisy patterns (stripes
of four orientations, each class with its own colour, a signature over the channels), seed
fixed. The loss printed per step falls from about 1.5 (chance is log 4 = 1.39) to about
0.01 in 100 steps, and the held-out accuracy printed at the end is near 1.

Run it:

    python examples/train_inception_reduction.py --steps 200 --seed 0
"""
from __future__ import annotations

import argparse
import math
from typing import List, Optional, Tuple

import numpy as np

from onexone import layers

CLASSES = 4
CHANNELS, HEIGHT, WIDTH = 16, 8, 8
REDUCED, FEATURES = 4, 8  # channels after the 1x1 reduction, after the 3x3 conv
KERNEL = 3  # of the conv after the reduction
TRAIN_IMAGES = 1024  # the training set; each step samples a minibatch of it


def class_colours(seed: int) -> np.ndarray:
    """Each class's colour: a fixed random signature over the channels, (CLASSES, CHANNELS)."""
    return np.random.default_rng([seed, 1]).standard_normal((CLASSES, CHANNELS))


def make_data(rng: np.random.Generator, colours: np.ndarray, n: int,
              noise: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """n images (N, CHANNELS, HEIGHT, WIDTH), float32, and their labels in [0, CLASSES).

    Class k is a stripe pattern (horizontal, vertical, diagonal, anti-diagonal) times the
    class's colour, plus Gaussian noise as strong as the pattern."""
    i, j = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    stripes = np.stack([i % 2, j % 2, (i + j) % 3 == 0, (i - j) % 3 == 0]) * 2.0 - 1
    y = rng.integers(0, CLASSES, n)
    x = colours[y, :, None, None] * stripes[y, None] + noise * rng.standard_normal((n, CHANNELS, HEIGHT, WIDTH))
    return x.astype(np.float32), y


def init_params(rng: np.random.Generator) -> dict:
    """He-initialised weights (float32), zero biases."""

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "w1": he((REDUCED, CHANNELS, 1, 1), CHANNELS), "b1": np.zeros(REDUCED, np.float32),
        "w2": he((FEATURES, REDUCED, KERNEL, KERNEL), REDUCED * KERNEL**2), "b2": np.zeros(FEATURES, np.float32),
        "w3": he((FEATURES, CLASSES), FEATURES), "b3": np.zeros(CLASSES, np.float32),
    }


def forward(params: dict, x: np.ndarray) -> Tuple[np.ndarray, tuple]:
    """The class scores (N, CLASSES) of images x, and the caches for :func:`backward`."""
    p = params
    h1, cache1 = layers.conv_relu_forward(x, p["w1"], p["b1"], {"stride": 1, "pad": 0})
    h2, cache2 = layers.conv_relu_forward(h1, p["w2"], p["b2"], {"stride": 1, "pad": KERNEL // 2})
    pooled = h2.mean(axis=(2, 3))  # global average pool: (N, FEATURES)
    scores, cache3 = layers.affine_forward(pooled, p["w3"], p["b3"])
    return scores, (cache1, cache2, h2.shape, cache3)


def backward(dscores: np.ndarray, caches: tuple) -> dict:
    """The gradients of the loss by parameter name, given dL/dscores."""
    cache1, cache2, h2_shape, cache3 = caches
    grads = {}
    dpooled, grads["w3"], grads["b3"] = layers.affine_backward(dscores, cache3)
    dh2 = np.broadcast_to(dpooled[:, :, None, None] / (h2_shape[2] * h2_shape[3]), h2_shape)
    dh1, grads["w2"], grads["b2"] = layers.conv_relu_backward(dh2, cache2)
    _, grads["w1"], grads["b1"] = layers.conv_relu_backward(dh1, cache1)
    return grads


def main(steps: int = 200, seed: int = 0, lr: float = 0.1, batch: int = 32,
         verbose: bool = True) -> List[float]:
    """Train for ``steps`` SGD steps on minibatches of ``batch`` images; returns the loss of
    each step (printed as it goes, with the held-out accuracy at the end, when ``verbose``)."""
    rng = np.random.default_rng(seed)
    colours = class_colours(seed)
    x_train, y_train = make_data(rng, colours, TRAIN_IMAGES)
    params = init_params(rng)
    losses = []
    for step in range(steps):
        idx = rng.choice(len(x_train), batch, replace=False)
        scores, caches = forward(params, x_train[idx])
        loss, dscores = layers.softmax_loss(scores, y_train[idx])
        for name, g in backward(dscores, caches).items():
            params[name] -= lr * g
        losses.append(loss)
        if verbose:
            print(f"step {step:4d}  loss {loss:.4f}")
    if verbose:
        x_test, y_test = make_data(rng, colours, 512)
        accuracy = np.mean(forward(params, x_test)[0].argmax(axis=1) == y_test)
        print(f"held-out accuracy {accuracy:.3f} (chance {1 / CLASSES:.2f})")
    return losses


def _int_in(lo: int, hi: Optional[int] = None):
    """An argparse type: an int in [lo, hi] (a usage error otherwise, not a traceback)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"expected an int from {lo}" + (f" to {hi}" if hi else " up")
                                             + f", got {text!r}")
        return n
    return parse


def _positive_float(text: str) -> float:
    """An argparse type: a finite float > 0 (a usage error otherwise: nan or inf would run
    the whole training on NaN losses)."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite float, got {text!r}")
    return v


def _cli(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=_int_in(1), default=200)
    ap.add_argument("--seed", type=_int_in(0), default=0)
    ap.add_argument("--lr", type=_positive_float, default=0.1, help="step size, a positive finite float")
    ap.add_argument("--batch", type=_int_in(1, TRAIN_IMAGES), default=32,
                    help=f"images per step, at most the {TRAIN_IMAGES} training images")
    args = ap.parse_args(argv)
    main(steps=args.steps, seed=args.seed, lr=args.lr, batch=args.batch)


if __name__ == "__main__":
    _cli()
