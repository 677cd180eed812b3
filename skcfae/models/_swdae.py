"""Sw-dae, Fc-dae and their structure-learning relatives (papers/000_a2475424b54d3d60.txt)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from .._typing import InteractionMatrix
from ..nn import Batch, SparseRows, TrainState, train
from ..nn._losses import logistic_nll, multinomial_nll
from ..nn._modules import SparseLinear, WideAE, dense_linear
from ..nn._sparse import SparseDecoder, SparseEncoder
from ._neural import NEURAL_CONSTRAINTS, NeuralRecommender

__all__ = ["FCDAE", "SparseWideDAE", "matching_width", "weight_diagnostics"]

_WIDE_CONSTRAINTS: dict[str, list[Any]] = {
    **NEURAL_CONSTRAINTS,
    "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "K": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "hidden_dropout": [Interval(Real, 0, 1, closed="left")],
    "loss": [StrOptions({"multinomial", "logistic"})],
    "l2_reg": [Interval(Real, 0, None, closed="left")],
    "record_diagnostics": ["boolean"],
}


def weight_diagnostics(W: Any) -> tuple[float, float]:
    """Spectral norm ``||W||₂`` and stable rank ``||W||²_F / ||W||²₂`` of a weight matrix.

    ``papers/000_a2475424b54d3d60.txt`` §5.5. ``W`` is a dense array or a scipy sparse
    matrix; the largest singular value comes from ARPACK (``svds``, a fixed start vector) on
    sparse or large matrices, from LAPACK on small dense ones.
    """
    if min(W.shape) <= 2 or (not sp.issparse(W) and W.size <= 250_000):
        dense = W.toarray() if sp.issparse(W) else np.asarray(W)
        sigma = float(np.linalg.norm(dense.astype(np.float64), ord=2))
        fro2 = float(np.sum(dense.astype(np.float64) ** 2))
    else:
        v0 = np.full(min(W.shape), 1.0 / np.sqrt(min(W.shape)))
        sigma = float(spla.svds(W, k=1, v0=v0, return_singular_vectors=False, tol=1e-4)[0])
        data = W.data if sp.issparse(W) else np.asarray(W)
        fro2 = float(np.sum(np.asarray(data, dtype=np.float64) ** 2))
    return sigma, (fro2 / sigma**2 if sigma > 0 else 0.0)


def matching_width(n_items: int, n_parameters: int, *, density: float = 0.1, depth: int = 1) -> int:
    """Width K of a Sw-dae with ``n_parameters`` parameters: the Sw-dae-p of Table 2.

    ``papers/000_a2475424b54d3d60.txt`` §5.2 and Table 2 compare Mult-VAE with a Sw-dae of the
    same number of parameters. A one-hidden-layer Sw-dae over ``m`` items with R = density·K
    connections per item has ``2·m·R`` weights (encoder and decoder, untied) plus ``K + m``
    biases: ``n(K) = 2·density·m·K + K + m``. This returns the K that makes ``n(K)`` closest
    to ``n_parameters`` (at least 1). Pair it with ``R = round(density · K)``.

    Get the target from a fitted model: ``MultVAE(...).fit(X).n_parameters_``, or for the
    paper's [m-600-200-600-m] Mult-VAE ``1201·m + 361,600`` (its encoder outputs a mean and
    a log-variance).

    Examples
    --------
    >>> from skcfae.models import matching_width
    >>> matching_width(20108, 24_193_000)          # ML-20M, Table 2: Sw-dae-p has K ~ 6000
    6009
    """
    if depth != 1:
        raise ValueError("matching_width supports one hidden layer (depth=1) only.")
    K = (n_parameters - n_items) / (2.0 * density * n_items + 1.0)
    return max(1, int(round(K)))


class _WideDAE(NeuralRecommender):
    """Shared body of SparseWideDAE and FCDAE: module, loss, diagnostics, pickling."""

    _parameter_constraints = _WIDE_CONSTRAINTS

    # -- connectivity: (encoder pattern, decoder pattern, initial values) per layer ----------
    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        raise NotImplementedError  # pragma: no cover

    def _build_module(self, generator: torch.Generator) -> WideAE:
        encoders, decoders = self._layers(generator)
        return WideAE(encoders, decoders, dropout=self.dropout, hidden_dropout=self.hidden_dropout)

    def _weight_decay(self) -> float:
        return 2.0 * self.l2_reg

    def _l1(self) -> float:
        return 0.0

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        batch = batch.with_values(torch.ones_like(batch.vals))  # binary history (§4)
        return self._reconstruction_loss(module, batch, state)

    def _reconstruction_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """-log p(x | f(x̃)) (Eq. 5) of the batch's values as they are, plus Fc-reg's ℓ1."""
        logits, code = module(batch, state.generator)
        if self.loss == "multinomial":
            value = multinomial_nll(logits, batch)
        else:  # Bernoulli likelihood of Eq. 4: sigmoid outputs, summed over items
            value = logistic_nll(logits, batch)
        if self._l1() > 0:
            value = value + self._l1() * code.abs().sum(dim=1).mean()
        return value

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        # scores are the decoder outputs before the softmax / sigmoid (§4, §4.2)
        return module(batch.with_values(torch.ones_like(batch.vals)))[0]

    def _epoch_hooks(self) -> tuple[Any, ...]:
        if not self.record_diagnostics:
            return ()
        n_users = self._n_fit_users

        def record(module: nn.Module, rec: dict[str, Any]) -> None:
            rec.update(_diagnostics(module, n_users))

        return (record,)

    def _check_params_vs_input(self, X: sp.csr_array) -> None:
        if self.K > X.shape[1] and self._needs_groups():
            raise ValueError(
                f"{type(self).__name__}: X has {X.shape[1]} feature(s) (items) but K={self.K} "
                "groups; k-means cannot place more centroids than items, so use K <= n_items."
            )

    def _needs_groups(self) -> bool:
        return False


def _weights(module: nn.Module) -> list[tuple[str, Any]]:
    """(name, weight as scipy/numpy (n_in, n_out) or (n_out, n_in)) of every layer."""
    out = []
    for part in ("encoders", "decoders"):
        for i, layer in enumerate(getattr(module, part)):
            if hasattr(layer, "weight_matrix"):
                W = layer.weight_matrix()
            else:
                W = layer.weight.detach().cpu().numpy()
            out.append((f"{part[:3]}{i}", W))
    return out


def _diagnostics(module: nn.Module, n_users: int) -> dict[str, float]:
    """Spectral norm and stable rank of every weight, and the bound of §5.5:
    ``sqrt(Π_j ||W_j||²₂ · Σ_j srank(W_j) / n)`` (Neyshabur et al. [19, Thm. 1])."""
    rec: dict[str, float] = {}
    prod, srank_sum = 1.0, 0.0
    for name, W in _weights(module):
        sigma, srank = weight_diagnostics(W)
        rec[f"spectral_norm_{name}"] = sigma
        rec[f"stable_rank_{name}"] = srank
        prod *= sigma**2
        srank_sum += srank
    rec["generalization_bound"] = float(np.sqrt(prod * srank_sum / max(n_users, 1)))
    return rec


class SparseWideDAE(_WideDAE):
    """Sparse and wide denoising autoencoder (Sw-dae) with a learned item-group structure.

    ``papers/000_a2475424b54d3d60.txt`` §3.2-3.3 and §4.3: one hidden layer of K neurons, one
    per overlapping item group; item i is connected (in the encoder and, transposed, in the
    decoder) to exactly the R groups it belongs to; untied weights; sigmoid hidden units
    ``h = σ(W x̃ + b)`` (Eq. 4); input dropout 0.6 as the corruption and dropout 0.2 on the
    hidden layer; Adam 1e-3, batch 500, 100 epochs (more on small data, see Notes). The
    groups come from the :class:`~skcfae.ItemGrouper` before it in a Pipeline, or, used
    alone, from an ``ItemGrouper(K, R, F, method)`` fitted on the training users. Items are
    read as a binary history; scores are the decoder outputs before the output
    softmax/sigmoid.

    The layers are truly sparse (:mod:`skcfae.nn._sparse`): memory and time scale with
    ``n_items x R``, not ``n_items x K``.

    Parameters
    ----------
    K : int, default=1000
        Number of item groups = hidden neurons (ignored after an ItemGrouper).
    R : int or None, default=None
        Groups per item; None means K / 10 rounded half up, at least 1 (the paper's 10%
        density, §4.3).
    F : int, default=50
        Dimension of the spectral item embedding.
    method : {"laplacian", "svd"}, default="laplacian"
        Algorithm 1 or 2 of the paper.
    stacked_sizes : tuple of int, default=()
        Widths of further Sw-dae layers for a stacked Sw-dae (§3.4, Eq. 6-7): after the first
        layer is trained, its hidden units become observed variables, are grouped by an
        ItemGrouper (R = 10% of each width) and a Sw-dae is trained on them, greedily layer by
        layer; the layers are then stacked with their pre-trained weights and fine-tuned for
        ``epochs`` on the objective of Eq. 5 (history phases "pretrain" and "finetune").
    dropout : float, default=0.6
        Input dropout probability on the stored entries (the corruption C(x̃|x), §4.3).
    hidden_dropout : float, default=0.2
        Dropout probability on the hidden layer during training (§4.3).
    loss : {"logistic", "multinomial"}, default="logistic"
        Output likelihood. "logistic" is the literal Eq. 4-5 (sigmoid outputs, Bernoulli
        log-likelihood over all items); "multinomial" is a softmax over items, as §4 ("the
        output at the decoder before the softmax") and the Mult-DAE it is compared with.
        "logistic" is the default: it was better on ml-1m validation users (see Notes).
    l2_reg : float, default=0.0
        L2 penalty ``l2_reg * Σ ||W||²`` on the weights.
    record_diagnostics : bool, default=False
        Add to every epoch of ``history_`` the spectral norm and stable rank of each weight
        matrix and the generalization-bound quantity of §5.5 (Figure 4).
    epochs : int or "auto", default="auto"
        Training epochs. "auto" is the paper's 100, or more on small data: at least 3,000
        Adam updates, i.e. ``max(100, ceil(3000 / ceil(n_users / batch_size)))`` (see Notes).
    batch_size : int, default=500
    learning_rate : float, default=1e-3
        Adam's learning rate (§4.3).
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=20
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    Attributes
    ----------
    membership_ : scipy.sparse.csr_array of shape (n_items, K)
        The connectivity (1 where an item belongs to a group).
    stacked_memberships_ : list of scipy.sparse.csr_array
        Connectivity of each further stacked layer (empty for one hidden layer).
    grouper_ : ItemGrouper or None
        The grouper fitted by ``fit`` when no structure came with X.
    module_, history_, best_epoch_, device_, n_items_in_, n_features_in_
        As in :class:`~skcfae.MultVAE`.
    n_parameters_ : int

    See Also
    --------
    skcfae.ItemGrouper : learns the groups.
    FCDAE : the same network fully connected (Fc-dae, Fc-prune, Fc-reg).
    matching_width : K for a parameter budget (Sw-dae-p).

    Notes
    -----
    *Likelihood.* The paper's wording is ambiguous: Eq. 4-5 define a sigmoid decoder and its
    log-likelihood (Bernoulli per item, "logistic"), while §4 ranks "the output at the
    decoder before the softmax" (a multinomial, as Mult-DAE). Measured on ml-1m validation
    users (seed-98765 split, K=1000, R=100, Adam 1e-3, 300 epochs): NDCG@100 0.474 logistic
    vs 0.461 multinomial, so "logistic" is the default (``benchmarks/results/swdae_*.md``).

    *Epochs.* The paper's 100 epochs are ~23,000 Adam updates on ML-20M but 1,000 on ml-1m
    and 200 on ml-100k, far from convergence at learning rate 1e-3 (DESIGN.md pitfall).
    ``epochs="auto"`` keeps the paper's 100 epochs where they give at least 3,000 updates
    and trains longer on smaller data. Measured on validation users (seed-98765 split,
    K=1000, Adam 1e-3): on ml-1m NDCG@100 reaches 0.474 after 3,000 updates (300 epochs;
    plateau 0.477 at higher learning rates); on ml-100k it peaks at 0.477 after 1,700
    updates and is 0.468 after 3,000 (0.373 after the paper's 100 epochs). Pass ``X_valid``
    or ``early_stopping=True`` to keep the best epoch, or a larger ``learning_rate`` (1e-2
    reaches the same plateau in ~10x fewer updates) to train faster.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from skcfae import ItemGrouper, SparseWideDAE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(300, 100, random_state=0)
    >>> pipe = Pipeline([("group", ItemGrouper(K=20, R=2, F=8, random_state=0)),
    ...                  ("dae", SparseWideDAE(epochs=2, random_state=0))]).fit(X)
    >>> pipe[-1].membership_.shape
    (100, 20)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **_WIDE_CONSTRAINTS,
        "R": [Interval(Integral, 1, None, closed="left"), None],
        "F": [Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions({"laplacian", "svd"})],
        "stacked_sizes": [tuple, list],
    }
    _phases = ("pretrain", "finetune")

    def __init__(
        self,
        K: int = 1000,
        *,
        R: int | None = None,
        F: int = 50,
        method: str = "laplacian",
        stacked_sizes: tuple[int, ...] = (),
        dropout: float = 0.6,
        hidden_dropout: float = 0.2,
        loss: str = "logistic",
        l2_reg: float = 0.0,
        record_diagnostics: bool = False,
        epochs: int | str = "auto",
        batch_size: int = 500,
        learning_rate: float = 1e-3,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 20,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.K = K
        self.R = R
        self.F = F
        self.method = method
        self.stacked_sizes = stacked_sizes
        self.dropout = dropout
        self.hidden_dropout = hidden_dropout
        self.loss = loss
        self.l2_reg = l2_reg
        self.record_diagnostics = record_diagnostics
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: InteractionMatrix, y: Any = None, *, X_valid: Any = None) -> SparseWideDAE:
        """Learn the groups (unless X carries them) and train the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Training interactions, or the output of ``ItemGrouper.transform`` (which carries
            the learned ``membership``).
        y : None
            Ignored.
        X_valid : sparse matrix or tuple (X_fold_in, X_holdout), optional
            Validation users, as in :meth:`MultVAE.fit`.

        Returns
        -------
        self : object
        """
        self._given_membership = getattr(X, "membership", None)
        try:
            return super().fit(X, y, X_valid=X_valid)  # type: ignore[return-value]
        finally:
            for name in ("_given_membership", "_X_train"):  # never pickled
                self.__dict__.pop(name, None)

    def _needs_groups(self) -> bool:
        return self._given_membership is None

    def _prepare(self, X_train: sp.csr_array, seed: int) -> None:
        given = self._given_membership
        if given is not None:
            membership = sp.csr_array(given, dtype=np.float32)
            if membership.shape[0] != X_train.shape[1]:
                raise ValueError(
                    f"SparseWideDAE.fit: the membership carried by X has {membership.shape[0]} "
                    f"items but X has {X_train.shape[1]}; fit the ItemGrouper on the same "
                    "item columns."
                )
            self.grouper_ = None
        else:
            from ..grouping import ItemGrouper

            self.grouper_ = ItemGrouper(
                self.K, R=self.R, F=self.F, method=self.method, random_state=seed
            ).fit(X_train)
            membership = self.grouper_.membership_
        self.membership_ = membership
        self.stacked_memberships_: list[sp.csr_array] = []
        self._X_train, self._seed = X_train, seed

    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        memberships = [self.membership_, *self.stacked_memberships_]
        return (
            [SparseEncoder(M, generator) for M in memberships],
            [SparseDecoder(M, generator) for M in memberships[::-1]],
        )

    # -- stacked Sw-dae (§3.4): greedy layer-wise pre-training, then fine-tuning --------------
    def _second_stage(self, module: nn.Module) -> nn.Module | None:
        if not self.stacked_sizes:
            return None
        from ..grouping import ItemGrouper

        assert isinstance(module, WideAE)
        X, seed = self._X_train, self._seed
        pretrained: list[WideAE] = [module]
        memberships = []
        for depth, width in enumerate(self.stacked_sizes, start=2):
            codes = _codes(pretrained[-1], X, self.batch_size)  # hidden units as observed
            grouper = ItemGrouper(
                width, F=min(self.F, codes.shape[1]), method=self.method, random_state=seed
            ).fit(codes)
            M = grouper.membership_
            generator = torch.Generator().manual_seed(seed + depth)
            layer = WideAE(
                [SparseEncoder(M, generator)],
                [SparseDecoder(M, generator)],
                dropout=self.dropout,
                hidden_dropout=self.hidden_dropout,
            )
            train(
                layer,
                codes,
                loss=self._reconstruction_loss,
                epochs=self._n_epochs(),
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                weight_decay=self._weight_decay(),
                device=self.device_,
                seed=seed + depth,
                verbose=self.verbose,
                desc=f"{type(self).__name__} layer {depth}",
            )
            pretrained.append(layer)
            memberships.append(M)
            X = codes
        self.stacked_memberships_ = memberships
        stacked = self._build_module(torch.Generator().manual_seed(seed))
        n = len(pretrained)
        for depth, layer in enumerate(pretrained):  # copy the pre-trained weights (Eq. 6-7)
            stacked.encoders[depth].load_state_dict(layer.encoders[0].state_dict())
            stacked.decoders[n - 1 - depth].load_state_dict(layer.decoders[0].state_dict())
        return stacked.to(self.device_)


def _codes(module: WideAE, X: sp.csr_array, batch_size: int) -> sp.csr_array:
    """The innermost code of every row of X (eval mode), as a CSR matrix: the data of the
    next greedy layer."""
    device = next(module.parameters()).device
    rows = SparseRows(X, device)
    module.eval()
    with torch.no_grad():
        parts = [module.encode(b).cpu().numpy() for b in rows.batches(batch_size)]
    return sp.csr_array(np.vstack(parts).astype(np.float32))


class FCDAE(_WideDAE):
    """Fully connected denoising autoencoder (Fc-dae) and its pruned / L1 variants.

    ``papers/000_a2475424b54d3d60.txt`` §5.3-5.6: identical to :class:`SparseWideDAE`
    (sigmoid, input dropout 0.6, hidden dropout 0.2, untied weights, same loss and
    optimisation) except that every item connects to every one of the K hidden neurons.

    - **Fc-reg** (§5.6, Table 5): ``l1_activation = λ1 > 0`` adds
      ``λ1 · mean_u Σ_k |h_uk|`` to the loss, making the hidden code sparsely activated
      (Glorot-style ℓ1 on activations, [9]).
    - **Fc-prune** (§5.6, Table 4; Han et al. [5]): ``prune = p`` trains the dense network,
      removes the fraction ``p`` of weights of smallest magnitude in each of the encoder and
      decoder, then retrains the surviving connections (from their trained values) for
      ``prune_epochs`` epochs as a sparse network. ``prune=0.9`` is Fc-Prune-90, with the same
      10% density as Sw-dae.

    Parameters
    ----------
    K : int, default=1000
        Width of the hidden layer.
    l1_activation : float, default=0.0
        λ1 of Fc-reg.
    prune : float or None, default=None
        Fraction of weights removed after the dense training (Fc-prune); None: no pruning.
    prune_epochs : int or None, default=None
        Retraining epochs after pruning; None means ``epochs``.
    dropout : float, default=0.6
        Input dropout probability on the stored entries (the corruption C(x̃|x), §4.3).
    hidden_dropout : float, default=0.2
        Dropout probability on the hidden layer during training (§4.3).
    loss : {"logistic", "multinomial"}, default="logistic"
        Output likelihood. "logistic" is the literal Eq. 4-5 (sigmoid outputs, Bernoulli
        log-likelihood over all items); "multinomial" is a softmax over items, as §4 ("the
        output at the decoder before the softmax") and the Mult-DAE it is compared with.
        "logistic" is the default: it was better on ml-1m validation users (see Notes).
    l2_reg : float, default=0.0
        L2 penalty ``l2_reg * Σ ||W||²`` on the weights.
    record_diagnostics : bool, default=False
        Add to every epoch of ``history_`` the spectral norm and stable rank of each weight
        matrix and the generalization-bound quantity of §5.5 (Figure 4).
    epochs : int or "auto", default="auto"
        Training epochs. "auto" is the paper's 100, or more on small data: at least 3,000
        Adam updates, i.e. ``max(100, ceil(3000 / ceil(n_users / batch_size)))`` (see Notes).
    batch_size : int, default=500
    learning_rate : float, default=1e-3
        Adam's learning rate (§4.3).
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=20
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    Attributes
    ----------
    encoder_pattern_, decoder_pattern_ : scipy.sparse.csr_array or None
        Surviving connections (n_items, K) after pruning; None for a dense network.
    module_, history_, best_epoch_, device_, n_items_in_, n_features_in_
        As in :class:`~skcfae.MultVAE`. With pruning, ``history_`` holds the dense epochs
        then the retraining epochs, each record with its ``phase`` ("dense"/"retrain").
    n_parameters_ : int

    Examples
    --------
    >>> from skcfae import FCDAE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(300, 100, random_state=0)
    >>> FCDAE(K=20, epochs=2, random_state=0).fit(X).recommend(X[:2], n=3).shape
    (2, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **_WIDE_CONSTRAINTS,
        "l1_activation": [Interval(Real, 0, None, closed="left")],
        "prune": [Interval(Real, 0, 1, closed="neither"), None],
        "prune_epochs": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        K: int = 1000,
        *,
        l1_activation: float = 0.0,
        prune: float | None = None,
        prune_epochs: int | None = None,
        dropout: float = 0.6,
        hidden_dropout: float = 0.2,
        loss: str = "logistic",
        l2_reg: float = 0.0,
        record_diagnostics: bool = False,
        epochs: int | str = "auto",
        batch_size: int = 500,
        learning_rate: float = 1e-3,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 20,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.K = K
        self.l1_activation = l1_activation
        self.prune = prune
        self.prune_epochs = prune_epochs
        self.dropout = dropout
        self.hidden_dropout = hidden_dropout
        self.loss = loss
        self.l2_reg = l2_reg
        self.record_diagnostics = record_diagnostics
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _l1(self) -> float:
        return float(self.l1_activation)

    def _prepare(self, X_train: sp.csr_array, seed: int) -> None:
        self.encoder_pattern_ = self.decoder_pattern_ = None
        self._pruned_values: tuple[Tensor, Tensor] | None = None

    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        if self.encoder_pattern_ is None:
            decoder = dense_linear(self.K, self.n_items_in_, generator)
            return [SparseLinear(self.n_items_in_, self.K, generator)], [decoder]
        enc_values, dec_values = self._pruned_values or (None, None)
        return (
            [SparseEncoder(self.encoder_pattern_, generator, enc_values)],
            [SparseDecoder(self.decoder_pattern_, generator, dec_values)],
        )

    def _second_stage(self, module: nn.Module) -> nn.Module | None:
        """After the dense training: prune and return the sparse module to retrain."""
        if self.prune is None:
            return None
        assert isinstance(module, WideAE)
        enc, dec = module.encoders[0], module.decoders[0]
        assert isinstance(enc, SparseLinear) and isinstance(dec, nn.Linear)
        # both weights are (n_items, K)
        enc_pattern, enc_values = _prune(enc.weight.detach().cpu(), self.prune)
        dec_pattern, dec_values = _prune(dec.weight.detach().cpu(), self.prune)
        self.encoder_pattern_, self.decoder_pattern_ = enc_pattern, dec_pattern
        self._pruned_values = (enc_values, dec_values)
        sparse = self._build_module(torch.Generator().manual_seed(0))
        sparse_enc, sparse_dec = sparse.encoders[0], sparse.decoders[0]
        assert isinstance(sparse_enc, SparseEncoder) and isinstance(sparse_dec, SparseDecoder)
        with torch.no_grad():  # biases carry over too
            sparse_enc.bias.copy_(enc.bias)
            sparse_dec.bias.copy_(dec.bias)
        self._pruned_values = None
        return sparse

    def _second_stage_epochs(self) -> int:
        return int(self.prune_epochs) if self.prune_epochs else self._n_epochs()


def _prune(W: Tensor, fraction: float) -> tuple[sp.csr_array, Tensor]:
    """Keep the ``1 - fraction`` largest-magnitude entries of W (ties kept)."""
    magnitude = W.abs().numpy()
    n_keep = max(1, int(round((1.0 - fraction) * magnitude.size)))
    threshold = np.partition(magnitude.ravel(), magnitude.size - n_keep)[magnitude.size - n_keep]
    keep = magnitude >= threshold
    pattern = sp.csr_array(keep.astype(np.float32))
    pattern.sort_indices()
    rows, cols = pattern.nonzero()
    return pattern, W[torch.from_numpy(rows), torch.from_numpy(cols)].float()
