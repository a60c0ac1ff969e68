"""python -m onexone bench: the 1x1 suite runs, checks every implementation against the
reference and prints its table (timings are not asserted)."""
import sys

import pytest

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


@pytest.mark.parametrize("repeats, rounds", [(21, 3), (5, 2), (7, 1), (2, 3), (10, 4)])
def test_samples_in_round_add_up(repeats, rounds):
    counts = [bench.samples_in_round(repeats, rounds, r) for r in range(rounds)]
    assert sum(counts) == repeats and max(counts) - min(counts) <= 1
    assert counts == sorted(counts, reverse=True)


def test_samples_are_taken_in_rounds(monkeypatch):
    """repeats=5 in rounds=2: blocks of 3 and 2 samples per implementation, the
    implementations taking turns (onexone, ..., onexone, ...); the figure is the median of
    all 5; a pause only before a block that follows another library's block (the layer's
    reference ran on NumPy before the first)."""
    order, pauses = [], []
    measure, measure_pair = bench.measure, bench.measure_pair

    def spy(fn, **kw):
        t = measure(fn, **kw)
        order.append(len(t.samples))
        return t

    def spy_pair(fa, fb, **kw):  # onexone and onexone_relu: one block, two implementations
        ta, tb, ratios = measure_pair(fa, fb, **kw)
        order.extend([len(ta.samples), len(tb.samples)])
        return ta, tb, ratios

    monkeypatch.setattr(bench, "measure", spy)
    monkeypatch.setattr(bench, "measure_pair", spy_pair)
    monkeypatch.setattr(bench.time, "sleep", pauses.append)
    results = bench.run("incep3a.5x5red", repeats=5, rounds=2, min_sample_s=1e-4, warmup_s=0,
                        peak_seconds=0.01, settle_s=0.125, progress=False)
    impls = results["implementations"]
    assert order == [3] * len(impls) + [2] * len(impls)
    for name in impls:
        res = results["layers"][0]["results"][name]
        assert len(res["samples_s"]) == 5 and len(res["inner"]) == 2
        assert res["median_s"] == sorted(res["samples_s"])[2]
    libraries = ["numpy"] + [bench.IMPLEMENTATIONS[n].library for n in impls] * 2
    expected = sum(1 for a, b in zip(libraries, libraries[1:]) if a not in ("onexone", b))
    assert pauses.count(0.125) == expected
    assert results["method"]["rounds"] == 2
    assert "median of 5 samples in 2 rounds" in bench.format_table(results)
    # more rounds than samples: one sample per round
    assert bench.run("incep3a.5x5red", repeats=2, rounds=9, min_sample_s=1e-4, warmup_s=0,
                     peak_seconds=0.01, settle_s=0, progress=False)["method"]["rounds"] == 2


def test_relu_cost_is_the_median_of_paired_samples():
    """onexone and onexone_relu alternate inside their blocks; the ReLU cost is the median of
    the pairs' ratios, one pair per sample of every round."""
    results = bench.run("incep3a.5x5red", repeats=5, rounds=2, min_sample_s=1e-4, warmup_s=0,
                        peak_seconds=0.01, settle_s=0, progress=False)
    row = results["layers"][0]
    ratios = row["relu_ratios"]
    own, relu = row["results"]["onexone"]["samples_s"], row["results"]["onexone_relu"]["samples_s"]
    assert len(ratios) == len(own) == len(relu) == 5
    assert ratios == [r / o for o, r in zip(own, relu)]
    assert row["relu_cost_pct"] == pytest.approx(100 * (sorted(ratios)[2] - 1))
    assert results["summary"]["relu_cost_pct_max"] == row["relu_cost_pct"]


def test_onexone_pair_writes_one_out(monkeypatch):
    """onexone and onexone_relu, timed in turns, write into the same out array (as each peer
    writes one output buffer); the other implementations get none of it."""
    outs = []
    measure_pair = bench.measure_pair

    def spy_pair(fa, fb, **kw):
        outs.append((fa(), fb()))
        return measure_pair(fa, fb, **kw)

    monkeypatch.setattr(bench, "measure_pair", spy_pair)
    results = bench.run("incep3a.5x5red", repeats=2, rounds=2, min_sample_s=1e-4, warmup_s=0,
                        peak_seconds=0.01, settle_s=0, progress=False)
    assert len(outs) == 2 and all(a is b for a, b in outs)
    assert outs[0][0].shape == (1, 16, 28, 28)
    assert results["layers"][0]["results"]["onexone_relu"]["ok"]


def test_measure_pair_alternates_the_order():
    calls = []
    ta, tb, ratios = bench.measure_pair(lambda: calls.append("a"), lambda: calls.append("b"),
                                        repeats=4, min_sample_s=0, warmup_s=0)
    assert ta.inner == tb.inner == 1 and len(ta.samples) == len(tb.samples) == len(ratios) == 4
    timed = calls[-8:]  # after the warm-up's calls
    assert timed == ["a", "b", "b", "a", "a", "b", "b", "a"]


@pytest.mark.parametrize("module, args, option", [
    ("bench", ["--threads", "0"], "--threads"),
    ("bench", ["--threads", "two"], "--threads"),
    ("bench", ["--batch", "0"], "--batch"),
    ("bench", ["--repeats", "-1"], "--repeats"),
    ("bench", ["--rounds", "0"], "--rounds"),
    ("demo", ["--threads", "0"], "--threads"),
    ("demo", ["--seed", "-1"], "--seed"),
])
def test_cli_rejects_bad_counts_as_usage_errors(module, args, option, capsys):
    """A bad count on the command line is a usage error (exit status 2, the option named),
    not a traceback from deep inside the run."""
    import importlib

    mod = importlib.import_module(f"onexone.{module}")
    with pytest.raises(SystemExit) as e:
        mod.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and repr(args[1]) in err


@pytest.mark.parametrize("roofs", ["DRAM=-5", "L3=nan", "L2=inf", "=5", "DRAM=0", "DRAM", "DRAM=26,"])
def test_cli_rejects_roofs_that_cannot_be_drawn(roofs, capsys):
    """--roofs wants named, positive, finite bandwidths: a negative or NaN roof would be a
    legend entry with no line on the plot."""
    from onexone import bench

    with pytest.raises(SystemExit) as e:
        bench.main(["--layers", "incep3a.5x5red", "--roofs", roofs])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --roofs:" in err and repr(roofs) in err


@pytest.mark.parametrize("option, path, says", [
    ("--json", "{missing}/x.json", "does not exist"),
    ("--json", "{tmp}", "is a folder"),
    ("--plot", "{missing}/x.png", "does not exist"),
    ("--plot", "{tmp}/x.txt", "ending in .png"),
    ("--plot", "{tmp}/no_extension", "ending in .png"),
])
def test_cli_rejects_output_paths_it_cannot_write_before_the_run(option, path, says, tmp_path, capsys,
                                                                 monkeypatch):
    """--json and --plot paths that cannot be written are usage errors before the run (which
    takes minutes), not a traceback after it that loses the table."""
    if option == "--plot":
        pytest.importorskip("matplotlib")
    from onexone import bench

    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("the run started"))
    path = path.format(tmp=tmp_path, missing=tmp_path / "missing")
    with pytest.raises(SystemExit) as e:
        bench.main(["--layers", "incep3a.5x5red", "--quick", option, path])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{option} {path}: " in err and says in err


def test_cli_prints_the_table_before_saving(tmp_path, capsys, monkeypatch):
    """The table is printed first; a file that then cannot be written is an error naming it
    (exit status 1), not a traceback, and the figures are on the screen."""
    from onexone import bench

    results = bench.run(["incep3a.5x5red"], repeats=2, rounds=1, relu=False, progress=False, quick=True)
    monkeypatch.setattr(bench, "run", lambda *a, **k: results)
    target = tmp_path / "gone" / "x.json"
    monkeypatch.setattr(bench, "_output_path_problem", lambda path, plot: None)  # vanishes after the check
    with pytest.raises(SystemExit) as e:
        bench.main(["--layers", "incep3a.5x5red", "--json", str(target)])
    assert e.value.code == 1
    out, err = capsys.readouterr()
    assert "incep3a.5x5red" in out and "geometric mean" in out
    assert "could not save the results" in err and str(target) in err


def test_negative_threads_count_back_from_all_cores():
    """--threads -1 means all cores, as n_threads=-1 does in the API."""
    from onexone import _core

    results = bench.run("incep3a.5x5red", threads=-1, repeats=1, min_sample_s=1e-4, warmup_s=0,
                        peak_seconds=0.01, settle_s=0, progress=False, relu=False)
    assert results["threads"] == _core.max_threads()
    assert all(r["ok"] for r in results["layers"][0]["results"].values())


def test_a_peer_whose_import_fails_is_skipped_not_fatal(tmp_path, monkeypatch):
    """A broken install (an import that raises OSError for a missing shared library, not
    ImportError) skips the peer with the error named, as a missing one is skipped."""
    from onexone import bench

    (tmp_path / "oxo_broken_peer.py").write_text('raise OSError("libpeer.so: cannot open shared object file")\n')
    (tmp_path / "oxo_absent_peer_marker.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    peer = bench.IMPLEMENTATIONS["numpy"]._replace(requires=("oxo_absent_peer_marker", "oxo_broken_peer"))
    assert bench.missing_requirement(peer) == "oxo_broken_peer (OSError: libpeer.so: cannot open shared object file)"
    assert bench.missing_requirement(peer._replace(requires=("oxo_not_installed_anywhere",))) == \
        "oxo_not_installed_anywhere"
    assert bench.missing_requirement(peer._replace(requires=("oxo_absent_peer_marker",))) is None


def test_bench_threads_from_the_environment_count_as_n_threads(monkeypatch):
    """ONEXONE_BENCH_THREADS=-1 means all cores for every peer (torch rejects -1 itself)."""
    import importlib.util
    from pathlib import Path

    import onexone

    path = Path(__file__).resolve().parent.parent / "benches" / "bench_conv1x1.py"
    for value, expected in (("-1", onexone._core.max_threads()), ("1", 1), ("0", onexone.get_num_threads())):
        monkeypatch.setenv("ONEXONE_BENCH_THREADS", value)
        spec = importlib.util.spec_from_file_location("oxo_bench_conv1x1_threads", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.THREADS == expected
