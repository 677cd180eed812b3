"""The code examples of the contributor docs run as written."""

import importlib.util
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


# -- the README's Usage example and the demo --------------------------------------------------
ROOT = DOCS.parent
_ALTERNATIVE = re.compile(
    r"^X = make_interactions\(.*\)\s+# or (load_movielens\(\"(\w+)\"\)\.data)$", re.M
)


def _readme_usage():
    """The first python block under the README's "## Usage" heading."""
    usage = (ROOT / "README.md").read_text().split("\n## Usage\n", 1)[1]
    return re.search(r"```python\n(.*?)```", usage, flags=re.S).group(1)


def _printed_as_commented(code, out):
    """The numbers the example prints match those its comment says it prints (to 0.01)."""
    said = re.search(r"^# ([\d. ]+):", code, flags=re.M).group(1).split()
    printed = out.split()
    assert len(printed) == len(said)
    for got, expected in zip(printed, said, strict=True):
        assert abs(float(got) - float(expected)) <= 0.01, (printed, said)


def test_readme_usage_runs_as_written(capsys):
    code = _readme_usage()
    exec(compile(code, "README.md[Usage]", "exec"), {})
    _printed_as_commented(code, capsys.readouterr().out)


@pytest.mark.realdata
def test_readme_usage_runs_on_the_local_data_it_names(shared_data, capsys):
    # the README's comment names a loader; with the local copy passed as path=, the rest of
    # the example runs unchanged on real data
    code = _readme_usage()
    line = _ALTERNATIVE.search(code)
    assert line is not None, "the README's Usage example no longer names a real data set"
    folder = shared_data / f"ml-{line.group(2)}"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    real = line.group(1).replace(
        f'("{line.group(2)}")', f'("{line.group(2)}", path={str(folder)!r})'
    )
    code = code.replace(line.group(0), f"from skcfae.datasets import load_movielens\nX = {real}")
    namespace = {}
    exec(compile(code, "README.md[Usage, real data]", "exec"), namespace)
    assert namespace["top20"].shape == (300, 20)
    ndcg, ease = map(float, capsys.readouterr().out.split())
    assert 0.3 < ndcg < 1 and 0.3 < ease < 1  # far above what popularity gets on ml-100k


def test_demo_runs_on_reduced_data(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    demo = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "quickstart", demo)
    spec.loader.exec_module(demo)
    results = demo.main(n_users=500, n_items=100, n_heldout=50)
    out = capsys.readouterr().out
    assert list(results) == ["Popularity", "EASE", "Mult-DAE", "Sw-dae"]
    for name, row in results.items():
        assert f"{name:<11} {row['ndcg@100']:9.3f}" in out  # the table prints what was measured
    ranking = sorted(results, key=lambda m: -results[m]["ndcg@100"])
    assert ("By test NDCG@100 on this run: " + " > ".join(ranking)) == re.sub(
        r" \([\d.]+\)", "", re.search(r"^By test NDCG@100 on this run: .*$", out, re.M).group(0)
    )
    assert results["Sw-dae"]["ndcg@100"] > results["Popularity"]["ndcg@100"]
    assert "ItemGrouper(K=20, R=2) + SparseWideDAE()" in out
