import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SKCFAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data next to the repo root; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def planted():
    """A small planted-groups data set: (X_train, X_fold_in, X_holdout) over the same items."""
    from skcfae.datasets import make_interactions
    from skcfae.model_selection import fold_in_split

    X = make_interactions(
        n_users=600,
        n_items=150,
        n_groups=15,
        density=0.06,
        noise=0.05,
        popularity_exponent=0.7,
        random_state=0,
    )
    fold_in, holdout = fold_in_split(X[500:], random_state=0)
    return X[:500], fold_in, holdout
