"""The operations: check the arguments, make one call into the C engine."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._args import (
    as_array,
    check_conv1x1,
    check_conv2d,
    empty,
    finish,
    check_grad_y,
    check_n_threads,
    check_need,
    for_kernel,
    result_dtype,
)
from ._config import get_num_threads

IntOrPair = Union[int, Tuple[int, int]]


def conv1x1(
    x,
    weight,
    bias=None,
    *,
    stride: IntOrPair = 1,
    groups: int = 1,
    layout: str = "NCHW",
    activation: Optional[str] = None,
    out: Optional[np.ndarray] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """1x1 (pointwise) convolution, with fused bias and activation.

    ``y[n, f, h, w] = act(sum_c weight[f, c] * x[n, c, h*sh, w*sw] + bias[f])``, computed per
    image (and group) as the matrix product ``W (F x C) @ x[n] (C x H*W)`` by a cache-blocked,
    vectorized, multi-threaded C kernel, with the GIL released.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W); (N, H, W, C) or (H, W, C) for NHWC
        Any strides or memory order. A 3-D input is one image.
    weight : array_like, shape (F, C/groups, 1, 1) or (F, C/groups)
    bias : array_like, shape (F,), optional
    stride : int or (int, int)
        Reads every sh-th row and sw-th column of x (ResNet's projection shortcut), straight
        from x: the strided pixels are never copied out first.
    groups : int
        Grouped convolution (ShuffleNet, ResNeXt): input and output channels in ``groups``
        equal groups, group q of the output computed from group q of the input only.
    layout : {"NCHW", "NHWC"}
        NHWC: x is channels-last and so is the result, (N, Ho, Wo, F).
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
    ndarray, shape (N, F, Ho, Wo) (NHWC: (N, Ho, Wo, F); 3-D for a 3-D x), C-contiguous
        ``Ho = (H - 1) // sh + 1``; dtype ``np.result_type(x, weight, bias)`` when float32 or
        float64 (a uint8 x with float32 weights gives float32), all-integer or bool operands
        giving float64. Bitwise the same for every thread count.

    Raises
    ------
    TypeError
        For dtypes without kernels (float16, complex, object, strings), non-integer stride
        or groups.
    ValueError
        For inconsistent shapes, channels not divisible by groups, a non-positive stride, an
        unknown activation or layout, or a bad ``out``.

    Examples
    --------
    >>> import numpy as np, onexone
    >>> x = np.ones((1, 3, 2, 2), np.float32)
    >>> w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    >>> onexone.conv1x1(x, w, np.array([0.5, -20], np.float32), activation="relu")[0, :, 0, 0]
    array([3.5, 0. ], dtype=float32)
    >>> onexone.conv1x1(np.ones((1, 4, 5, 5)), np.ones((6, 2)), groups=2, stride=2).shape
    (1, 6, 3, 3)
    """
    if type(stride) is int and 0 < stride < 2**31 and type(groups) is int and groups == 1 and (
        layout == "NCHW" or layout == "NHWC"
    ):
        y = _core.conv1x1_fast(x, weight, bias, activation, out, n_threads, layout == "NHWC", stride)
        if y is not None:
            return y
    a = check_conv1x1(x, weight, bias, activation, out, stride, groups, layout)
    nt = check_n_threads(n_threads, get_num_threads())
    _core.conv1x1(a.x, a.w, a.bias, a.act, a.out, nt, a.groups, a.nhwc)
    return finish(a)


def conv1x1_backward(
    grad_y,
    x,
    weight,
    *,
    stride: IntOrPair = 1,
    groups: int = 1,
    layout: str = "NCHW",
    need: Sequence[str] = ("x", "w", "b"),
    n_threads: Optional[int] = None,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv1x1` (without activation) for a training loop.

    With ``y = conv1x1(x, weight, bias, stride=stride, groups=groups, layout=layout)`` and
    ``grad_y = dL/dy``, returns ``(grad_x, grad_w, grad_b)``:
    ``grad_x = W^T grad_y`` (zero at the pixels a stride skips), ``grad_w = sum over images
    of grad_y x^T``, ``grad_b = grad_y summed over images and pixels``, each computed by the
    same blocked GEMM engine as the forward pass, threaded and bitwise reproducible.
    (For a fused activation, multiply ``grad_y`` by the activation's derivative first.)

    Parameters
    ----------
    grad_y : array_like, the shape of the forward result
    x, weight, stride, groups, layout : as for :func:`conv1x1`
    need : sequence of {"x", "w", "b"}
        The gradients to compute; the others come back as None.

    Returns
    -------
    (grad_x, grad_w, grad_b) : shapes of x, of weight, and (F,); or None where not needed

    Examples
    --------
    >>> import numpy as np, onexone
    >>> x = np.ones((2, 3, 4, 4)); w = np.ones((5, 3, 1, 1))
    >>> gx, gw, gb = onexone.conv1x1_backward(np.ones((2, 5, 4, 4)), x, w)
    >>> gx.shape, gw.shape, gb.shape, float(gb[0])
    ((2, 3, 4, 4), (5, 3, 1, 1), (5,), 32.0)
    """
    wanted = check_need(need)
    a = check_conv1x1(x, weight, None, None, None, stride, groups, layout, op="conv1x1_backward",
                      allocate=False)
    gy = check_grad_y(grad_y, a.result.shape, x, weight)
    dtype = result_dtype(grad_y=gy, x=a.x, weight=a.w)
    nt = check_n_threads(n_threads, get_num_threads())
    x_arr = as_array(x, "x")
    single = x_arr.ndim == 3
    gy4 = gy[None] if single else gy
    gy4 = for_kernel(gy4.transpose(0, 3, 1, 2) if a.nhwc else gy4, dtype)  # (N, F, Ho, Wo) view
    # what both GEMMs read (a gapped grad_y copied once), and nothing for grad_b alone
    gyf = _pixels_flat(gy4, a.nhwc) if wanted & {"w", "x"} else None
    w2 = for_kernel(a.w, dtype)
    xs = for_kernel(a.x, dtype)  # (N, C, Ho, Wo) view of the pixels the forward read
    n, f, ho, wo = gy4.shape
    c = xs.shape[1]

    grad_b = gy4.sum(axis=(0, 2, 3)) if "b" in wanted else None

    grad_w = None
    if "w" in wanted:
        dw = empty((f, c // a.groups), dtype, "weight gradient")
        # x's strided pixels are read in place (packed block by block), never copied whole
        _core.conv1x1_grad_w(gyf, xs, dw, nt, a.groups)
        grad_w = dw.reshape(np.shape(weight)) if np.ndim(weight) == 4 else dw

    grad_x = None
    if "x" in wanted:
        x4 = x_arr[None] if single else x_arr
        h, w = x4.shape[1:3] if a.nhwc else x4.shape[2:4]
        g = empty((n, ho, wo, c) if a.nhwc else (n, c, ho, wo), dtype, "input gradient")
        _core.conv1x1_grad_x(gyf, w2, g, a.nhwc, nt, a.groups)
        if (ho, wo) == (h, w):
            dx = g
        else:  # strided: the pixels the forward skipped get no gradient
            dx = np.zeros((n, h, w, c) if a.nhwc else (n, c, h, w), dtype)
            if a.nhwc:
                dx[:, :: a.stride[0], :: a.stride[1], :] = g
            else:
                dx[:, :, :: a.stride[0], :: a.stride[1]] = g
        grad_x = dx[0] if single else dx
    return grad_x, grad_w, grad_b


def _pixels_flat(a: np.ndarray, nhwc: bool) -> np.ndarray:
    """An (N, C, H, W) view whose pixels are one sequence in memory (copy if they are not),
    channels-last when nhwc, else contiguous rows along the pixels."""
    _, _, h, w = a.shape
    s = a.strides
    if h <= 1 or w <= 1 or s[2] == w * s[3]:
        return a
    if nhwc:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(a)


def _auto_algorithm(a) -> str:
    """The algorithm "auto" runs for checked conv2d arguments ``a``.

    A 1x1 kernel without padding is a 1x1 convolution of the (strided) input: the GEMM engine.
    Groups (depthwise or not) run the direct kernel. Otherwise the direct kernel, unless its
    grid of output rows would leave most vector lanes idle where the GEMM engine's would not
    (maps of a few pixels): the measured rule of ``oxo_conv2d_prefer_direct`` in
    ``csrc/conv/conv2d.c``."""
    kh, kw, sh, sw, ph, pw, dh, dw = a.geom
    n, f, ho, wo = a.out.shape
    if kh == kw == 1 and ph == pw == 0 and (ho - 1) * sh < a.x.shape[2] and (wo - 1) * sw < a.x.shape[3]:
        return "1x1"
    if a.groups > 1:  # depthwise: its own kernel; other groups: the direct kernel, all in one
        return "direct"  # region (1.0-3.4x im2col's grouped GEMMs on every shape measured)
    return "direct" if _core.conv2d_prefer_direct(a.x, a.geom, a.out) else "im2col"


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
    """2-D convolution (cross-correlation, as in PyTorch) with fused bias and activation.

    ``y[n, f, ho, wo] = act(sum_{c, kh, kw} weight[f, c, kh, kw] *
    x[n, c, ho*sh - ph + kh*dh, wo*sw - pw + kw*dw] + bias[f])``, the input being zero outside
    the image. The output size is PyTorch's: ``Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
        Input in NCHW layout; any strides or memory order. A 3-D input is one image.
    weight : array_like, shape (F, C/groups, KH, KW)
        Any KH, KW >= 1 (not only square).
    bias : array_like, shape (F,), optional
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), "valid" or "same"
        Zeros added on both sides of each spatial axis; "valid" is 0, "same" (stride 1 only)
        keeps H and W, with the odd extra row/column at the bottom/right, as PyTorch does.
    groups : int
        Grouped convolution; ``groups == C`` (and F a multiple of C) is depthwise, which
        "direct" and "auto" run on a depthwise kernel (vectors along each output row, the
        taps' products in registers). Other groups run on the direct kernel under "auto"
        and "direct" (every image and group in one parallel region; a 1x1 kernel without
        padding on the 1x1 path under "auto"), on im2col blocks and the GEMM engine under
        "im2col".
    activation : {None, "relu", "relu6"}
        Applied after the bias, in the same pass over the output.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype, sharing no memory with the
        inputs; written and returned.
    algorithm : {"auto", "direct", "im2col"}
        "direct": the direct kernel (no im2col matrix; register tiles of output channels x
        output pixels; on AVX-512, large layers, and grouped ones with 32 or more output
        channels a group, run a second kernel vectorized along output channels on a
        zero-padded copy of x). "im2col": the GEMM engine on
        blocks of the implicit im2col matrix.
        "auto": the 1x1 GEMM path for 1x1 kernels without padding, else "direct" with
        groups, else the faster of the two for the shape (a measured rule). All return the
        same numbers within rounding.
    n_threads : int, optional
        Threads to use: None for :func:`onexone.get_num_threads`, a positive count, or a
        negative one counting back from all cores (-1 = all).

    Returns
    -------
    ndarray, shape (N, F, Ho, Wo) (or (F, Ho, Wo) for a 3-D x), C-contiguous
        dtype ``np.result_type(x, weight, bias)`` when float32 or float64 (a uint8 x with
        float32 weights gives float32); all-integer or bool operands give float64. The result is bitwise the same for every thread count.

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
    try:
        y = _core.conv2d_fast(x, weight, bias, stride, padding, dilation, activation, out,
                              algorithm, groups, n_threads)
    except MemoryError:  # the checked path below says which sizes
        y = None
    if y is not None:
        return y
    a = check_conv2d(x, weight, bias, stride, padding, dilation, activation, out, algorithm,
                     groups)
    nt = check_n_threads(n_threads, get_num_threads())
    algo = _auto_algorithm(a) if a.algorithm == "auto" else a.algorithm
    try:
        _conv2d_run(a, algo, nt)
    except MemoryError:
        raise MemoryError(_conv2d_memory_message(a, algo)) from None
    return finish(a)


def _conv2d_memory_message(a, algo: str) -> str:
    """What ran out of memory in conv2d, with the sizes: the direct kernel's zero-padded copy
    of x grows with the dilated kernel (not with the data), so a huge dilation or padding can
    make it far larger than x."""
    kh, kw, sh, sw, _, _, dh, dw = a.geom
    n, c = a.x.shape[:2]
    ho, wo = a.out.shape[2:]
    rows, cols = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    weight = (a.w.shape[0], c // a.groups, kh, kw)
    what = (f"onexone.conv2d: could not allocate the scratch buffers for x {tuple(a.x.shape)}, "
            f"weight {weight}, stride ({sh}, {sw}), dilation ({dh}, {dw}), "
            f"output {tuple(a.out.shape)}, algorithm {algo!r}")
    if algo != "direct":
        return what
    nbytes = n * c * rows * cols * a.x.dtype.itemsize
    return (f"{what}: the direct kernel reads a zero-padded copy of x of up to {n} x {c} x "
            f"{rows} x {cols} elements ({nbytes / 2**30:.3g} GiB); algorithm='im2col' makes none")


def _conv2d_run(a, algo: str, nt: int) -> None:
    """conv2d's checked path: the kernel for the algorithm, into a.out."""
    if algo == "1x1":
        _, _, sh, sw, _, _, _, _ = a.geom
        _core.conv1x1(a.x[:, :, ::sh, ::sw], a.w, a.bias, a.act, a.out, nt, a.groups)
    elif a.groups > 1 and algo == "im2col":
        _core.conv2d_im2col_grouped(a.x, a.w, a.bias, a.geom, a.act, a.out, nt, a.groups)
    elif a.groups > 1 and a.groups == a.x.shape[1]:  # depthwise ("direct"): w is (F, KH*KW)
        _core.conv2d_depthwise_nchw(a.x, np.ascontiguousarray(a.w), a.bias, a.geom, a.act, a.out, nt)
    elif a.groups > 1:  # direct: every image and group in one parallel region
        _core.conv2d_direct_grouped_nchw(a.x, a.w, a.bias, a.geom, a.act, a.out, nt, a.groups)
    elif algo == "direct":
        _core.conv2d_direct_nchw(a.x, a.w, a.bias, a.geom, a.act, a.out, nt)
    else:
        _core.conv2d_im2col_nchw(a.x, a.w, a.bias, a.geom, a.act, a.out, nt)


def conv2d_backward(
    grad_y,
    x,
    weight,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    need: Sequence[str] = ("x", "w", "b"),
    n_threads: Optional[int] = None,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv2d` (without activation) for a training loop.

    With ``y = conv2d(x, weight, bias, stride=..., padding=..., dilation=..., groups=...)`` and
    ``grad_y = dL/dy``, returns ``(grad_x, grad_w, grad_b)`` through the GEMM engine on
    blocks of the implicit im2col matrix: ``grad_w = sum over images of grad_y @ col^T``,
    ``grad_x = col2im(W^T @ grad_y)`` (each input pixel collects the gradient of every tap
    that read it), ``grad_b`` the sum of ``grad_y``; threaded and bitwise reproducible.

    Parameters
    ----------
    grad_y : array_like, the shape of the forward result
    x, weight, stride, padding, dilation, groups : as for :func:`conv2d`
    need : sequence of {"x", "w", "b"}
        The gradients to compute; the others come back as None.

    Returns
    -------
    (grad_x, grad_w, grad_b) : shapes of x, of weight, and (F,); or None where not needed

    Examples
    --------
    >>> import numpy as np, onexone
    >>> x = np.ones((1, 2, 5, 5)); w = np.ones((3, 2, 3, 3))
    >>> gx, gw, gb = onexone.conv2d_backward(np.ones((1, 3, 5, 5)), x, w, padding=1)
    >>> [float(v) for v in (gx[0, 0, 2, 2], gx[0, 0, 0, 0], gw[0, 0, 1, 1], gb[0])]
    [27.0, 12.0, 25.0, 25.0]
    """
    wanted = check_need(need)
    a = check_conv2d(x, weight, None, stride, padding, dilation, None, None, "auto", groups,
                     op="conv2d_backward", allocate=False)
    gy = check_grad_y(grad_y, a.result.shape, x, weight)
    dtype = result_dtype(grad_y=gy, x=a.x, weight=a.w)
    nt = check_n_threads(n_threads, get_num_threads())
    single = np.ndim(x) == 3
    gy4 = _pixels_flat(for_kernel(gy[None] if single else gy, dtype), nhwc=False)
    xk, w2 = for_kernel(a.x, dtype), for_kernel(a.w, dtype)

    grad_b = gy4.sum(axis=(0, 2, 3)) if "b" in wanted else None
    grad_w = None
    if "w" in wanted:
        dw = empty(w2.shape, dtype, "weight gradient")
        _core.conv2d_grad_w(gy4, xk, a.geom, a.groups, dw, nt)
        grad_w = dw.reshape(np.shape(weight))
    grad_x = None
    if "x" in wanted:
        dx = empty(xk.shape, dtype, "input gradient")
        _core.conv2d_grad_x(gy4, w2, a.geom, a.groups, dx, nt)
        grad_x = dx[0] if single else dx
    return grad_x, grad_w, grad_b
