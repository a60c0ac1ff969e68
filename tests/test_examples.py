"""The example scripts in examples/ run and do what they say."""
import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_inception_reduction_loss_falls(capsys):
    example = _load("train_inception_reduction")
    losses = example.main(steps=100, seed=0)
    out = capsys.readouterr().out
    assert len(losses) == 100 and all(np.isfinite(losses))
    assert out.count("loss") == 100 and "held-out accuracy" in out
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.2 * first, (first, last)
    accuracy = float(out.rsplit("held-out accuracy", 1)[1].split()[0])
    assert accuracy > 0.8
    # deterministic: onexone's results do not depend on the thread count or timing
    assert example.main(steps=100, seed=0, verbose=False) == losses


def test_train_inception_reduction_rejects_bad_arguments(capsys):
    """Out-of-range counts are usage errors naming the option, not tracebacks or no-ops."""
    import pytest

    example = _load("train_inception_reduction")
    for args in (["--batch", "0"], ["--batch", str(example.TRAIN_IMAGES + 1)], ["--steps", "-3"],
                 ["--seed", "-1"], ["--lr", "nan"], ["--lr", "inf"], ["--lr", "0"], ["--lr", "-0.1"],
                 ["--lr", "fast"]):
        with pytest.raises(SystemExit) as e:
            example._cli(args)
        assert e.value.code == 2
        assert f"argument {args[0]}:" in capsys.readouterr().err
