"""A small hypothesis property test: random shapes (0 and 1 included, and sizes around the
tile and block edges), dtypes, layouts, bias/activation, ISA paths and thread counts, on
exact-integer data: onexone must equal the naive reference exactly. (The big fuzzing
campaign is a later issue; this one is derandomized and bounded for CI.)"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onexone
from onexone import reference

EDGE_C = [0, 1, 2, 5, 6, 7, 15, 16, 17, 127, 128, 129, 255, 256, 257]
EDGE_P = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 47, 48, 49, 511, 512, 513]

LAYOUTS = {
    "c": lambda a: a,
    "fortran": np.asfortranarray,
    "step_w": lambda a: np.repeat(a, 2, axis=3)[..., ::2],
    "neg_c_h": lambda a: a[:, ::-1, ::-1],
    "channels_last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
}


@st.composite
def problems(draw):
    n = draw(st.integers(0, 3))
    c = draw(st.one_of(st.sampled_from(EDGE_C), st.integers(0, 300)))
    f = draw(st.one_of(st.sampled_from([0, 1, 3, 4, 5, 6, 7, 12, 13, 17]), st.integers(0, 40)))
    p = draw(st.one_of(st.sampled_from(EDGE_P), st.integers(0, 200)))
    h = draw(st.sampled_from([d for d in (1, 2, 3, 5, 7) if p % d == 0] or [1]))
    w = p // h
    if n * c * f * h * w > 400_000:  # keep each example cheap
        c = min(c, 17)
    return n, c, f, h, w


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=problems(),
    dtype=st.sampled_from([np.float32, np.float64]),
    layout=st.sampled_from(sorted(LAYOUTS)),
    bias=st.booleans(),
    activation=st.sampled_from([None, "relu", "relu6"]),
    isa=st.sampled_from(onexone.available_isas()),
    n_threads=st.sampled_from([None, 1, 2, 3]),
    single=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_naive_reference_exactly(shape, dtype, layout, bias, activation, isa, n_threads, single, seed):
    n, c, f, h, w = shape
    rng = np.random.default_rng(seed)
    x = LAYOUTS[layout](rng.integers(-4, 5, (n, c, h, w)).astype(dtype))
    if single and n >= 1:
        x = x[0]
    wt = rng.integers(-4, 5, (f, c)).astype(dtype)
    b = rng.integers(-20, 21, f).astype(dtype) if bias else None
    old = onexone.get_isa()
    onexone.set_isa(isa)
    try:
        y = onexone.conv1x1(x, wt, b, activation=activation, n_threads=n_threads)
    finally:
        onexone.set_isa(old)
    expected = reference.conv1x1_naive(x, wt, b, activation=activation)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    np.testing.assert_array_equal(y, expected)
