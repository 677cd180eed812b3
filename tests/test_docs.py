"""The code examples of the contributor docs run as written."""

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
RUNNABLE = ["data.md", "engine.md"]


def _blocks(page):
    text = (DOCS / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize(
    "page, index, code",
    [(page, i, code) for page in RUNNABLE for i, code in enumerate(_blocks(page))],
    ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else None,
)
def test_example_runs(page, index, code, monkeypatch):
    # a real module, so that classes the example defines can be pickled
    module = types.ModuleType(f"docs_example_{index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, f"{page}[{index}]", "exec"), module.__dict__)
