"""The one table of test configurations: every public estimator, found by
:func:`skcfae.utils.all_estimators`, with its fast settings.

``TINY`` configurations feed sklearn's ``check_estimator`` (seconds, any data); ``CONTRACT``
configurations must learn the planted-groups data of ``conftest.planted`` well enough to beat
popularity clearly (the ranking and rating contract suites). A new model adds one line to each
table; a test fails while an exported estimator has none.
"""

from skcfae.utils import all_estimators

_TINY_NN = dict(epochs=2, batch_size=16, n_iter_no_change=None, random_state=0, device="cpu")
_FAST_NN = dict(epochs=30, batch_size=100, learning_rate=1e-2, random_state=0, device="cpu")

TINY = {
    "ALSWR": dict(n_components=2, epochs=3, random_state=0),
    "AutoRec": dict(n_components=4, **_TINY_NN),
    "BPR": dict(n_components=2, epochs=2, fold_in_epochs=2, random_state=0),
    "BiasedMF": dict(n_components=2, epochs=3, random_state=0),
    "CDAE": dict(n_components=4, **_TINY_NN),
    "CFN": dict(**_TINY_NN),
    # sklearn's checks feed values near 100, on which SGD at the survey's 1e-3 diverges (and
    # the fit now says so): a smaller step keeps the checks about the API
    "DeepRec": dict(n_components=4, hidden_layer_sizes=(4,), learning_rate=1e-5, **_TINY_NN),
    "EALS": dict(n_components=2, epochs=3, random_state=0),
    "EASE": dict(lam=10.0),
    "FCDAE": dict(K=4, **_TINY_NN),
    "ItemGrouper": dict(K=2, R=1, random_state=0),  # F="auto": min(50, K) = 2
    "MultDAE": dict(n_components=8, **_TINY_NN),
    "MultVAE": dict(n_components=4, hidden_layer_sizes=(8,), **_TINY_NN),
    "NCAE": dict(hidden_layer_sizes=(4, 4), pretrain_epochs=1, **_TINY_NN),
    "NCAEImplicit": dict(hidden_layer_sizes=(4,), sparsity_threshold=0.5, **_TINY_NN),
    "NCF": dict(n_components=4, fold_in_epochs=2, **_TINY_NN),
    "Popularity": dict(),
    "SLIM": dict(l1_reg=0.5, l2_reg=0.5),
    "SVAE": dict(embedding_size=4, gru_size=4, missing_timestamps="shuffle", **_TINY_NN),
    "SparseWideDAE": dict(K=2, R=1, F=2, **_TINY_NN),
    "WMF": dict(n_components=2, epochs=3, device="cpu", random_state=0),
}

CONTRACT = {
    "ALSWR": dict(n_components=3, l2_reg=0.1, epochs=10, random_state=0),
    "AutoRec": dict(n_components=32, l2_reg=1e-3, **{**_FAST_NN, "epochs": 60, "batch_size": 32}),
    "BPR": dict(n_components=16, learning_rate=0.05, epochs=30, random_state=0),
    "BiasedMF": dict(n_components=3, learning_rate=0.01, epochs=40, random_state=0),
    "CDAE": dict(n_components=32, **_FAST_NN),
    "CFN": dict(hidden_ratios=(0.2,), **{**_FAST_NN, "batch_size": 4, "learning_rate": 0.05}),
    "DeepRec": dict(n_components=128, hidden_layer_sizes=(32,), **{**_FAST_NN, "batch_size": 16}),
    "EALS": dict(n_components=16, c0=50.0, epochs=20, random_state=0),
    "EASE": dict(lam=20.0),
    "FCDAE": dict(K=30, **{**_FAST_NN, "epochs": 60}),
    "ItemGrouper": dict(K=15, R=2, F=15, random_state=0),
    "MultDAE": dict(n_components=32, **_FAST_NN),
    "MultVAE": dict(n_components=16, hidden_layer_sizes=(64,), total_anneal_steps=200, **_FAST_NN),
    "NCAE": dict(hidden_layer_sizes=(32, 32), pretrain_epochs=3, **{**_FAST_NN, "batch_size": 32}),
    "NCAEImplicit": dict(hidden_layer_sizes=(32,), c0=20.0, **_FAST_NN),
    "NCF": dict(n_components=32, epochs=10, batch_size=64, random_state=0, device="cpu"),
    "Popularity": dict(),
    "SLIM": dict(),
    "SVAE": dict(gru_size=64, l2_reg=0.0, missing_timestamps="shuffle", **_FAST_NN),
    "SparseWideDAE": dict(K=60, R=6, F=15, **_FAST_NN),
    "WMF": dict(n_components=16, alpha=4.0, epochs=10, device="cpu", random_state=0),
}


def instances(table: dict, type_filter=None) -> list:
    """One configured instance per discovered estimator (of ``type_filter``)."""
    out = []
    for name, cls in all_estimators(type_filter):
        if name not in table:
            raise KeyError(f"{name} has no test configuration in tests/estimators.py")
        out.append(cls(**table[name]))
    return out


def ids(estimators: list) -> list[str]:
    return [type(e).__name__ for e in estimators]
