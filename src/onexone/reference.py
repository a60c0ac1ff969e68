"""NumPy reference implementations: the correctness oracle and the benchmark baseline.

* :func:`conv1x1` is what a NumPy user writes today, ``np.matmul`` over the images plus the
  bias and activation; it is the baseline onexone's benchmarks compare with.
* :func:`conv1x1_naive` follows the definition with ``np.einsum`` in float64, rounding once
  to the result dtype at the end: the oracle for small tests.
* :func:`conv2d` is the NumPy im2col a user writes for a KxK kernel (``sliding_window_view``
  of the zero-padded input, copied into the (C*KH*KW, Ho*Wo) matrix, then ``np.matmul``);
  :func:`conv2d_naive` sums ``np.einsum`` over the kernel taps in float64: the oracle.

Both take the same arguments, check them the same way and return the same shapes and
dtypes as :func:`onexone.conv1x1`; ``n_threads`` is accepted and ignored (NumPy's BLAS
threads are set with threadpoolctl).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._args import check_conv1x1, check_conv2d, check_n_threads, finish

__all__ = ["conv1x1", "conv1x1_naive", "conv1x1_backward", "conv2d", "conv2d_naive", "conv2d_backward", "activate"]


def activate(y: np.ndarray, act) -> np.ndarray:
    """Apply an activation in place and return y; NaN stays NaN.

    Parameters
    ----------
    y : ndarray
        Written in place.
    act : None, "relu", "relu6", or its code 0, 1, 2

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> reference.activate(np.array([-1.0, 3.0, 7.0]), "relu6")
    array([0., 3., 6.])
    """
    code = {None: 0, "relu": 1, "relu6": 2}.get(act, act)
    if code in (1, 2):
        np.maximum(y, 0, out=y)
    if code == 2:
        np.minimum(y, 6, out=y)
    return y


def _grouped(a, axis: int, groups: int):
    """Split axis into (groups, size/groups)."""
    shape = a.shape[:axis] + (groups, a.shape[axis] // groups) + a.shape[axis + 1:]
    return a.reshape(shape)


def conv1x1(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    groups: int = 1,
    layout: str = "NCHW",
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """NumPy baseline: ``np.matmul(W, x.reshape(N, C, H*W))`` + bias, then the activation
    (per group; strided and NHWC inputs through views and ``np.matmul``'s broadcasting).

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> x = np.ones((1, 3, 2, 2)); w = np.ones((2, 3, 1, 1))
    >>> reference.conv1x1(x, w, np.array([1.0, -5.0]), activation="relu")[0, :, 0, 0]
    array([4., 0.])
    """
    a = check_conv1x1(x, weight, bias, activation, out, stride, groups, layout,
                      op="reference.conv1x1")
    check_n_threads(n_threads, 1)
    n, c, h, w = a.x.shape
    f, g = a.w.shape[0], a.groups
    wg = _grouped(a.w, 0, g)  # (g, F/g, C/g)
    if a.nhwc:
        xg = _grouped(a.x.transpose(0, 2, 3, 1).reshape(n, h * w, c), 2, g)  # (N, P, g, C/g)
        y = np.matmul(xg.transpose(0, 2, 1, 3), wg.transpose(0, 2, 1))  # (N, g, P, F/g)
        a.out.reshape(n, h * w, g, f // g)[...] = y.transpose(0, 2, 1, 3)
        y = a.out.reshape(n, h * w, f)
        if a.bias is not None:
            y += a.bias
    else:
        xg = _grouped(a.x.reshape(n, c, h * w), 1, g)  # (N, g, C/g, P)
        np.matmul(wg, xg, out=a.out.reshape(n, g, f // g, h * w))
        y = a.out.reshape(n, f, h * w)
        if a.bias is not None:
            y += a.bias[:, None]
    activate(y, a.act)
    return finish(a)


def conv1x1_naive(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    groups: int = 1,
    layout: str = "NCHW",
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """The definition, in float64:
    ``y[n, q*Fg+f, i, j] = act(sum_c w[q*Fg+f, c] x[n, q*Cg+c, i*sh, j*sw] + b[q*Fg+f])``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> reference.conv1x1_naive(np.ones((2, 1, 1)), np.full((1, 2), 3.0))[:, 0, 0]
    array([6.])
    """
    a = check_conv1x1(x, weight, bias, activation, out, stride, groups, layout,
                      op="reference.conv1x1_naive")
    check_n_threads(n_threads, 1)
    g = a.groups
    xg = _grouped(a.x.astype(np.float64), 1, g)  # (N, g, Cg, Ho, Wo)
    wg = _grouped(a.w.astype(np.float64), 0, g)  # (g, Fg, Cg)
    n, _, ho, wo = a.x.shape
    y = np.einsum("qfc,nqchw->nqfhw", wg, xg).reshape(n, a.w.shape[0], ho, wo)
    if a.bias is not None:
        y += a.bias.astype(np.float64)[None, :, None, None]
    activate(y, a.act)
    a.out[...] = y.transpose(0, 2, 3, 1) if a.nhwc else y
    return finish(a)


def conv1x1_backward(
    grad_y,
    x,
    weight,
    *,
    stride=1,
    groups: int = 1,
    layout: str = "NCHW",
    need=("x", "w", "b"),
    n_threads: Optional[int] = None,
):
    """NumPy reference for :func:`onexone.conv1x1_backward`, in float64 then rounded to the
    result dtype: ``grad_x = W^T grad_y`` scattered back to the pixels the stride read,
    ``grad_w = sum_n grad_y x^T``, ``grad_b = sum of grad_y``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> gx, gw, gb = reference.conv1x1_backward(np.ones((1, 2, 3, 3)), np.ones((1, 4, 3, 3)),
    ...                                          np.ones((2, 4)))
    >>> gx.shape, gw.shape, gb.tolist()
    ((1, 4, 3, 3), (2, 4), [9.0, 9.0])
    """
    from ._args import as_array, check_grad_y, check_need, result_dtype

    wanted = check_need(need)
    a = check_conv1x1(x, weight, None, None, None, stride, groups, layout,
                      op="reference.conv1x1_backward", allocate=False)
    check_n_threads(n_threads, 1)
    gy = check_grad_y(grad_y, a.result.shape, x, weight)
    dtype = result_dtype(grad_y=gy, x=a.x, weight=a.w)
    x_arr = as_array(x, "x")
    single = x_arr.ndim == 3
    gy4 = (gy[None] if single else gy).astype(np.float64)
    if a.nhwc:
        gy4 = gy4.transpose(0, 3, 1, 2)  # (N, F, Ho, Wo)
    g = a.groups
    gyg = _grouped(gy4, 1, g)  # (N, g, Fg, Ho, Wo)
    xg = _grouped(a.x.astype(np.float64), 1, g)  # (N, g, Cg, Ho, Wo)
    wg = _grouped(a.w.astype(np.float64), 0, g)  # (g, Fg, Cg)

    grad_b = gy4.sum(axis=(0, 2, 3)).astype(dtype) if "b" in wanted else None
    grad_w = None
    if "w" in wanted:
        dw = np.einsum("nqfhw,nqchw->qfc", gyg, xg).reshape(a.w.shape)
        grad_w = dw.reshape(np.shape(weight)).astype(dtype)
    grad_x = None
    if "x" in wanted:
        gxs = np.einsum("qfc,nqfhw->nqchw", wg, gyg).reshape(a.x.shape)  # at the read pixels
        x4 = x_arr[None] if single else x_arr
        full = x4.transpose(0, 3, 1, 2).shape if a.nhwc else x4.shape
        dx = np.zeros(full)
        dx[:, :, :: a.stride[0], :: a.stride[1]] = gxs
        if a.nhwc:
            dx = dx.transpose(0, 2, 3, 1)
        grad_x = (dx[0] if single else dx).astype(dtype)
    return grad_x, grad_w, grad_b


def _padded(a, dtype) -> np.ndarray:
    """The zero-padded input of checked conv2d arguments ``a``, as (N, C, Hp, Wp) with exactly
    the rows and columns the output reads (bottom/right padding included, unread ones cut)."""
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, c, h, w = a.x.shape
    ho, wo = a.out.shape[2:]
    hp, wp = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, c, hp, wp), dtype)
    rows, cols = min(h, hp - ph), min(w, wp - pw)
    xp[:, :, ph : ph + rows, pw : pw + cols] = a.x[:, :, :rows, :cols]
    return xp


def _windows(xp, geom, ho, wo):
    """The (N, C, Ho, Wo, KH, KW) view of the padded input each output pixel reads."""
    kh, kw, sh, sw, _, _, dh, dw = geom
    win = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return win[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]


def conv2d(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    algorithm: str = "auto",
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """NumPy baseline: im2col by ``sliding_window_view``, then ``np.matmul`` + bias + activation.

    Same arguments, checks, shapes and dtypes as :func:`onexone.conv2d`; ``algorithm`` is
    checked and ignored.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> reference.conv2d(x, np.ones((1, 1, 3, 3)), stride=2, padding=1)[0, 0]
    array([[10., 24.],
           [51., 90.]])
    """
    a = check_conv2d(x, weight, bias, stride, padding, dilation, activation, out, algorithm,
                     groups, op="reference.conv2d")
    check_n_threads(n_threads, 1)
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, f, ho, wo = a.out.shape
    c, g = a.x.shape[1], a.groups
    win = _windows(_padded(a, a.dtype), a.geom, ho, wo)  # (N, C, Ho, Wo, KH, KW)
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, g, c // g * kh * kw, ho * wo)  # im2col copy
    y = a.out.reshape(n, f, ho * wo)  # a view: out is C-contiguous
    np.matmul(_grouped(a.w, 0, g), cols, out=a.out.reshape(n, g, f // g, ho * wo))
    if a.bias is not None:
        y += a.bias[:, None]
    activate(y, a.act)
    return finish(a)


def conv2d_naive(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    algorithm: str = "auto",
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """The definition, in float64, one ``np.einsum`` per kernel tap over the padded input:
    ``y[n,f,ho,wo] = act(sum_{c,kh,kw} w[f,c,kh,kw] xpad[n,c,ho*sh+kh*dh,wo*sw+kw*dw] + b[f])``.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> reference.conv2d_naive(np.ones((1, 3, 3)), np.ones((2, 1, 2, 2)), padding="same")[0]
    array([[4., 4., 2.],
           [4., 4., 2.],
           [2., 2., 1.]])
    """
    a = check_conv2d(x, weight, bias, stride, padding, dilation, activation, out, algorithm,
                     groups, op="reference.conv2d_naive")
    check_n_threads(n_threads, 1)
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, f, ho, wo = a.out.shape
    c, g = a.x.shape[1], a.groups
    xp = _grouped(_padded(a, np.float64), 1, g)  # (N, g, Cg, Hp, Wp)
    w4 = _grouped(a.w.astype(np.float64).reshape(f, c // g, kh, kw), 0, g)  # (g, Fg, Cg, KH, KW)
    y = np.zeros((n, g, f // g, ho, wo))
    for i in range(kh):
        for j in range(kw):
            tap = xp[..., i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw]
            y += np.einsum("qfc,nqchw->nqfhw", w4[..., i, j], tap)
    y = y.reshape(n, f, ho, wo)
    if a.bias is not None:
        y += a.bias.astype(np.float64)[None, :, None, None]
    activate(y, a.act)
    a.out[...] = y
    return finish(a)


def conv2d_backward(
    grad_y,
    x,
    weight,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    need=("x", "w", "b"),
    n_threads: Optional[int] = None,
):
    """NumPy reference for :func:`onexone.conv2d_backward`, in float64 per kernel tap, then
    rounded to the result dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from onexone import reference
    >>> gx, gw, gb = reference.conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)),
    ...                                         np.ones((1, 1, 2, 2)))
    >>> gx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    from ._args import as_array, check_grad_y, check_need, result_dtype

    wanted = check_need(need)
    a = check_conv2d(x, weight, None, stride, padding, dilation, None, None, "auto", groups,
                     op="reference.conv2d_backward", allocate=False)
    check_n_threads(n_threads, 1)
    gy = check_grad_y(grad_y, a.result.shape, x, weight)
    dtype = result_dtype(grad_y=gy, x=a.x, weight=a.w)
    single = np.ndim(x) == 3
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, f, ho, wo = a.out.shape
    c, g = a.x.shape[1], a.groups
    gyg = _grouped((gy[None] if single else gy).astype(np.float64), 1, g)  # (N, g, Fg, Ho, Wo)
    xp = _padded(a, np.float64)
    w4 = _grouped(a.w.astype(np.float64).reshape(f, c // g, kh, kw), 0, g)  # (g, Fg, Cg, KH, KW)
    taps = [(i, j, np.s_[..., i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw])
            for i in range(kh) for j in range(kw)]

    grad_b = gyg.sum(axis=(0, 3, 4)).reshape(f).astype(dtype) if "b" in wanted else None
    grad_w = None
    if "w" in wanted:
        xg = _grouped(xp, 1, g)
        dw4 = np.zeros(w4.shape)
        for i, j, tap in taps:
            dw4[..., i, j] = np.einsum("nqfhw,nqchw->qfc", gyg, xg[tap])
        grad_w = dw4.reshape(np.shape(weight)).astype(dtype)
    grad_x = None
    if "x" in wanted:
        dxp = np.zeros(xp.shape)
        dxg = _grouped(dxp, 1, g)  # a view
        for i, j, tap in taps:
            dxg[tap] += np.einsum("qfc,nqfhw->nqchw", w4[..., i, j], gyg)
        h, w = a.x.shape[2:]
        rows, cols = min(h, dxp.shape[2] - ph), min(w, dxp.shape[3] - pw)  # unread ones get 0
        dx = np.zeros((n, c, h, w))
        dx[:, :, :rows, :cols] = dxp[:, :, ph : ph + rows, pw : pw + cols]
        grad_x = (dx[0] if single else dx).astype(dtype)
    return grad_x, grad_w, grad_b
