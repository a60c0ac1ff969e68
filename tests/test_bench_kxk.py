"""python -m onexone bench --kxk: the KxK suite runs, checks every implementation against the
reference and prints its table (timings are not asserted)."""
import pytest

from onexone import bench


def test_kxk_suite_is_the_issues():
    assert [(l.name, l.c, l.f, l.h, l.kh, l.stride, l.padding) for l in bench.KXK_SUITE] == [
        ("r50.c2.3x3", 64, 64, 56, 3, 1, 1), ("r50.c3.3x3", 128, 128, 28, 3, 1, 1),
        ("r50.c4.3x3", 256, 256, 14, 3, 1, 1), ("r50.c5.3x3", 512, 512, 7, 3, 1, 1),
        ("incep3a.3x3", 96, 128, 28, 3, 1, 1), ("incep3a.5x5", 16, 32, 28, 5, 1, 2),
        ("r50.stem", 3, 64, 224, 7, 2, 3)]
    stem = bench.KXK_SUITE[-1]
    assert stem.out_hw() == (112, 112)
    assert stem.flop() == 2 * 3 * 64 * 49 * 112 * 112
    assert bench.select_layers("r50", kxk=True) == list(bench.KXK_SUITE[:4])
    with pytest.raises(ValueError, match="unknown KxK layer"):
        bench.select_layers("r50.c2.reduce", kxk=True)


def test_kxk_run_and_table(capsys):
    results = bench.run("incep3a.5x5", kxk=True, repeats=1, min_sample_s=1e-4, warmup_s=0,
                        peak_seconds=0.01, settle_s=0, progress=False)
    row = results["layers"][0]
    assert results["kxk"] and row["kernel"] == "5x5" and row["padding"] == 2
    assert all(r["ok"] for r in row["results"].values())
    assert {"onexone", "onexone_relu", "onexone_im2col"} <= set(row["results"])
    assert row["vs_numpy"] == pytest.approx(
        row["results"]["onexone"]["gflops"] / row["results"]["numpy"]["gflops"])
    text = bench.format_table(results)
    assert "KxK conv2d peer benchmark" in text and "5x5/1/2" in text and "im2col" in text
    assert "direct / NumPy im2col (/numpy): min" in text
    target = results["summary"]["targets"]["vs_numpy"]
    assert target["min"] == row["vs_numpy"] and target["min_layer"] == "incep3a.5x5" and target["layers"] == 1
    assert any(l.startswith("layer") and l.split()[-2:] == ["/torch", "/numpy"] for l in text.splitlines())
    assert bench.main(["--kxk", "--layers", "incep3a.5x5", "--repeats", "1", "--quick", "-q"]) == 0
    assert "incep3a.5x5" in capsys.readouterr().out


def test_kxk_table_reports_the_issue_targets():
    """direct / torch's best layout (torch or torch_cl, whichever is faster) on the r50 3x3
    layers, direct / NumPy im2col on every layer, per row and as summary lines."""
    def row(name, direct, **peers):
        r = {"name": name, "results": {"onexone": {"gflops": direct}}}
        r["results"].update({p: {"gflops": g} for p, g in peers.items()})
        bench._summarize_layer(r, 200.0)
        return r

    a = row("r50.c3.3x3", 190.0, numpy=100.0, torch=150.0, torch_cl=200.0, ort=210.0)
    assert a["vs_torch"] == pytest.approx(0.95) and a["vs_numpy"] == pytest.approx(1.9)
    assert a["best_peer"] == "ort" and a["ratio"] == pytest.approx(190 / 210)
    b = row("r50.stem", 150.0, numpy=50.0)
    assert b["vs_torch"] is None and b["vs_numpy"] == pytest.approx(3.0)
