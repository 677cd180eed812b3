"""
Accuracy against the width K: Sw-dae and Fc-dae
===============================================

Khawar, Poon and Zhang (*Learning the Structure of Auto-Encoding Recommenders*, WWW 2020,
§5.3-5.4, Figure 5) compare, at equal width K, their sparse and wide autoencoder (Sw-dae:
each item connected to the R = K/10 neurons of its groups) with the same network fully
connected (Fc-dae, :class:`~skcfae.FCDAE`). On ML-20M and MSD the accuracy of Sw-dae grows
with the width until it plateaus, while a wider Fc-dae (or Mult-DAE, Mult-VAE) does not
gain. This example runs the experiment in small, on synthetic data; the figures measured on
MovieLens are on the :doc:`/results` page.
"""

# %%
# Users for training, validation and test
# ---------------------------------------
# Every fit is validated on the same 150 held-out users and keeps its best epoch; the test
# users are scored once at the end.
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skcfae import FCDAE, SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.exceptions import ConvergenceWarning
from skcfae.metrics import ndcg_at_k
from skcfae.model_selection import strong_generalization_split

X = make_interactions(n_users=1500, n_items=300, n_groups=15, density=0.1, random_state=0)
split = strong_generalization_split(X, n_heldout_users=150, random_state=0)
valid = (split.valid_fold_in, split.valid_holdout)


def test_ndcg(model):
    """NDCG@100 of the test users' hold-out items, ranking all but their fold-in items."""
    scores = model.decision_function(split.test_fold_in)
    scores[split.test_fold_in.nonzero()] = -np.inf
    return ndcg_at_k(split.test_holdout, scores, k=100)


# %%
# A small grid of widths
# ----------------------
# ``R`` stays at its default, K/10 rounded (at least 1). The epoch cap is kept small so that
# the example runs in seconds; a fit that is still improving at the cap says so with a
# :class:`~skcfae.exceptions.ConvergenceWarning`, which we silence here on purpose.
widths = [10, 50, 250]
results = {"Sw-dae": [], "Fc-dae": []}
n_parameters = {"Sw-dae": [], "Fc-dae": []}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for K in widths:
        for name, cls in (("Sw-dae", SparseWideDAE), ("Fc-dae", FCDAE)):
            model = cls(K=K, epochs=60, n_iter_no_change=10, device="cpu", random_state=0)
            model.fit(split.train, X_valid=valid)
            results[name].append(test_ndcg(model))
            n_parameters[name].append(model.n_parameters_)
            print(
                f"{name:6s} K={K:3d}: {model.n_parameters_:6d} parameters, "
                f"best epoch {model.best_epoch_:2d}, test NDCG@100 {results[name][-1]:.3f}"
            )

# %%
# The figure
# ----------
fig, (ax, ax_p) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for name, marker in (("Sw-dae", "o"), ("Fc-dae", "s")):
    ax.plot(widths, results[name], marker=marker, label=name)
    ax_p.plot(n_parameters[name], results[name], marker=marker, label=name)
ax.set_xscale("log")
ax.set_xticks(widths, [str(K) for K in widths])
ax.set_xlabel("width K (hidden neurons)")
ax.set_ylabel("test NDCG@100")
ax_p.set_xscale("log")
ax_p.set_xlabel("trainable parameters")
ax.legend()
fig.tight_layout()

# %%
# Both networks gain from width on this data. Unlike on ML-20M, the fully connected network
# is the more accurate from K = 50 on: the catalogue is small (300 items, 15 planted groups)
# and dense, where the dense weights are presumably well determined by the data. A Sw-dae of
# width K has about a tenth of the weights of the Fc-dae of the same width (R = K/10
# connections per item instead of K): per parameter (right panel) the Sw-dae is ahead, since
# at a fixed budget it can afford ten times the width.
# :func:`skcfae.models.matching_width` gives the K of a Sw-dae with as many parameters as
# another model (the paper's Sw-dae-p, §5.2).
