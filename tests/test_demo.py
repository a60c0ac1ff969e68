"""python -m onexone demo: the FLOP and parameter counts of its tables, exactly, and every
composed module equal to its NumPy reference. Measured times are reported, not asserted."""
import numpy as np
import pytest

from onexone import demo


def test_reduction_counts():
    straight, reduced = demo.reduction_params(np.random.default_rng(0))
    # 4x4 256->256 on 28x28 versus 1x1 256->64 then 4x4 64->256
    assert demo.module_flops(straight, 28, 28) == 2 * 784 * 256 * 256 * 16 == 1_644_167_168
    assert demo.module_flops(reduced, 28, 28) == 2 * 784 * (256 * 64 + 64 * 256 * 16) == 436_731_904
    ratio = demo.module_flops(straight, 28, 28) / demo.module_flops(reduced, 28, 28)
    assert ratio == 256 * 256 * 16 / (256 * 64 + 64 * 256 * 16)
    assert f"{ratio:.2f}" == "3.76"
    assert demo.module_params(straight) == 256 * 256 * 16 + 256 == 1_048_832
    assert demo.module_params(reduced) == (256 * 64 + 64) + (64 * 256 * 16 + 256) == 278_848


def test_inception_3a_counts():
    naive, reduced = demo.inception_params(np.random.default_rng(0))
    # Szegedy et al. 2015, Table 1, inception (3a): 128M multiply-adds with the reductions
    naive_macs = 784 * (192 * 64 + 192 * 128 * 9 + 192 * 32 * 25)
    reduced_macs = 784 * (192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32)
    assert reduced_macs == 128_049_152
    assert demo.module_flops(naive, 28, 28) == 2 * naive_macs == 606_928_896
    assert demo.module_flops(reduced, 28, 28) == 2 * reduced_macs == 256_098_304
    assert demo.module_params(naive) == 387_072 + (64 + 128 + 32) == 387_296
    assert demo.module_params(reduced) == 163_328 + (64 + 96 + 128 + 16 + 32 + 32) == 163_696


def test_fcn_counts():
    assert demo.conv_flops(4096, 2048, 1, 1, 8, 8) == 2 * 4096 * 2048 * 64 == 1_073_741_824
    assert demo.conv_params(4096, 2048, 1, 1) == 4096 * 2048 + 2048 == 8_390_656


def _pool_oracle(x):
    h, w = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return np.max([xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)


def test_max_pool_3x3():
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4) * np.where(np.arange(4) % 2, 1, -1)
    np.testing.assert_array_equal(demo.max_pool_3x3(x), _pool_oracle(x))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 1, 1), (1, 2, 1, 5), (1, 2, 5, 1), (2, 2, 2, 2),
                                   (3, 4, 2, 7), (2, 5, 7, 9), (1, 192, 28, 28)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_3x3_edges_and_reuse(shape, dtype):
    """The flat shifts cross planes and rows: every plane's edge rows and columns must see
    only their own plane's neighbours, for maps of 1 and 2 rows or columns too; with out and
    work reused for new inputs, and for a Fortran-ordered x."""
    rng = np.random.default_rng(sum(shape))
    out, work = np.empty(shape, dtype), {}
    for _ in range(3):
        x = rng.standard_normal(shape).astype(dtype)
        assert demo.max_pool_3x3(x, out=out, work=work) is out
        np.testing.assert_array_equal(out, _pool_oracle(x))
    np.testing.assert_array_equal(demo.max_pool_3x3(np.asfortranarray(x)), _pool_oracle(x))


def test_max_pool_3x3_rejects_an_out_it_cannot_write_in_place():
    x = np.ones((1, 2, 4, 4), np.float32)
    for bad in (np.empty((1, 2, 4, 4), np.float32, order="F"), np.empty((1, 2, 4, 5), np.float32),
                np.empty((1, 2, 4, 4), np.float64)):
        with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 array of shape \(1, 2, 4, 4\)"):
            demo.max_pool_3x3(x, out=bad)


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_reduction_modules_equal_their_references():
    rng = np.random.default_rng(1)
    straight, reduced = demo.reduction_params(rng)
    x = rng.uniform(-1, 1, (1, 256, 28, 28)).astype(np.float32)
    y = demo.reduction_straight(x, straight)
    assert y.shape == (1, 256, 28, 28)
    _close(y, demo.reduction_straight(x, straight, demo.REFERENCE))
    y = demo.reduction_reduced(x, reduced)
    assert y.shape == (1, 256, 28, 28)
    _close(y, demo.reduction_reduced(x, reduced, demo.REFERENCE))


@pytest.mark.parametrize("batch", [1, 2])
def test_inception_modules_equal_their_references(batch):
    rng = np.random.default_rng(2)
    naive, reduced = demo.inception_params(rng)
    x = rng.uniform(-1, 1, (batch, 192, 28, 28)).astype(np.float32)
    y = demo.inception_naive(x, naive)
    assert y.shape == (batch, 416, 28, 28)
    _close(y, demo.inception_naive(x, naive, demo.REFERENCE))
    np.testing.assert_array_equal(y[:, 224:], demo.max_pool_3x3(x))  # the pool branch, passed through
    y = demo.inception_reduced(x, reduced)
    assert y.shape == (batch, 256, 28, 28)
    _close(y, demo.inception_reduced(x, reduced, demo.REFERENCE))
    assert (y >= 0).all()  # ReLU after every conv


def test_fc8_as_conv_equals_the_dense_layer_at_every_position():
    rng = np.random.default_rng(3)
    w, b = demo.fcn_params(rng)
    x = rng.uniform(0, 1, (1, 4096, 8, 8)).astype(np.float32)
    y = demo.fcn_fc8_conv(x, w, b)
    assert y.shape == (1, 2048, 8, 8)
    dense = demo.fcn_fc8_dense(x, w, b)
    _close(y, dense)
    # and one position by hand, in float64
    np.testing.assert_allclose(y[0, :, 3, 5], w.astype(float) @ x[0, :, 3, 5].astype(float) + b, rtol=1e-4, atol=1e-4)


def test_demo_runs_and_prints_the_three_tables(capsys):
    results = demo.run(threads=1, quick=True)
    assert [r["flops"] for r in results["reduction"]] == [1_644_167_168, 436_731_904]
    assert [r["depth"] for r in results["inception"]] == [416, 256]
    assert all(r["time_s"] > 0 for r in results["reduction"] + results["inception"] + results["fcn"]["rows"])
    text = demo.format_tables(results)
    for needle in ("3.76x", "2.37x", "inception (3a)", "fc8", "NumPy helper"):
        assert needle in text
