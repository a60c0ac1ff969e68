"""onexone on dask arrays: the 1x1 convolution of data larger than memory, or than one machine.

``import onexone.dask`` imports dask (``pip install '.[dask]'`` in a checkout); ``import onexone``
never does.

A 1x1 convolution maps every pixel's channel vector through the same matrix, so it is
embarrassingly parallel over images and pixels: each chunk of the input gives one chunk of
the output, computed by :func:`onexone.conv1x1` in whichever dask worker holds it.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

try:
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "onexone.dask needs dask: pip install 'dask[array]' (or, in onexone's checkout, "
        "pip install '.[dask]')"
    ) from e

from ._args import check_conv1x1, check_layout, check_n_threads
from ._ops import IntOrPair
from ._ops import conv1x1 as _conv1x1

__all__ = ["conv1x1"]


def _axes(ndim: int, nhwc: bool) -> Tuple[int, Tuple[int, int]]:
    """(channel axis, (row axis, column axis)) of an NCHW/NHWC array, 3-D for one image."""
    lead = ndim - 3  # 1 with a batch axis, 0 without
    return (lead + 2, (lead, lead + 1)) if nhwc else (lead, (lead + 1, lead + 2))


def _check(xd: da.Array, weight, bias, activation, stride, groups, layout):
    """onexone's own checks (and messages) for conv1x1 of ``xd``, run on an empty stand-in
    of xd (same dtype, ndim and channels, zero images and pixels): nothing is computed or
    allocated, whatever xd's size. Messages naming the stand-in's shape name xd's."""
    if any(math.isnan(s) for s in xd.shape):
        raise ValueError(
            f"x of shape {xd.shape} has chunks of unknown size; call x.compute_chunk_sizes() first"
        )
    shape = [0] * xd.ndim
    if xd.ndim in (3, 4):
        channel_axis, _ = _axes(xd.ndim, check_layout(layout))
        shape[channel_axis] = xd.shape[channel_axis]
    stand_in = np.empty(shape, xd.dtype)
    try:
        return check_conv1x1(stand_in, weight, bias, activation, None, stride, groups, layout)
    except ValueError as e:
        raise ValueError(
            str(e).replace(f"x of shape {stand_in.shape}", f"x of shape {xd.shape}")
        ) from None


def _strided_chunks(chunks: Sequence[int], step: int) -> Tuple[int, ...]:
    """The chunks of ``a[::step]`` for an axis of ``a`` with these chunks: the chunk from
    offset o to o + n holds the multiples of step in [o, o + n)."""
    out, start = [], 0
    for n in chunks:
        out.append(-(-(start + n) // step) - -(-start // step))
        start += n
    return tuple(out)


def _conv1x1_block(xb: np.ndarray, weight, bias, spatial, stride, kw, block_info=None):
    """conv1x1 of one chunk; with a stride, from the first row and column of the chunk that
    is a multiple of the stride in the whole array."""
    if stride != (1, 1):
        location = block_info[0]["array-location"]
        index = [slice(None)] * xb.ndim
        for axis, step in zip(spatial, stride):
            index[axis] = slice(-location[axis][0] % step, None)
        xb = xb[tuple(index)]
    return _conv1x1(xb, weight, bias, stride=stride, **kw)


def conv1x1(
    xd,
    weight,
    bias=None,
    *,
    stride: IntOrPair = 1,
    groups: int = 1,
    layout: str = "NCHW",
    activation: Optional[str] = None,
    n_threads: Optional[int] = None,
) -> da.Array:
    """:func:`onexone.conv1x1` of a dask array, lazily, chunk by chunk.

    Parameters
    ----------
    xd : dask.array.Array (or array_like), shape (N, C, H, W) or (C, H, W); NHWC: (N, H, W, C)
        or (H, W, C)
        Chunked along any of the images and pixel axes, in any sizes. The channel axis must be
        one chunk: an input chunked along C is rechunked to one chunk along C first (lazily;
        each task then holds all C channels of its pixels).
    weight, bias, stride, groups, layout, activation, n_threads : as for :func:`onexone.conv1x1`
        ``weight`` and ``bias`` are NumPy arrays (small), sent with every task. ``n_threads``
        is per chunk: in a dask worker the default is that worker's own (see the README's
        "Threads" section); pass 1 when dask already runs one task per core.

    Returns
    -------
    dask.array.Array, shape (N, F, Ho, Wo) (NHWC: (N, Ho, Wo, F); 3-D for a 3-D x)
        Lazy: nothing is computed until ``.compute()`` (or ``.persist()``, ``da.store`` ...).
        dtype as :func:`onexone.conv1x1`: ``np.result_type(x, weight, bias)`` when float32 or
        float64, all-integer or bool operands giving float64. Chunks: xd's along the images, all F
        channels in one chunk, and along H and W the output rows and columns of xd's chunks:
        with a stride s, the chunk holding input rows [o, o + n) holds output rows
        ceil(o / s) to ceil((o + n) / s), so chunks may have any offsets (a chunk with no
        multiple of s gives an empty chunk). The numbers are those of the in-memory call:
        bitwise when xd is chunked along N only; chunked along H or W, equal within rounding
        (a chunk is a smaller image, whose blocking, and so summation order, can differ).

    Raises
    ------
    TypeError, ValueError
        As :func:`onexone.conv1x1`, with the same messages, when the graph is built; ValueError
        for chunks of unknown size.

    Examples
    --------
    A multi-band raster (here 12 bands x 1,000 x 1,000; the same code runs on 10,000 x 10,000
    or larger, chunk by chunk) mapped pixel by pixel through a 3 x 12 matrix (a colour
    transform, a spectral index, the first principal components): exactly a 1x1 convolution
    of the (C, H, W) stack.

    >>> import numpy as np, dask.array as da, onexone.dask
    >>> rng = da.random.default_rng(0)
    >>> bands = rng.random((12, 1000, 1000), chunks=(1, 500, 500), dtype=np.float32)
    >>> matrix = np.linspace(-1, 1, 36, dtype=np.float32).reshape(3, 12)
    >>> y = onexone.dask.conv1x1(bands, matrix)  # lazy: nothing computed yet
    >>> y.shape, y.dtype, y.chunks
    ((3, 1000, 1000), dtype('float32'), ((3,), (500, 500), (500, 500)))
    >>> result = y.compute()
    >>> bool(np.allclose(result[:, 7, 9], matrix @ bands[:, 7, 9].compute(), atol=1e-5))
    True
    """
    xd = da.asarray(xd)
    a = _check(xd, weight, bias, activation, stride, groups, layout)
    check_n_threads(n_threads, 1)  # bad values raise now, not in a task at compute time
    channel_axis, spatial = _axes(xd.ndim, a.nhwc)
    if xd.numblocks[channel_axis] > 1:
        xd = xd.rechunk({channel_axis: -1})
    chunks = list(xd.chunks)
    chunks[channel_axis] = (a.w.shape[0],)
    for axis, step in zip(spatial, a.stride):
        chunks[axis] = _strided_chunks(chunks[axis], step)
    return da.map_blocks(
        _conv1x1_block,
        xd,
        weight=a.w.copy(),  # as of this call, in the result dtype
        bias=None if a.bias is None else a.bias.copy(),
        spatial=spatial,
        stride=a.stride,
        kw={"groups": a.groups, "layout": layout, "activation": activation, "n_threads": n_threads},
        chunks=tuple(chunks),
        dtype=a.dtype,
        meta=np.empty((0,) * xd.ndim, a.dtype),
        token="onexone-conv1x1",
    )
