"""The README's Python snippets run as printed, each on its own in a fresh namespace (a reader
may copy any one of them), and give the shapes their comments name (a line
`name = ...  # (a, b, ...)` is checked after its snippet runs)."""
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SHAPE_COMMENT = re.compile(r"^(\w+) = .*#\s*(\(\d+(?:, \d+)*,?\))")


def _snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_snippets_and_starts_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block and text.index("```bash") < text.index("```python")
    commands = [ln for ln in first_block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("python -m onexone") and "pip install ." in commands[0]
    assert commands[1].endswith("pytest") and "pip install '.[test]'" in commands[1]
    assert len(_snippets()) >= 5


def test_readme_snippets_run_and_their_shapes_are_right():
    pytest.importorskip("dask.array")
    pytest.importorskip("threadpoolctl")
    checked = 0
    for snippet in _snippets():
        namespace = {}
        exec(compile(snippet, str(README), "exec"), namespace)
        for line in snippet.splitlines():
            m = SHAPE_COMMENT.match(line)
            if m:
                name, shape = m.group(1), eval(m.group(2))
                assert np.shape(namespace[name]) == shape, (line, np.shape(namespace[name]))
                checked += 1
    assert checked >= 4
