"""Process-wide settings: threads, the ISA in use, and show_config()."""
from __future__ import annotations

import os
import platform
import sys
import warnings
from typing import Optional

from . import _core


# OMP_NUM_THREADS as the OpenMP runtime read it: when it loaded, with onexone's _core
# (a later change of os.environ does not reach it; dask's nanny sets it in a client's
# environment after the fact, for instance)
_OMP_NUM_THREADS_AT_IMPORT = os.environ.get("OMP_NUM_THREADS")


def get_num_threads() -> int:
    """The number of threads a call with ``n_threads=None`` uses now.

    That is OpenMP's ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS``,
    ``omp_set_num_threads`` and threadpoolctl's ``threadpool_limits``, or the value given to
    :func:`set_num_threads`, capped by a tighter OpenMP limit set after it: a
    ``threadpool_limits(1)`` block entered after ``set_num_threads(4)`` runs onexone on one
    thread, and leaving it gives back the 4. A build without OpenMP runs every call on the
    calling thread and reports 1.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> import onexone
    >>> onexone.get_num_threads() >= 1
    True
    """
    return _core.default_threads()


def set_num_threads(n: Optional[int]) -> None:
    """Set the thread count used by calls with ``n_threads=None``, in the whole process.
    A per-call ``n_threads`` always wins; a tighter OpenMP limit set later
    (``threadpool_limits``, ``omp_set_num_threads``) caps it while it lasts (see
    :func:`get_num_threads`).

    Parameters
    ----------
    n : int or None
        ``n >= 1``: that many threads (at most 1024). Negative counts back from all cores, as
        scikit-learn and joblib do: ``-1`` all of OpenMP's ``omp_get_max_threads()``, ``-2``
        all but one (at least 1), resolved when called. ``None``: back to OpenMP's default,
        followed as it changes.

    Raises
    ------
    ValueError
        ``n == 0``.
    TypeError
        ``n`` is not an int or None (a bool, a float, a string).

    Examples
    --------
    >>> import onexone
    >>> onexone.set_num_threads(1)
    >>> onexone.get_num_threads()
    1
    >>> onexone.set_num_threads(None)
    """
    if n is None:
        _core.set_default_threads(0)
        return
    from ._args import check_n_threads

    _core.set_default_threads(check_n_threads(n, default=1, name="set_num_threads: n"))


def available_isas() -> tuple:
    """The ISA paths this machine can run, lowest first.

    Returns
    -------
    tuple of str
        A subset of ``('scalar', 'avx2', 'avx512')``; ``'scalar'`` is always there.

    Examples
    --------
    >>> import onexone
    >>> "scalar" in onexone.available_isas()
    True
    """
    return _core.isa_available()


def get_isa() -> str:
    """The ISA whose micro-kernels run now.

    Returns
    -------
    str
        One of :func:`available_isas`: the best one unless ``ONEXONE_ISA`` or :func:`set_isa`
        chose a lower one.

    Examples
    --------
    >>> import onexone
    >>> onexone.get_isa() in onexone.available_isas()
    True
    """
    return _core.isa_active()


def set_isa(name: str) -> None:
    """Run the micro-kernels of ``name`` from now on, in the whole process.

    For testing and benchmarking the slower paths; the environment variable ``ONEXONE_ISA``
    does the same at import.

    Parameters
    ----------
    name : str
        One of :func:`available_isas` (any case, as ``ONEXONE_ISA``).

    Raises
    ------
    ValueError
        If this CPU (or this build) has no such path.
    TypeError
        If ``name`` is not a str.

    Examples
    --------
    >>> import onexone
    >>> before = onexone.get_isa()
    >>> onexone.set_isa("scalar")
    >>> onexone.get_isa()
    'scalar'
    >>> onexone.set_isa(before)
    """
    _core.set_isa(name)
    _env_isa["applied"] = None  # the ISA is set_isa's now, not ONEXONE_ISA's


def config() -> dict:
    from . import __version__

    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "isa": {
            "active": _core.isa_active(),
            "detected": _core.isa_detected(),
            "available": list(_core.isa_available()),
            "forced_by_env": _env_isa["applied"],
            "env_ignored": _env_isa["ignored"],
        },
        "kernels": _core.kernel_names(),
        "blocking": _core.blocking(),
        "l2_bytes": _core.l2_bytes(),
        "direct_fv": _core.fv_full_width(),
        "threads": {
            "openmp": _core.openmp_enabled(),
            "openmp_runtime": _core.openmp_library(),
            "default": get_num_threads(),
            "omp_max_threads": _core.max_threads(),
            "OMP_NUM_THREADS": _OMP_NUM_THREADS_AT_IMPORT,
        },
    }


def show_config(mode: str = "stdout"):
    """Print (``mode="stdout"``) or return (``mode="dicts"``) how onexone was built and
    what it runs here: ISA and kernels, OpenMP and threads, block sizes.

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        Print a readable summary, or return it as a dict.

    Returns
    -------
    None or dict
        With ``mode="dicts"``: keys ``version``, ``python``, ``machine``, ``isa`` (active,
        detected, available, forced_by_env, env_ignored), ``kernels``, ``blocking``, ``l2_bytes``,
        ``direct_fv`` and ``threads`` (openmp, openmp_runtime, default, omp_max_threads,
        OMP_NUM_THREADS: the environment's value when onexone was imported, which is when
        the OpenMP runtime read it).

    Raises
    ------
    ValueError
        ``mode`` is neither.

    Examples
    --------
    >>> import onexone
    >>> onexone.show_config(mode="dicts")["isa"]["active"] in onexone.available_isas()
    True
    """
    cfg = config()
    if mode == "dicts":
        return cfg
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    t = cfg["threads"]
    lines = [
        f"onexone {cfg['version']} (Python {cfg['python']}, {cfg['machine']})",
        f"  ISA:        {cfg['isa']['active']} (detected {cfg['isa']['detected']}; "
        f"available {', '.join(cfg['isa']['available'])})"
        + (f"; ONEXONE_ISA={cfg['isa']['forced_by_env']}" if cfg["isa"]["forced_by_env"] else "")
        + (f"; ONEXONE_ISA={cfg['isa']['env_ignored']!r} ignored" if cfg["isa"]["env_ignored"] else ""),
        f"  kernels:    {cfg['kernels']['float32']}, {cfg['kernels']['float64']}"
        + "".join(
            " (21-24 columns: masked 8x48 tiles, this core's 512-bit FMAs at full width)" if n == "masked"
            else f" (+ {n} for 21-24 columns)"
            for n in _core.narrow_kernel_names().values()
            if n
        )
        + "".join(f" (+ {n} for GEMMs at most 16 columns wide)" for n in _core.tall_kernel_names().values() if n)
        + "".join(f" (+ {n} for NHWC with 17-24 or 5-8 filters)" for n in _core.pairs_kernel_names().values() if n)
        + "".join(f" (+ {n} for NHWC with 64 or 128 filters)" for n in _core.wide_kernel_names().values() if n),
        "  OpenMP:     "
        + (f"yes, runtime {t['openmp_runtime']}" if t["openmp"] else "NO (built without OpenMP: single-threaded)"),
        f"  threads:    {t['default']} by default (omp_get_max_threads() = {t['omp_max_threads']}, "
        f"OMP_NUM_THREADS={t['OMP_NUM_THREADS']} at import); run on onexone's pool (idle workers spin up to 20 us while calls come back to back, then sleep)",
        "  blocking:   "
        + "; ".join(f"{k}: " + ", ".join(f"{n}={v}" for n, v in b.items()) for k, b in cfg["blocking"].items()),
        f"  L2:         {cfg['l2_bytes'] // 1024} KiB per core (GEMMs whose B fits in half of it run all of K"
        " per micro-kernel call)",
        "  direct:     pixel-vectorized KxK kernel"
        + (", and the channel-vectorized one on large layers (512-bit FMAs at full width here)"
           if cfg["direct_fv"] else ""),
    ]
    print("\n".join(lines))


# ONEXONE_ISA as read at import: the ISA it set (until set_isa changes it), or the value
# that was ignored (unknown, or not on this machine)
_env_isa = {"applied": None, "ignored": None}


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside onexone (the user's ``import onexone``),
    counting as warnings.warn does (importlib's frames skipped)."""
    here = os.path.dirname(os.path.abspath(__file__))
    level, f = 1, sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            f = f.f_back
            continue
        if not os.path.abspath(name).startswith(here + os.sep):
            return level
        level += 1
        f = f.f_back
    return level


def _apply_env_isa() -> None:
    name = os.environ.get("ONEXONE_ISA")
    if not name:
        return
    try:
        _core.set_isa(name)
        _env_isa["applied"] = name.strip().lower()
    except ValueError as e:
        _env_isa["ignored"] = name
        warnings.warn(f"ONEXONE_ISA={name!r} ignored: {e}", RuntimeWarning, stacklevel=_caller_stacklevel())


_apply_env_isa()
