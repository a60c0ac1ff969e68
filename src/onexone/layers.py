"""Layers for NumPy training loops, in the style of the CS231n assignments.

Each layer is a pair of functions: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> gradients``, so that a network is written as a chain of forward
calls and the reverse chain of backward calls, as in the CS231n assignments:

* :func:`conv_forward` / :func:`conv_backward`: the convolution, ``conv_param = {"stride": s,
  "pad": p}``. A 1x1 kernel without padding runs :func:`onexone.conv1x1` and
  :func:`onexone.conv1x1_backward`; any other kernel :func:`onexone.conv2d` and
  :func:`onexone.conv2d_backward`.
* :func:`conv_relu_forward` / :func:`conv_relu_backward`: the convolution with its ReLU fused
  into the same pass over the output.
* :func:`relu_forward`, :func:`affine_forward` and :func:`softmax_loss` (NumPy): the rest of a
  small classifier.

Arrays follow CS231n's shapes: ``x`` (N, C, H, W), ``w`` (F, C, HH, WW), ``b`` (F,).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ._args import check_grad_y
from ._ops import conv1x1, conv1x1_backward, conv2d, conv2d_backward

__all__ = [
    "conv_forward",
    "conv_backward",
    "conv_relu_forward",
    "conv_relu_backward",
    "relu_forward",
    "relu_backward",
    "affine_forward",
    "affine_backward",
    "softmax_loss",
]

Cache = Tuple[Any, ...]
Grads = Tuple[np.ndarray, np.ndarray, np.ndarray]

_CONV_PARAM_KEYS = ("stride", "pad")


def _conv_param(conv_param: Optional[Mapping[str, Any]]) -> Tuple[Any, Any]:
    """(stride, pad) from a CS231n conv_param (both optional: stride 1, pad 0)."""
    conv_param = {} if conv_param is None else conv_param
    unknown = sorted(set(conv_param) - set(_CONV_PARAM_KEYS))
    if unknown:
        raise ValueError(
            f"conv_param has unknown keys {', '.join(map(repr, unknown))}; expected 'stride' and 'pad'"
        )
    return conv_param.get("stride", 1), conv_param.get("pad", 0)


def _is_1x1(w, pad) -> bool:
    """Does the convolution of weight ``w`` with padding ``pad`` take the 1x1 path? (Any
    other padding goes to conv2d, which checks it.)"""
    no_pad = isinstance(pad, (int, np.integer, tuple)) and not isinstance(pad, bool) and pad in (0, (0, 0))
    return np.ndim(w) == 4 and np.shape(w)[2:] == (1, 1) and no_pad


def _forward(x, w, b, conv_param, activation: Optional[str]) -> np.ndarray:
    stride, pad = _conv_param(conv_param)
    if _is_1x1(w, pad):
        return conv1x1(x, w, b, stride=stride, activation=activation)
    return conv2d(x, w, b, stride=stride, padding=pad, activation=activation)


def conv_forward(x, w, b, conv_param: Optional[Mapping[str, Any]] = None) -> Tuple[np.ndarray, Cache]:
    """Forward pass of a convolutional layer (cross-correlation, as in CS231n and PyTorch).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,), or None
    conv_param : dict
        ``"stride"``: int or (int, int), default 1; ``"pad"``: zeros added on each side of
        H and W, int or (int, int), default 0.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        ``H' = (H + 2 * pad - HH) // stride + 1`` (likewise W'); dtype as
        :func:`onexone.conv1x1`: float32 stays float32.
    cache : tuple
        ``(x, w, b, conv_param)``, for :func:`conv_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> x = np.ones((2, 3, 4, 4)); w = np.ones((5, 3, 1, 1)); b = np.zeros(5)
    >>> out, cache = layers.conv_forward(x, w, b, {"stride": 2, "pad": 0})
    >>> out.shape, float(out[0, 0, 0, 0])
    ((2, 5, 2, 2), 3.0)
    """
    out = _forward(x, w, b, conv_param, None)
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache: Cache) -> Grads:
    """Backward pass of :func:`conv_forward`.

    Parameters
    ----------
    dout : ndarray, shape (N, F, H', W')
        Upstream gradient, dL/dout.
    cache : tuple
        From :func:`conv_forward`.

    Returns
    -------
    dx, dw, db : ndarrays of the shapes of x, w and (F,)

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> x = np.ones((2, 3, 4, 4)); w = np.ones((5, 3, 1, 1)); b = np.zeros(5)
    >>> out, cache = layers.conv_forward(x, w, b, {"stride": 1, "pad": 0})
    >>> dx, dw, db = layers.conv_backward(np.ones_like(out), cache)
    >>> float(dx[0, 0, 0, 0]), float(dw[0, 0, 0, 0]), float(db[0])
    (5.0, 32.0, 32.0)
    """
    x, w, b, conv_param = cache
    stride, pad = _conv_param(conv_param)
    need = ("x", "w", "b") if b is not None else ("x", "w")
    if _is_1x1(w, pad):
        dx, dw, db = conv1x1_backward(dout, x, w, stride=stride, need=need)
    else:
        dx, dw, db = conv2d_backward(dout, x, w, stride=stride, padding=pad, need=need)
    return dx, dw, db


def conv_relu_forward(x, w, b, conv_param: Optional[Mapping[str, Any]] = None) -> Tuple[np.ndarray, Cache]:
    """Convolution followed by ReLU, fused: the ReLU is applied as each output is stored.

    Same arguments as :func:`conv_forward`; returns ``(out, cache)`` with
    ``out = max(conv(x, w) + b, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> x = np.ones((1, 2, 3, 3)); w = np.ones((2, 2, 1, 1)); b = np.array([1.0, -5.0])
    >>> out, cache = layers.conv_relu_forward(x, w, b, {"stride": 1, "pad": 0})
    >>> out[0, :, 0, 0]
    array([3., 0.])
    """
    out = _forward(x, w, b, conv_param, "relu")
    return out, ((x, w, b, conv_param), out)


def conv_relu_backward(dout, cache: Cache) -> Grads:
    """Backward pass of :func:`conv_relu_forward`: ``dout`` through the ReLU (zero where the
    output is zero), then :func:`conv_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> x = np.ones((1, 2, 3, 3)); w = np.ones((2, 2, 1, 1)); b = np.array([1.0, -5.0])
    >>> out, cache = layers.conv_relu_forward(x, w, b, {"stride": 1, "pad": 0})
    >>> dx, dw, db = layers.conv_relu_backward(np.ones_like(out), cache)
    >>> db
    array([9., 0.])
    """
    conv_cache, out = cache
    x, w = conv_cache[0], conv_cache[1]
    # dout's shape is checked before the ReLU's mask, whose np.where would broadcast it
    return conv_backward(relu_backward(check_grad_y(dout, out.shape, x, w), out), conv_cache)


def relu_forward(x) -> Tuple[np.ndarray, np.ndarray]:
    """ReLU: ``out = max(x, 0)``; the cache is ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> layers.relu_forward(np.array([-1.0, 2.0]))[0]
    array([0., 2.])
    """
    x = np.asarray(x)
    return np.maximum(x, 0), x


def relu_backward(dout, cache: np.ndarray) -> np.ndarray:
    """Backward pass of :func:`relu_forward`: ``dout`` where the input was positive, else 0.
    (The cache may also be the ReLU's output: both are positive at the same places.)

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> layers.relu_backward(np.array([5.0, 5.0]), np.array([-1.0, 2.0]))
    array([0., 5.])
    """
    return np.where(cache > 0, dout, 0)


def affine_forward(x, w, b) -> Tuple[np.ndarray, Cache]:
    """Fully connected layer: ``out = x.reshape(N, D) @ w + b``, w (D, M), b (M,).

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> out, _ = layers.affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0))
    >>> out[0]
    array([3., 4., 5., 6.])
    """
    x = np.asarray(x)
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache: Cache) -> Grads:
    """Backward pass of :func:`affine_forward`: ``(dx, dw, db)``, dx in the shape of x.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> out, cache = layers.affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    >>> dx, dw, db = layers.affine_backward(np.ones((2, 4)), cache)
    >>> dx.shape, dw.shape, db.tolist()
    ((2, 3), (3, 4), [2.0, 2.0, 2.0, 2.0])
    """
    x, w, b = cache
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), x2.T @ dout, dout.sum(axis=0)


def softmax_loss(scores, y) -> Tuple[float, np.ndarray]:
    """Mean cross-entropy of the softmax of ``scores`` (N, K) for labels ``y`` (N,) in
    [0, K), and its gradient with respect to the scores.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import layers
    >>> loss, dscores = layers.softmax_loss(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4), dscores[0].tolist()
    (1.3863, [-0.375, 0.125, 0.125, 0.125])
    """
    scores = np.asarray(scores)
    y = np.asarray(y)
    if scores.ndim != 2 or y.shape != scores.shape[:1]:
        raise ValueError(f"scores of shape {scores.shape} and labels of shape {y.shape}: "
                         "expected scores (N, K) and labels (N,)")
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ValueError(f"labels must be in [0, {scores.shape[1]}) for scores of shape "
                         f"{scores.shape}, got labels from {y.min()} to {y.max()}")
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = scores.shape[0]
    rows = np.arange(n)
    loss = float(-log_p[rows, y].mean())
    dscores = np.exp(log_p)
    dscores[rows, y] -= 1
    return loss, dscores / n
