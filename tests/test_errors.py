"""Argument checking: the result dtype rules, and every error the spec lists, with messages
that name the offending shapes or dtypes. The references check their arguments the same way."""
import re

import numpy as np
import pytest

import onexone
from onexone import reference
from oxo_testing import assert_matches_references

FUNCS = [onexone.conv1x1, reference.conv1x1, reference.conv1x1_naive]
FUNC_IDS = ["onexone", "reference", "naive"]


def f32(*shape):
    return np.ones(shape, np.float32)


# ---- dtypes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xdt, wdt, bdt, expected",
    [
        ("f4", "f4", None, "f4"),
        ("f8", "f8", None, "f8"),
        ("f4", "f8", None, "f8"),
        ("f8", "f4", None, "f8"),
        ("f4", "f4", "f8", "f8"),
        ("f4", "f4", "f4", "f4"),
        ("f4", "f4", "f2", "f4"),
        ("f2", "f4", None, "f4"),
        ("i8", "i8", None, "f8"),
        ("i4", "f4", None, "f8"),
        ("i2", "f4", None, "f4"),  # as np.result_type says
        ("u1", "u1", "i8", "f8"),
        ("?", "?", None, "f8"),
        ("?", "f4", None, "f4"),
        ("i8", "f8", "?", "f8"),
        (">f4", "<f4", None, "f4"),
        (">f8", ">f8", ">f8", "f8"),
    ],
)
def test_result_dtype(isa, rng, xdt, wdt, bdt, expected):
    x = rng.integers(0, 2, (2, 5, 3, 19)).astype(xdt)
    w = rng.integers(0, 2, (4, 5)).astype(wdt)
    b = None if bdt is None else rng.integers(0, 2, 4).astype(bdt)
    y = onexone.conv1x1(x, w, b, activation="relu")
    assert y.dtype == np.dtype(expected)
    assert y.dtype.isnative
    rt = np.result_type(*[a for a in (x, w, b) if a is not None])
    if rt.kind == "f":
        assert y.dtype == rt.newbyteorder("=")
    to = np.dtype(expected)
    assert_matches_references(y, x.astype(to), w.astype(to), None if b is None else b.astype(to), "relu", exact=True)


@pytest.mark.parametrize("fn", FUNCS, ids=FUNC_IDS)
@pytest.mark.parametrize(
    "where, dt, name",
    [
        ("all", np.float16, "float16"),
        ("x", np.complex64, "complex64"),
        ("weight", np.complex128, "complex128"),
        ("bias", np.complex64, "complex64"),
        ("x", object, "object"),
        ("weight", object, "object"),
        ("x", "U3", "U3"),
        ("bias", "S2", "S2"),
        ("x", "datetime64[s]", "datetime64"),
        ("x", "timedelta64[s]", "timedelta64"),
    ],
)
def test_unsupported_dtype_is_a_type_error_naming_it(fn, where, dt, name):
    x, w, b = f32(1, 3, 2, 2), f32(2, 3, 1, 1), f32(2)
    if where == "x":
        x = x.astype(dt)
    elif where == "weight":
        w = w.astype(dt)
    elif where == "bias":
        b = b.astype(dt)
    else:
        x, w, b = x.astype(dt), w.astype(dt), b.astype(dt)
    with pytest.raises(TypeError, match=re.escape(name)):
        fn(x, w, b)


def test_float16_alone_is_a_type_error_but_with_float32_promotes():
    h = np.ones((1, 3, 2, 2), np.float16)
    with pytest.raises(TypeError, match="float16"):
        onexone.conv1x1(h, np.ones((2, 3), np.float16))
    y = onexone.conv1x1(h, np.ones((2, 3), np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.full((1, 2, 2, 2), 3, np.float32))


@pytest.mark.skipif(np.dtype(np.longdouble) == np.dtype(np.float64), reason="longdouble is float64 here")
def test_longdouble_is_a_type_error():
    with pytest.raises(TypeError, match=np.dtype(np.longdouble).name):
        onexone.conv1x1(np.ones((1, 3, 2, 2), np.longdouble), f32(2, 3))


def test_none_inputs_are_type_errors():
    with pytest.raises(TypeError, match="x"):
        onexone.conv1x1(None, f32(2, 3))
    with pytest.raises(TypeError, match="weight"):
        onexone.conv1x1(f32(1, 3, 2, 2), None)


# ---- the error catalog -------------------------------------------------------------------

_ro_out = np.empty((1, 2, 4, 4), np.float32)
_ro_out.flags.writeable = False

ERRORS = [
    # (id, x, weight, kwargs, exception, regex the message must match)
    ("x_2d", f32(3, 4), f32(2, 3), {}, ValueError, r"x of shape \(3, 4\)"),
    ("x_5d", f32(1, 1, 3, 4, 4), f32(2, 3), {}, ValueError, r"x of shape \(1, 1, 3, 4, 4\)"),
    ("x_0d", np.float32(1), f32(2, 3), {}, ValueError, r"x of shape \(\)"),
    ("weight_1d", f32(1, 3, 4, 4), f32(3), {}, ValueError, r"weight of shape \(3,\)"),
    ("weight_3d", f32(1, 3, 4, 4), f32(2, 3, 1), {}, ValueError, r"weight of shape \(2, 3, 1\)"),
    ("weight_5d", f32(1, 3, 4, 4), f32(2, 3, 1, 1, 1), {}, ValueError, r"weight of shape \(2, 3, 1, 1, 1\)"),
    ("kernel_3x3", f32(1, 3, 4, 4), f32(2, 3, 3, 3), {}, ValueError, r"weight of shape \(2, 3, 3, 3\)"),
    ("kernel_1x2", f32(1, 3, 4, 4), f32(2, 3, 1, 2), {}, ValueError, r"weight of shape \(2, 3, 1, 2\)"),
    ("kernel_0x0", f32(1, 3, 4, 4), f32(2, 3, 0, 0), {}, ValueError, r"weight of shape \(2, 3, 0, 0\)"),
    (
        "channels_spec_example",
        f32(1, 128, 56, 56),
        f32(64, 256, 1, 1),
        {},
        ValueError,
        re.escape("weight of shape (64, 256, 1, 1) expects x with 256 channels, got x of shape (1, 128, 56, 56)"),
    ),
    ("channels_3d", f32(5, 4, 4), f32(2, 3), {}, ValueError, r"weight of shape \(2, 3\).*x of shape \(5, 4, 4\)"),
    ("channels_c0", f32(1, 0, 4, 4), f32(2, 3), {}, ValueError, r"weight of shape \(2, 3\).*x of shape \(1, 0, 4, 4\)"),
    ("bias_long", f32(1, 3, 4, 4), f32(2, 3), {"bias": f32(3)}, ValueError, r"bias of shape \(3,\).*\(2, 3\)"),
    ("bias_short", f32(1, 3, 4, 4), f32(2, 3), {"bias": f32(1)}, ValueError, r"bias of shape \(1,\)"),
    ("bias_2d", f32(1, 3, 4, 4), f32(2, 3), {"bias": f32(2, 1)}, ValueError, r"bias of shape \(2, 1\)"),
    ("bias_0d", f32(1, 3, 4, 4), f32(2, 3), {"bias": np.float32(1)}, ValueError, r"bias of shape \(\)"),
    ("activation_gelu", f32(1, 3, 4, 4), f32(2, 3), {"activation": "gelu"}, ValueError, r"activation 'gelu'"),
    ("activation_case", f32(1, 3, 4, 4), f32(2, 3), {"activation": "ReLU"}, ValueError, r"activation 'ReLU'"),
    ("activation_int", f32(1, 3, 4, 4), f32(2, 3), {"activation": 1}, ValueError, r"activation 1"),
    ("activation_list", f32(1, 3, 4, 4), f32(2, 3), {"activation": ["relu"]}, ValueError, r"activation"),
    (
        "out_shape",
        f32(1, 3, 4, 4),
        f32(2, 3),
        {"out": f32(1, 2, 4, 5)},
        ValueError,
        r"out has shape \(1, 2, 4, 5\).*\(1, 2, 4, 4\)",
    ),
    ("out_shape_3d_vs_4d", f32(3, 4, 4), f32(2, 3), {"out": f32(1, 2, 4, 4)}, ValueError, r"\(1, 2, 4, 4\).*\(2, 4, 4\)"),
    (
        "out_dtype",
        f32(1, 3, 4, 4),
        f32(2, 3),
        {"out": np.empty((1, 2, 4, 4), np.float64)},
        ValueError,
        r"out has dtype float64.*float32",
    ),
    (
        "out_dtype_byteswapped",
        f32(1, 3, 4, 4),
        f32(2, 3),
        {"out": np.empty((1, 2, 4, 4), ">f4" if np.little_endian else "<f4")},
        ValueError,
        r"out has dtype [<>]f4 \(non-native byte order\).*float32 in native byte order",
    ),
    (
        "out_fortran",
        f32(1, 3, 4, 4),
        f32(2, 3),
        {"out": np.asfortranarray(f32(1, 2, 4, 4))},
        ValueError,
        r"out of shape \(1, 2, 4, 4\) must be C-contiguous",
    ),
    (
        "out_strided",
        f32(1, 3, 4, 4),
        f32(2, 3),
        {"out": f32(1, 2, 4, 8)[..., ::2]},
        ValueError,
        r"out of shape \(1, 2, 4, 4\) must be C-contiguous",
    ),
    ("out_readonly", f32(1, 3, 4, 4), f32(2, 3), {"out": _ro_out}, ValueError, r"out of shape \(1, 2, 4, 4\) is read-only"),
    ("out_list", f32(1, 3, 4, 4), f32(2, 3), {"out": [[0.0]]}, TypeError, r"out must be a numpy.ndarray"),
    ("n_threads_0", f32(1, 3, 4, 4), f32(2, 3), {"n_threads": 0}, ValueError, r"n_threads.*0"),
    ("n_threads_str", f32(1, 3, 4, 4), f32(2, 3), {"n_threads": "2"}, TypeError, r"n_threads.*'2'"),
    ("n_threads_float", f32(1, 3, 4, 4), f32(2, 3), {"n_threads": 1.5}, TypeError, r"n_threads.*1\.5"),
    ("n_threads_integral_float", f32(1, 3, 4, 4), f32(2, 3), {"n_threads": 2.0}, TypeError, r"n_threads.*2\.0"),
    ("n_threads_bool", f32(1, 3, 4, 4), f32(2, 3), {"n_threads": True}, TypeError, r"n_threads.*True"),
    ("ragged_x", [[[1.0, 2.0], [3.0]]], f32(2, 1), {}, ValueError, r"x could not be converted"),
]


@pytest.mark.parametrize("fn", FUNCS, ids=FUNC_IDS)
@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_arguments(fn, case):
    _, x, w, kwargs, exc, match = case
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", None)
    with pytest.raises(exc, match=match):
        fn(x, w, bias, **kwargs)


def test_errors_leave_out_untouched():
    out = np.full((1, 2, 4, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        onexone.conv1x1(f32(1, 3, 4, 4), f32(2, 3), f32(3), out=out)
    with pytest.raises(ValueError):
        onexone.conv1x1(f32(1, 3, 4, 4), f32(2, 3), n_threads=0, out=out)
    assert (out == 7).all()


# ---- out overlapping the inputs ------------------------------------------------------------


def test_out_is_x():
    x = np.ones((1, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"out of shape \(1, 3, 4, 4\) overlaps x of shape \(1, 3, 4, 4\)"):
        onexone.conv1x1(x, f32(3, 3), out=x)
    assert (x == 1).all()


def test_out_overlaps_part_of_x():
    buf = np.ones(2 * 3 * 4 * 4, np.float32)
    x = buf[: 3 * 16].reshape(1, 3, 4, 4)
    out = buf[16 : 16 + 3 * 16].reshape(1, 3, 4, 4)  # shares two channel planes with x
    with pytest.raises(ValueError, match="overlaps x"):
        onexone.conv1x1(x, f32(3, 3), out=out)


def test_out_is_the_base_of_a_reversed_x():
    base = np.ones((1, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="overlaps x"):
        onexone.conv1x1(base[:, ::-1, ::-1], f32(3, 3), out=base)
    with pytest.raises(ValueError, match="overlaps x"):
        onexone.conv1x1(base[::-1, :, :, ::-1], f32(3, 3), out=base)
    assert (base == 1).all()


def test_out_overlaps_a_strided_x():
    base = np.ones((1, 3, 4, 8), np.float32)
    x = base[..., ::2]
    out = np.ascontiguousarray(base[..., :4])  # fine: a copy
    onexone.conv1x1(x, f32(3, 3), out=out)
    out_view = base.reshape(-1)[: 3 * 16].reshape(1, 3, 4, 4)  # interleaves with x's elements
    with pytest.raises(ValueError, match="overlaps x"):
        onexone.conv1x1(x, f32(3, 3), out=out_view)


def test_out_overlaps_weight_or_bias():
    x = f32(1, 4, 1, 1)
    w = np.ones(16, np.float32)
    with pytest.raises(ValueError, match="overlaps weight"):
        onexone.conv1x1(x, w.reshape(4, 4), out=w[:4].reshape(1, 4, 1, 1))
    b = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="overlaps bias"):
        onexone.conv1x1(x, f32(4, 4), b, out=b.reshape(1, 4, 1, 1))


@pytest.mark.parametrize("op", ["conv1x1", "conv2d"])
def test_out_whose_overlap_is_too_hard_to_decide_gets_the_right_result(op, monkeypatch):
    """Where np.shares_memory gives up (TooHardError, for unusual strides), out is neither
    refused nor written while x is read: the result goes through a new array into out."""
    rng = np.random.default_rng(5)
    base = rng.integers(-4, 5, (1, 3, 6, 6)).astype(np.float32)
    x_before = base.copy()
    w = rng.integers(-4, 5, (3, 3, 1, 1)).astype(np.float32)

    def too_hard(a, b, max_work=None):
        raise np.exceptions.TooHardError("too hard")

    monkeypatch.setattr(np, "shares_memory", too_hard)
    y = getattr(onexone, op)(base, w, out=base)  # out is x: overlap undecided, not refused
    assert y is base
    assert_matches_references(y, x_before, w.reshape(3, 3), exact=True)


NHWC_SAYS = re.escape("(layout='NHWC': channels are x's last axis)")


@pytest.mark.parametrize("call, says", [
    (lambda: onexone.conv1x1(f32(1, 3, 3, 4), f32(2, 3), layout="NHWC"),
     r"expects x with 3 channels, got x of shape \(1, 3, 3, 4\) with 4 channels " + NHWC_SAYS),
    (lambda: onexone.conv1x1(f32(1, 3, 3, 4), f32(3, 2), layout="NHWC", groups=3),
     r"groups=3 must divide the input channels: x of shape \(1, 3, 3, 4\) has 4 channels " + NHWC_SAYS),
    (lambda: onexone.conv1x1_backward(f32(1, 3, 3, 2), f32(1, 3, 3, 4), f32(2, 3), layout="NHWC"),
     r"with 4 channels " + NHWC_SAYS),
    (lambda: onexone.conv1x1(f32(1, 4, 3, 3), f32(2, 3)),
     r"got x of shape \(1, 4, 3, 3\) with 4 channels$"),
], ids=["conv1x1", "groups", "backward", "nchw-says-no-layout"])
def test_channel_errors_name_the_layout(call, says):
    """A channels-last x of the wrong depth: the message says which axis was read as the
    channels (a user who forgot layout= sees 'with 4 channels' for the width)."""
    with pytest.raises(ValueError, match=says):
        call()


def test_direct_memory_error_names_the_padded_copy():
    """The direct kernel's zero-padded copy of x grows with the dilated kernel: with a
    dilation of 10**7 it cannot exist on any machine. The MemoryError names the shapes and
    the copy's size; im2col (no copy) computes the same convolution: only the centre tap
    reaches the image, so each output is the sum over channels of x at the same pixel."""
    x = np.arange(50, dtype=np.float32).reshape(1, 2, 5, 5)
    w = np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(MemoryError, match=r"x \(1, 2, 5, 5\), weight \(3, 2, 3, 3\).*"
                                          r"zero-padded copy of x of up to 1 x 2 x 20000005 x 20000005"):
        onexone.conv2d(x, w, dilation=10**7, padding="same", algorithm="direct")
    y = onexone.conv2d(x, w, dilation=10**7, padding="same", algorithm="im2col")
    np.testing.assert_array_equal(y, np.broadcast_to(x.sum(axis=1, keepdims=True), (1, 3, 5, 5)))
