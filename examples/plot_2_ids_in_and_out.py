"""
From a table of ids to recommendations by id
============================================

Interaction logs come as a long table, one row per (user, item) event, with the ids of your
own system. The models work on a users x items matrix of positions. An
:class:`~skcfae.preprocessing.InteractionEncoder` translates one into the other, and
:func:`~skcfae.preprocessing.recommend_ids` runs the whole round trip: ids in, recommendations
by id out, for users of the training table as well as for new users given as lists of item
ids.
"""

# %%
# A log of ids
# ------------
# We turn the synthetic generator's matrix into a log with string user ids and integer
# item ids that are not positions, in no particular row order, as a database export would
# be.
import numpy as np
import pandas as pd

from skcfae import SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.preprocessing import InteractionEncoder, recommend_ids

M = make_interactions(n_users=1500, n_items=300, n_groups=15, density=0.1, random_state=0)
rows, cols = M.nonzero()
log = pd.DataFrame({"user": [f"user-{r:04d}" for r in rows], "item": 1000 + 7 * cols})
log = log.sample(frac=1.0, random_state=0).reset_index(drop=True)
print(log.head())
print(len(log), "interactions")

# %%
# Ids in
# ------
# The encoder learns the distinct user and item ids (sorted) and builds the sparse matrix:
# row ``u`` is user ``encoder.users_[u]``, column ``i`` is item ``encoder.items_[i]``.
encoder = InteractionEncoder("user", item_col="item")
X = encoder.fit_transform(log)
print(type(X).__name__, X.shape, X.dtype)
print("first users:", encoder.users_[:3], " first items:", encoder.items_[:3])

# %%
# Fit
# ---
# Any recommender takes the matrix. Here a Sw-dae (Khawar, Poon and Zhang, WWW 2020) with 100
# learned item groups and 10 groups per item, trained for a fixed 40 epochs to keep the
# example short.
model = SparseWideDAE(K=100, R=10, epochs=40, early_stopping=False, device="cpu", random_state=0)
model.fit(X)

# %%
# Recommendations for a known user, by id
# ---------------------------------------
# ``users=`` takes ids of the training table; the model reads their training history and
# never recommends an item they already have. The result is a long table again.
recs = recommend_ids(model, encoder, users=["user-0042"], n=5)
print(recs)
seen = set(log.loc[log.user == "user-0042", "item"])
print("any already seen?", bool(seen & set(recs["item"])))

# %%
# Recommendations for a new user, from item ids
# ---------------------------------------------
# A user who was not in the training table, known only by the items they have: no refit is
# needed (fold-in). Unknown item ids would be dropped with a warning. We take items that
# often go together: the items of one training user.
history = sorted(log.loc[log.user == "user-0007", "item"])[:8]
print("new user's items:", history)
print(recommend_ids(model, encoder, histories={"new-user": history}, n=5))

# %%
# Several new users at once, and only some candidate items (for example those in stock):
in_stock = encoder.items_[::2]
new_users = {"ann": history[:4], "bob": history[4:]}
recs = recommend_ids(model, encoder, histories=new_users, n=3, items=in_stock)
print(recs)
assert np.isin(recs["item"], in_stock).all()
