"""show_config, the ISA switches, and the build's OpenMP support."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

import onexone

KNOWN_ISAS = ("scalar", "avx2", "avx512")


def test_public_api():
    for name in ("conv1x1", "get_num_threads", "set_num_threads", "show_config", "available_isas", "get_isa", "set_isa"):
        assert callable(getattr(onexone, name)), name
        assert name in onexone.__all__
    assert callable(onexone.reference.conv1x1) and callable(onexone.reference.conv1x1_naive)


def test_show_config_dicts():
    cfg = onexone.show_config(mode="dicts")
    assert isinstance(cfg, dict)
    assert cfg["isa"]["active"] == onexone.get_isa()
    assert cfg["isa"]["available"] == list(onexone.available_isas())
    assert cfg["isa"]["detected"] == onexone.available_isas()[-1]
    assert isinstance(cfg["threads"]["openmp"], bool)
    assert cfg["threads"]["default"] == onexone.get_num_threads()
    b32, b64 = cfg["blocking"]["float32"], cfg["blocking"]["float64"]
    assert b32["KC"] == 256 and b64["KC"] == 128  # same bytes per block in both dtypes
    assert b32["NC"] == b64["NC"] == 512
    assert set(cfg["kernels"]) == {"float32", "float64"}


def test_show_config_prints_isa_openmp_and_blocks(capsys):
    assert onexone.show_config() is None
    text = capsys.readouterr().out
    cfg = onexone.show_config(mode="dicts")
    assert onexone.get_isa() in text
    assert "OpenMP" in text
    assert ("yes" in text) if cfg["threads"]["openmp"] else ("NO" in text)
    assert "KC=256" in text and "KC=128" in text and "NC=512" in text
    assert cfg["kernels"]["float32"] in text and cfg["kernels"]["float64"] in text
    assert ("channel-vectorized" in text) == cfg["direct_fv"]
    if cfg["isa"]["active"] != "avx512":
        assert not cfg["direct_fv"]  # the channel-vectorized kernel is AVX-512 only


def test_show_config_reports_omp_num_threads_as_read_at_import(monkeypatch):
    """OMP_NUM_THREADS changed after import (as dask's nanny does in a client) does not reach
    the OpenMP runtime, so show_config reports the value it read."""
    before = onexone.show_config(mode="dicts")["threads"]["OMP_NUM_THREADS"]
    monkeypatch.setenv("OMP_NUM_THREADS", "77")
    cfg = onexone.show_config(mode="dicts")["threads"]
    assert cfg["OMP_NUM_THREADS"] == before != "77"
    assert cfg["omp_max_threads"] != 77


def test_show_config_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        onexone.show_config(mode="json")


def test_available_isas():
    isas = onexone.available_isas()
    assert isinstance(isas, tuple) and isas
    assert isas[0] == "scalar"
    assert set(isas) <= set(KNOWN_ISAS)
    assert list(isas) == sorted(isas, key=KNOWN_ISAS.index)
    assert onexone.get_isa() in isas


def test_set_isa_switches_kernels(isa):
    cfg = onexone.show_config(mode="dicts")
    assert cfg["isa"]["active"] == isa
    assert cfg["kernels"]["float32"].startswith("f32-") and cfg["kernels"]["float32"].endswith(isa)
    assert cfg["kernels"]["float64"].startswith("f64-") and cfg["kernels"]["float64"].endswith(isa)
    y = onexone.conv1x1(np.ones((1, 3, 2, 2), np.float32), np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(y, np.full((1, 2, 2, 2), 3, np.float32))


@pytest.mark.parametrize("name", ["sse9", "AVX", "", "neon", None, 1])
def test_set_isa_unknown(name):
    before = onexone.get_isa()
    with pytest.raises((ValueError, TypeError), match="ISA"):
        onexone.set_isa(name)
    assert onexone.get_isa() == before


def test_set_isa_unavailable():
    missing = [n for n in KNOWN_ISAS if n not in onexone.available_isas()]
    if not missing:
        pytest.skip("this machine runs every ISA path onexone has")
    before = onexone.get_isa()
    with pytest.raises(ValueError, match=missing[-1]):
        onexone.set_isa(missing[-1])
    assert onexone.get_isa() == before


def _child(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "ONEXONE_ISA"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)


def test_onexone_isa_environment_variable():
    code = "import onexone; print(onexone.get_isa(), onexone.show_config(mode='dicts')['isa']['forced_by_env'])"
    r = _child(code, ONEXONE_ISA="scalar")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["scalar", "scalar"]
    r = _child(code, ONEXONE_ISA="bogus")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [onexone.available_isas()[-1], "None"]  # not reported as applied
    assert "ONEXONE_ISA" in r.stderr and "bogus" in r.stderr  # a warning, not silence
    assert "<string>:1: RuntimeWarning" in r.stderr  # pointing at the user's import
    text = _child("import onexone; onexone.show_config()", ONEXONE_ISA="bogus").stdout
    assert "ONEXONE_ISA='bogus' ignored" in text
    # set_isa takes over from ONEXONE_ISA; names in any case, as the variable
    r = _child("import onexone; onexone.set_isa(' Scalar '); print(onexone.get_isa(), "
               "onexone.show_config(mode='dicts')['isa']['forced_by_env'])", ONEXONE_ISA="SCALAR")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["scalar", "None"]


@pytest.mark.parametrize("bad", [None, 2, b"avx2"])
def test_set_isa_rejects_non_strings(bad):
    before = onexone.get_isa()
    with pytest.raises(TypeError, match="set_isa: the ISA name must be a str"):
        onexone.set_isa(bad)
    assert onexone.get_isa() == before


@pytest.mark.skipif(
    os.environ.get("ONEXONE_ALLOW_NO_OPENMP") == "1",
    reason="ONEXONE_ALLOW_NO_OPENMP=1: a build without OpenMP is accepted here",
)
def test_build_has_openmp():
    """The release build must be multi-threaded. Set ONEXONE_ALLOW_NO_OPENMP=1 to skip this
    on a deliberately single-threaded build."""
    threads = onexone.show_config(mode="dicts")["threads"]
    assert threads["openmp"] is True
    assert threads["openmp_runtime"]


@pytest.mark.parametrize("module", [onexone, onexone.reference, onexone.layers], ids=lambda m: m.__name__)
def test_every_public_function_has_a_numpydoc_example(module):
    """Each public function documents itself with an Examples section, and the examples run."""
    import doctest
    import inspect

    missing = [name for name in module.__all__
               if inspect.isfunction(getattr(module, name)) and "Examples\n" not in (getattr(module, name).__doc__ or "")]
    assert missing == []
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for name in module.__all__:
        obj = getattr(module, name)
        if not inspect.isfunction(obj):
            continue
        for test in finder.find(obj, name, globs={}):
            if test.examples:
                ran += 1
                runner.run(test)
    assert ran >= 1 and runner.failures == 0


def test_l2_size_is_the_cpus(capsys):
    """The L2 size that picks the GEMM's full-K route: the CPU's, as Linux's sysfs reports it
    (1 MiB where the OS cannot say)."""
    l2 = onexone.show_config(mode="dicts")["l2_bytes"]
    assert isinstance(l2, int) and (64 << 10) <= l2 <= (64 << 20)
    onexone.show_config()
    assert f"L2:         {l2 // 1024} KiB per core" in capsys.readouterr().out
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        with open(os.path.join(d, "level")) as f_level, open(os.path.join(d, "type")) as f_type:
            if f_level.read().strip() != "2" or f_type.read().strip() not in ("Unified", "Data"):
                continue
        with open(os.path.join(d, "size")) as f_size:
            size = f_size.read().strip()
        if size.endswith("K"):
            assert l2 == int(size[:-1]) * 1024
