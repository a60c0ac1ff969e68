"""Argument checks and error messages, shared by every op and by the NumPy references.

Each public op calls one ``check_*`` function that turns user input into arrays the C layer
can take (float32/float64, native byte order, strides in whole elements) or raises:

* ``TypeError`` for a dtype onexone has no kernel for, naming the dtype;
* ``ValueError`` for inconsistent shapes, in the wording PyTorch users know, naming the
  shapes involved;
* ``MemoryError`` (from NumPy) when the result cannot be allocated.
"""
from __future__ import annotations

import operator
from typing import Callable, NamedTuple, Optional

import numpy as np

ACTIVATIONS = {None: 0, "relu": 1, "relu6": 2}

_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(a, name: str) -> np.ndarray:
    """np.asarray with messages that name the argument."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except ValueError as e:  # ragged nested sequences
            raise ValueError(f"{name} could not be converted to an array: {e}") from None
    if arr.dtype.kind in "OSUVMm":
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which onexone does not support; "
            "expected float32 or float64 (integers and bools promote as np.result_type does, all-integer to float64)"
        )
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; onexone supports float32 and float64 only")
    return arr


def result_dtype(**arrays) -> np.dtype:
    """np.result_type of the operands, mapped onto the dtypes with kernels.

    float32 and float64 stay (with integers beside a float, np.result_type decides: int8/int16
    x with float32 weights gives float32, int32/int64 float64);
    all-integer or bool operands give float64, as NumPy's true division would; anything else (float16, longdouble, ...) is a TypeError."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dts = [v.dtype for v in present.values()]
    if dts[0] in _SUPPORTED and all(d == dts[0] for d in dts):  # the common case, fast
        return dts[0]
    dt = np.result_type(*present.values())
    if dt.kind in "biu":
        return np.dtype(np.float64)
    if dt.kind == "f":
        native = dt.newbyteorder("=")
        if native in _SUPPORTED:
            return native
    names = ", ".join(f"{k}: {v.dtype}" for k, v in present.items())
    raise TypeError(
        f"onexone has kernels for float32 and float64 only; the operands ({names}) "
        f"promote to {dt}"
    )


def for_kernel(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The array in ``dtype`` and native byte order, element-aligned, copying only when it
    must (a cast, or an array not aligned to its element size)."""
    if a.dtype != dtype:
        return a.astype(dtype)
    if not a.flags.aligned:  # the kernels read whole, aligned elements (C requires it)
        return a.copy()
    return a


MAX_THREADS = 1024  # an int n_threads caps the count; beyond this it is capped here


def check_n_threads(n_threads, default: int, name: str = "n_threads") -> int:
    """None -> the default; n >= 1 -> n (at most MAX_THREADS); -1 -> all cores, -2 -> all
    but one, ... (as scikit-learn and joblib count)."""
    if n_threads is None:
        return default
    if isinstance(n_threads, bool):
        raise TypeError(f"{name} must be an int or None, got {n_threads!r}")
    try:
        n = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {n_threads!r}") from None
    if n == 0:
        raise ValueError(f"{name} must be a positive int, a negative int counting back from all cores, or None; got 0")
    if n < 0:
        from . import _core

        n = max(1, _core.max_threads() + 1 + n)
    return min(n, MAX_THREADS)


def _cli_int(text: str, ok: Callable[[int], bool], expected: str) -> int:
    """An argparse type's int: ``text`` as an int that ``ok`` accepts, else a usage error
    ("expected ..., got 'text'"), not a traceback."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not ok(n):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return n


def cli_threads(text: str) -> int:
    """argparse type of ``--threads``: an int as n_threads takes it (n >= 1, or -1 all cores,
    -2 all but one, ...)."""
    return _cli_int(text, lambda n: n != 0,
                    "a positive int, or a negative int counting back from all cores (-1: all)")


def cli_positive_int(text: str) -> int:
    """argparse type of counts (``--batch``, ``--repeats``, ...): an int >= 1."""
    return _cli_int(text, lambda n: n >= 1, "an int >= 1")


def cli_nonnegative_int(text: str) -> int:
    """argparse type of seeds: an int >= 0."""
    return _cli_int(text, lambda n: n >= 0, "an int >= 0")


def check_activation(activation) -> int:
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {activation!r}; expected one of None, 'relu', 'relu6'"
        ) from None


def _overlaps(a: np.ndarray, b: Optional[np.ndarray]) -> Optional[bool]:
    """Whether a and b share memory: True or False, or None where deciding it exactly would
    take too long (np.shares_memory's TooHardError, for unusual strides)."""
    if b is None or not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=1 << 20))
    except np.exceptions.TooHardError:
        return None


def empty(shape: tuple, dtype: np.dtype, what: str = "result") -> np.ndarray:
    """np.empty that, when the array cannot exist, says which array and why: MemoryError
    when there is not enough memory, ValueError when its size does not even fit in 64 bits."""
    try:
        return np.empty(shape, dtype)
    except MemoryError:
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        raise MemoryError(
            f"cannot allocate the {what} of shape {tuple(shape)} and dtype {np.dtype(dtype)} "
            f"({nbytes / 2**30:.1f} GiB)"
        ) from None
    except ValueError:
        raise ValueError(
            f"the {what} of shape {tuple(shape)} and dtype {np.dtype(dtype)} would be too big "
            "to address (more than 2**63 bytes)"
        ) from None


def check_out(out, shape: tuple, dtype: np.dtype, inputs: dict) -> tuple:
    """Validate a user-supplied ``out``: an ndarray of exactly the result's shape and dtype,
    C-contiguous, writeable, sharing no memory with any input. Returns ``(out, direct)``:
    ``direct`` is False where whether out overlaps an input could not be decided in
    reasonable time (the caller then computes into a new array and copies it into out)."""
    if out is None:
        return None, True
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, but the result has shape {shape}")
    if out.dtype != dtype:
        if out.dtype.newbyteorder("=") == dtype:
            raise ValueError(f"out has dtype {out.dtype.str} (non-native byte order), but the result "
                             f"has dtype {dtype} in native byte order ({dtype.str}); the kernels "
                             "write native byte order only")
        raise ValueError(f"out has dtype {out.dtype}, but the result has dtype {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out of shape {out.shape} must be C-contiguous (strides {out.strides})")
    if not out.flags.writeable:
        raise ValueError(f"out of shape {out.shape} is read-only")
    direct = True
    for name, a in inputs.items():
        overlap = _overlaps(out, a)
        if overlap:
            raise ValueError(
                f"out of shape {out.shape} overlaps {name} of shape {a.shape}; "
                "pass an out that shares no memory with the inputs"
            )
        direct = direct and overlap is not None
    return out, direct


LAYOUTS = ("NCHW", "NHWC")


class Conv1x1Args(NamedTuple):
    x: np.ndarray  # (N, C, Ho, Wo) view of the pixels the convolution reads, kernel-ready
    w: np.ndarray  # (F, C/groups), kernel-ready, any strides
    bias: Optional[np.ndarray]  # (F,) contiguous, or None
    act: int
    out: np.ndarray  # (N, F, Ho, Wo) or (N, Ho, Wo, F) C-contiguous
    result: np.ndarray  # what the caller returns: out, or its 3-D view
    dtype: np.dtype
    groups: int
    nhwc: bool
    stride: tuple  # (sh, sw)
    writeback: Optional[np.ndarray]  # the user's unaligned out (4-D), filled by finish()


MAX_GEOMETRY = 2**62  # the largest stride, padding or dilation taken


def _pair(value, name: str, minimum: int) -> tuple:
    """An int or a pair of ints (h, w), each >= minimum, as a pair."""
    what = f"{name} must be an int or a pair of ints (h, w), got {value!r}"
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(what)
    try:
        pair = (operator.index(value),) * 2
    except TypeError:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(what) from None
        if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) for v in items):
            raise TypeError(what) from None
        try:
            pair = tuple(operator.index(v) for v in items)
        except TypeError:
            raise TypeError(what) from None
    if min(pair) < minimum:
        rule = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be {rule}, got {name}={value!r}")
    if max(pair) > MAX_GEOMETRY:  # beyond this the kernels' index arithmetic could overflow
        raise ValueError(f"{name} must be at most 2**62, got {name}={value!r}")
    return pair


GRADIENTS = ("x", "w", "b")


def check_need(need) -> frozenset:
    """The gradients asked for: a sequence (or string) of "x", "w", "b"."""
    items = (need,) if isinstance(need, str) else need
    try:
        wanted = frozenset(items)
    except TypeError:
        raise TypeError(f"need must be a sequence of 'x', 'w', 'b', got {need!r}") from None
    unknown = sorted(map(repr, wanted - set(GRADIENTS)))
    if unknown:
        raise ValueError(f"need has unknown gradients {', '.join(unknown)}; expected 'x', 'w', 'b'")
    return wanted


def check_grad_y(grad_y, y_shape: tuple, x, weight) -> np.ndarray:
    """grad_y as an array of the forward result's shape."""
    gy = as_array(grad_y, "grad_y")
    if gy.shape != y_shape:
        raise ValueError(
            f"grad_y of shape {gy.shape} does not match the forward result: x of shape "
            f"{np.shape(x)} and weight of shape {np.shape(weight)} give y of shape {y_shape}"
        )
    return gy


def check_layout(layout) -> bool:
    """True for NHWC, False for NCHW."""
    if not isinstance(layout, str) or layout.upper() not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected 'NCHW' or 'NHWC'")
    return layout.upper() == "NHWC"


def check_groups(groups, c: int, f: int, x_shape: tuple, w_shape: tuple, where: str = "") -> int:
    """groups must be a positive int dividing both the input and the output channels.
    ``where`` follows the count of x's channels in messages (the layout, for NHWC)."""
    if isinstance(groups, (bool, np.bool_)):
        raise TypeError(f"groups must be a positive int, got {groups!r}")
    try:
        g = operator.index(groups)
    except TypeError:
        raise TypeError(f"groups must be a positive int, got {groups!r}") from None
    if g < 1:
        raise ValueError(f"groups must be a positive int, got groups={g}")
    if c % g:
        raise ValueError(
            f"groups={g} must divide the input channels: x of shape {x_shape} has {c} channels{where}"
        )
    if f % g:
        raise ValueError(
            f"groups={g} must divide the output channels: weight of shape {w_shape} has {f} filters"
        )
    return g


def _weight_2d(weight: np.ndarray, op: str) -> np.ndarray:
    if weight.ndim == 4:
        if weight.shape[2:] != (1, 1):
            raise ValueError(
                f"{op} expects a weight of shape (F, C, 1, 1) or (F, C), got weight of shape "
                f"{weight.shape} (a {weight.shape[2]}x{weight.shape[3]} kernel; "
                f"use onexone.{op.replace('conv1x1', 'conv2d')} for kernels larger than 1x1)"
            )
        return weight[:, :, 0, 0]
    if weight.ndim == 2:
        return weight
    raise ValueError(
        f"{op} expects a weight of shape (F, C, 1, 1) or (F, C), got weight of shape {weight.shape}"
    )


def _operands(x, weight, bias):
    """x, weight and bias as arrays, and the result's dtype."""
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    bias = None if bias is None else as_array(bias, "bias")
    return x, weight, bias, result_dtype(x=x, weight=weight, bias=bias)


def _check_channels(x_shape, c: int, w_shape, f: int, cg: int, groups, bias, nhwc: bool = False) -> int:
    """groups, x's c channels against the weight's f filters of cg channels, and the bias."""
    where = " (layout='NHWC': channels are x's last axis)" if nhwc else ""
    g = check_groups(groups, c, f, x_shape, w_shape, where)
    if c != cg * g:
        expect = f"{cg} channels" if g == 1 else f"{cg * g} channels ({cg} per group x groups={g})"
        raise ValueError(f"weight of shape {w_shape} expects x with {expect}, got x of shape {x_shape} "
                         f"with {c} channels{where}")
    if bias is not None and bias.shape != (f,):
        raise ValueError(
            f"bias of shape {bias.shape} does not match weight of shape {w_shape}: "
            f"expected bias of shape ({f},)"
        )
    return g


def _result(out, shape: tuple, dtype, inputs: dict, single: bool, allocate: bool = True):
    """The checked (or a new) result array; the 4-D array the kernels write; and, when the
    user's out is not aligned to its element size (the kernels store whole, aligned
    elements) or may overlap an input (see check_out), the 4-D view of it that
    :func:`finish` copies the result into. allocate=False (a backward pass, which writes no
    y): read-only zero-stride views of y's shape and dtype that take no memory."""
    if not allocate:
        view = np.broadcast_to(np.zeros((), dtype), shape)
        return view, (view[None] if single else view), None
    out, direct = check_out(out, shape, dtype, inputs)
    if out is None:
        out = empty(shape, dtype)
    out4 = out[None] if single else out
    if out.flags.aligned and direct:
        return out, out4, None
    return out, empty(out4.shape, dtype), out4


def finish(a) -> np.ndarray:
    """What an op returns once its kernels have run on checked arguments ``a``."""
    if a.writeback is not None:
        a.writeback[...] = a.out
    return a.result


def check_conv1x1(x, weight, bias, activation, out, stride=1, groups=1, layout="NCHW",
                  op: str = "conv1x1", allocate: bool = True) -> Conv1x1Args:
    """The checked arguments of a 1x1 convolution. allocate=False (the backward pass, which
    writes no y) gives ``result`` and ``out`` as read-only zero-stride views of y's shape and
    dtype that take no memory."""
    x, weight, bias, dtype = _operands(x, weight, bias)
    act = check_activation(activation)
    nhwc = check_layout(layout)
    sh, sw = _pair(stride, "stride", 1)

    single = x.ndim == 3
    if x.ndim not in (3, 4):
        dims = "(N, H, W, C) or (H, W, C)" if nhwc else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{op} expects x of shape {dims}, got x of shape {x.shape}")
    x4 = x[None] if single else x
    if nhwc:  # the (N, C, H, W) view of a channels-last array: no copy
        x4 = x4.transpose(0, 3, 1, 2)
    w2 = _weight_2d(weight, op)
    f, cg = w2.shape
    g = _check_channels(x.shape, x4.shape[1], weight.shape, f, cg, groups, bias, nhwc)

    xs = x4[:, :, ::sh, ::sw] if (sh, sw) != (1, 1) else x4  # the pixels read: a view
    n, _, ho, wo = xs.shape
    if nhwc:
        shape = (ho, wo, f) if single else (n, ho, wo, f)
    else:
        shape = (f, ho, wo) if single else (n, f, ho, wo)
    out, out4, writeback = _result(out, shape, dtype, {"x": x, "weight": weight, "bias": bias}, single,
                                   allocate)

    return Conv1x1Args(
        x=for_kernel(xs, dtype),  # strided or cropped pixels are read in place, never gathered
        w=for_kernel(w2, dtype),
        bias=None if bias is None else np.require(bias, dtype, ['C', 'A']),
        act=act,
        out=out4,
        result=out,
        dtype=dtype,
        groups=g,
        nhwc=nhwc,
        stride=(sh, sw),
        writeback=writeback,
    )


# ---- conv2d --------------------------------------------------------------------------------

ALGORITHMS = ("auto", "direct", "im2col")


class Conv2dArgs(NamedTuple):
    x: np.ndarray  # (N, C, H, W), kernel-ready
    w: np.ndarray  # (F, C*KH*KW), kernel-ready, any strides (columns in (c, kh, kw) order)
    bias: Optional[np.ndarray]  # (F,) contiguous, or None
    act: int
    out: np.ndarray  # (N, F, Ho, Wo) C-contiguous
    result: np.ndarray  # what the caller returns: out, or its (F, Ho, Wo) view
    dtype: np.dtype
    geom: tuple  # (kh, kw, sh, sw, ph, pw, dh, dw): ph, pw the top/left padding
    algorithm: str  # "auto", "direct" or "im2col"
    groups: int
    writeback: Optional[np.ndarray]  # the user's unaligned out (4-D), filled by finish()


def _padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """((top, bottom), (left, right)) from an int, a pair, "valid" or "same" (as PyTorch:
    "same" pads d*(k-1) in all, the odd one at the bottom/right; stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' is not supported for strided convolutions (stride={stride})"
                )
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}"
        )
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph), (pw, pw)


def check_conv2d(x, weight, bias, stride, padding, dilation, activation, out, algorithm,
                 groups=1, op: str = "conv2d", allocate: bool = True) -> Conv2dArgs:
    """The checked arguments of a KxK convolution; allocate=False as in :func:`check_conv1x1`
    (the backward pass: ``result`` and ``out`` are zero-stride views of y's shape)."""
    x, weight, bias, dtype = _operands(x, weight, bias)
    act = check_activation(activation)
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; expected one of {', '.join(map(repr, ALGORITHMS))}"
        )

    single = x.ndim == 3
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op} expects x of shape (N, C, H, W) or (C, H, W), got x of shape {x.shape}"
        )
    x4 = x[None] if single else x
    if weight.ndim != 4:
        raise ValueError(
            f"{op} expects a weight of shape (F, C, KH, KW), got weight of shape {weight.shape}"
        )
    f, cg, kh, kw = weight.shape
    if kh < 1 or kw < 1:
        raise ValueError(
            f"{op} expects a kernel of at least 1x1, got weight of shape {weight.shape}"
        )
    g = _check_channels(x.shape, x4.shape[1], weight.shape, f, cg, groups, bias)

    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    (pt, pb), (pl, pr) = _padding(padding, (kh, kw), (sh, sw), (dh, dw))
    n, _, h, w = x4.shape
    hp, wp = h + pt + pb, w + pl + pr
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if max(hp, wp, eh, ew) > MAX_GEOMETRY:  # the kernels' 64-bit index arithmetic
        raise ValueError(
            f"the padded input ({hp}, {wp}) and the dilated kernel ({eh}, {ew}) must be at most "
            f"2**62 in each dimension (x of shape {x.shape}, weight of shape {weight.shape}, "
            f"padding ({pt}, {pl}), dilation ({dh}, {dw}))"
        )
    if hp < eh or wp < ew:
        dilated = f" (dilated to ({eh}, {ew}))" if (dh, dw) != (1, 1) else ""
        raise ValueError(
            f"kernel of size ({kh}, {kw}){dilated} is larger than the padded input of size "
            f"({hp}, {wp}) (x of shape {x.shape}, padding ({pt}, {pl}))"
        )
    ho, wo = (hp - eh) // sh + 1, (wp - ew) // sw + 1

    shape = (f, ho, wo) if single else (n, f, ho, wo)
    out, out4, writeback = _result(out, shape, dtype, {"x": x, "weight": weight, "bias": bias}, single,
                                   allocate)

    return Conv2dArgs(
        x=for_kernel(x4, dtype),
        w=for_kernel(weight, dtype).reshape(f, cg * kh * kw),  # a view whenever the strides allow
        bias=None if bias is None else np.require(bias, dtype, ['C', 'A']),
        act=act,
        out=out4,
        result=out,
        dtype=dtype,
        geom=(kh, kw, sh, sw, pt, pl, dh, dw),
        algorithm=algorithm,
        groups=g,
        writeback=writeback,
    )
