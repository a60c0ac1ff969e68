"""Fixtures shared by the whole suite.

* Every test leaves the process-wide state as it found it: the ISA in use and the default
  thread count (``set_num_threads(None)``).
* ``isa`` runs a test once per ISA path this machine has (``onexone.available_isas()``).
* ``dtype`` runs a test for float32 and float64.
* ``rng`` is a NumPy generator seeded from the test's id: fixed, but different per test.

The helpers (tolerance, input makers, comparisons) live in ``oxo_testing.py`` next to this
file.
"""
import zlib

import numpy as np
import pytest

import onexone

ISAS = onexone.available_isas()


@pytest.fixture(autouse=True)
def _restore_global_state():
    isa = onexone.get_isa()
    yield
    onexone.set_isa(isa)
    onexone.set_num_threads(None)


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the micro-kernels of one ISA for the duration of the test."""
    old = onexone.get_isa()
    onexone.set_isa(request.param)
    assert onexone.get_isa() == request.param
    yield request.param
    onexone.set_isa(old)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
