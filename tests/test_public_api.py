"""The public names: sorted __all__, all importable, torch loaded only by the models."""

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "skcfae",
    "skcfae.datasets",
    "skcfae.distributed",
    "skcfae.grouping",
    "skcfae.metrics",
    "skcfae.model_selection",
    "skcfae.models",
    "skcfae.nn",
    "skcfae.parallel",
    "skcfae.utils",
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


def test_estimators_are_public_at_the_top_level_and_in_models():
    import skcfae
    import skcfae.models
    from skcfae.utils import all_estimators

    found = all_estimators()
    assert len(found) >= 7
    for name, cls in found:
        assert name in skcfae.__all__ and hasattr(cls, "fit")
        if cls.__module__.startswith("skcfae.models."):
            assert getattr(skcfae.models, name) is cls


def test_registry_does_not_import_torch_until_asked():
    code = (
        "import sys, skcfae.utils; assert 'torch' not in sys.modules;"
        "skcfae.utils.all_estimators(); assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
