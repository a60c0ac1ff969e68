"""NumPy reference implementations: the correctness oracle and the benchmark baseline.

* :func:`conv1x1` is what a NumPy user writes today, ``np.matmul`` over the images plus the
  bias and activation; it is the baseline onexone's benchmarks compare with.
* :func:`conv1x1_naive` follows the definition with ``np.einsum`` in float64, rounding once
  to the result dtype at the end: the oracle for small tests.

Both take the same arguments, check them the same way and return the same shapes and
dtypes as :func:`onexone.conv1x1`; ``n_threads`` is accepted and ignored (NumPy's BLAS
threads are set with threadpoolctl).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._args import check_conv1x1, check_n_threads

__all__ = ["conv1x1", "conv1x1_naive", "activate"]


def activate(y: np.ndarray, act) -> np.ndarray:
    """Apply an activation (None, "relu", "relu6" or its code 0/1/2) in place; NaN stays NaN."""
    code = {None: 0, "relu": 1, "relu6": 2}.get(act, act)
    if code in (1, 2):
        np.maximum(y, 0, out=y)
    if code == 2:
        np.minimum(y, 6, out=y)
    return y


def conv1x1(
    x,
    weight,
    bias=None,
    *,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """NumPy baseline: ``np.matmul(W, x.reshape(N, C, H*W))`` + bias, then the activation.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> x = np.ones((1, 3, 2, 2)); w = np.ones((2, 3, 1, 1))
    >>> reference.conv1x1(x, w, np.array([1.0, -5.0]), activation="relu")[0, :, 0, 0]
    array([4., 0.])
    """
    a = check_conv1x1(x, weight, bias, activation, out, op="reference.conv1x1")
    check_n_threads(n_threads, 1)
    n, c, h, w = a.x.shape
    f = a.w.shape[0]
    y = a.out.reshape(n, f, h * w)  # a view: out is C-contiguous
    np.matmul(a.w, a.x.reshape(n, c, h * w), out=y)
    if a.bias is not None:
        y += a.bias[:, None]
    activate(y, a.act)
    return a.result


def conv1x1_naive(
    x,
    weight,
    bias=None,
    *,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """The definition, in float64: ``y[n,f,h,w] = act(sum_c w[f,c] x[n,c,h,w] + b[f])``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> reference.conv1x1_naive(np.ones((2, 1, 1)), np.full((1, 2), 3.0))[:, 0, 0]
    array([6.])
    """
    a = check_conv1x1(x, weight, bias, activation, out, op="reference.conv1x1_naive")
    check_n_threads(n_threads, 1)
    y = np.einsum("fc,nchw->nfhw", a.w.astype(np.float64), a.x.astype(np.float64))
    if a.bias is not None:
        y += a.bias.astype(np.float64)[None, :, None, None]
    activate(y, a.act)
    a.out[...] = y
    return a.result
