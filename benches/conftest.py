"""pytest configuration for the benchmarks in ``benches/``.

* Collects ``bench_*.py`` files (pytest's default pattern is ``test_*.py``) unless
  pytest already does: ``python_files`` matches them, or the file is named on the command line.
* Prints onexone's configuration and the peers' versions in the report header.
"""
import fnmatch

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path) or any(
        fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")
    ):
        return None  # pytest's own collector takes it (named on the command line, or matching)
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_report_header(config):
    import onexone
    from onexone.bench import IMPLEMENTATIONS, missing_requirement

    cfg = onexone.show_config(mode="dicts")
    peers = ", ".join(
        f"{name}: {'no (' + missing + ' cannot be imported)' if missing else 'yes'}"
        for name, missing in ((n, missing_requirement(i)) for n, i in IMPLEMENTATIONS.items())
    )
    return [
        f"onexone {onexone.__version__}: ISA {cfg['isa']['active']}, "
        f"{cfg['threads']['default']} thread(s), OpenMP {'yes' if cfg['threads']['openmp'] else 'no'}",
        f"implementations: {peers}",
    ]
