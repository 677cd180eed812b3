"""Sphinx configuration of the skcfae documentation site (``make docs``).

The pages are the Markdown files of this folder (read by myst-parser), the API reference
generated from the numpydoc docstrings (``api.rst``, autosummary) and a gallery of runnable
examples (``examples/plot_*.py``, sphinx-gallery). The build fetches nothing from the network:
no intersphinx inventories, and the theme ships its own assets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's skcfae, also without an editable install

os.environ.setdefault("MPLBACKEND", "Agg")

import skcfae  # noqa: E402

project = "skcfae"
author = "the skcfae developers"
copyright = "the skcfae developers"
release = skcfae.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
]

# No network at build time: no intersphinx inventories to fetch.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# -- Markdown pages (myst-parser) ----------------------------------------------------------
# Anchors for headings down to ###, so that links like ``evaluation.md#ratings`` resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# -- API reference (autodoc, autosummary, numpydoc) -------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc Parameters sections give the types
autodoc_member_order = "groupwise"
numpydoc_show_class_members = False  # members come from the class template (autodoc)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
add_module_names = False


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out members that skcfae inherits from scikit-learn (``get_params``, ...).

    Their docstrings link to scikit-learn's own user guide, which this site does not have;
    the class pages keep every method that skcfae defines, inherited ones included
    (``recommend``, ``score`` of the recommender mixin).
    """
    if skip:
        return skip
    module = getattr(getattr(obj, "__func__", obj), "__module__", None) or ""
    if what == "class" and callable(obj) and not module.startswith("skcfae"):
        return True
    return None


def _unlink_metric_names(app, doctree):
    """Keep ``NDCG@100`` as text: docutils reads ``name@number`` as an e-mail address.

    No page of this site links to an e-mail address, so every ``mailto:`` reference that
    docutils made from plain text becomes its text again.
    """
    from docutils import nodes

    for ref in list(doctree.findall(nodes.reference)):
        if ref.get("refuri", "").startswith("mailto:") and ref.astext() in ref["refuri"]:
            ref.replace_self(nodes.Text(ref.astext()))


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("doctree-read", _unlink_metric_names)


# -- Example gallery (sphinx-gallery) --------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Only the plot_*.py files run; examples/quickstart.py is the `make demo` script.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|quickstart)\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skcfae",),
    "backreferences_dir": "gen_modules/backreferences",
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_signature": False,
}

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skcfae {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 1,
    "header_links_before_dropdown": 6,
    # the examples' code is up to 100 characters wide: give it the room of the page outline
    "secondary_sidebar_items": {
        "**": ["page-toc"],
        **{f"auto_examples/{p.stem}": [] for p in (ROOT / "examples").glob("plot_*.py")},
    },
}
html_sidebars = {"index": [], "results": []}
html_static_path: list[str] = []
html_show_sourcelink = False
