"""python -m onexone bench: the 1x1 suite runs, checks every implementation against the
reference and prints its table (timings are not asserted)."""
import sys

from onexone import bench


def _quick_run(layers):
    return bench.run(layers, repeats=1, min_sample_s=1e-4, warmup_s=0, peak_seconds=0.01,
                     settle_s=0, progress=False)


def test_run_and_table():
    results = _quick_run("incep3a.5x5red")
    row = results["layers"][0]
    assert (row["c"], row["f"], row["h"], row["w"]) == (192, 16, 28, 28)
    assert row["flop"] == 2 * 192 * 16 * 28 * 28
    assert {"onexone", "onexone_relu", "numpy"} <= set(row["results"])
    assert all(r["ok"] for r in row["results"].values())
    assert row["best_peer"] is not None and row["ratio"] > 0
    text = bench.format_table(results)
    assert "incep3a.5x5red" in text and "geometric mean" in text


def test_numpy_baseline_runs_without_threadpoolctl(monkeypatch):
    """`pip install .` alone has no threadpoolctl: the NumPy baseline still runs, and the
    table says its BLAS threads were not limited."""
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails as if absent
    results = _quick_run("incep3a.5x5red")
    assert "numpy" in results["implementations"] and "numpy" not in results["skipped"]
    assert results["layers"][0]["results"]["numpy"]["ok"]
    assert results["notes"] == [bench.BLAS_NOTE]
    assert "note: numpy: its BLAS threads are not limited" in bench.format_table(results)


def test_ratio_just_below_one_is_not_printed_as_one():
    """A layer at 0.996x the best peer must not read "1.00x" beside ">= 1.0x on k layers"."""
    from onexone.bench import _fmt_ratio

    assert _fmt_ratio(0.996) == "0.996x"
    assert _fmt_ratio(0.99) == "0.99x"
    assert _fmt_ratio(1.0) == "1.00x"
    assert _fmt_ratio(1.004) == "1.00x"
    assert _fmt_ratio(1.2345) == "1.23x"
