"""NCF: Neural Collaborative Filtering (NeuMF) of He, Liao, Zhang, Nie, Hu and Chua (WWW 2017).

A user and an item each have two embeddings: one for the generalized matrix factorization
(GMF, their element-wise product) and one for the multi-layer perceptron (MLP, a ReLU tower
on their concatenation). A final linear layer fuses the two into the logit of "u consumed i",
trained by log loss on the observed pairs plus uniformly sampled unobserved ones.

The engine batches user rows; each block of training users becomes (user, item, label)
instances (its positives plus ``negative_samples`` fresh negatives per positive), shuffled and
cut into updates of ``batch_size`` instances (:meth:`NCF._instance_step`). A user never seen
in training gets fresh user embeddings fitted to their own history with every item
embedding and tower weight frozen (:meth:`NCF._fold_in`), never a training user's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from ..base import shared_args
from ..nn import Batch, Phase, TrainConfig, TrainState, Validation, fit_loop, user_rows
from ..nn._engine import LossFn, PhaseFactory, apply_update
from ._cdae import sample_negatives
from ._neural import NEURAL_CONSTRAINTS, RESUME_CONSTRAINTS, NeuralRecommender

__all__ = ["NCF"]

#: Training users whose instances are shuffled together (one engine batch of user rows).
_BLOCK_USERS = 1000
#: Users scored (and folded in) at once.
_SCORE_USERS = 256
#: Largest (users x items x width) activation of the tower computed at once when scoring.
_SCORE_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class _Weights:
    """Everything but the user embeddings: item embeddings, tower layers, fusion layer."""

    item_gmf: Tensor
    item_mlp: Tensor
    layers: tuple[tuple[Tensor, Tensor], ...]
    out_weight: Tensor
    out_bias: Tensor

    def detached(self) -> _Weights:
        return _Weights(
            self.item_gmf.detach(),
            self.item_mlp.detach(),
            tuple((w.detach(), b.detach()) for w, b in self.layers),
            self.out_weight.detach(),
            self.out_bias.detach(),
        )


def pair_logits(w: _Weights, user_gmf: Tensor, user_mlp: Tensor, items: Tensor) -> Tensor:
    """NeuMF's logit of each (user, item) pair (He et al., WWW 2017, §3.4, Eq. 12, before σ).

    ``φ_GMF = p_u ⊙ q_i``; ``φ_MLP = a_L(W_L(... a_1(W_1 [p'_u; q'_i] + b_1) ...) + b_L)``
    with ReLU ``a``; logit ``h · [φ_GMF; φ_MLP] + b``.

    Parameters
    ----------
    w : _Weights
    user_gmf, user_mlp : Tensor of shape (m, K)
        The user embeddings of each pair.
    items : Tensor of shape (m,)
    """
    gmf = user_gmf * w.item_gmf[items]
    h = torch.cat([user_mlp, w.item_mlp[items]], dim=1)
    for weight, bias in w.layers:
        h = torch.relu(F.linear(h, weight, bias))
    return F.linear(torch.cat([gmf, h], dim=1), w.out_weight, w.out_bias).squeeze(1)


def grid_logits(w: _Weights, user_gmf: Tensor, user_mlp: Tensor) -> Tensor:
    """:func:`pair_logits` of every user (row) with every item, shape (b, n_items).

    The first tower layer on ``[p'_u; q'_i]`` is split into its user and item halves (each
    computed once), and the users are taken in slices so that no (users x items x width)
    activation exceeds ``_SCORE_ELEMENTS`` values.
    """
    K = user_gmf.shape[1]
    n_items = w.item_gmf.shape[0]
    w_gmf, w_mlp = w.out_weight[0, :K], w.out_weight[0, K:]
    gmf = (user_gmf * w_gmf) @ w.item_gmf.T  # h_GMF · (p_u ⊙ q_i), (b, n)
    (w1, b1), rest = w.layers[0], w.layers[1:]
    user_part = user_mlp @ w1[:, :K].T  # (b, width)
    item_part = w.item_mlp @ w1[:, K:].T + b1  # (n, width)
    widest = max(int(weight.shape[0]) for weight, _ in w.layers)
    step = max(1, _SCORE_ELEMENTS // max(1, n_items * widest))
    parts = []
    for start in range(0, user_gmf.shape[0], step):
        h = torch.relu(user_part[start : start + step, None, :] + item_part[None])
        for weight, bias in rest:
            h = torch.relu(F.linear(h, weight, bias))
        parts.append(h @ w_mlp)
    mlp = torch.cat(parts) if parts else gmf.new_zeros(0, n_items)
    return gmf + mlp + w.out_bias


class _NeuMF(nn.Module):
    """NeuMF's parameters (He et al., §3.4, Figure 3): GMF embeddings ``user_gmf`` (P) and
    ``item_gmf`` (Q), MLP embeddings ``user_mlp`` (P') and ``item_mlp`` (Q'), the tower
    ``tower`` and the fusion layer ``output`` (h, b); the buffers ``start_gmf`` and
    ``start_mlp`` hold the fold-in start of a new user's embeddings."""

    start_gmf: Tensor
    start_mlp: Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_components: int,
        hidden: tuple[int, ...],
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        K = n_components

        def embedding(n: int) -> nn.Parameter:  # N(0, 0.01²), He et al. §4.1
            return nn.Parameter(torch.randn(n, K, generator=generator) * 0.01)

        self.user_gmf = embedding(n_users)
        self.item_gmf = embedding(n_items)
        self.user_mlp = embedding(n_users)
        self.item_mlp = embedding(n_items)
        sizes = (2 * K, *hidden)
        layers = [
            nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        for layer in layers:  # Keras' Dense default, as in He et al.'s code
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)
        self.tower = nn.ModuleList(layers)
        self.output = nn.utils.skip_init(nn.Linear, K + sizes[-1], 1)
        bound = float(np.sqrt(3.0 / (K + sizes[-1])))  # lecun_uniform, as in He et al.'s code
        nn.init.uniform_(self.output.weight, -bound, bound, generator=generator)
        nn.init.zeros_(self.output.bias)
        self.register_buffer("start_gmf", torch.zeros(K))
        self.register_buffer("start_mlp", torch.zeros(K))

    def _layers(self) -> list[nn.Linear]:
        return [layer for layer in self.tower if isinstance(layer, nn.Linear)]

    def weights(self) -> _Weights:
        return _Weights(
            self.item_gmf,
            self.item_mlp,
            tuple((layer.weight, layer.bias) for layer in self._layers()),
            self.output.weight,
            self.output.bias,
        )

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits of training users' (user, item) pairs."""
        return pair_logits(self.weights(), self.user_gmf[users], self.user_mlp[users], items)


class _NewUsers(nn.Module):
    """The GMF and MLP embeddings of the rows of one scoring batch (their only parameters),
    starting from the fitted start vectors; indexed by position in the batch."""

    def __init__(self, n_rows: int, start_gmf: Tensor, start_mlp: Tensor) -> None:
        super().__init__()
        self.user_gmf = nn.Parameter(start_gmf.detach().expand(n_rows, -1).clone())
        self.user_mlp = nn.Parameter(start_mlp.detach().expand(n_rows, -1).clone())


class _Rows:
    """A row source over the rows of one scoring batch that always hands out the whole
    batch (the fold-in loss reads its instances by row position, in any order)."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    @property
    def n_rows(self) -> int:
        return self._batch.size

    def batch(self, rows: Tensor) -> Batch:
        return self._batch


def _new_user_vectors(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    assert isinstance(module, _NewUsers)
    return [("user_gmf", module.user_gmf), ("user_mlp", module.user_mlp)]


def _unobserved(items: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The ``ranks``-th unobserved items (0-based) of a row whose sorted observed items are
    ``items``: ``r + #{k : items[k] - k <= r}``."""
    before = items - np.arange(items.size)
    return ranks + np.searchsorted(before, ranks, side="right")


class NCF(NeuralRecommender):
    """Neural Collaborative Filtering (NeuMF): GMF and an MLP tower fused into one logit.

    He, Liao, Zhang, Nie, Hu and Chua (WWW 2017, §3.2-3.4, Eq. 7, 9, 10, 12). Each user u and item
    i have a GMF embedding (``p_u``, ``q_i``) and an MLP embedding (``p'_u``, ``q'_i``), all of
    size K. The GMF vector is ``φ_GMF = p_u ⊙ q_i``. The MLP vector ``φ_MLP`` comes from a
    ReLU tower on ``[p'_u; q'_i]``, of widths 2K → K → K/2. The score is
    ``ŷ_ui = σ(h · [φ_GMF; φ_MLP] + b)``, so the network is 2K → K → K/2 → 1 with the GMF
    vector joining at the last layer (the NCF baseline of Li, Zheng and Wu, *Neural
    Collaborative Autoencoder*, arXiv:1712.09043, §5.1).

    - *Loss* (§3.1.1, Eq. 7): log loss on instances ``(u, i, y)``: every observed pair
      (y = 1) and, for each, ``negative_samples`` items drawn uniformly among u's unobserved
      items (y = 0), redrawn every epoch.
    - *Optimiser* (§4.1): mini-batch Adam. He et al. tune the batch size in [128, 256, 512,
      1024] and the learning rate in [1e-4, 5e-4, 1e-3, 5e-3]; the defaults are their
      code's: 256 instances per update, learning rate 1e-3, 20 epochs, no regularisation.
    - *Scores*: the logits ``h · [φ_GMF; φ_MLP] + b`` of every item (σ is increasing).

    The engine batches user rows: each epoch the training users are shuffled and taken in
    blocks of 1,000. A block's instances are its users' positives plus their fresh
    negatives, shuffled, and cut into updates of ``batch_size`` instances. An epoch is
    thus He et al.'s, one pass over every positive with fresh negatives, except that the
    instances are shuffled within a block instead of over the whole data.

    *New users.* A user never seen in training has no embeddings. Their GMF and MLP
    embeddings are fitted to their own history, with every item embedding and tower
    weight frozen: ``fold_in_epochs`` Adam steps (``fold_in_learning_rate``), each on all of
    the user's positives plus ``negative_samples`` fresh negatives per positive. The
    negatives are drawn from a generator seeded by the fitted model and the user's items.
    The fold-in is therefore deterministic and per user: a user's scores depend neither on
    the other users of the batch nor on a random draw. It never reads a training user's
    embedding. It starts from the mean of the training users' embeddings
    (``fold_in_start="mean"``, stored at the end of ``fit``) or from zeros (``"zeros"``).

    Parameters
    ----------
    n_components : int, default=16
        K: the size of the GMF embeddings and of each MLP embedding, and the width of the
        first tower layer (the second has ``K // 2`` units, at least 1). See Notes on He et al.'s
        "predictive factors".
    negative_samples : int, default=4
        Negatives per positive, in training and in the fold-in (He et al. §4.1, §4.4).
    l2_reg : float, default=0.0
        The penalty ``l2_reg · ‖W‖²`` on every embedding table and weight matrix, whole
        tables at every update (as a Keras weight regulariser does); biases are not
        penalised. He et al.'s code regularises nothing by default.
    fold_in_epochs : int, default=10
        Adam steps of a new user's embeddings, each with fresh negatives.
    fold_in_learning_rate : float, default=0.01
        Adam's step size in the fold-in.
    fold_in_start : {"mean", "zeros"}, default="mean"
        Where the fold-in starts: the mean of the training users' embeddings (stored at the
        end of ``fit``), or zero vectors. See Notes for the measurement behind the default.
    epochs : int, default=20
        Passes over the training positives (He et al.'s code runs 20 on ml-1m).
    batch_size : int, default=256
        (user, item, label) instances per Adam update (He et al.'s code). Users are scored
        and folded in 256 at a time whatever its value.
    learning_rate : float, default=1e-3
        Adam's step size (He et al.'s code).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the users, keep the epoch with the best
        validation NDCG@100 and stop after ``n_iter_no_change`` epochs without improvement.
        The validation users are new users, folded in.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=5
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
        Seeds the initialisation, the shuffling, the negatives and the fold-in draws.
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network: ``user_gmf``, ``user_mlp`` (one row per training user, in the
        order of the rows of the training X, less the validation users with
        ``early_stopping=True``), ``item_gmf``, ``item_mlp``, ``tower``, ``output``, and the
        fold-in start vectors ``start_gmf``, ``start_mlp``.
    n_users_ : int
        Number of training users (rows of the user embeddings).
    fold_in_seed_ : int
        Seed mixed with each new user's items to draw their fold-in negatives.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (mean log loss of the epoch's instances, each
        before its update), ``dur`` and ``valid_ndcg`` when validating.
    best_epoch_ : int
        Epoch whose weights were kept (only when validating).
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    BPR : matrix factorisation trained on sampled pairs.
    CDAE : denoising autoencoder with a per-user node and sampled negatives.

    Notes
    -----
    *Predictive factors.* He et al. call the width of the last hidden layer the
    "predictive factors" and use it as the GMF size too. In their experiments the MLP
    has three hidden layers, each half the width of the one below (§4.1): 8 predictive
    factors mean MLP layers 32 → 16 → 8 on embeddings of size 16, with GMF size 8. Their
    code's default (``--num_factors 8 --layers [64,32,16,8]``) instead uses MLP embeddings
    of size 32. Here K names the GMF size and each MLP embedding size, as in Li et al.
    (§5.1): "2K → K → K/2 → 1, where the embedding size for the GMF component is set to
    K". The MLP's predictive factors are thus K/2. The default K = 16 gives He et al.'s MLP
    for 8 predictive factors exactly (embeddings 16, layers 32 → 16 → 8), with a GMF of 16.
    Li et al. report K in [8, 16, 32, 64, 128].

    *Deviation: instances are drawn per block of users.* He et al. shuffle all instances
    of an epoch together; here they are shuffled within blocks of 1,000 training users
    (the engine's batches of user rows), the blocks in a new random order every epoch.
    Negatives are drawn among the user's unobserved items exactly (He et al.'s code may
    draw an observed item).

    *Not implemented: pre-training.* He et al. (§3.4.1) may initialise NeuMF from a GMF and
    an MLP trained separately. That step is optional and not implemented: their README
    runs NeuMF without it too, and notes that without it NeuMF does well at small
    predictive factors, pre-training helping at large ones.

    *Deviation: no epoch is picked on test data.* He et al.'s code evaluates every epoch
    on the test users and keeps the best one. Here all ``epochs`` are trained; pass
    ``X_valid`` or ``early_stopping=True`` to keep the best epoch on validation users.

    *New users (strong generalization)* are not in He et al.'s leave-one-out protocol,
    where every scored user is a training user. Measured on
    ``make_interactions(2000, 500, random_state=0)`` with
    ``strong_generalization_split(X, n_heldout_users=200)`` (1,600 training users with 5
    items each on average), NDCG@100 of the held-out items of the 393 validation and test
    users that have one, ``random_state`` 0 / 1 / 2:

    ============  =====  ==========  =====  =====================  =========
    epochs        start  fold-in lr  steps  seeds 0 / 1 / 2        mean
    ============  =====  ==========  =====  =====================  =========
    20 (default)  mean   0.01        10     0.232 / 0.226 / 0.233  **0.230**
    20 (default)  mean   0.005       20     0.233 / 0.226 / 0.230  0.230
    20 (default)  zeros  0.05        10     0.215 / 0.214 / 0.209  0.213
    20 (default)  zeros  0.02        20     0.208 / 0.220 / 0.216  0.214
    20 (default)  mean   1e-6        1      0.207 / 0.208 / 0.186  0.200
    10            mean   0.01        10     0.240 / 0.236 / 0.241  0.239
    10            zeros  0.02        20     0.241 / 0.247 / 0.241  0.243
    40            mean   0.01        10     0.226 / 0.226 / 0.214  0.222
    40            zeros  0.02        20     0.192 / 0.172 / 0.193  0.186
    ============  =====  ==========  =====  =====================  =========

    At the default 20 epochs the mean start beats the zero start at every fold-in step
    size up to 0.02 (paired over the users, +0.034 with standard error 0.006 at 0.01 and 10
    steps); the best zero start there (0.214) stays below it. Trained 10 epochs the two are
    level; trained longer, the zero start falls fast (0.186 at 40 epochs) and the mean
    start slowly: hence ``"mean"``, with 10 steps of 0.01. The row with one step of 1e-6
    scores every new user as the mean training user, unchanged. Larger fold-in steps (0.05,
    0.2) were worse with either start. For reference, on the same users Popularity scores
    0.211 and ``EASE(lam=50.0)`` 0.284: with 4 fold-in items per user on average, NCF
    learns little beyond popularity here and overfits after ~10 epochs (the training loss
    falls from 0.56 to 0.13 in 20 epochs).

    *Deviation: initialisation of the dense layers.* He et al. (§4.1) draw every parameter
    from N(0, 0.01²); their code does so for the embeddings only, with Xavier-uniform tower
    weights (Keras' default) and a LeCun-uniform fusion layer. This follows the code;
    biases start at zero.

    The fold-in start vectors are buffers of the module, set once at the end of ``fit``
    (and before each validation): scoring a new user never reads a training user's row.

    References
    ----------
    X. He, L. Liao, H. Zhang, L. Nie, X. Hu and T.-S. Chua. Neural Collaborative Filtering.
    WWW 2017, doi:10.1145/3038912.3052569.

    Q. Li, X. Zheng and X. Wu. Neural Collaborative Autoencoder. arXiv:1712.09043 (§5.1,
    the NCF baseline).

    Examples
    --------
    >>> from skcfae import NCF
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = NCF(n_components=8, epochs=2, random_state=0).fit(X)
    >>> model.module_.user_gmf.shape  # one GMF embedding per training user
    torch.Size([200, 8])
    >>> model.recommend(X[:2], n=3).shape
    (2, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **RESUME_CONSTRAINTS,
        **NEURAL_CONSTRAINTS,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "negative_samples": [Interval(Integral, 1, None, closed="left")],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "fold_in_epochs": [Interval(Integral, 1, None, closed="left")],
        "fold_in_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "fold_in_start": [StrOptions({"zeros", "mean"})],
    }

    def __init__(
        self,
        n_components: int = 16,
        *,
        negative_samples: int = 4,
        l2_reg: float = 0.0,
        fold_in_epochs: int = 10,
        fold_in_learning_rate: float = 0.01,
        fold_in_start: str = "mean",
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
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
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.n_components = n_components
        self.negative_samples = negative_samples
        self.l2_reg = l2_reg
        self.fold_in_epochs = fold_in_epochs
        self.fold_in_learning_rate = fold_in_learning_rate
        self.fold_in_start = fold_in_start

    # -- network and training ----------------------------------------------------------------
    def _hidden(self) -> tuple[int, ...]:
        K = int(self.n_components)
        return (K, max(1, K // 2))

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return _NeuMF(
            self.n_users_, self.n_items_in_, int(self.n_components), self._hidden(), generator
        )

    def _weight_decay(self) -> float:
        return 2.0 * float(self.l2_reg)  # gradient of l2_reg · ||W||²

    def _batch_users(self) -> int:
        return _SCORE_USERS  # batch_size counts instances, not users

    def _train_config(self, X_train: sp.csr_array, seed: int) -> TrainConfig:
        # the engine's batches are blocks of users; batch_size is used by _instance_step
        return replace(super()._train_config(X_train, seed), batch_size=_BLOCK_USERS)

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        self.n_users_ = int(X_train.shape[0])
        self.fold_in_seed_ = int(config.seed)
        counts = np.diff(X_train.indptr)
        has_room = counts < X_train.shape[1]
        n_instances = int(counts.sum() + self.negative_samples * counts[has_room].sum())
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        rows = user_rows(X_train, config.device)
        step = partial(self._instance_step, n_instances=max(1, n_instances))
        return [Phase("train", module, rows, self._loss, step=step)]

    def _fit(self, X: Any, X_valid: Any, **given: Any) -> NCF:
        super()._fit(X, X_valid, **given)
        with torch.no_grad():
            self._set_start(self.module_)
        return self

    def _set_start(self, module: nn.Module) -> None:
        """The fold-in start: zeros, or the mean training user's embeddings now."""
        assert isinstance(module, _NeuMF)
        if self.fold_in_start == "mean":
            module.start_gmf.copy_(module.user_gmf.detach().mean(dim=0))
            module.start_mlp.copy_(module.user_mlp.detach().mean(dim=0))
        else:
            module.start_gmf.zero_()
            module.start_mlp.zero_()

    def _validation(self, fold_in: sp.csr_array, holdout: sp.csr_array) -> Validation:
        """NDCG@100 of the validation users, folded in from the current start vectors."""
        base = super()._validation(fold_in, holdout)

        def score(module: nn.Module) -> float:
            self._set_start(module)
            return base.score(module)

        return Validation(base.name, score, base.greater_is_better, base.label)

    def _instances(self, batch: Batch, state: TrainState) -> tuple[Tensor, Tensor, Tensor]:
        """(user, item, label) of the block's instances in a random order: every positive
        and ``negative_samples`` fresh uniform negatives per positive."""
        assert batch.ids is not None  # training users: their embeddings are rows of the net
        rows, neg = sample_negatives(batch, int(self.negative_samples), state.generator)
        users = batch.ids[torch.cat([batch.row_of, rows])]
        items = torch.cat([batch.cols, neg])
        labels = torch.cat([torch.ones_like(batch.vals), batch.vals.new_zeros(neg.numel())])
        order = torch.randperm(users.numel(), generator=state.generator, device=users.device)
        return users[order], items[order], labels[order]

    @staticmethod
    def _log_loss(module: nn.Module, users: Tensor, items: Tensor, labels: Tensor) -> Tensor:
        """Mean log loss of instances (He et al., Eq. 7, divided by their number)."""
        return F.binary_cross_entropy_with_logits(module(users, items), labels)

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """Mean log loss of a block's instances, taken as one update."""
        return self._log_loss(module, *self._instances(batch, state))

    def _instance_step(
        self,
        module: nn.Module,
        batch: Batch,
        loss: LossFn,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
        *,
        n_instances: int,
    ) -> Tensor:
        """The block's instances in updates of ``batch_size``; returns the block's summed
        loss scaled so that the epoch's ``train_loss`` is the mean over its ``n_instances``
        instances."""
        users, items, labels = self._instances(batch, state)
        size = int(self.batch_size)
        total = torch.zeros((), device=users.device)
        for start in range(0, users.numel(), size):
            part = slice(start, start + size)
            value = apply_update(
                optimizer, self._log_loss(module, users[part], items[part], labels[part]), state
            )
            total += value * (min(start + size, users.numel()) - start)
        # run_epoch averages the returned values weighted by the block's users
        return total * (self.n_users_ / (n_instances * batch.size))

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        """Logits of every item: a training user's own embeddings (``batch.ids``), or a new
        user's folded in (no ids)."""
        assert isinstance(module, _NeuMF)
        w = module.weights()
        if batch.ids is not None:
            return grid_logits(w, module.user_gmf[batch.ids], module.user_mlp[batch.ids])
        if batch.size == 0:
            return grid_logits(w, module.start_gmf[:0], module.start_mlp[:0])
        new = self._fold_in(module, batch)
        return grid_logits(w, new.user_gmf.detach(), new.user_mlp.detach())

    # -- new users ---------------------------------------------------------------------------
    def _fold_in_negatives(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Each row's fold-in negatives for every epoch, from a generator seeded by the model
        and the row's items: (row of each draw, items of shape (fold_in_epochs, n_draws))."""
        n_items, epochs, s = batch.n_items, int(self.fold_in_epochs), int(self.negative_samples)
        cols = batch.cols.cpu().numpy()
        starts = batch.offsets.cpu().numpy()
        counts = batch.counts.cpu().numpy()
        rows, draws = [], []
        for r in range(batch.size):
            items = np.sort(cols[starts[r] : starts[r] + counts[r]])
            room = n_items - items.size
            if items.size == 0 or room == 0:
                continue
            seed = [self.fold_in_seed_, zlib.crc32(items.astype(np.int64).tobytes())]
            ranks = np.random.default_rng(seed).integers(0, room, size=(epochs, s * items.size))
            rows.append(np.full(s * items.size, r, dtype=np.int64))
            draws.append(_unobserved(items, ranks))
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((epochs, 0), dtype=np.int64)
        return np.concatenate(rows), np.concatenate(draws, axis=1)

    def _fold_in(self, module: _NeuMF, batch: Batch) -> _NewUsers:
        """Embeddings of the rows of ``batch`` (new users), fitted with the rest frozen."""
        device = batch.cols.device
        w = module.weights().detached()
        new = _NewUsers(batch.size, module.start_gmf, module.start_mlp)
        neg_rows, neg_items = self._fold_in_negatives(batch)
        neg_rows_t = torch.from_numpy(neg_rows).to(device)
        neg_items_t = torch.from_numpy(neg_items).to(device)
        rows = torch.cat([batch.row_of, neg_rows_t])
        labels = torch.cat([torch.ones_like(batch.vals), batch.vals.new_zeros(neg_rows.size)])
        per_row = torch.bincount(rows, minlength=batch.size).clamp_min(1).to(batch.vals.dtype)
        weight = 1.0 / per_row[rows]  # each row's mean: every row its own objective

        def loss(m: nn.Module, _: Batch, state: TrainState) -> Tensor:
            assert isinstance(m, _NewUsers)
            items = torch.cat([batch.cols, neg_items_t[state.epoch - 1]])
            z = pair_logits(w, m.user_gmf[rows], m.user_mlp[rows], items)
            each = F.binary_cross_entropy_with_logits(z, labels, reduction="none")
            return (each * weight).sum()

        config = TrainConfig(
            epochs=int(self.fold_in_epochs),
            batch_size=max(1, batch.size),  # one step per epoch, every row at once
            learning_rate=float(self.fold_in_learning_rate),
            device=device,
            seed=0,
            optimizer="adam",
            weight_decay=self._weight_decay(),
            desc=f"{type(self).__name__} fold-in",
        )
        phase = Phase(
            "fold_in", new, _Rows(batch), loss, validate=False, parameters=_new_user_vectors
        )
        # One thread: the gradient of ``m.user_gmf[rows]`` accumulates the pairs of a row in
        # an order that varies between runs with several CPU threads (last-bit differences
        # between two calls on the same rows); a new user's scores must not.
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            with torch.enable_grad():
                fit_loop(phase, config)
        finally:
            torch.set_num_threads(threads)
        return new
