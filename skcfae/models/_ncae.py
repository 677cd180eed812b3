"""NCAE: the Neural Collaborative Autoencoder of Li, Zheng and Wu (arXiv:1712.09043), explicit
feedback.

The paper defines one network for two settings. The *explicit* (rating) setting is
:class:`NCAE` here: a deep autoencoder over sparse rating vectors with tanh layers, input
dropout on the observed entries, a squared error over the observed entries only (Eq. 5) and a
three-stage layer-wise pre-training (§4.3). The *implicit* setting (popularity-reweighted
errors on the unobserved entries, Eq. 10-11, and sparsity-aware data augmentation, §4.2) is
the ranking model :class:`~skcfae.NCAEImplicit` (``skcfae/models/_ncae_implicit.py``).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._compat import Interval
from ..base import shared_args
from ..nn import Batch, Phase, TrainConfig, TrainState, item_rows, user_rows
from ..nn._engine import LossFn, ParamSelector, PhaseFactory
from ..nn._modules import SparseLinear, dense_linear, dropout
from ._rating_ae import _RATING_CONSTRAINTS, RatingNet, _RatingAE

__all__ = ["NCAE", "ncae_loss"]


def _drop_observed(batch: Batch, q: float, generator: torch.Generator) -> tuple[Batch, Tensor]:
    """The corrupted input ũ of Eq. 3 and which entries were kept.

    Each *stored* entry is dropped with probability ``q`` and the kept ones are scaled by
    ``1/(1-q)`` (the same draws as :func:`~skcfae.nn._modules.dropout_values`); unobserved
    entries are not stored, so they are never touched. The mask is returned separately
    because a stored rating may be 0, so a zero value cannot tell a dropped entry.
    """
    factor = dropout(torch.ones_like(batch.vals), q, generator)
    return batch.with_values(batch.vals * factor), factor > 0


def ncae_loss(
    pred: Tensor,
    batch: Batch,
    kept: Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    balance_rows: bool = True,
) -> Tensor:
    """Eq. 5 of Li et al., averaged over the rows of the batch (the data term of Eq. 6).

    For each row u with observed entries K(u), of which C(ũ) were dropped from the input::

        α/|K(u)| · Σ_{j ∈ C(ũ)} (nn(ũ)_j - u_j)²  +  β/|K(u)| · Σ_{j ∈ K(u) - C(ũ)} (nn(ũ)_j - u_j)²

    α weights the *prediction* criterion (entries the network did not see), β the
    *reconstruction* criterion (entries it saw). Rows are summed and divided by the number of
    rows of the batch (a row without observed entries adds 0).

    With ``balance_rows=False`` no row is divided by its ``|K(u)|``: the weighted squared errors
    of all the observed entries of the batch are averaged, so that every rating weighs the
    same (as in RMSE) instead of every row (a deviation from Eq. 5; see :class:`NCAE`).

    Parameters
    ----------
    pred : Tensor of shape (nnz,)
        The network's output at each stored entry of ``batch`` (in its order).
    batch : Batch
        The *uncorrupted* rows u: ``batch.vals`` are the targets, ``batch.counts`` the
        ``|K(u)|``.
    kept : Tensor of shape (nnz,), bool
        Whether each stored entry was kept in the input (False: in C(ũ)).
    alpha, beta : float, default=1.0
    balance_rows : bool, default=True
    """
    err = pred - batch.vals
    if not balance_rows:
        weight = torch.where(kept, beta, alpha).to(err.dtype)
        return (weight * err * err).sum() / max(err.numel(), 1)
    weight = torch.where(kept, beta, alpha) / batch.counts[batch.row_of].to(err.dtype)
    return (weight * err * err).sum() / batch.size


class _NCAENet(RatingNet):
    """Eq. 1: ``nn(u) = φ_L(W_L(..φ_1(W_1 u + b_1)..) + b_L)`` with tanh everywhere and, for
    ratings, the output mapped to the rating range (``2.25 z + 2.75`` for 0.5-5).

    ``encoders[0]`` reads the sparse input rows (Eq. 4: cost ∝ observed entries), the other
    hidden layers are dense, ``out`` is W_L (the item representation V of a user-based NCAE,
    U of an item-based one). ``rating_range=None`` keeps the raw tanh output.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_layer_sizes: tuple[int, ...],
        n_outputs: int,
        *,
        rating_range: tuple[float, float] | None,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        sizes = hidden_layer_sizes
        self.encoders = nn.ModuleList(
            [
                SparseLinear(n_inputs, sizes[0], generator),
                *(
                    dense_linear(a, b, generator)
                    for a, b in zip(sizes[:-1], sizes[1:], strict=True)
                ),
            ]
        )
        self.out = dense_linear(sizes[-1], n_outputs, generator)
        if rating_range is None:
            self.scale, self.shift = 1.0, 0.0
        else:
            low, high = rating_range
            # a single rating value: any positive half-width predicts it (after clipping)
            self.scale, self.shift = ((high - low) / 2.0 or 1.0), (high + low) / 2.0

    def hidden(self, batch: Batch) -> Tensor:
        """``z_{L-1}``: the activations of the last hidden layer."""
        return _codes(self.encoders, batch)

    def finish(self, z: Tensor) -> Tensor:
        """``scale · tanh(z) + shift``: tanh's [-1, 1] onto [low, high] of the rating range."""
        return self.scale * torch.tanh(z) + self.shift


def _codes(layers: nn.ModuleList, batch: Batch) -> Tensor:
    h = torch.tanh(layers[0](batch))
    for layer in layers[1:]:
        h = torch.tanh(layer(h))
    return h


def _at_entries(net: RatingNet, h: Tensor, batch: Batch) -> Tensor:
    """The output at the stored entries of ``batch`` only (the sparse backward module, Eq. 7-9).

    A sampled dense-dense product computes ``h_r · W_L[c]`` at the stored (r, c) only, and
    its gradients reach ``h`` and the rows of ``W_L`` of those entries only: O(nnz · K),
    never O(b · n_outputs · K), and no unobserved output is ever computed.
    """
    ends = torch.cat([batch.offsets, batch.offsets.new_tensor([batch.cols.numel()])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        pattern = torch.sparse_csr_tensor(
            ends, batch.cols, torch.zeros_like(batch.vals), size=(batch.size, batch.n_items)
        )
    z = torch.sparse.sampled_addmm(pattern, h, net.out.weight.T, beta=0.0).values()
    return net.finish(z + net.out.bias[batch.cols])


class _DRNet(nn.Module):
    """Stage 2 of §4.3 (unsupervised DR learning, Eq. 13): a new tanh layer ``layer`` and its
    tanh decoder on top of the frozen layers ``below``, reconstructing their code."""

    def __init__(self, below: list[nn.Module], layer: nn.Linear, decoder: nn.Linear) -> None:
        super().__init__()
        self.below = nn.ModuleList(below)
        self.layer = layer
        self.decoder = decoder

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters stage 2 trains: the new layer and its decoder."""
        return [
            *((f"layer.{n}", p) for n, p in self.layer.named_parameters()),
            *((f"decoder.{n}", p) for n, p in self.decoder.named_parameters()),
        ]


class NCAE(_RatingAE):
    """Neural Collaborative Autoencoder (NCAE) for explicit feedback (ratings).

    Li, Zheng and Wu (arXiv:1712.09043, §4.1, §4.3, §5.1-5.2): each item's vector of ratings
    by the users (``kind="item"``, the paper's choice for ratings) or each user's vector of
    ratings (``kind="user"``, Eq. 1) is reconstructed by a deep autoencoder
    ``nn(ũ) = φ_L(W_L(..φ_1(W_1 ũ + b_1)..) + b_L)`` with tanh activations on every layer,
    the output mapped onto the rating range: ``2.25 · z + 2.75`` for 0.5-5 ratings in the
    paper, ``(high - low)/2 · z + (high + low)/2`` for the learned ``rating_range_`` here.

    - *Input dropout* (Eq. 3): each observed entry of the input is dropped with probability
      ``dropout`` (q) and the kept ones are scaled by ``1/(1-q)``; unobserved entries are
      never touched. Predictions use the uncorrupted input.
    - *Sparse forward and backward* (Eq. 4, 7-9): the first layer reads only the observed
      entries of the input and the output is computed only at the observed entries, so the
      cost of a row is proportional to its number of ratings.
    - *Loss* (Eq. 5-6): for a row u with observed entries K(u) of which C(ũ) were dropped,
      ``α/|K(u)| Σ_{C(ũ)} (nn(ũ)_j - u_j)² + β/|K(u)| Σ_{K(u)-C(ũ)} (nn(ũ)_j - u_j)²``,
      averaged over the rows, plus ``λ/2 ||W||²`` (Eq. 6; on the weight matrices, see
      Notes). Adam on minibatches of rows.
    - *Three-stage pre-training* (§4.3, Eq. 12-15), ``pretrain=True``: (S) supervised SR
      learning trains the first layer with a tanh decoder under Eq. 5 (phase
      ``"pretrain_sr"``); (U) each further hidden layer is trained, the layers below frozen,
      as an autoencoder reconstructing the code below it (mean squared error, Eq. 13; phase
      ``"pretrain_dr"``); (S) with every hidden layer frozen, the output layer is trained
      under Eq. 5 (Eq. 15, phase ``"pretrain_v"``); then all layers are fine-tuned under
      Eq. 6 (phase ``"finetune"``). Each pre-training stage runs ``pretrain_epochs`` epochs,
      without validation. ``pretrain=False`` trains the network from its Xavier
      initialisation in one phase (``"train"``), the paper's plain NCAE.

    An item-based NCAE predicts for its training users only; a user-based one folds in new
    users from their known ratings (one forward pass, see :meth:`predict`).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(500, 500)
        Hidden units of each layer: the paper's 3-layer NCAE (two hidden layers of K = 500,
        "DOUBLE"); ``(500,)`` is the one-hidden-layer "SINGLE".
    kind : {"item", "user"}, default="item"
        Item-based (rows of Rᵀ, the paper's setting for ratings) or user-based (rows of R).
    dropout : float, default=0.5
        q of Eq. 3, the input dropout probability on the observed entries.
    alpha : float, default=1.0
        α of Eq. 5: the weight of the errors at the dropped entries (prediction criterion).
    beta : float, default=1.0
        β of Eq. 5: the weight of the errors at the kept entries (reconstruction criterion).
    balance_rows : bool, default=True
        Divide the squared errors of each row by its number of observed entries ``|K(u)|``, as
        in Eq. 5, so that every row (every item, for ``kind="item"``) weighs the same. With
        False, each batch's loss is the mean over its observed entries, so that every rating
        weighs the same, as in the RMSE (a deviation, see Notes).

        .. versionadded:: 0.1
    l2_reg : float, default=2e-4
        λ of Eq. 6 (§5.1), the weight decay on the weight matrices, in every stage.
    pretrain : bool, default=True
        Run the three-stage S+U+S pre-training before fine-tuning (NCAE* of the paper).
    pretrain_epochs : int, default=10
        Epochs of each pre-training stage (the paper's 10).
    epochs : int, default=500
        Epochs of fine-tuning (of training, when ``pretrain=False``).
    batch_size : int, default=128
        Rows (items, for ``kind="item"``) per update.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the stored ratings, keep the fine-tuning epoch of
        the lowest validation RMSE, stop after ``n_iter_no_change`` epochs without
        improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=20
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
        The fine-tuned network.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``dur``, ``valid_rmse`` when validating (the
        fine-tuning epochs only) and, with ``pretrain=True``, ``phase`` (``"pretrain_sr"``,
        ``"pretrain_dr"``, ``"pretrain_v"``, ``"finetune"``; epochs numbered through all
        phases).
    best_epoch_ : int
        Epoch whose weights were kept (only when validating), numbered as in ``history_``.
    ratings_ : scipy.sparse.csr_array of shape (n_users, n_items)
        The training ratings, from which :meth:`predict` predicts by default.
    rating_range_ : tuple of float
        Smallest and largest training rating: the output map and the clipping use it.
    n_users_ : int
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    AutoRec : the one-hidden-layer rating autoencoder NCAE extends.

    Notes
    -----
    *Output map.* The paper's ``2.25 · z + 2.75`` maps tanh's [-1, 1] onto 0.5-5 (MovieLens
    10M); it is generalised to the learned ``rating_range_`` (``2 · z + 3`` for 1-5 ratings).
    Since a stored 0 is a rating but enters the first layer as 0, like an unobserved entry,
    the input cannot tell a 0 rating from a missing one (the loss can).

    *Readings of §4.3.* The DR stage (Eq. 13) feeds the code of the corrupted input ũ, as
    every training forward pass does, and reconstructs that same code; deeper networks
    train one DR stage per further hidden layer (``"pretrain_dr2"``, ``"pretrain_dr3"``,
    ...). The weight decay λ of §5.1 applies in every stage (Eq. 13 and 15 write only their
    data term; without it in those two stages, ml-100k seed 0 gave test RMSE 0.978 instead
    of 0.973, within the spread between seeds). ``train_loss`` in ``history_`` is each
    stage's data term (Eq. 5, or Eq. 13 for DR), without the penalty.

    *Deviation: biases are not penalised.* Eq. 6 penalises every weight and bias (W+); the
    engine's weight decay, shared by every skcfae model, penalises the weight matrices
    only. Measured on ml-100k (90/10 split seed 0, ``pretrain=False``): penalising the
    biases too gives the same test RMSE to four decimals (0.9805 at λ = 2e-4, 0.9192 at
    2e-3).

    *Regularisation on small data: the paper's λ is kept, choose it on validation ratings.*
    λ = 2e-4 is what the paper's grid search on a validation set of MovieLens 10M gave (§5.1;
    about 9M training ratings, 900 per item). It does not transfer to a hundred times fewer
    ratings. On ml-100k (split seed 0, 10% of the training ratings for validation, defaults
    otherwise) the network overfits: at the kept epoch its RMSE is 0.49 on training ratings
    and 0.957 on the validation ratings. The validation RMSE over λ is, with pre-training,
    0.957 (2e-4), 0.916 (2e-3), 0.909 (3e-3), 0.905 (5e-3), 0.912 (1e-2), 0.934 (2e-2,
    training RMSE 0.925: underfitting) and 0.971 (5e-2); without pre-training 0.960, 0.908,
    0.902, 0.900 and 0.908 from 2e-4 to 1e-2. The same penalty per rating as on MovieLens 10M
    (2e-4 x 9M / 81k ≈ 2e-2) overshoots. No other setting explains the gap (validation RMSE
    at λ = 2e-4): without dropout 1.088, q = 0.25 0.969, K = 200 0.934, one hidden layer
    0.977, a linear output ``z + 3`` 0.932, Eq. 5 averaged over entries instead of rows
    0.958, a patience of 60 epochs 0.948. The default stays the paper's value, since any other
    fixed value would be tuned to one data size. On data much smaller than MovieLens 10M,
    choose ``l2_reg`` on validation ratings, as the paper did. ``benchmarks/ratings.py``
    chooses it in {2e-3, 5e-3, 1e-2} on the validation entries of each split.
    Over 5 splits of ml-100k (``benchmarks/results/ratings_ml-100k.md``) λ chosen so gives a
    test RMSE of 0.9178 ± 0.0024 with pre-training and 0.9166 ± 0.0028 without (λ = 5e-3 on
    every split), against 0.9689 and 0.9739 at the defaults (I-AutoRec with its λ chosen
    the same way: 0.8971). On ml-latest-small it gives 0.8662 and 0.8674 (λ = 2e-3, the
    smallest candidate, on most splits), against 0.9054 and 0.9071.

    *Deviation offered: ``balance_rows=False``.* Eq. 5 divides each row's errors by its
    ``|K(u)|`` "to balance the impact of each user". The item-based model reads items as rows, so
    an item with 2 ratings weighs as much as one with 400, and each of its ratings 200 times
    more, while the RMSE weighs every rating the same. The paper's MovieLens 10M has about 900
    ratings per item. The training ratings of ml-100k's split above have 48 per item (median
    22, 26% of the items 5 or fewer), those of ml-latest-small 8.4 (median 2, 70% 5 or
    fewer). On that ml-100k split, averaging Eq. 5 over the batch's ratings instead gives a
    validation RMSE of 0.888 instead of 0.900 without pre-training and 0.889 instead of 0.905
    with it (λ = 5e-3), and 0.886 without pre-training at λ = 1e-2. At the paper's λ both
    weightings overfit alike (0.958 and 0.957). Over the 5 benchmark splits, with λ chosen on
    the validation entries in {5e-3, 1e-2, 2e-2}, ``balance_rows=False`` gives a test RMSE of
    0.9006 ± 0.0013 with pre-training and 0.9005 ± 0.0013 without on ml-100k (I-AutoRec with
    its λ chosen likewise: 0.8971; Surprise's SVD++: 0.9131). On ml-latest-small it gives
    0.8322 ± 0.0049 and 0.8327 ± 0.0044, with λ = 5e-3 (the smallest candidate) on every
    split (SVD++ 0.8664, U-CFN 0.8597, ``balance_rows=True`` 0.8662). The default keeps
    Eq. 5, the paper's objective.

    *Noisy validation.* Around its plateau the validation RMSE moves by about ±0.003 from one
    epoch to the next, and with one ``random_state`` (one shuffling order) the same epochs
    are the lucky ones whatever λ is: on the split above the best epoch was the 32nd for 4 of
    the 5 values of λ without pre-training, the 32nd or 41st of fine-tuning for 5 of 7 with
    it. Early stopping keeps a favourable epoch of a plateau, not the end of a descent. With
    ``balance_rows=False`` it falls more steadily (λ = 5e-3, no pre-training: 0.900, 0.897,
    0.895, 0.895, 0.890 at epochs 11, 21, 31, 41, 51).

    *Training length.* The paper does not give the number of fine-tuning epochs; ``epochs``
    is an upper bound for early stopping on validation RMSE (``X_valid`` or
    ``early_stopping=True``).

    *Implicit feedback* (the error reweighting of Eq. 10-11 and the sparsity-aware data
    augmentation of §4.2) is the ranking model :class:`~skcfae.NCAEImplicit`.

    References
    ----------
    Q. Li, X. Zheng and X. Wu. Neural Collaborative Autoencoder. arXiv:1712.09043, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import NCAE
    >>> R = np.array([[5, 4, np.nan], [4, np.nan, 1], [np.nan, 5, 2], [1, 2, 5.0]])
    >>> model = NCAE((8, 8), pretrain_epochs=2, epochs=5, random_state=0).fit(R)
    >>> list(dict.fromkeys(h["phase"] for h in model.history_))
    ['pretrain_sr', 'pretrain_dr', 'pretrain_v', 'finetune']
    >>> model.predict(R).shape
    (4, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **_RATING_CONSTRAINTS,
        "hidden_layer_sizes": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "balance_rows": ["boolean"],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "pretrain": ["boolean"],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (500, 500),
        *,
        kind: str = "item",
        dropout: float = 0.5,
        alpha: float = 1.0,
        beta: float = 1.0,
        balance_rows: bool = True,
        l2_reg: float = 2e-4,
        pretrain: bool = True,
        pretrain_epochs: int = 10,
        epochs: int = 500,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 20,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), _RatingAE))
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.alpha = alpha
        self.beta = beta
        self.balance_rows = balance_rows
        self.l2_reg = l2_reg
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs

    def _sizes(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.hidden_layer_sizes)

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        # each width is checked by NeuralRecommender.fit (check_layer_sizes); this network
        # also needs at least one hidden layer
        if not tuple(self.hidden_layer_sizes):
            raise ValueError(
                "The 'hidden_layer_sizes' parameter of NCAE must be a non-empty tuple of "
                "ints >= 1. Got () instead."
            )
        super()._check_params_vs_input(X, **given)

    def _net(self, sizes: tuple[int, ...], generator: torch.Generator) -> _NCAENet:
        n = self._n_outputs()  # an autoencoder: as many inputs as outputs
        return _NCAENet(n, sizes, n, rating_range=self.rating_range_, generator=generator)

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return self._net(self._sizes(), generator)

    # -- losses ------------------------------------------------------------------------------
    def _eq5(self, net: RatingNet, batch: Batch, state: TrainState, *, frozen: bool) -> Tensor:
        """Eq. 5 over the batch rows; ``frozen``: the hidden layers get no gradient (Eq. 15)."""
        corrupted, kept = _drop_observed(batch, float(self.dropout), state.generator)
        with torch.set_grad_enabled(not frozen and torch.is_grad_enabled()):
            h = net.hidden(corrupted)
        pred = _at_entries(net, h, batch)
        return ncae_loss(
            pred,
            batch,
            kept,
            alpha=float(self.alpha),
            beta=float(self.beta),
            balance_rows=bool(self.balance_rows),
        )

    def _weight_decay(self) -> float:
        return float(self.l2_reg)  # Eq. 6 is a mean over rows plus λ/2 ||W||²: decay λ

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """Eq. 5 averaged over the rows of the batch (Eq. 6 with the engine's weight decay)."""
        assert isinstance(module, RatingNet)
        return self._eq5(module, batch, state, frozen=False)

    def _v_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """Eq. 15: Eq. 5 with every hidden layer frozen (only the output layer learns)."""
        assert isinstance(module, RatingNet)
        return self._eq5(module, batch, state, frozen=True)

    def _dr_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """Eq. 13: the mean squared error between the frozen code below and its
        reconstruction through the new layer and its decoder."""
        assert isinstance(module, _DRNet)
        corrupted, _ = _drop_observed(batch, float(self.dropout), state.generator)
        with torch.no_grad():
            code = _codes(module.below, corrupted)
        rebuilt = torch.tanh(module.decoder(torch.tanh(module.layer(code))))
        return ((rebuilt - code) ** 2).mean()

    # -- the training plan ---------------------------------------------------------------------
    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        """One phase, or with ``pretrain`` the S+U+S stages of §4.3 then fine-tuning."""
        make_rows = user_rows if self.kind == "user" else item_rows
        rows = make_rows(X_train, config.device)
        if not self.pretrain:
            module = self._build_module(torch.Generator().manual_seed(config.seed))
            return [Phase("train", module, rows, self._loss)]
        sizes = self._sizes()
        deeper = range(2, len(sizes) + 1)  # the layers of the DR stages
        dr_names = [f"pretrain_dr{d}" if len(sizes) > 2 else "pretrain_dr" for d in deeper]
        below_v = dr_names[-1] if dr_names else "pretrain_sr"

        def stage(
            index: int, name: str, module: nn.Module, loss: LossFn, select: ParamSelector | None
        ) -> Phase:
            return Phase(
                name,
                module,
                rows,
                loss,
                epochs=int(self.pretrain_epochs),
                validate=False,
                parameters=select,
                seed=config.seed + index,
                desc=f"{type(self).__name__} {name}",
            )

        # stage 1 (S): the first layer and a decoder to the ratings (Eq. 12), all trained
        first = self._net(sizes[:1], torch.Generator().manual_seed(config.seed + 1))
        sr = stage(1, "pretrain_sr", first, self._loss, None)

        # stage 2 (U): each further layer and its decoder on the frozen code below (Eq. 13)
        def dr(depth: int) -> PhaseFactory:
            def make(trained: dict[str, nn.Module]) -> Phase:
                below = _hidden_layers(trained[(["pretrain_sr", *dr_names])[depth - 2]])
                generator = torch.Generator().manual_seed(config.seed + depth)
                width, under = sizes[depth - 1], sizes[depth - 2]
                layer, decoder = (
                    dense_linear(under, width, generator),
                    dense_linear(width, under, generator),
                )
                module = _DRNet(below, layer, decoder)
                return stage(depth, dr_names[depth - 2], module, self._dr_loss, _dr_trainable)

            return make

        # stage 3 (S): the output layer V on the frozen hidden layers (Eq. 14-15)
        def v(trained: dict[str, nn.Module]) -> Phase:
            net = self._net(sizes, torch.Generator().manual_seed(config.seed))
            for layer, learned in zip(net.encoders, _hidden_layers(trained[below_v]), strict=True):
                layer.load_state_dict(learned.state_dict())
            return stage(len(sizes) + 1, "pretrain_v", net, self._v_loss, _output_layer)

        def finetune(trained: dict[str, nn.Module]) -> Phase:  # Eq. 6, every parameter
            return Phase("finetune", trained["pretrain_v"], rows, self._loss)

        return [sr, *(dr(d) for d in deeper), v, finetune]


def _hidden_layers(module: nn.Module) -> list[nn.Module]:
    """The pre-trained hidden layers of a stage's module, bottom first."""
    if isinstance(module, _DRNet):
        return [*module.below, module.layer]
    assert isinstance(module, _NCAENet)
    return list(module.encoders)


def _dr_trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    assert isinstance(module, _DRNet)
    return module.trainable()


def _output_layer(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    assert isinstance(module, RatingNet)
    return [(f"out.{n}", p) for n, p in module.out.named_parameters()]
