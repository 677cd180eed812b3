"""Type aliases used in public signatures."""

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

InteractionMatrix = sp.spmatrix | sp.sparray | npt.ArrayLike
"""Anything :func:`check_interactions` accepts: scipy sparse or array-like, (n_users, n_items)."""

RandomState = int | np.random.RandomState | None
