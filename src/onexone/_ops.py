"""The operations: check the arguments, make one call into the C engine."""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._args import check_conv1x1, check_conv2d, check_n_threads
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


def _auto_algorithm(a) -> str:
    """The algorithm "auto" runs for checked conv2d arguments ``a``.

    A 1x1 kernel without padding is a 1x1 convolution of the (strided) input: the GEMM engine.
    Everything else goes to the direct kernel, except where im2col measured faster (see
    ``benches/bench_conv2d.py``)."""
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, f, ho, wo = a.out.shape
    if kh == kw == 1 and ph == pw == 0 and (ho - 1) * sh < a.x.shape[2] and (wo - 1) * sw < a.x.shape[3]:
        return "1x1"
    return "direct"


def conv2d(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    algorithm: str = "auto",
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in PyTorch) with fused bias and activation.

    ``y[n, f, ho, wo] = act(sum_{c, kh, kw} weight[f, c, kh, kw] *
    x[n, c, ho*sh - ph + kh*dh, wo*sw - pw + kw*dw] + bias[f])``, the input being zero outside
    the image. The output size is PyTorch's: ``Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
        Input in NCHW layout; any strides or memory order. A 3-D input is one image.
    weight : array_like, shape (F, C, KH, KW)
        Any KH, KW >= 1 (not only square).
    bias : array_like, shape (F,), optional
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), "valid" or "same"
        Zeros added on both sides of each spatial axis; "valid" is 0, "same" (stride 1 only)
        keeps H and W, with the odd extra row/column at the bottom/right, as PyTorch does.
    activation : {None, "relu", "relu6"}
        Applied after the bias, in the same pass over the output.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype, sharing no memory with the
        inputs; written and returned.
    algorithm : {"auto", "direct", "im2col"}
        "direct": the direct kernel (no im2col matrix; register tiles of output channels x
        output pixels). "im2col": the GEMM engine on blocks of the implicit im2col matrix.
        "auto": the 1x1 GEMM path for 1x1 kernels without padding, else the faster of the two
        for the shape. All return the same numbers within rounding.
    n_threads : int, optional
        Threads to use: None for :func:`onexone.get_num_threads`, a positive count, or a
        negative one counting back from all cores (-1 = all).

    Returns
    -------
    ndarray, shape (N, F, Ho, Wo) (or (F, Ho, Wo) for a 3-D x), C-contiguous
        dtype ``np.result_type(x, weight, bias)`` when float32 or float64; integer and bool
        inputs give float64. The result is bitwise the same for every thread count.

    Raises
    ------
    TypeError
        For dtypes without kernels, or stride/padding/dilation that are not ints or pairs.
    ValueError
        For inconsistent shapes, a kernel larger than the padded input, a non-positive
        stride or dilation, a negative padding, "same" padding with a stride, an unknown
        activation or algorithm, or a bad ``out``.

    Examples
    --------
    >>> import numpy as np, onexone
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3), np.float32)
    >>> onexone.conv2d(x, w)[0, 0]
    array([[45., 54.],
           [81., 90.]], dtype=float32)
    >>> onexone.conv2d(x, w, padding="same").shape
    (1, 1, 4, 4)
    """
    a = check_conv2d(x, weight, bias, stride, padding, dilation, activation, out, algorithm)
    nt = check_n_threads(n_threads, get_num_threads())
    algo = _auto_algorithm(a) if a.algorithm == "auto" else a.algorithm
    if algo == "1x1":
        _, _, sh, sw, _, _, _, _ = a.geom
        _core.conv1x1_nchw(a.x[:, :, ::sh, ::sw], a.w, a.bias, a.act, a.out, nt)
    elif algo == "direct":
        _core.conv2d_direct_nchw(a.x, a.w, a.bias, a.geom, a.act, a.out, nt)
    else:
        _core.conv2d_im2col_nchw(a.x, a.w, a.bias, a.geom, a.act, a.out, nt)
    return a.result
