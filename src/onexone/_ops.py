"""The operations: check the arguments, make one call into the C engine."""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._args import check_conv1x1, check_n_threads
from ._config import get_num_threads


def conv1x1(
    x,
    weight,
    bias=None,
    *,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """1x1 (pointwise) convolution, with fused bias and activation.

    ``y[n, f, h, w] = act(sum_c weight[f, c] * x[n, c, h, w] + bias[f])``, computed per image
    as the matrix product ``W (F x C) @ x[n] (C x H*W)`` by a cache-blocked, vectorized,
    multi-threaded C kernel, with the GIL released.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
        Input in NCHW layout; any strides or memory order. A 3-D input is one image.
    weight : array_like, shape (F, C, 1, 1) or (F, C)
    bias : array_like, shape (F,), optional
    activation : {None, "relu", "relu6"}
        Applied after the bias, in the same pass over the output.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype, sharing no memory with the
        inputs; written and returned.
    n_threads : int, optional
        Threads to use: None for :func:`onexone.get_num_threads`, a positive count, or a
        negative one counting back from all cores (-1 = all).

    Returns
    -------
    ndarray, shape (N, F, H, W) (or (F, H, W) for a 3-D x), C-contiguous
        dtype ``np.result_type(x, weight, bias)`` when float32 or float64; integer and bool
        inputs give float64. The result is bitwise the same for every thread count.

    Raises
    ------
    TypeError
        For dtypes without kernels (float16, complex, object, strings).
    ValueError
        For inconsistent shapes, an unknown activation, or a bad ``out``.

    Examples
    --------
    >>> import numpy as np, onexone
    >>> x = np.ones((1, 3, 2, 2), np.float32)
    >>> w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    >>> onexone.conv1x1(x, w, np.array([0.5, -20], np.float32), activation="relu")[0, :, 0, 0]
    array([3.5, 0. ], dtype=float32)
    """
    y = _core.conv1x1_fast(x, weight, bias, activation, out, n_threads)
    if y is not None:
        return y
    a = check_conv1x1(x, weight, bias, activation, out)
    nt = check_n_threads(n_threads, get_num_threads())
    _core.conv1x1_nchw(a.x, a.w, a.bias, a.act, a.out, nt)
    return a.result
