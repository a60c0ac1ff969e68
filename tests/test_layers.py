"""onexone.layers: the CS231n-style layers against onexone.reference and against numeric
gradients (central differences in float64, as CS231n's eval_numerical_gradient_array)."""
import doctest

import numpy as np
import pytest

import onexone
from onexone import layers, reference
from oxo_testing import tolerance

def numeric_gradient(f, x, dout, h=1e-5):
    """sum(f(x) * dout) differentiated with respect to x (changed in place, then restored)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f() * dout)
        x[i] = old - h
        minus = np.sum(f() * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """max |a - b| relative to the size of the gradient, max(|a| + |b|). (CS231n divides
    elementwise, which turns the ~1e-10 noise of a central difference into a large error
    for gradient entries near 0.)"""
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def _conv_inputs(rng, n, c, h, w, f, k, dtype=np.float64):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b


# (kernel, stride, pad): the 1x1 path, and (when it applies) the KxK path
CONV_CASES_1x1 = [(1, 1, 0), (1, 2, 0), (1, (2, 1), 0)]
CONV_CASES_KxK = [(3, 1, 1), (3, 2, 1), (3, 1, 0), (1, 1, 1), (2, 2, 0)]


def _naive(x, w, b, k, stride, pad, activation=None):
    if k == 1 and pad == 0:
        return reference.conv1x1_naive(x, w, b, stride=stride, activation=activation)
    return reference.conv2d_naive(x, w, b, stride=stride, padding=pad, activation=activation)


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_1x1 + CONV_CASES_KxK)
def test_conv_forward_matches_reference(rng, dtype, k, stride, pad):
    x, w, b = _conv_inputs(rng, 2, 5, 7, 6, 4, k, dtype)
    out, cache = layers.conv_forward(x, w, b, {"stride": stride, "pad": pad})
    expected = _naive(x, w, b, k, stride, pad)
    assert out.shape == expected.shape and out.dtype == dtype
    tol = tolerance(5 * k * k, dtype, np.abs(x).max(), np.abs(w).max(), np.abs(b).max())
    np.testing.assert_allclose(out, expected, rtol=0, atol=tol)
    assert cache[0] is x and cache[1] is w and cache[2] is b


def test_conv_forward_output_size_is_cs231ns():
    """H' = 1 + (H + 2 * pad - HH) / stride, as in the assignment (here for sizes it divides)."""
    x = np.zeros((2, 3, 9, 11))
    for k, stride, pad in [(1, 2, 0), (3, 2, 1), (3, 1, 1), (5, 2, 2)]:
        out, _ = layers.conv_forward(x, np.zeros((4, 3, k, k)), np.zeros(4), {"stride": stride, "pad": pad})
        assert out.shape == (2, 4, 1 + (9 + 2 * pad - k) // stride, 1 + (11 + 2 * pad - k) // stride)


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_1x1)
def test_conv_backward_1x1_matches_reference(rng, dtype, k, stride, pad):
    x, w, b = _conv_inputs(rng, 2, 6, 5, 7, 3, k, dtype)
    out, cache = layers.conv_forward(x, w, b, {"stride": stride, "pad": pad})
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = layers.conv_backward(dout, cache)
    ex, ew, eb = reference.conv1x1_backward(dout, x, w, stride=stride)
    pixels = dout[:, 0].size  # terms of each sum over images and pixels
    gmax = np.abs(dout).max()
    for got, want, terms, amax in ((dx, ex, w.shape[0], np.abs(w).max()),
                                   (dw, ew, pixels, np.abs(x).max()),
                                   (db, eb, pixels, 1.0)):
        assert got.shape == want.shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(terms, dtype, gmax, amax))


def _check_numeric_gradients(rng, k, stride, pad, fused_relu=False):
    x, w, b = _conv_inputs(rng, 2, 3, 5, 6, 4, k)
    conv_param = {"stride": stride, "pad": pad}
    forward, backward = (
        (layers.conv_relu_forward, layers.conv_relu_backward) if fused_relu
        else (layers.conv_forward, layers.conv_backward)
    )
    out, cache = forward(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)

    def f():
        return forward(x, w, b, conv_param)[0]

    for name, got, arr in (("dx", dx, x), ("dw", dw, w), ("db", db, b)):
        num = numeric_gradient(f, arr, dout)
        assert got.shape == arr.shape
        assert rel_error(got, num) < 1e-7, name


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_1x1)
def test_conv_backward_1x1_numeric_gradients(rng, k, stride, pad):
    _check_numeric_gradients(rng, k, stride, pad)


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_KxK)
def test_conv_backward_kxk_numeric_gradients(rng, k, stride, pad):
    _check_numeric_gradients(rng, k, stride, pad)


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_KxK)
def test_conv_backward_kxk_matches_reference(rng, dtype, k, stride, pad):
    x, w, b = _conv_inputs(rng, 2, 5, 7, 6, 4, k, dtype)
    out, cache = layers.conv_forward(x, w, b, {"stride": stride, "pad": pad})
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = layers.conv_backward(dout, cache)
    ex, ew, eb = onexone.conv2d_backward(dout, x, w, stride=stride, padding=pad)
    np.testing.assert_array_equal(dx, ex)  # the same call underneath
    np.testing.assert_array_equal(dw, ew)
    np.testing.assert_array_equal(db, eb)
    rx, rw, rb = reference.conv2d_backward(dout, x, w, stride=stride, padding=pad)
    gmax = np.abs(dout).max()
    pixels = dout[:, 0].size  # terms of each sum over images and pixels
    taps = w.shape[0] * k * k  # at most, for an input pixel
    for got, want, terms, amax in ((dx, rx, taps, np.abs(w).max()),
                                   (dw, rw, pixels, np.abs(x).max()),
                                   (db, rb, pixels, 1.0)):
        assert got.shape == want.shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(terms, dtype, gmax, amax))


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_1x1)
def test_conv_relu_numeric_gradients(rng, k, stride, pad):
    _check_numeric_gradients(rng, k, stride, pad, fused_relu=True)


@pytest.mark.parametrize("k, stride, pad", CONV_CASES_1x1 + CONV_CASES_KxK[:1])
def test_conv_relu_is_relu_of_conv(rng, k, stride, pad):
    x, w, b = _conv_inputs(rng, 2, 4, 6, 6, 3, k)
    param = {"stride": stride, "pad": pad}
    out, _ = layers.conv_relu_forward(x, w, b, param)
    np.testing.assert_array_equal(out, np.maximum(layers.conv_forward(x, w, b, param)[0], 0))
    np.testing.assert_allclose(out, _naive(x, w, b, k, stride, pad, "relu"), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "wshape, pad, path",
    [((4, 3, 1, 1), 0, "1x1"), ((4, 3, 1, 1), (0, 0), "1x1"), ((4, 3, 1, 1), 1, "conv2d"),
     ((4, 3, 3, 3), 0, "conv2d"), ((4, 3, 3, 3), 1, "conv2d")],
)
def test_dispatch(monkeypatch, wshape, pad, path):
    """A 1x1 kernel without padding runs onexone.conv1x1; anything else onexone.conv2d."""
    ran = []
    for name in ("conv1x1", "conv2d", "conv1x1_backward"):
        real = getattr(layers, name)
        monkeypatch.setattr(layers, name, lambda *a, _n=name, _f=real, **k: ran.append(_n) or _f(*a, **k))
    out, cache = layers.conv_forward(np.ones((1, 3, 5, 5)), np.ones(wshape), np.zeros(4), {"stride": 2, "pad": pad})
    assert ran == ["conv1x1" if path == "1x1" else "conv2d"]
    if path == "1x1":
        layers.conv_backward(np.ones_like(out), cache)
        assert ran[1:] == ["conv1x1_backward"]


def test_conv_without_bias(rng):
    x, w, _ = _conv_inputs(rng, 1, 3, 4, 4, 2, 1)
    out, cache = layers.conv_forward(x, w, None, {"stride": 1, "pad": 0})
    np.testing.assert_allclose(out, reference.conv1x1_naive(x, w), rtol=0, atol=1e-12)
    dx, dw, db = layers.conv_backward(np.ones_like(out), cache)
    assert db is None and dx.shape == x.shape and dw.shape == w.shape


def test_conv_param_defaults_and_errors(rng):
    x, w, b = _conv_inputs(rng, 1, 3, 4, 4, 2, 1)
    np.testing.assert_array_equal(layers.conv_forward(x, w, b, {})[0], layers.conv_forward(x, w, b, None)[0])
    with pytest.raises(ValueError, match="conv_param has unknown keys 'padding'"):
        layers.conv_forward(x, w, b, {"stride": 1, "padding": 1})
    # onexone's own checks and messages
    with pytest.raises(ValueError, match=r"weight of shape \(2, 5, 1, 1\) expects x with 5 channels"):
        layers.conv_forward(x, np.zeros((2, 5, 1, 1)), b, {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match="stride must be positive"):
        layers.conv_forward(x, w, b, {"stride": 0, "pad": 0})
    with pytest.raises(ValueError, match="padding must be non-negative"):
        layers.conv_forward(x, w, b, {"stride": 1, "pad": -1})


# ---- the NumPy helpers ----------------------------------------------------------------------


def test_relu_numeric_gradient(rng):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink
    out, cache = layers.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    dout = rng.standard_normal(x.shape)
    num = numeric_gradient(lambda: layers.relu_forward(x)[0], x, dout)
    assert rel_error(layers.relu_backward(dout, cache), num) < 1e-9


def test_affine_numeric_gradients(rng):
    x = rng.standard_normal((4, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    out, cache = layers.affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(4, 6) @ w + b, rtol=1e-14)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = layers.affine_backward(dout, cache)
    for got, arr in ((dx, x), (dw, w), (db, b)):
        num = numeric_gradient(lambda: layers.affine_forward(x, w, b)[0], arr, dout)
        assert rel_error(got, num) < 1e-8


def test_softmax_loss_value_and_numeric_gradient(rng):
    scores = rng.standard_normal((6, 4)) * 3
    y = rng.integers(0, 4, 6)
    loss, dscores = layers.softmax_loss(scores, y)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(6), y]).mean(), rel=1e-12)
    num = numeric_gradient(lambda: np.array(layers.softmax_loss(scores, y)[0]), scores, np.array(1.0))
    assert rel_error(dscores, num) < 1e-7
    # stable for large scores
    assert np.isfinite(layers.softmax_loss(scores * 1e4, y)[0])


def test_softmax_loss_rejects_labels_out_of_range():
    """A negative label would index from the end (silently the wrong class): an error, as
    torch's cross_entropy gives."""
    scores = np.array([[0.0, 0.0, 5.0]])
    for y, err, says in ((np.array([-1]), ValueError, r"labels must be in \[0, 3\).*from -1 to -1"),
                         (np.array([3]), ValueError, r"labels must be in \[0, 3\)"),
                         (np.array([0, 1]), ValueError, r"labels of shape \(2,\)"),
                         (np.array([0.0]), TypeError, r"labels must be integers, got dtype float64")):
        with pytest.raises(err, match=says):
            layers.softmax_loss(scores, y)


def test_conv_relu_backward_checks_dout_shape(rng):
    """conv_relu_backward names a wrong dout shape as conv_backward does, instead of letting
    the ReLU's mask broadcast it into gradients of the wrong batch."""
    x = rng.random((2, 3, 5, 5)); w = rng.random((4, 3, 1, 1)); b = np.zeros(4)
    _, cache = layers.conv_relu_forward(x, w, b, {"stride": 1, "pad": 0})
    for dout in (np.ones((1, 4, 5, 5)), 1.0, np.ones((2, 4, 5, 6))):
        with pytest.raises(ValueError, match=r"does not match the forward result.*give y of shape \(2, 4, 5, 5\)"):
            layers.conv_relu_backward(dout, cache)


def test_docstring_examples():
    result = doctest.testmod(layers, raise_on_error=False)
    assert result.attempted >= 9 and result.failed == 0
