"""The public names: sorted __all__, all importable, torch loaded only by the models."""

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "skcfae",
    "skcfae.datasets",
    "skcfae.grouping",
    "skcfae.metrics",
    "skcfae.model_selection",
    "skcfae.models",
    "skcfae.nn",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_importable(name):
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, attr


@pytest.mark.parametrize(
    "name",
    ["skcfae", "skcfae.datasets", "skcfae.grouping", "skcfae.metrics", "skcfae.model_selection"],
)
def test_light_modules_do_not_import_torch(name):
    code = f"import sys, {name}; assert 'torch' not in sys.modules, '{name} imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_estimators():
    import skcfae

    for name in (
        "EASE",
        "FCDAE",
        "ItemGrouper",
        "MultDAE",
        "MultVAE",
        "Popularity",
        "SparseWideDAE",
    ):
        assert name in skcfae.__all__ and hasattr(getattr(skcfae, name), "fit")
