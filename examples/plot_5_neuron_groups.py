"""
What the hidden neurons of a Sw-dae stand for
=============================================

Each hidden neuron of a Sw-dae is an overlapping group of items, learned from the users'
histories before training (:class:`~skcfae.ItemGrouper`). Khawar, Poon and Zhang (*Learning
the Structure of Auto-Encoding Recommenders*, WWW 2020, §5.10, Table 8 and Figure 8) look
up the IMDB genres of the movies of each neuron on MovieLens 20M: a neuron gathers
thematically related movies (horror, thriller and sci-fi in one; children's films and
comedies in another).

The synthetic generator plants such "genres": every item belongs to 2 of the planted groups
and every user is interested in 1 to 3 of them. ``return_groups=True`` returns them, so we
can measure how much of each neuron is made of each planted group. The model never sees
them.
"""

# %%
# Data with its planted groups
# ----------------------------
import matplotlib.pyplot as plt
import numpy as np

from skcfae import SparseWideDAE
from skcfae.datasets import make_interactions

X, item_groups, _ = make_interactions(
    n_users=1500, n_items=300, n_groups=15, density=0.1, random_state=0, return_groups=True
)
per_item = int(item_groups.sum(axis=1).max())
print("items x planted groups:", item_groups.shape, "; groups per item:", per_item)

# %%
# A Sw-dae with 30 neurons
# ------------------------
# Used alone, :class:`~skcfae.SparseWideDAE` fits its own grouper (``grouper_``); the
# connectivity ``membership_`` is an items x neurons 0/1 matrix with R = 3 ones per item.
# It is fixed before training, so a few epochs are enough for this example.
model = SparseWideDAE(K=30, R=3, epochs=5, early_stopping=False, device="cpu", random_state=0)
model.fit(X)
M = model.membership_
print("items x neurons:", M.shape, "; neurons per item:", int(M.sum(1).max()))

# %%
# The make-up of each neuron
# --------------------------
# ``share[k, g]`` is the fraction of the items connected to neuron ``k`` that belong to
# planted group ``g``. An item has two groups, so a row sums to 2.
size = np.asarray(M.sum(axis=0)).ravel()
share = (M.T @ item_groups).toarray() / size[:, None]

# Table 8 analogue: the top three groups of a few neurons.
for k in (0, 1, 2, 3):
    top = np.argsort(-share[k])[:3]
    print(
        f"neuron {k:2d} ({int(size[k])} items): "
        + ", ".join(f"group {g} ({100 * share[k, g]:.0f}%)" for g in top)
    )
print(f"mean share of a neuron's top group: {share.max(axis=1).mean():.0%}")

# %%
# The heat map: neurons sorted by their main group. Most neurons are dominated by one planted
# group; the lighter cells in the same row are the groups that share items with it (every
# item belongs to two groups, as a film has several genres).
order = np.lexsort((-share.max(axis=1), share.argmax(axis=1)))
fig, ax = plt.subplots(figsize=(6, 6.5))
image = ax.imshow(share[order], aspect="auto", cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(share.shape[1]))
ax.set_yticks(range(len(order)), [str(k) for k in order])
ax.set_xlabel("planted item group")
ax.set_ylabel("hidden neuron")
fig.colorbar(image, ax=ax, label="share of the neuron's items")
fig.tight_layout()

# %%
# Does every planted group get neurons of its own?
# ------------------------------------------------
# For each planted group, the neuron with the largest share of it, that share, and the
# fraction of the group's items that neuron connects to. Most groups have a neuron made
# mostly of their items; with twice as many neurons as planted groups, a group is often split
# over several neurons, hence coverages well below 100%.
group_size = np.asarray(item_groups.sum(axis=0)).ravel()
counts = (M.T @ item_groups).toarray()  # neurons x groups: items in common
for g in range(share.shape[1]):
    k = int(np.argmax(share[:, g]))
    print(
        f"group {g:2d} ({int(group_size[g])} items): neuron {k:2d}, "
        f"share {share[k, g]:.0%}, coverage {counts[k, g] / group_size[g]:.0%}"
    )
