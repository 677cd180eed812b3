"""SVAE: sequential variational autoencoder (Sachdeva, Manco, Ritacco & Pudi, WSDM 2019).

Each user's items, sorted by time, run through a GRU; after every prefix of the sequence a
Mult-VAE-like head (dense encoder to a Gaussian latent code, dense decoder to item logits)
predicts the next item. The order is data: ``fit``, ``decision_function``, ``recommend`` and
``score`` take ``timestamps`` (a matrix with X's pattern), routed through Pipelines and
searches by scikit-learn's metadata routing.

Internally a user's order travels as a *rank matrix*: X's pattern holding, at each stored
entry, its position (1, 2, ...) in the user's time order. It slices, validates and batches
like any interaction matrix, and the network sorts each batch's entries by it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._compat import Interval, StrOptions, _fit_context
from .._typing import InteractionMatrix
from .._validation import check_interactions
from ..base import shared_args
from ..model_selection import _sequence_times, _temporal_split
from ..nn import Batch, Phase, TrainConfig, TrainState, user_rows
from ..nn._engine import PhaseFactory
from ..nn._losses import _MultinomialNLL
from ..nn._modules import dense_linear
from ._neural import NEURAL_CONSTRAINTS, RESUME_CONSTRAINTS, NeuralRecommender

__all__ = ["SVAE"]


# ---------------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------------


def _ranks(X: sp.csr_array, times: np.ndarray | None) -> sp.csr_array:
    """The rank matrix of canonical CSR ``X``: at each stored entry its position (from 1) in
    its row's order by ``times`` (equal times: by item index), or by item index without times.
    float32 is exact up to 2**24 items per user."""
    counts = np.diff(X.indptr)
    position = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts) + 1
    rank = np.empty(X.nnz, dtype=np.float32)
    if times is None:
        rank[:] = position
    else:
        rows = np.repeat(np.arange(X.shape[0]), counts)
        order = np.lexsort((X.indices, times, rows))  # by row, then time, then item
        rank[order] = position
    out = sp.csr_array((rank, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    out.has_canonical_format = True
    return out


def _sequences(batch: Batch, keys: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each row's items ordered by ``keys`` (one per stored entry).

    Returns ``(items, lengths, row, position)``: ``items`` (b, L) the padded sequences (0
    after a row's end), ``lengths`` (b,) and, for the k-th entry of the rows in order, its
    row and its position in the row's sequence (both (nnz,)).
    """
    row = batch.row_of
    # rows are contiguous in a batch: sorting by (row, key) orders each row in place
    composite = row.to(torch.float64) * (float(keys.max()) + 1.0 if keys.numel() else 1.0)
    order = torch.argsort(composite + keys.to(torch.float64), stable=True)
    cols = batch.cols[order]
    position = torch.arange(cols.numel(), device=cols.device) - batch.offsets[row]
    length = int(batch.counts.max()) if batch.size else 0
    items = torch.zeros(batch.size, max(length, 1), dtype=torch.long, device=cols.device)
    items[row, position] = cols
    return items, batch.counts, row, position


class SVAENet(nn.Module):
    """The SVAE network (Sachdeva et al., WSDM 2019; Le's survey §5.2, Eq. 18-22).

    ``item embedding -> GRU -> [tanh dense layers] -> (μ, log σ²)`` of the latent code of each
    step, and ``z -> [tanh dense layers] -> item logits``. The state before the first item is
    the GRU's zero initial state, so step ``t`` (from 0) reads the first ``t`` items.
    """

    def __init__(
        self,
        n_items: int,
        embedding_size: int,
        gru_size: int,
        hidden: tuple[int, ...],
        n_components: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_components = n_components
        self.embedding = nn.utils.skip_init(nn.Embedding, n_items, embedding_size)
        nn.init.normal_(self.embedding.weight, generator=generator)  # torch's default, N(0, 1)
        # built on the meta device, then filled: torch's own init would draw from the global
        # generator
        self.gru = nn.GRU(embedding_size, gru_size, batch_first=True, device="meta")
        self.gru = self.gru.to_empty(device="cpu")
        bound = gru_size**-0.5  # torch's default GRU initialisation, from the generator
        for weight in self.gru.parameters():
            nn.init.uniform_(weight, -bound, bound, generator=generator)
        enc = [gru_size, *hidden]
        self.encoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(enc[:-1], enc[1:], strict=True)
        )
        self.latent = dense_linear(enc[-1], 2 * n_components, generator)
        dec = [n_components, *hidden[::-1], n_items]
        self.decoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(dec[:-1], dec[1:], strict=True)
        )

    def states(self, items: Tensor, lengths: Tensor) -> Tensor:
        """GRU states ``(b, L + 1, gru_size)``: ``[:, t]`` after the first ``t`` items
        (``[:, 0]`` is the zero initial state; positions past a row's length are zero)."""
        b, length = items.shape
        packed = pack_padded_sequence(
            self.embedding(items),
            lengths.clamp_min(1).cpu(),  # an empty row runs on padding, its output unused
            batch_first=True,
            enforce_sorted=False,
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)
        return torch.cat([out.new_zeros(b, 1, out.shape[2]), out], dim=1)

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | state) (the survey's Eq. 22)."""
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        out = self.latent(h)
        return out[:, : self.n_components], out[:, self.n_components :]

    def decode(self, z: Tensor) -> Tensor:
        """Item logits of π(z) (the survey's Eq. 19)."""
        for i, layer in enumerate(self.decoder):
            z = layer(z if i == 0 else torch.tanh(z))
        return z


def svae_loss(
    logits: Tensor,
    step_of: Tensor,
    targets: Tensor,
    weights: Tensor,
    mu: Tensor,
    logvar: Tensor,
    kl_weights: Tensor,
    n_users: int,
    beta: float,
) -> Tensor:
    """The SVAE loss of a batch of sequences, averaged over its users.

    ``(1/b) Σ_s [ -Σ_j w_sj log softmax(logits_s)_j + β c_s KL(N(μ_s, σ_s²) || N(0, I)) ]``
    over the ``S`` steps of the batch's ``b`` users: the multinomial log-likelihood of the
    items that follow each step (``targets`` of steps ``step_of``, weights ``w = weights``
    summing to 1 per step; Sachdeva et al., WSDM 2019; Le's survey, §5.2, Eq. 18-20) and the
    KL term of each step's code, weighted by ``c = kl_weights`` (``1 / T_u`` for the steps
    of a user with ``T_u`` of them: each user's KL averaged over their steps, as in the
    authors' code).
    """
    n_steps = logits.shape[0]
    if n_steps == 0:
        return logits.sum() * 0.0
    # the fused multinomial NLL averages over its rows (the steps): rescale to users
    nll = _MultinomialNLL.apply(logits, step_of, targets, weights) * (n_steps / n_users)
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(dim=1)
    return nll + beta * (kl * kl_weights).sum() / n_users


# ---------------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------------

_MISSING = (
    "{caller}: SVAE orders each user's items by time: pass timestamps=, a sparse matrix with "
    "X's sparsity pattern holding the time of each interaction (the `timestamps` of the "
    "skcfae.datasets loaders), or a dense array of X's shape read at X's stored entries. In a "
    "Pipeline or a search, enable scikit-learn's metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)) and pass timestamps= to fit or "
    "score: SVAE requests them. For data without times, set missing_timestamps='shuffle'."
)


class SVAE(NeuralRecommender):
    """Sequential variational autoencoder: a GRU over each user's time-ordered items, with a
    VAE head that predicts the next item after every prefix.

    The SVAE of N. Sachdeva, G. Manco, E. Ritacco and V. Pudi (*Sequential Variational
    Autoencoders for Collaborative Filtering*, WSDM 2019), as described in Le's survey of
    autoencoder recommenders (§5, Eq. 18-22) and in the authors' public notebook. Each user's
    interactions are sorted by time (``timestamps``; equal times by item index) into a
    sequence ``x_1..x_T``. An item embedding (256) feeds a GRU (200); after the first ``t``
    items (``t = 0..T-1``, the GRU's zero state for ``t = 0``) its state ``h_t`` goes
    through a tanh layer (150) to the mean and log-variance of ``q(z_t | x_1..x_t)`` (64),
    and ``z_t`` through a tanh layer (150) to the logits of ``π(z_t)`` over the items. The
    loss of a user, averaged over the batch's users, is

    ``Σ_t -log π(z_t)[x_{t+1}] + β · (1/T) Σ_t KL(q(z_t | x_1..x_t) || N(0, I))``

    (the multinomial likelihood of the next item at every step, the survey's Eq. 18-20, with
    ``z_t`` sampled by reparametrisation; with ``next_k > 1`` each step's term is the mean
    over the next ``next_k`` items; the KL term averaged over the user's steps, as in the
    authors' code, see Notes). β grows by ``1/total_anneal_steps`` per update up to
    ``anneal_cap``, as in Mult-VAE. Adam with weight decay 0.01 (``l2_reg=0.005``). The
    scores of a user are the logits of the next-item distribution after their whole
    sequence, at ``z = μ`` (the survey's §5.3): only their own items, in their own order,
    enter; a user never seen in training is scored from their sequence alone.

    Parameters
    ----------
    n_components : int, default=64
        Size of the latent code z of each step.
    embedding_size : int, default=256
        Size of the item embedding, the GRU's input.
    gru_size : int, default=200
        Number of GRU cells.
    hidden_layer_sizes : tuple of int, default=(150,)
        tanh layers between the GRU and the latent code; the decoder mirrors them.
    next_k : int, default=1
        Items each step predicts: its likelihood term is the mean of ``-log π`` over the
        next ``next_k`` items (fewer at the end of a sequence). 1 is the next-item
        likelihood of the paper; the authors' notebook trains with 4 (``loss_type="next_k"``).
    anneal_cap : float, default=0.2
        Largest KL weight β.
    total_anneal_steps : int or "auto", default="auto"
        β = min(anneal_cap, step / total_anneal_steps), ``step`` counting updates. "auto"
        reaches ``anneal_cap`` after 80% of the ``epochs`` budget, as in :class:`MultVAE`.
    l2_reg : float, default=0.005
        L2 penalty ``l2_reg · Σ ||W||²`` on the weight matrices (embedding, GRU and dense
        weights), i.e. Adam's (coupled) ``weight_decay = 2 · l2_reg = 0.01``.
    missing_timestamps : {"raise", "shuffle"}, default="raise"
        What ``fit`` and the scoring methods do when called without ``timestamps``:
        "raise" a ``ValueError`` (SVAE is a sequence model); "shuffle": the order is unknown,
        so every epoch visits each training user's items in a fresh random order (no order is
        favoured) and the scoring methods read them in item-index order. "shuffle" is an
        order-free SVAE for data without times (it is what scikit-learn's estimator checks
        and the package's ranking contract run); timestamps given are always used.
    epochs : int, default=25
        The authors' notebook trains 25 epochs.
    batch_size : int, default=32
        Users per update, their sequences padded and packed.
    learning_rate : float, default=1e-2
        Adam's learning rate (the notebook: torch's 1e-3, with one user per update; see
        Notes).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the users to keep the best epoch, when ``fit``
        gets no ``X_valid``; their histories are split by time (80/20).
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=5
        Epochs without validation improvement before stopping (only when validating).
    warm_start : bool, default=False
        With True, the next ``fit`` of a fitted model continues training its network and
        optimiser for ``epochs`` more epochs on data of the same shape.
    checkpoint : str, path-like or None, default=None
        File the complete training state is written to after every epoch (atomically); a
        later ``fit`` with the same parameters and data resumes from it.
    device : str, default="auto"
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        0 silent, 1 a progress bar, 2 a line per epoch.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (on ``device_``).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (the loss per user), ``dur`` and
        ``valid_ndcg`` when validating.
    best_epoch_ : int
        Epoch whose weights were kept (only when validating).
    device_ : torch.device
    n_items_in_ : int
        Number of items (columns) seen in ``fit``.
    n_features_in_ : int
        Same as ``n_items_in_``.

    See Also
    --------
    MultVAE : the order-free variational autoencoder SVAE extends.
    skcfae.model_selection.temporal_split : the time-sorted 80/20 evaluation split.
    skcfae.metrics.temporal_scorer : a scorer on that split, for searches.

    Notes
    -----
    Metadata routing: ``fit``, ``decision_function`` and ``score`` request ``timestamps`` by
    default (as scikit-learn's group splitters request ``groups``), so with
    ``sklearn.set_config(enable_metadata_routing=True)`` a Pipeline or a search passes them
    on without ``set_fit_request``; a search slices them by rows with X.
    ``skcfae.recommend(pipeline, X, n, timestamps=T)`` passes them to the last step.

    Deviations from the paper and the authors' notebook:

    - Batches of users (``batch_size=32``), their sequences padded and packed; the notebook
      trains one user per update (25 epochs of ~4,500 updates on ML-1M). Per-user losses are
      the same; there are 32 times fewer updates, so Adam's step is 1e-2 rather than the
      notebook's 1e-3. On ml-100k (ratings > 3.5, the temporal split of
      ``benchmarks/svae.py``, a small network: embedding, GRU and dense layers of 64, codes
      of 32, 5 epochs) the validation NDCG@100 reached 0.255 at 1e-2 and 0.187 at 1e-3
      (without weight decay; 0.192 with it after 6 epochs); on the test users, 0.263 and
      0.174, popularity 0.170. The full network at 1e-2 reached 0.263 after 3 epochs.
    - The first item is predicted too, from the GRU's zero state: the likelihood is
      ``Π_{t=0}^{T-1} P(x_{t+1} | x_{1:t})`` as in the survey's Eq. 18; the notebook starts
      at ``t = 1``. So a user with no interaction gets a learned prior, and a user's score
      reads their whole sequence (the notebook scores from all fold-in items but the last).
    - The KL term of a user is averaged over their steps, as in the notebook, where the
      ELBO of the survey's Eq. 20-21 sums it (a ``T`` times larger weight). Summed, the
      per-step codes collapse: on planted-groups data
      (``make_interactions(600, 150, n_groups=15)``, 100 users folded in, NDCG@20,
      ``missing_timestamps="shuffle"``) a small SVAE scored 0.216, popularity's level
      (0.219), against 0.308 averaged (0.414 without weight decay). The
      notebook reads the log-standard deviation it samples with as a log-variance in its KL;
      here the encoder outputs a log-variance, used in both places.
    - β follows the "auto" schedule of :class:`MultVAE` (the notebook: step / 200,000 with
      cap 0.2, i.e. ≤ 0.11 after its 25 epochs on ML-1M); pass an int for a fixed one.
    - Weight decay on weight matrices only (biases are not penalised); the notebook applies
      Adam's weight decay (5e-3 there; 0.01 in Le's survey, used here) to every parameter.
    - Dense layers start Xavier-uniform (the notebook: Xavier-normal, the same variance),
      biases at N(0, 0.001²); embedding and GRU keep torch's default laws. All draws come
      from the seeded generator.
    - No cap on a sequence's length: the notebook has none either (its preprocessing drops
      ML-1M users with more than 1,000 positive ratings). A batch's training logits hold
      (number of interactions of its users) x n_items values: lower ``batch_size`` for very
      long histories or large catalogues.

    References
    ----------
    N. Sachdeva, G. Manco, E. Ritacco and V. Pudi. Sequential Variational Autoencoders for
    Collaborative Filtering. WSDM 2019, doi:10.1145/3289600.3291007 (code:
    https://github.com/noveens/svae_cf).

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import SVAE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(100, 40, random_state=0)
    >>> T = X.copy()
    >>> T.data = np.random.RandomState(0).rand(T.nnz)  # the time of each interaction
    >>> model = SVAE(epochs=1, random_state=0).fit(X, timestamps=T)
    >>> model.recommend(X[:2], n=3, timestamps=T[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **NEURAL_CONSTRAINTS,
        **RESUME_CONSTRAINTS,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "embedding_size": [Interval(Integral, 1, None, closed="left")],
        "gru_size": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [tuple, list],
        "next_k": [Interval(Integral, 1, None, closed="left")],
        "anneal_cap": [Interval(Real, 0, None, closed="left")],
        "total_anneal_steps": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "missing_timestamps": [StrOptions({"raise", "shuffle"})],
    }

    # timestamps are essential: requested by default through metadata routing, as
    # scikit-learn's group splitters request ``groups``
    __metadata_request__fit = {"timestamps": True}
    __metadata_request__decision_function = {"timestamps": True}
    __metadata_request__score = {"timestamps": True}

    def __init__(
        self,
        n_components: int = 64,
        *,
        embedding_size: int = 256,
        gru_size: int = 200,
        hidden_layer_sizes: tuple[int, ...] = (150,),
        next_k: int = 1,
        anneal_cap: float = 0.2,
        total_anneal_steps: int | str = "auto",
        l2_reg: float = 0.005,
        missing_timestamps: str = "raise",
        epochs: int = 25,
        batch_size: int = 32,
        learning_rate: float = 1e-2,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 5,
        warm_start: bool = False,
        checkpoint: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), NeuralRecommender))
        self.n_components = n_components
        self.embedding_size = embedding_size
        self.gru_size = gru_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.next_k = next_k
        self.anneal_cap = anneal_cap
        self.total_anneal_steps = total_anneal_steps
        self.l2_reg = l2_reg
        self.missing_timestamps = missing_timestamps
        self.warm_start = warm_start
        self.checkpoint = checkpoint

    # -- orders -----------------------------------------------------------------------------
    def _ranked(self, X: sp.csr_array, timestamps: Any, caller: str) -> sp.csr_array:
        """The rank matrix of validated X: by ``timestamps``, or by item index when there are
        none and ``missing_timestamps="shuffle"`` (else the ValueError saying how to pass
        them)."""
        if timestamps is None:
            if self.missing_timestamps == "raise":
                raise ValueError(_MISSING.format(caller=caller))
            return _ranks(X, None)
        return _ranks(X, _sequence_times(timestamps, X, caller))

    # -- fit --------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X: InteractionMatrix,
        y: Any = None,
        *,
        timestamps: InteractionMatrix | None = None,
        X_valid: Any = None,
        timestamps_valid: InteractionMatrix | None = None,
    ) -> SVAE:
        """Train on the time-ordered items of the users (rows) of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Training interactions; every stored positive entry is one item of the user's
            sequence (values are not used otherwise).
        y : None
            Ignored.
        timestamps : {array-like, sparse matrix} of shape (n_users, n_items)
            Time of each interaction of X: a sparse matrix with X's pattern (the loaders'
            ``timestamps``) or a dense array read at X's stored entries; any numeric scale,
            only the order counts (equal times: by item index). Required unless
            ``missing_timestamps="shuffle"``.
        X_valid : sparse matrix or tuple (X_fold_in, X_holdout), optional
            Validation users. A matrix is split by time (the earliest 80% of each row folded
            in, the latest 20% held out, :func:`skcfae.model_selection.temporal_split`); a
            tuple is used as given. Each epoch is scored by NDCG@100 on the hold-out and the
            best epoch kept, as in :meth:`MultVAE.fit`.
        timestamps_valid : {array-like, sparse matrix}, optional
            Times of X_valid (of ``X_fold_in`` for a tuple); required with X_valid when
            timestamps is given.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        caller = "SVAE.fit"
        X = check_interactions(X, caller=caller)
        if timestamps is None and timestamps_valid is not None:
            raise ValueError(f"{caller}: timestamps_valid was given without timestamps.")
        R = self._ranked(X, timestamps, caller)  # without timestamps: raises, or "shuffle"
        R_valid = X_valid
        if X_valid is not None:
            if timestamps is not None and timestamps_valid is None:
                raise ValueError(
                    f"{caller}: X_valid needs its timestamps too (timestamps_valid=, the "
                    "times of X_valid, or of its fold-in part for a (fold_in, holdout) pair)."
                )
            fold_in = X_valid[0] if isinstance(X_valid, tuple) else X_valid
            fold_in = check_interactions(fold_in, caller=f"{caller}(X_valid)")
            if fold_in.shape[1] != X.shape[1]:
                raise ValueError(
                    f"{caller}: X_valid has {fold_in.shape[1]} items but X has {X.shape[1]}; "
                    "pass validation users over the same item columns."
                )
            ranked = self._ranked(fold_in, timestamps_valid, f"{caller}(X_valid)")
            R_valid = (ranked, *X_valid[1:]) if isinstance(X_valid, tuple) else ranked
        self._by_time = timestamps is not None
        try:
            return self._fit(R, R_valid, shuffle=timestamps is None)
        finally:
            del self._by_time

    def _validation_split(
        self, X: sp.csr_array, X_valid: Any, rng: np.random.RandomState
    ) -> tuple[sp.csr_array, tuple[sp.csr_array, sp.csr_array] | None]:
        """The base class's validation users (drawn from X, or X_valid), with a matrix split
        by time (its ranks) rather than at random when the order is known."""
        X_train, valid = super()._validation_split(X, X_valid, rng)
        if valid is None or not self._by_time or isinstance(X_valid, tuple):
            return X_train, valid
        whole = sp.csr_array(valid[0] + valid[1])  # the validation rows again (a partition)
        # split by the ranks (the times' order); the fold-in part keeps them as its values
        fold_in, holdout, _, _ = _temporal_split(whole, whole.data.astype(np.float64), 0.2, 5)
        return X_train, (fold_in, holdout)

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        rows = user_rows(X_train, config.device)
        loss = self._shuffled_loss if given.get("shuffle") else self._loss
        return [Phase("train", module, rows, loss)]

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return SVAENet(
            self.n_items_in_,
            int(self.embedding_size),
            int(self.gru_size),
            tuple(int(h) for h in self.hidden_layer_sizes),
            int(self.n_components),
            generator,
        )

    def _weight_decay(self) -> float:
        return 2.0 * self.l2_reg  # gradient of l2_reg * ||W||²

    def _beta(self, state: TrainState) -> float:
        if self.total_anneal_steps == "auto":
            total = max(
                1.0, 0.8 * int(self.epochs) * state.steps_per_epoch / max(self.anneal_cap, 1e-12)
            )
        else:
            total = float(self.total_anneal_steps)
        return min(self.anneal_cap, state.step / total)

    def _shuffled_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """:meth:`_loss` on a fresh random order of each user's items (no times known)."""
        keys = torch.rand(batch.vals.shape, generator=state.generator, device=batch.vals.device)
        return self._sequence_loss(module, batch, keys, state)

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        return self._sequence_loss(module, batch, batch.vals, state)

    def _sequence_loss(
        self, module: nn.Module, batch: Batch, keys: Tensor, state: TrainState
    ) -> Tensor:
        assert isinstance(module, SVAENet)
        items, lengths, row, position = _sequences(batch, keys)
        states = module.states(items, lengths)
        # one step per stored entry: the state before it predicts it (and the next_k - 1
        # items after it)
        mu, logvar = module.encode(states[row, position])
        eps = torch.randn(mu.shape, generator=state.generator, device=mu.device, dtype=mu.dtype)
        logits = module.decode(mu + eps * torch.exp(0.5 * logvar))
        step_of, targets, weights = _next_items(items, lengths, row, position, int(self.next_k))
        kl_weights = 1.0 / lengths[row].to(mu.dtype)  # each user's KL: the mean over steps
        beta = self._beta(state)
        return svae_loss(
            logits, step_of, targets, weights, mu, logvar, kl_weights, batch.size, beta
        )

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        assert isinstance(module, SVAENet)
        items, lengths, _, _ = _sequences(batch, batch.vals)
        states = module.states(items, lengths)
        last = states[torch.arange(batch.size, device=items.device), lengths]
        mu, _ = module.encode(last)
        out: Tensor = module.decode(mu)
        return out

    # -- scoring ----------------------------------------------------------------------------
    def decision_function(
        self, X: InteractionMatrix, *, timestamps: InteractionMatrix | None = None
    ) -> np.ndarray:
        """Score every item for each user (row) of X: the logits of their next item.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of the users to score; they need not be training users.
        timestamps : {array-like, sparse matrix} of shape (n_users, n_items)
            Time of each interaction of X (as in :meth:`fit`).

        Returns
        -------
        scores : ndarray of shape (n_users, n_items)
            Higher is better.
        """
        check_is_fitted(self)
        caller = "SVAE.decision_function"
        X = self._validate_interactions(X, reset=False, caller=caller)
        return super().decision_function(self._ranked(X, timestamps, caller))

    @overload
    def recommend(
        self,
        X: InteractionMatrix,
        n: int = ...,
        *,
        timestamps: InteractionMatrix | None = ...,
        exclude_seen: bool = ...,
        items: npt.ArrayLike | None = ...,
        return_scores: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def recommend(
        self,
        X: InteractionMatrix,
        n: int = ...,
        *,
        timestamps: InteractionMatrix | None = ...,
        exclude_seen: bool = ...,
        items: npt.ArrayLike | None = ...,
        return_scores: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def recommend(
        self,
        X: InteractionMatrix,
        n: int = 10,
        *,
        timestamps: InteractionMatrix | None = None,
        exclude_seen: bool = True,
        items: npt.ArrayLike | None = None,
        return_scores: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for each user (row) of X, best first, from their sequence.

        As :meth:`RecommenderMixin.recommend <skcfae.RecommenderMixin.recommend>`, with the
        order of each user's items given by ``timestamps``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of the users (fold-in); they need not be training users.
        n : int, default=10
        timestamps : {array-like, sparse matrix} of shape (n_users, n_items)
            Time of each interaction of X (as in :meth:`fit`).
        exclude_seen : bool, default=True
        items : array-like of int, default=None
            Candidate items.
        return_scores : bool, default=False

        Returns
        -------
        items : ndarray of shape (n_users, n), dtype int64
        scores : ndarray of shape (n_users, n), dtype float32
            Only with ``return_scores=True``.
        """
        check_is_fitted(self)
        caller = "SVAE.recommend"
        X = self._validate_interactions(X, reset=False, caller=caller)
        out: np.ndarray | tuple[np.ndarray, np.ndarray] = self._recommend_validated(
            X,
            n,
            exclude_seen=exclude_seen,
            items=items,
            return_scores=return_scores,
            caller=caller,
            timestamps=timestamps,
        )
        return out

    def _recommend_validated(
        self,
        X: sp.csr_array,
        n: int,
        *,
        exclude_seen: bool,
        items: npt.ArrayLike | None,
        return_scores: bool,
        caller: str,
        timestamps: Any = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The base class's ranking loop on the rank matrix of X (every internal ranking path,
        the scorers' included, comes through here: without timestamps it raises or, with
        ``missing_timestamps="shuffle"``, reads the items in index order)."""
        return super()._recommend_validated(
            self._ranked(X, timestamps, caller),
            n,
            exclude_seen=exclude_seen,
            items=items,
            return_scores=return_scores,
            caller=caller,
        )

    def score(
        self, X: InteractionMatrix, y: Any = None, *, timestamps: InteractionMatrix | None = None
    ) -> float:
        """NDCG@100 of each user's latest 20% of interactions, ranked from the earlier 80%.

        The temporal split of the paper's protocol
        (:func:`skcfae.metrics.temporal_scorer` with its defaults). Without timestamps (and
        ``missing_timestamps="shuffle"``), the random 80/20 split of every recommender's
        ``score``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of evaluation users.
        y : None
            Ignored.
        timestamps : {array-like, sparse matrix} of shape (n_users, n_items)
            Time of each interaction of X.

        Returns
        -------
        score : float
        """
        if timestamps is None:
            return super().score(X, y)
        from ..metrics import temporal_scorer

        check_is_fitted(self)
        return float(temporal_scorer("ndcg", k=100)(self, X, timestamps=timestamps))


def _next_items(
    items: Tensor, lengths: Tensor, row: Tensor, position: Tensor, k: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Targets of the steps (one per stored entry, in ``row``/``position`` order): step ``s``
    at position ``t`` of its row predicts the items at positions ``t..t+k-1`` that exist,
    each with weight ``1 / their number``. Returns ``(step_of, targets, weights)``."""
    steps = torch.arange(row.numel(), device=row.device)
    remaining = lengths[row] - position  # items from this step's target on, >= 1
    count = torch.clamp(remaining, max=k)
    step_of = torch.cat([steps[count > j] for j in range(k)])
    ahead = torch.cat([torch.full_like(steps[count > j], j) for j in range(k)])
    targets = items[row[step_of], position[step_of] + ahead]
    weights = 1.0 / count[step_of].to(torch.float32)
    return step_of, targets, weights
