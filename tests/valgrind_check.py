"""Run a command under valgrind's memcheck and fail on any error in onexone's code.

    python tests/valgrind_check.py python tests/test_memory.py guard all

CPython, NumPy and the dynamic loader have known memcheck reports of their own (uninitialised
values in CPython's int/hash code, ld.so's word-wise strncmp); those are counted and shown,
not failed on. Any error with a frame in onexone (its extension module, ``oxo_*`` functions or
``csrc/`` files) fails, as does the command itself failing. Used by ``make valgrind``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

OURS = re.compile(r"_core\.cpython|\boxo_|csrc/|onexone")
KINDS = re.compile(r"^(Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|"
                   r"Syscall param|Source and destination overlap|Argument '\w+' of function)")


def main(argv) -> int:
    if not argv:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "memcheck.log")
        env = dict(os.environ, PYTHONMALLOC="malloc")
        cmd = ["valgrind", "--tool=memcheck", "--leak-check=no", "--num-callers=40", f"--log-file={log}"] + argv
        run = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        rc = run.returncode
        print("\n".join(run.stdout.splitlines()[-3:]))  # the command's last words
        with open(log) as f:
            lines = [re.sub(r"^==\d+== ?", "", line.rstrip("\n")) for line in f]
    blocks, cur = [], []
    for line in lines + [""]:
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    errors = [b for b in blocks if KINDS.match(b[0])]
    ours = [b for b in errors if any(OURS.search(line) for line in b)]
    invalid = [b for b in errors if b[0].startswith("Invalid")]
    summary = next((line for line in lines if line.startswith("ERROR SUMMARY")), "no ERROR SUMMARY")
    print(f"valgrind memcheck: {' '.join(argv)}")
    print(f"  command exit status {rc}; {summary}")
    print(f"  error contexts: {len(errors)} ({len(invalid)} invalid reads/writes/frees), in onexone's code: {len(ours)}")
    others = {}
    for b in errors:
        if b not in ours:
            where = next((line.strip() for line in b[1:] if line.strip().startswith("at ")), "?")
            key = f"{b[0]} {re.sub(r'at 0x[0-9A-F]+: ', '', where)}"
            others[key] = others.get(key, 0) + 1
    for key, n in sorted(others.items(), key=lambda kv: -kv[1]):
        print(f"  not onexone's ({n} context{'s' if n > 1 else ''}): {key}")
    for b in ours:
        print("\n".join(["  ONEXONE:"] + ["    " + line for line in b]))
    return 1 if ours or rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
