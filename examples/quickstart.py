"""Quick start: fit the recommenders on built-in synthetic data and compare them.

Runs offline in about a minute on 2 CPU cores (``make demo``). The data has planted overlapping
item groups and skewed item popularity; the protocol is the strong-generalization split of
Liang et al. 2018 (as in Khawar et al., WWW 2020, §4.1): models never see the test users during
training and recommend for them from 80% of their history, evaluated on the other 20%.
"""

import time

import numpy as np
from sklearn.pipeline import Pipeline

from skcfae import EASE, ItemGrouper, MultDAE, MultVAE, Popularity, SparseWideDAE, recommend
from skcfae.datasets import make_interactions
from skcfae.metrics import ndcg_at_k, recall_at_k
from skcfae.model_selection import strong_generalization_split


def main() -> None:
    X = make_interactions(n_users=6000, n_items=1500, n_groups=40, density=0.02, random_state=0)
    split = strong_generalization_split(X, n_heldout_users=500)
    print(
        f"data: {X.shape[0]} users x {X.shape[1]} items, {X.nnz} interactions; "
        f"train {split.train.shape[0]} users, 500 validation + 500 test users"
    )
    valid = (split.valid_fold_in, split.valid_holdout)
    models = {
        "Popularity": Popularity(),
        "EASE": EASE(lam=100.0),
        "Mult-DAE": MultDAE(epochs=100, random_state=0),
        "Mult-VAE": MultVAE(epochs=100, total_anneal_steps=2000, random_state=0),
        "Sw-dae": Pipeline(
            [
                ("group", ItemGrouper(K=500, random_state=0)),
                ("dae", SparseWideDAE(epochs=100, learning_rate=1e-2, random_state=0)),
            ]
        ),
    }
    print(f"\n{'model':<11} {'NDCG@100':>9} {'Recall@20':>10} {'Recall@50':>10} {'fit s':>7}")
    for name, model in models.items():
        tic = time.perf_counter()
        if isinstance(model, Pipeline):  # fit params of a step: "<step>__<name>"
            model.fit(split.train, dae__X_valid=valid)
        else:
            model.fit(split.train, **({"X_valid": valid} if hasattr(model, "epochs") else {}))
        elapsed = time.perf_counter() - tic
        scores = model.decision_function(split.test_fold_in)
        scores[split.test_fold_in.nonzero()] = -np.inf
        row = [
            f(split.test_holdout, scores, k=k)
            for f, k in ((ndcg_at_k, 100), (recall_at_k, 20), (recall_at_k, 50))
        ]
        print(f"{name:<11} {row[0]:9.3f} {row[1]:10.3f} {row[2]:10.3f} {elapsed:7.1f}")
    top = recommend(models["Sw-dae"], split.test_fold_in[:3], n=5)
    print(f"\nSw-dae top-5 items for the first three test users:\n{top}")


if __name__ == "__main__":
    main()
