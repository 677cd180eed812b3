"""
Training curves from ``history_``
=================================

Every neural model records one entry per epoch in ``history_``: the epoch number, the mean
training loss, the wall time and, when it validates, the NDCG@100 of the validation users
(``valid_ndcg``). With validation, training keeps the weights of the best epoch
(``best_epoch_``) and stops after ``n_iter_no_change`` epochs without improvement.

Here a Sw-dae (Khawar, Poon and Zhang, WWW 2020) and a Mult-DAE (Liang, Krishnan, Hoffman
and Jebara, *Variational Autoencoders for Collaborative Filtering*, WWW 2018) are trained
on the same users and validated on the same held-out users.
"""

# %%
# Users for training, validation and test
# ---------------------------------------
# :func:`~skcfae.model_selection.strong_generalization_split` holds out whole users: 150
# validation and 150 test users, each split into 80% fold-in items (the model's input) and
# 20% hold-out items (the items to find).
import matplotlib.pyplot as plt

from skcfae import MultDAE, SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.model_selection import strong_generalization_split

X = make_interactions(n_users=1500, n_items=300, n_groups=15, density=0.1, random_state=0)
split = strong_generalization_split(X, n_heldout_users=150, random_state=0)
valid = (split.valid_fold_in, split.valid_holdout)
print("training users:", split.train.shape[0])

# %%
# Fit with validation
# -------------------
# ``X_valid`` takes the (fold-in, hold-out) pair of the validation users; the models score
# them after every epoch. ``epochs`` is only a cap here: both models stop once 15 epochs in
# a row have not improved on their best validation NDCG@100.
models = {
    "Sw-dae": SparseWideDAE(K=100, R=10, epochs=300, n_iter_no_change=15, random_state=0),
    "Mult-DAE": MultDAE(epochs=300, n_iter_no_change=15, random_state=0),
}
for name, model in models.items():
    model.set_params(device="cpu").fit(split.train, X_valid=valid)
    print(f"{name}: {len(model.history_)} epochs run, best epoch {model.best_epoch_}")
    print("   last record:", {k: round(v, 4) for k, v in model.history_[-1].items()})

# %%
# The curves
# ----------
# The two losses are on different scales (Sw-dae's Bernoulli log-likelihood sums over all
# items, Mult-DAE's multinomial one over the user's items), so each gets its own panel. The
# dotted lines mark the best epochs, whose weights the models keep.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, (name, model) in zip(axes[:2], models.items(), strict=True):
    epochs = [h["epoch"] for h in model.history_]
    ax.plot(epochs, [h["train_loss"] for h in model.history_], color="C0")
    ax.set_title(f"{name}: training loss")
    ax.set_xlabel("epoch")
for i, (name, model) in enumerate(models.items()):
    epochs = [h["epoch"] for h in model.history_]
    axes[2].plot(epochs, [h["valid_ndcg"] for h in model.history_], color=f"C{i}", label=name)
    axes[2].axvline(model.best_epoch_, color=f"C{i}", linestyle=":")
axes[2].set_title("validation NDCG@100")
axes[2].set_xlabel("epoch")
axes[2].legend()
fig.tight_layout()

# %%
# Test users
# ----------
# The test users are scored once, with the weights of the best validation epoch: every item
# is ranked by its score, except the user's fold-in items (score ``-inf``).
import numpy as np  # noqa: E402

from skcfae.metrics import ndcg_at_k  # noqa: E402

for name, model in models.items():
    scores = model.decision_function(split.test_fold_in)
    scores[split.test_fold_in.nonzero()] = -np.inf
    print(f"{name}: test NDCG@100 = {ndcg_at_k(split.test_holdout, scores, k=100):.3f}")
