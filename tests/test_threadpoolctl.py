"""threadpoolctl and onexone: threadpool_info() lists the OpenMP runtime onexone links, and
threadpool_limits(1) makes onexone single-threaded, checked by the threads the process
creates (in a fresh subprocess: onexone's pool creates its workers lazily, so a fresh process
shows whether a call made any) and by bitwise equal results.

The limit is per calling thread (OpenMP's nthreads-var is per thread): onexone's process-wide
setting is onexone.set_num_threads."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import onexone
from oxo_testing import same_bits

threadpoolctl = pytest.importorskip("threadpoolctl")

THREADS = onexone.show_config(mode="dicts")["threads"]
needs_openmp = pytest.mark.skipif(not THREADS["openmp"], reason="onexone built without OpenMP")
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc/self/task (Linux)")


def _run(code: str, *args: str) -> dict:
    """Run code (with sys.argv[1:] = args) in a fresh Python, OMP_NUM_THREADS unset, and
    return the JSON it prints last."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ONEXONE_ISA")}
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@needs_openmp
def test_threadpool_info_lists_onexones_openmp_runtime():
    info = _run(
        "import json, threadpoolctl, onexone\n"
        "print(json.dumps({'pools': threadpoolctl.threadpool_info(),\n"
        "                  'runtime': onexone.show_config(mode='dicts')['threads']['openmp_runtime'],\n"
        "                  'default': onexone.get_num_threads()}))"
    )
    runtime = os.path.realpath(info["runtime"])
    openmp = [p for p in info["pools"] if p["user_api"] == "openmp"]
    ours = [p for p in openmp if os.path.realpath(p["filepath"]) == runtime]
    assert len(ours) == 1, (runtime, openmp)
    assert ours[0]["num_threads"] == info["default"]  # what threadpoolctl reads is onexone's default


# A fresh process: count its native threads (/proc/self/task) around onexone calls. The
# reference call has n_threads=1; the control call, n_threads=2, must create a pool worker
# (so the probe would see one), and every result must be bitwise the same.
_PROBE = """
import json, os, sys
import numpy as np, onexone, threadpoolctl

def threads():
    return set(os.listdir("/proc/self/task"))

api = sys.argv[1] if len(sys.argv) > 1 else None
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 128, 40, 40)).astype(np.float32)
w = rng.standard_normal((64, 128)).astype(np.float32)
y1 = onexone.conv1x1(x, w, activation="relu", n_threads=1)
gy = rng.standard_normal(y1.shape).astype(np.float32)
g1 = onexone.conv1x1_backward(gy, x, w, n_threads=1)
default = onexone.get_num_threads()

before = threads()
with threadpoolctl.threadpool_limits(1, user_api=api):
    limited = onexone.get_num_threads()
    y = onexone.conv1x1(x, w, activation="relu")
    g = onexone.conv1x1_backward(gy, x, w)
    new_inside = threads() - before
restored = onexone.get_num_threads()
before_control = threads()
y2 = onexone.conv1x1(x, w, activation="relu", n_threads=2)
new_control = threads() - before_control
print(json.dumps({
    "default": default, "limited": limited, "restored": restored,
    "new_inside": len(new_inside), "new_control": len(new_control),
    "same": y.tobytes() == y1.tobytes() == y2.tobytes()
            and all(a.tobytes() == b.tobytes() for a, b in zip(g, g1)),
}))
"""


@needs_openmp
@needs_proc
@pytest.mark.parametrize("user_api", [None, "openmp"])
def test_threadpool_limits_1_makes_onexone_single_threaded(user_api):
    r = _run(_PROBE, *([user_api] if user_api else []))
    assert r["limited"] == 1
    assert r["new_inside"] == 0, "a call inside threadpool_limits(1) created threads"
    assert r["new_control"] >= 1, "the probe did not see the pool worker of an n_threads=2 call"
    assert r["restored"] == r["default"]
    assert r["same"], "results differ between threadpool_limits(1), n_threads=1 and n_threads=2"


@needs_openmp
def test_threadpool_limits_in_process(rng):
    x = rng.standard_normal((1, 96, 30, 30))
    w = rng.standard_normal((40, 96))
    y1 = onexone.conv1x1(x, w, n_threads=1)
    default = onexone.get_num_threads()
    for api in (None, "openmp"):
        with threadpoolctl.threadpool_limits(1, user_api=api):
            assert onexone.get_num_threads() == 1
            assert same_bits(onexone.conv1x1(x, w), y1)
        assert onexone.get_num_threads() == default
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert onexone.get_num_threads() == 2


def _in_other_thread(fn):
    result = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    t.join()
    return result[0]


@needs_openmp
@pytest.mark.skipif("libgomp" not in os.path.basename(THREADS["openmp_runtime"] or ""),
                    reason="the per-thread limit is checked for GNU libgomp")
def test_threadpool_limits_is_per_thread_set_num_threads_is_per_process():
    """As the README says: threadpool_limits (omp_set_num_threads) limits the thread that
    entered it; Python threads started elsewhere (a thread pool, dask's threaded scheduler)
    keep the default. onexone.set_num_threads applies to every thread."""
    default = onexone.get_num_threads()
    with threadpoolctl.threadpool_limits(1):
        assert onexone.get_num_threads() == 1
        assert _in_other_thread(onexone.get_num_threads) == default
    onexone.set_num_threads(1)  # restored by conftest
    assert _in_other_thread(onexone.get_num_threads) == 1


_AFTER_SET = """
import json, os
import numpy as np, onexone, threadpoolctl

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 128, 40, 40)).astype(np.float32)
w = rng.standard_normal((64, 128)).astype(np.float32)
y1 = onexone.conv1x1(x, w, n_threads=1)
onexone.set_num_threads(2)
before = set(os.listdir("/proc/self/task"))
with threadpoolctl.threadpool_limits(1):
    limited = onexone.get_num_threads()
    y = onexone.conv1x1(x, w)
    new_inside = len(set(os.listdir("/proc/self/task")) - before)
restored = onexone.get_num_threads()
y2 = onexone.conv1x1(x, w)
new_after = len(set(os.listdir("/proc/self/task")) - before)
onexone.set_num_threads(3)
print(json.dumps({"limited": limited, "new_inside": new_inside, "restored": restored,
                  "new_after": new_after, "later_set": onexone.get_num_threads(),
                  "same": y.tobytes() == y1.tobytes() == y2.tobytes()}))
"""


@needs_openmp
@needs_proc
def test_threadpool_limits_after_set_num_threads_wins_while_it_lasts():
    """A tighter OpenMP limit caps set_num_threads while it lasts: threadpool_limits(1)
    entered after onexone.set_num_threads(2) makes onexone single-threaded (get_num_threads()
    == 1, a call starts no worker); leaving the block gives back the 2 (the next call starts
    one); a later set_num_threads applies as given."""
    r = _run(_AFTER_SET)
    assert r["limited"] == 1
    assert r["new_inside"] == 0, "a call inside threadpool_limits(1) created threads"
    assert r["restored"] == 2
    assert r["new_after"] >= 1, "the 2-thread call after the block started no worker"
    assert r["later_set"] == 3
    assert r["same"]


@needs_openmp
def test_set_num_threads_inside_threadpool_limits_applies_to_every_thread():
    """set_num_threads called inside a threadpool_limits(1) block is the later call: it
    applies in that thread, in other threads (whose OpenMP count the block does not touch),
    and after the block."""
    with threadpoolctl.threadpool_limits(1):
        onexone.set_num_threads(3)  # restored by conftest
        assert onexone.get_num_threads() == 3
        assert _in_other_thread(onexone.get_num_threads) == 3
    assert onexone.get_num_threads() == 3
