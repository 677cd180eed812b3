"""The documentation site: its pages stay self-contained, the API reference lists every public
name, and the whole site (the gallery examples run) builds with Sphinx warnings as errors."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "benchmarks" / "results"
GENERATED = {"_build", "generated", "auto_examples", "gen_modules", "sg_execution_times.rst"}

# Pages are read by users who have none of the development notes: no paths into them, no
# internal file numbers for the papers (cite authors, title, venue, DOI or arXiv id).
FORBIDDEN = {
    "a path to the development notes": re.compile(r"\.\./shared|shared/(?:papers|data)\b"),
    "the design notes": re.compile(r"DESIGN\.md"),
    "the style guide": re.compile(r"STYLE\.md"),
    "the papers folder": re.compile(r"\bpapers/"),
    "a paper's file name": re.compile(r"\b00[0-3]_[0-9a-f]{6,}"),
    # `000` alone; numbers such as 1,000 or 0.001 or #000 are fine
    "a paper's file number": re.compile(r"(?<![\w.,#])00[0-3](?![\w.,%])"),
}


def _pages():
    """Every source of the site: Markdown and reST pages, templates, the configuration, the
    examples and the committed benchmark tables that results.md includes."""
    found = []
    for path in sorted(DOCS.rglob("*")):
        parts = path.relative_to(DOCS).parts
        if path.is_file() and not GENERATED & set(parts) and path.suffix in {".md", ".rst", ".py"}:
            found.append(path)
    found += sorted(EXAMPLES.glob("*.py")) + sorted(EXAMPLES.glob("*.rst"))
    found += sorted(RESULTS.glob("*.md"))
    return found


def test_pages_are_found():
    names = {p.name for p in _pages()}
    assert {"index.md", "api.rst", "conf.py", "results.md", "GALLERY_HEADER.rst"} <= names
    assert len([n for n in names if n.startswith("plot_")]) >= 6


@pytest.mark.parametrize("path", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_names_no_internal_notes(path):
    text = path.read_text(encoding="utf-8")
    for what, pattern in FORBIDDEN.items():
        hits = [
            f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
            for m in pattern.finditer(text)
        ]
        assert not hits, f"{path.name} mentions {what}: {hits}"


@pytest.mark.parametrize(
    "text",
    ["see ../shared/papers/x", "as in `000` §3", "papers/003_ab12cd34ef56 says", "DESIGN.md"],
)
def test_forbidden_patterns_catch(text):
    assert any(p.search(text) for p in FORBIDDEN.values())


@pytest.mark.parametrize("text", ["1,000 users", "lr 0.001", "1.000 (1.00)", "color #000;"])
def test_forbidden_patterns_spare_numbers(text):
    assert not any(p.search(text) for p in FORBIDDEN.values())


def _api_entries():
    """Full names listed in the autosummary tables of docs/api.rst."""
    names, module, in_table = set(), None, False
    for line in (DOCS / "api.rst").read_text().splitlines():
        if m := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = m.group(1)
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and line.strip() and not line.startswith(" "):
            in_table = False
        elif in_table and line.startswith("   ") and not line.strip().startswith(":"):
            names.add(f"{module}.{line.strip()}")
    return names


def test_api_reference_lists_every_public_name():
    import skcfae

    top = set(skcfae.__all__) - {"__version__"}
    wanted = {f"skcfae.{name}" for name in top}
    for sub in (
        "models",
        "grouping",
        "metrics",
        "model_selection",
        "preprocessing",
        "datasets",
        "exceptions",
        "utils",
        "nn",
        "parallel",
        "distributed",
    ):
        module = importlib.import_module(f"skcfae.{sub}")
        wanted |= {f"skcfae.{sub}.{name}" for name in module.__all__ if name not in top}
    listed = _api_entries()
    assert not wanted - listed, f"add to docs/api.rst: {sorted(wanted - listed)}"
    assert not listed - wanted, f"not public, remove from docs/api.rst: {sorted(listed - wanted)}"


def test_gallery_examples_tell_a_story():
    examples = sorted(EXAMPLES.glob("plot_*.py"))
    assert len(examples) >= 6
    for path in examples:
        text = path.read_text()
        # a title (the module docstring) and text cells between the code
        assert text.startswith('"""\n') and "\n===" in text.split('"""')[1], path.name
        assert text.count("\n# %%\n") >= 3, path.name
        assert "make_interactions" in text, path.name


def _build_tools():
    for name in ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser", "pydata_sphinx_theme"):
        pytest.importorskip(name, reason=f"{name} is not installed: pip install -e '.[docs]'")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the gallery plots)")


def test_site_builds_without_warnings(tmp_path):
    """``sphinx-build -W`` of a copy of the sources: every docstring, page and example."""
    _build_tools()
    ignore = shutil.ignore_patterns(*GENERATED)
    shutil.copytree(DOCS, tmp_path / "docs", ignore=ignore)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    for path in [*RESULTS.glob("*.md"), *RESULTS.glob("*.png")]:
        shutil.copy2(path, tmp_path / "benchmarks" / "results" / path.name)
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(tmp_path / "docs"), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, f"sphinx-build failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    for page in ("index.html", "api.html", "results.html", "models.html", "quickstart.html"):
        assert (out / page).is_file(), page
    for example in sorted(EXAMPLES.glob("plot_*.py")):
        html = (out / "auto_examples" / f"{example.stem}.html").read_text()
        assert "sphx-glr-script-out" in html, example.name  # it ran and printed
    assert not (out / "auto_examples" / "quickstart.html").exists()  # the demo is not run
    figures = sorted((out / "_images").glob("sphx_glr_plot_*_001.png"))
    assert len(figures) >= 5, [f.name for f in figures]

    swdae = (out / "generated" / "skcfae.SparseWideDAE.html").read_text()
    assert "recommend" in swdae and "decision_function" in swdae  # skcfae's inherited methods
    assert "get_metadata_routing" not in swdae  # scikit-learn's are left out
    assert "Examples using" in swdae  # the mini-gallery of the examples that use it

    results = (out / "results.html").read_text()
    for png in RESULTS.glob("*.png"):
        assert f"_images/{png.name}" in results, png.name
    assert "Table 3 analogue: ml-1m" in results
