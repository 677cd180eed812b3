"""NCAE for implicit feedback: the Neural Collaborative Autoencoder of Li, Zheng and Wu
(arXiv:1712.09043, §4.1-4.2, §5.1, §5.3) as a top-n recommender.

The explicit (rating) NCAE is :class:`~skcfae.NCAE`, a rating model (``predict``, -RMSE
``score``, item-based by default, output mapped onto the rating range). The implicit setting
is a ranking model with another loss (the whole-row, popularity-reweighted squared error of
Eq. 10-11), another training set (the sparsity-aware data augmentation of §4.2) and the
ranking contract, so it is its own estimator, :class:`NCAEImplicit`. It reuses the explicit
model's network (:class:`~skcfae.models._ncae._NCAENet` without the rating-scale map: a
sparse first layer, tanh everywhere) and its input dropout on the observed entries.
"""

from __future__ import annotations

from functools import partial
from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from ..base import shared_args
from ..nn import Batch, Phase, TrainConfig, TrainState, user_rows
from ..nn._engine import PhaseFactory
from ._eals import missing_weights
from ._ncae import _drop_observed, _NCAENet
from ._neural import NEURAL_CONSTRAINTS, RESUME_CONSTRAINTS, NeuralRecommender

__all__ = ["NCAEImplicit", "ncae_implicit_loss", "sparsity_aware_augmentation"]


def ncae_implicit_loss(output: Tensor, batch: Batch, weights: Tensor) -> Tensor:
    """Eq. 11 of Li et al., averaged over the rows of the batch (the data term of Eq. 6).

    For a row u with observed items K(u) (target 1) and every other item j (target 0,
    weight ``c_j``)::

        Σ_{j ∈ K(u)} (ŷ_uj - 1)²  +  Σ_{j ∉ K(u)} c_j ŷ_uj²

    computed from one dense output as
    ``Σ_{j ∈ K(u)} (ŷ_uj - 1)² + Σ_{all j} c_j ŷ_uj² - Σ_{j ∈ K(u)} c_j ŷ_uj²``: a
    (b, n_items) by (n_items,) product for the middle term and the stored entries only for
    the other two, so no (b, n_items) mask of the unobserved items is built. Rows are summed
    and divided by the number of rows (Eq. 11 is not divided by |K(u)|).

    Parameters
    ----------
    output : Tensor of shape (b, n_items)
        The network's output ŷ for the rows of ``batch``.
    batch : Batch
        The *uncorrupted* rows: their stored entries are the observed items K(u) (canonical:
        no item stored twice in a row; the values are ignored, the targets are 1).
    weights : Tensor of shape (n_items,)
        ``c_j``, the weight of item j where it is unobserved.
    """
    at = output[batch.row_of, batch.cols]
    everything = (output * output) @ weights  # Σ_j c_j ŷ_uj² of each row, shape (b,)
    observed = (at - 1.0) ** 2 - weights[batch.cols] * at * at
    return (everything.sum() + observed.sum()) / batch.size


def sparsity_aware_augmentation(
    X: sp.csr_array, sparsity_threshold: float, drop_ratio: float
) -> sp.csr_array:
    """The augmented samples u' of the sparsity-aware data augmentation (Li et al., §4.2).

    A row u with ``|R_u| / n_items < sparsity_threshold`` (ε) gives the sample u' made of its
    items less the ``⌊|R_u| · drop_ratio⌋`` (p) most popular of them, popularity being the
    number of rows of X holding the item (the order of Eq. 10's ``f_j``; ties drop the lower
    item index first). A u' with no item left (p = 1: "we do not use data augmentation in
    this case", §5.3) or nothing dropped (u' = u) is not a new sample and is left out.

    Parameters
    ----------
    X : csr_array of shape (n_users, n_items)
        Canonical CSR interactions; stored entries are the observed items.
    sparsity_threshold : float
        ε: rows with fewer than ``ε · n_items`` items are augmented.
    drop_ratio : float
        p: the share of a row's items dropped, the most popular first.

    Returns
    -------
    augmented : csr_array of shape (n_augmented, n_items)
        One binary row u' per augmented row of X, in the order of X.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from skcfae.models._ncae_implicit import sparsity_aware_augmentation
    >>> X = sp.csr_array(np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 1], [1, 1, 1, 1.0]]))
    >>> sparsity_aware_augmentation(X, 0.8, 0.5).toarray()  # item 0 is the most popular
    array([[0., 1., 1., 0.],
           [0., 1., 0., 0.],
           [0., 0., 1., 1.]], dtype=float32)
    """
    n_items = X.shape[1]
    counts = np.diff(X.indptr).astype(np.int64)
    # ⌊|R_u| p⌋ with a guard against p's binary rounding (0.29 · 100 = 28.999...)
    n_drop = np.floor(counts * float(drop_ratio) + 1e-9).astype(np.int64)
    chosen = np.flatnonzero(
        (counts < float(sparsity_threshold) * n_items) & (n_drop > 0) & (n_drop < counts)
    )
    sub = sp.csr_array(X[chosen])
    sub.sort_indices()
    popularity = np.bincount(X.indices, minlength=n_items)
    row_of = np.repeat(np.arange(chosen.size), np.diff(sub.indptr))
    # each row's entries, most popular first (lower item first on ties)
    order = np.lexsort((sub.indices, -popularity[sub.indices], row_of))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - sub.indptr[row_of[order]]
    keep = rank >= n_drop[chosen][row_of]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=chosen.size))])
    return sp.csr_array(
        (np.ones(int(keep.sum()), dtype=np.float32), sub.indices[keep], indptr),
        shape=(chosen.size, n_items),
    )


class NCAEImplicit(NeuralRecommender):
    """Neural Collaborative Autoencoder (NCAE) for implicit feedback (top-n ranking).

    Li, Zheng and Wu (arXiv:1712.09043, §4.1-4.2, §5.1, §5.3): a user-based autoencoder
    ``ŷ_u = nn(ũ_u) = φ_L(W_L(..φ_1(W_1 ũ_u + b_1)..) + b_L)`` (Eq. 1) over the binary
    history u_u, tanh on every layer, trained to reconstruct the whole row: 1 at the observed
    items, 0 elsewhere, with the errors at the unobserved items reweighted by item
    popularity. The paper's NCAE+ (with data augmentation) is the default.

    - *Input dropout* (Eq. 3): each observed item of the input is dropped with probability
      ``dropout`` (q) and the kept ones are scaled by ``1/(1-q)``; unobserved entries are
      never touched. Scores use the uncorrupted history.
    - *Sparse forward* (Eq. 4): the first layer reads only the observed items, ``O(|R_u| K)``.
    - *Error reweighting* (Eq. 10-11): ``weighting="popularity"`` weights the error of
      unobserved item j by ``c_j = c0 f_j^ω / Σ_k f_k^ω``, ``f_j = |R_j| / Σ_k |R_k|``
      (c0 = 512, ω = 0.5, §5.1); observed items have weight 1 (α = β = 1). The loss of user
      u is ``Σ_{j ∈ R_u} (ŷ_uj - 1)² + Σ_{j ∉ R_u} c_j ŷ_uj²``, not divided by ``|R_u|``
      (Eq. 11), averaged over the users, plus ``λ/2 ||W||²`` (Eq. 6, λ = 0.01, §5.1).
      ``weighting="uniform"`` is the paper's NCAE- (§5.3): every unobserved item weighs
      ``uniform_weight`` (c = 0.05, WMF's value).
    - *Sparsity-aware data augmentation* (§4.2), ``augmentation=True`` (NCAE+): every user
      with ``|R_u| / n_items < sparsity_threshold`` (ε = 0.001) adds to the training set a
      sample u' made of their items less the ``⌊|R_u| · drop_ratio⌋`` (p = 0.8) most popular
      ones (ε and p: the best of §5.3, Fig. 6). The augmented samples are training rows
      like the others (input u' under dropout, target u'); the original rows stay, and
      scores always use the full history. See :func:`sparsity_aware_augmentation`.
    - *Optimisation* (§5.1): Xavier initialisation, Adam with learning rate 1e-3 on
      minibatches of 128 rows, 30 epochs (§5.4, on Delicious and Lastfm).

    *Cost.* The weighted errors cover every item, so each update computes the dense output
    of its batch once: per user ``O(|R_u| K_1 + Σ_l K_l K_{l+1} + n_items K_L)`` time, forward
    and backward, and O(batch_size · n_items) memory. The sum over the unobserved items is
    the sum over all items of that output less the observed ones (see
    :func:`ncae_implicit_loss`), so no mask of the unobserved items is built.

    *New users* are scored from their history alone (one forward pass): the model has no
    per-user parameter.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128,)
        Hidden units of each layer: the paper's "2-layer user-based NCAE" with K = 128 is one
        hidden layer and the output layer (§5.1; the paper counts the output layer, see
        Notes). ``(128, 128)`` is a 3-layer NCAE.
    dropout : float, default=0.5
        q of Eq. 3, the input dropout probability on the observed items (§5.1).
    weighting : {"popularity", "uniform"}, default="popularity"
        The weights ``c_j`` of the unobserved items: Eq. 10 (NCAE) or one value for all
        (NCAE-, §5.3).
    c0 : float, default=512.0
        c0 of Eq. 10, the total weight of the unobserved items (§5.1, from eALS).
    omega : float, default=0.5
        ω of Eq. 10: 0 weighs every item alike, larger values favour popular items (§5.1).
    uniform_weight : float, default=0.05
        The weight c of every unobserved item when ``weighting="uniform"`` (§5.3).
    augmentation : bool, default=True
        Add the sparsity-aware augmented samples of §4.2 to the training set (NCAE+).
    sparsity_threshold : float, default=0.001
        ε of §4.2: users with fewer than ``ε · n_items`` items are augmented (§5.3).
    drop_ratio : float, default=0.8
        p of §4.2: the share of an augmented user's items dropped, most popular first
        (§5.3; 1 adds nothing).
    l2_reg : float, default=0.01
        λ of Eq. 6, the weight decay on the weight matrices (§5.1).
    epochs : int, default=30
    batch_size : int, default=128
        Rows per update, and users scored at once.
    learning_rate : float, default=1e-3
        Adam's learning rate (§5.1).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the users, keep the epoch with the best
        validation NDCG@100 and stop after ``n_iter_no_change`` epochs without
        improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=20
    warm_start : bool, default=False
        With True, the next ``fit`` of a fitted model continues training its network and
        optimiser for ``epochs`` more epochs on data of the same shape (single-phase training
        only). See "Resuming training" in the quick start.
    checkpoint : str, path-like or None, default=None
        File the complete training state is written to after every epoch (atomically); a
        later ``fit`` with the same parameters and data resumes from it. Needs an int
        ``random_state``.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the shuffling and the input dropout.
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network: ``encoders`` (the hidden layers, the first one sparse) and
        ``out`` (W_L, b_L: the item representation).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (Eq. 11 averaged over the training rows,
        augmented ones included, without the penalty), ``dur`` and ``valid_ndcg`` when
        validating.
    best_epoch_ : int
        Epoch whose weights were kept (only when validating).
    missing_weights_ : ndarray of shape (n_items,)
        ``c_j``, the weight of each item where it is unobserved, from the training users.
    n_augmented_ : int
        Number of augmented samples added to the training rows (0 without augmentation).
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    NCAE : the explicit (rating) NCAE.
    EALS : matrix factorisation with the same popularity weights of the missing data.
    WMF : matrix factorisation with uniformly weighted missing data.

    Notes
    -----
    *Depth.* §5.1 trains "a 2-layer user-based NCAE" for implicit feedback and "a 3-layer
    item-based NCAE ..., which has two hidden layers" for ratings (as Fig. 2's "three-layer
    NCAE, which has two hidden layers and one output layer"); §5.3 calls the implicit NCAE
    "a shallow network". The paper counts the output layer, so the default has one hidden
    layer of K = 128.

    *Output.* φ_L is tanh, as every layer of Eq. 1 (the paper names no other output
    activation for implicit feedback). The scores are the output before φ_L: the same
    ranking, without the ties of a saturated tanh in float32.

    *Data augmentation: reading of §4.2.* The paper augments a sparse user u by "the
    augmented sample u'", enlarging the data set "directly with data pre-processing"; the
    augmented set is read here as extra training rows, each its own input and target, next
    to the original rows (with p = 1, u' is empty and "we do not use data augmentation",
    §5.3, which is what leaving empty samples out gives). Popularity is counted on the
    training users. A u' equal to u (``⌊|R_u| p⌋ = 0``) is left out rather than added as a
    duplicate. ε is a share of the catalogue: with ε = 0.001, only users with fewer than
    ``n_items / 1000`` items are augmented (fewer than 69 on Delicious, 69,226 items), so
    on a catalogue of under 1,000 items the default augments nobody.

    *Weights on small catalogues.* Eq. 10's weights sum to c0 whatever the number of
    items: c0 = 512 was chosen (after eALS) for catalogues of 17,632 (Lastfm) and 69,226
    (Delicious) items, an average weight of 0.03 and 0.007. On a small catalogue the same
    c0 weighs each unobserved item much more (3.4 on 150 items); choose c0 on validation
    users there.

    *The loss over every item.* Eq. 11 sums over all items, and the paper notes that one
    user then costs O(n_items K_{L-1}), suggesting a feature-wise update of the output layer
    (eALS's cache) as an alternative. That cache needs a linear output; with the tanh
    output of Eq. 1 the dense output of each batch is computed (one pass), as above.

    *Deviation: biases are not penalised.* Eq. 6 penalises every weight and bias (W+); the
    engine's weight decay, shared by every skcfae model, penalises the weight matrices
    only.

    *Training length.* The paper trains 30 epochs on 1,867 (Delicious) and 1,892 (Lastfm)
    users, ~15 updates an epoch; more users give more updates per epoch. Pass ``X_valid``
    or ``early_stopping=True`` to choose the epoch on validation users.

    *Not implemented.* The three-stage pre-training of §4.3 is for explicit feedback
    (:class:`NCAE`); the paper's implicit experiments do not use it. Initial biases are
    N(0, 0.001²) (the paper gives only the Xavier weights).

    References
    ----------
    Q. Li, X. Zheng and X. Wu. Neural Collaborative Autoencoder. arXiv:1712.09043, 2017.

    X. He, H. Zhang, M.-Y. Kan and T.-S. Chua. Fast Matrix Factorization for Online
    Recommendation with Implicit Feedback. SIGIR 2016 (the popularity weights, Eq. 10).

    Examples
    --------
    >>> from skcfae import NCAEImplicit
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = NCAEImplicit((16,), c0=20.0, epochs=2, random_state=0).fit(X)
    >>> model.missing_weights_.sum().round(3)
    np.float64(20.0)
    >>> model.recommend(X[:2], n=3).shape
    (2, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **RESUME_CONSTRAINTS,
        **NEURAL_CONSTRAINTS,
        "hidden_layer_sizes": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "weighting": [StrOptions({"popularity", "uniform"})],
        "c0": [Interval(Real, 0, None, closed="left")],
        "omega": [Interval(Real, 0, None, closed="left")],
        "uniform_weight": [Interval(Real, 0, None, closed="left")],
        "augmentation": ["boolean"],
        "sparsity_threshold": [Interval(Real, 0, 1, closed="both")],
        "drop_ratio": [Interval(Real, 0, 1, closed="both")],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (128,),
        *,
        dropout: float = 0.5,
        weighting: str = "popularity",
        c0: float = 512.0,
        omega: float = 0.5,
        uniform_weight: float = 0.05,
        augmentation: bool = True,
        sparsity_threshold: float = 0.001,
        drop_ratio: float = 0.8,
        l2_reg: float = 0.01,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 20,
        warm_start: bool = False,
        checkpoint: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), NeuralRecommender))
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.weighting = weighting
        self.c0 = c0
        self.omega = omega
        self.uniform_weight = uniform_weight
        self.augmentation = augmentation
        self.sparsity_threshold = sparsity_threshold
        self.drop_ratio = drop_ratio
        self.l2_reg = l2_reg

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        # each width is checked by NeuralRecommender.fit (check_layer_sizes); this network
        # also needs at least one hidden layer
        if not tuple(self.hidden_layer_sizes):
            raise ValueError(
                "The 'hidden_layer_sizes' parameter of NCAEImplicit must be a non-empty tuple of "
                "ints >= 1. Got () instead."
            )

    # -- network and training ----------------------------------------------------------------
    def _build_module(self, generator: torch.Generator) -> nn.Module:
        sizes = tuple(int(s) for s in self.hidden_layer_sizes)
        n = self.n_items_in_
        return _NCAENet(n, sizes, n, rating_range=None, generator=generator)

    def _weight_decay(self) -> float:
        return float(self.l2_reg)  # Eq. 6 is a mean over rows plus λ/2 ||W||²: decay λ

    def _missing_weights(self, X: sp.csr_array) -> np.ndarray:
        """``c_j`` of every item: Eq. 10 on X, or ``uniform_weight`` for all (NCAE-)."""
        if self.weighting == "uniform":
            return np.full(X.shape[1], float(self.uniform_weight))
        return missing_weights(X, float(self.c0), float(self.omega))

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        """One phase over the training users and, with ``augmentation``, their augmented
        samples (§4.2)."""
        binary = sp.csr_array(
            (np.ones_like(X_train.data), X_train.indices, X_train.indptr), shape=X_train.shape
        )
        self.missing_weights_ = self._missing_weights(binary)
        rows = binary
        self.n_augmented_ = 0
        if self.augmentation:
            extra = sparsity_aware_augmentation(
                binary, float(self.sparsity_threshold), float(self.drop_ratio)
            )
            self.n_augmented_ = int(extra.shape[0])
            if self.n_augmented_:
                rows = sp.csr_array(sp.vstack([binary, extra], format="csr"))
        weights = torch.as_tensor(self.missing_weights_, dtype=torch.float32).to(config.device)
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        loss = partial(self._eq11, weights=weights)
        return [Phase("train", module, user_rows(rows, config.device), loss)]

    def _eq11(self, module: nn.Module, batch: Batch, state: TrainState, weights: Tensor) -> Tensor:
        """Eq. 11 on one batch: the corrupted binary rows in, the whole clean rows as targets."""
        assert isinstance(module, _NCAENet)
        target = batch.with_values(torch.ones_like(batch.vals))
        corrupted, _ = _drop_observed(target, float(self.dropout), state.generator)
        output = module.finish(module.out(module.hidden(corrupted)))
        return ncae_implicit_loss(output, target, weights)

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        """The output before φ_L (tanh) for the clean binary history."""
        assert isinstance(module, _NCAENet)
        return module.out(module.hidden(batch.with_values(torch.ones_like(batch.vals))))
