"""
Sw-dae as a Pipeline, and a grid search over its structure
==========================================================

The sparse and wide denoising autoencoder (Sw-dae) of Khawar, Poon and Zhang (*Learning the
Structure of Auto-Encoding Recommenders*, WWW 2020, §3) is two steps:

1. an :class:`~skcfae.ItemGrouper` learns ``K`` overlapping groups of items from the
   co-occurrence of items in the users' histories, and puts each item into its ``R`` closest
   groups (§3.1, Algorithms 1 and 2);
2. a :class:`~skcfae.SparseWideDAE` builds one hidden neuron per group and connects each item
   to the neurons of its groups only (§3.2-3.3).

In skcfae the two steps are a scikit-learn :class:`~sklearn.pipeline.Pipeline`, so the
structure is a hyper-parameter like any other: a :class:`~sklearn.model_selection.GridSearchCV`
can search ``group__K`` and ``group__R``, cross-validating over *users* with
:class:`~skcfae.model_selection.UserSplit` and scoring held-out items with
:func:`~skcfae.metrics.ndcg_scorer`.
"""

# %%
# Data
# ----
# 1,500 users over 300 items. Each item belongs to 2 of 15 planted groups, each user is
# interested in 1 to 3 groups; 10% of the interactions are noise drawn by popularity. The
# last 300 users are kept aside: no model trains on them.
import shutil
import tempfile

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skcfae import ItemGrouper, Popularity, SparseWideDAE, recommend
from skcfae.datasets import make_interactions
from skcfae.metrics import ndcg_scorer
from skcfae.model_selection import UserSplit

X = make_interactions(n_users=1500, n_items=300, n_groups=15, density=0.1, random_state=0)
X_train, X_test = X[:1200], X[1200:]
print(f"{X.shape[0]} users x {X.shape[1]} items, {X.nnz} interactions")

# %%
# The Pipeline
# ------------
# The paper's structure is K=1000 groups and R=K/10 groups per item (§4.3), on 20,000 items.
# On 300 items the grid below is smaller. Training runs for a fixed 40 epochs to keep the
# example fast; the default, ``early_stopping="auto"``, holds out 10% of the training users
# instead and keeps the best epoch.
#
# ``memory`` caches the grouper's spectral embedding of the items, which depends on the
# training users but not on K or R: the candidates of one fold share it, and only the
# k-means step reruns.
cache = tempfile.mkdtemp()
pipe = Pipeline(
    [
        ("group", ItemGrouper(K=100, R=10, memory=cache, random_state=0)),
        ("dae", SparseWideDAE(epochs=40, early_stopping=False, device="cpu", random_state=0)),
    ]
)

# %%
# Grid search over K and R
# ------------------------
# ``UserSplit`` trains each candidate on half of the training users and scores it on the
# other half: the scorer splits each held-out user's items 80/20, recommends from the 80%
# and computes NDCG@100 on the 20%.
grid = {"group__K": [25, 100], "group__R": [2, 5, 10]}
search = GridSearchCV(
    pipe, grid, cv=UserSplit(n_splits=2, random_state=0), scoring=ndcg_scorer(k=100)
)
search.fit(X_train)

results = pd.DataFrame(search.cv_results_)
print(
    results.pivot_table(
        index="param_group__K", columns="param_group__R", values="mean_test_score"
    ).round(3)
)
print("best:", search.best_params_)

fig, ax = plt.subplots(figsize=(5, 3.5))
for K, rows in results.groupby("param_group__K"):
    ax.errorbar(
        rows["param_group__R"],
        rows["mean_test_score"],
        yerr=rows["std_test_score"],
        marker="o",
        capsize=3,
        label=f"K = {K}",
    )
ax.set_xlabel("R (groups per item)")
ax.set_ylabel("NDCG@100 (mean over folds)")
ax.legend()
fig.tight_layout()

# %%
# Wider is better here, as in the paper's Figure 5, and the best R is close to 10% of K in
# both rows: the density the paper uses (§4.3, Figure 6). A reading: with few connections an
# item reaches too few neurons to be reconstructed from; with many, the neurons of a narrow
# network mix unrelated items.
#
# Users never seen in training
# ----------------------------
# The refitted best Pipeline recommends for the 300 held-out users from their rows alone (no
# refit; :func:`skcfae.recommend` runs the grouper's ``transform`` first), and beats
# recommending the most popular items:
scorer = ndcg_scorer(k=100)
print(f"Sw-dae     NDCG@100 = {scorer(search.best_estimator_, X_test):.3f}")
print(f"Popularity NDCG@100 = {scorer(Popularity().fit(X_train), X_test):.3f}")
print("top 5 items of the first test user:", recommend(search.best_estimator_, X_test[:1], n=5))
shutil.rmtree(cache)  # the embedding cache is no longer needed
