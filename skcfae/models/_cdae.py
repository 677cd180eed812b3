"""CDAE: the Collaborative Denoising Auto-Encoder of Wu, DuBois, Zheng and Ester (WSDM 2016).

A denoising autoencoder over a user's binary history with one extra input, the *user node*:
a learned vector V_u per training user added to the hidden pre-activation. Training rows
carry their user ids (:attr:`skcfae.nn.Batch.ids`) and pick their V_u; rows of users never
seen in training carry none, and get either V_u = 0 or a fresh V_u fitted to their own
history with every other weight frozen (:class:`_NewUsers`), never a training user's vector.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from ..base import shared_args
from ..nn import Batch, Phase, TrainConfig, TrainState, fit_loop, user_rows
from ..nn._engine import PhaseFactory
from ..nn._modules import SparseLinear, dense_linear, dropout_values
from ._neural import NEURAL_CONSTRAINTS, RESUME_CONSTRAINTS, NeuralRecommender

__all__ = ["CDAE", "cdae_loss", "sample_negatives"]

#: Cost of one output computed at a (row, item) pair by a sampled product, relative to one
#: output of a dense GEMM (measured on a CPU: ~290 ns vs ~11 ns per output, K=50).
_SAMPLED_COST = 25


def sample_negatives(batch: Batch, ratio: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Negative items for each row: ``ratio · |O_u|`` draws, uniform with replacement among
    the row's unobserved items (Wu et al., WSDM 2016, §4).

    Exact and loop-free: with the row's observed items ``c_0 < c_1 < ...`` and
    ``a_k = c_k - k`` (the unobserved items before ``c_k``), the ``r``-th unobserved item is
    ``r + #{k : a_k <= r}``; one ``searchsorted`` over the batch finds it for every draw. A
    row without unobserved items draws nothing.

    Parameters
    ----------
    batch : Batch
        Rows whose stored entries are the observed items O_u (no duplicate columns in a row).
    ratio : int
        Negatives per observed item.
    generator : torch.Generator

    Returns
    -------
    rows, cols : Tensor of shape (n_draws,)
        Batch row and item of each draw, sorted by row, then item (a CSR pattern, with an
        item drawn twice stored twice).
    """
    n = batch.n_items
    device = batch.cols.device
    counts = batch.counts
    unobserved = n - counts
    draws = torch.where(unobserved > 0, counts * ratio, torch.zeros_like(counts))
    total = int(draws.sum())
    rows = torch.repeat_interleave(
        torch.arange(batch.size, device=device), draws, output_size=total
    )
    u = torch.rand(total, generator=generator, device=device, dtype=torch.float64)
    room = unobserved[rows]
    r = torch.minimum((u * room.to(torch.float64)).long(), room - 1)
    row_of = batch.row_of
    keys, _ = torch.sort(row_of * n + batch.cols)  # observed items, sorted within each row
    rank = torch.arange(keys.numel(), device=device) - batch.offsets[row_of]
    before = keys - row_of * n - rank  # a_k, non-decreasing within a row, in [0, n)
    found = torch.searchsorted(row_of * n + before, rows * n + r, right=True)
    drawn, _ = torch.sort(rows * n + r + found - batch.offsets[rows])  # by row, then item
    return rows, drawn - rows * n


def _positive_part(z: Tensor, loss: str) -> Tensor:
    """Loss of an observed item (target 1) at output ``z``, elementwise."""
    return F.softplus(-z) if loss == "logistic" else (z - 1.0) ** 2


def _negative_part(z: Tensor, loss: str) -> Tensor:
    """Loss of an unobserved item (target 0) at output ``z``, elementwise."""
    return F.softplus(z) if loss == "logistic" else z * z


def cdae_loss(
    z_pos: Tensor,
    z_neg: Tensor,
    n_rows: int,
    *,
    loss: str = "logistic",
    positive_weight: float = 1.0,
    neg_weight: Tensor | float = 1.0,
) -> Tensor:
    """The data term of CDAE's objective (Wu et al., WSDM 2016, §4; Le 2020 survey, §3,
    Eq. 10), averaged over the rows of a batch.

    For user u with observed items O_u and negative items N_u (sampled, or every unobserved
    item)::

        c · Σ_{i ∈ O_u} ℓ(1, z_ui)  +  Σ_{j ∈ N_u} ℓ(0, z_uj)

    with ``ℓ(y, z) = -y log σ(z) - (1 - y) log(1 - σ(z))`` (``loss="logistic"``: sigmoid
    output, cross-entropy on the logit ``z``) or ``ℓ(y, z) = (y - z)²`` (``loss="square"``:
    identity output), and ``c = positive_weight``. Summed over the rows and divided by
    ``n_rows``.

    Parameters
    ----------
    z_pos : Tensor of shape (n_observed,)
        Outputs at the observed entries.
    z_neg : Tensor of shape (n_negative,)
        Outputs at the negative entries (a sampled item drawn twice appears twice).
    n_rows : int
        Number of users of the batch.
    loss : {"logistic", "square"}, default="logistic"
    positive_weight : float, default=1.0
    neg_weight : float or Tensor of shape (n_negative,), default=1.0
        Weight of each negative entry.
    """
    pos = _positive_part(z_pos, loss).sum()
    neg = (_negative_part(z_neg, loss) * neg_weight).sum()
    return (positive_weight * pos + neg) / n_rows


def _dense_cdae_loss(
    logits: Tensor,
    batch: Batch,
    *,
    loss: str,
    positive_weight: float,
    neg_weight: Tensor | None = None,
) -> Tensor:
    """:func:`cdae_loss` with every unobserved item a negative, from dense (b, n_items)
    outputs; ``neg_weight`` (shape (b,)) weights the unobserved items of each row."""
    z_pos = logits[batch.row_of, batch.cols]
    neg_all = _negative_part(logits, loss)
    neg_obs = _negative_part(z_pos, loss)
    if neg_weight is None:
        neg = neg_all.sum() - neg_obs.sum()
    else:
        neg = (neg_all.sum(dim=1) * neg_weight).sum() - (neg_obs * neg_weight[batch.row_of]).sum()
    pos = _positive_part(z_pos, loss).sum()
    return (positive_weight * pos + neg) / batch.size


class _CDAENet(nn.Module):
    """CDAE's network (Le 2020 survey, §3, Eq. 9): ``z_u = σ(Wᵀ ỹ_u + V_u + b)``,
    ``ŷ_u = f(W'ᵀ z_u + b')``.

    ``encoder`` holds W (n_items x K, read through ``embedding_bag``: cost ∝ the stored
    entries) and b; ``user`` holds V (n_users x K), the weights of the user node; ``decoder``
    holds W' (as an ``nn.Linear``, weight n_items x K) and b'. ``forward`` returns the output
    before f (logits for the logistic loss, the output itself for the square loss).
    """

    def __init__(self, n_users: int, n_items: int, n_components: int, generator: torch.Generator):
        super().__init__()
        self.encoder = SparseLinear(n_items, n_components, generator)
        # zeros: before training a training user's node equals a new user's (V_u = 0)
        self.user = nn.Parameter(torch.zeros(n_users, n_components))
        self.decoder = dense_linear(n_components, n_items, generator)

    def hidden(self, batch: Batch, user: Tensor | None = None) -> Tensor:
        """``z_u``; V_u is ``user`` when given, else the training vector of ``batch.ids``,
        else (a fold-in row, no id) zero."""
        pre = self.encoder(batch)
        if user is not None:
            pre = pre + user
        elif batch.ids is not None:
            pre = pre + self.user[batch.ids]
        return torch.sigmoid(pre)

    def at(self, h: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """The output at (row, item) pairs only, ``h_r · W'_c + b'_c``; ``rows`` sorted.

        Few pairs: a sampled dense-dense product at the pairs, O(pairs · K), whose gradients
        reach the rows of W' of those items only. Many pairs (more than 1/25 of the batch x
        items, where one GEMM over all items is faster on a CPU): the dense output gathered
        at the pairs, with the same values and gradients.
        """
        b, n = h.shape[0], self.decoder.weight.shape[0]
        if rows.numel() * _SAMPLED_COST >= b * n:
            return self.decoder(h)[rows, cols]
        counts = torch.bincount(rows, minlength=b)
        ends = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            pattern = torch.sparse_csr_tensor(
                ends, cols, torch.zeros(cols.numel(), dtype=h.dtype, device=h.device), size=(b, n)
            )
        z = torch.sparse.sampled_addmm(pattern, h, self.decoder.weight.T, beta=0.0).values()
        return z + self.decoder.bias[cols]

    def forward(self, batch: Batch, user: Tensor | None = None) -> Tensor:
        return self.decoder(self.hidden(batch, user))


class _NewUsers(nn.Module):
    """Fresh user nodes for the rows of one scoring batch, on a frozen trained network.

    ``user`` (b x K, zeros at the start) is the only parameter; ``pre`` is the frozen
    ``Wᵀ y_u + b`` of the rows' clean histories, ``weight``/``bias`` the frozen W', b'. Rows
    are indexed by their position in the scoring batch: this table holds nothing but these
    rows' own vectors.
    """

    pre: Tensor
    weight: Tensor
    bias: Tensor

    def __init__(self, pre: Tensor, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.zeros_like(pre))
        self.register_buffer("pre", pre)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, batch: Batch) -> Tensor:
        assert batch.ids is not None  # positions in the scoring batch
        h = torch.sigmoid(self.pre[batch.ids] + self.user[batch.ids])
        return F.linear(h, self.weight, self.bias)


def _new_user_vectors(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The one parameter a fold-in trains: the new users' vectors."""
    assert isinstance(module, _NewUsers)
    return [("user", module.user)]


class CDAE(NeuralRecommender):
    """Collaborative Denoising Auto-Encoder (CDAE) for top-n recommendation.

    Wu, DuBois, Zheng and Ester (WSDM 2016, §4; Le 2020 survey, §3, Eq. 9-10): a denoising
    autoencoder over the binary history ``y_u`` of a user, with one extra input node per
    user. The hidden layer is ``z_u = σ(Wᵀ ỹ_u + V_u + b)`` with K units, where ``V_u`` is
    the learned weight vector of user u's node. The output is ``ŷ_u = f(W'ᵀ z_u + b')``.

    - *Corruption* (§4): dropout ``q`` on the stored entries of the input, with the kept
      ones scaled by ``1/(1-q)``. The targets are the clean history.
    - *Losses* (§4): ``loss="logistic"`` (sigmoid output f, cross-entropy) or
      ``loss="square"`` (identity output, squared error). The observed items are weighted by
      ``positive_weight`` (``positive_weight > 1``: the weighted square loss of Khawar et al.,
      §4.4).
    - *Negative sampling* (§4): with ``negative_samples = s``, each update computes the
      loss of user u on their observed items plus ``s · |O_u|`` items drawn uniformly (with
      replacement) among their unobserved items, redrawn at every update. Only those outputs
      are computed. ``negative_samples=None`` uses every item, as §4 also allows.
    - *Regularisation* (§4; Le's Eq. 10): ``l2_reg · (||W||² + ||W'||² + ||V||²)``, i.e. Wu et
      al.'s ``λ/2 Σ ||·||²`` with ``λ = 2 · l2_reg``; biases are not penalised (see Notes).
    - *Scores*: the output for the clean history, before f (f is increasing, so the ranking
      is the same).

    The first layer reads the sparse history (``embedding_bag``: cost ∝ stored entries).
    With sampled negatives only the outputs at the observed and sampled items are computed.

    *New users.* A user never seen in training has no V_u. ``new_user="zero"`` (the default)
    uses ``V_u = 0``. ``new_user="fold_in"`` fits a fresh V_u for each new user to their own
    history, starting from 0, with W, W', b and b' frozen (see Notes). Neither ever uses a
    training user's vector.

    Parameters
    ----------
    n_components : int, default=50
        K, the number of hidden units. Wu et al. use K = 50 in their experiments (§5), as
        does Le's survey (§3).
    dropout : float, default=0.5
        q, the corruption level: the probability of dropping each stored input entry. Wu et
        al. (§5) report the best level between 0.2 and 0.5 depending on the data set; 0.5 is
        the survey's (§3) and Liang et al.'s denoising rate.
    loss : {"logistic", "square"}, default="logistic"
        The reconstruction loss. Logistic: sigmoid output and cross-entropy (Wu et al.'s
        sigmoid hidden and output layers); square: identity output and squared error.
    negative_samples : int or None, default=5
        Negative items per observed item in each update; None uses every unobserved item.
        Wu et al. (§4, §5) find 5 negatives per observed item enough.
    positive_weight : float, default=1.0
        Weight c of the observed items in the loss (1: Wu et al.'s unweighted loss).
    l2_reg : float, default=2e-5
        The penalty ``l2_reg · Σ ||·||²`` on W, W' and V. 2e-5 is the Mult-DAE value of
        Liang et al.'s code (``λ = 0.01`` over batches of 500), whose settings Khawar et al.
        §4.4 used for this baseline.
    new_user : {"zero", "fold_in"}, default="zero"
        How a user without a training vector gets V_u (see Notes for the measurement that
        chose the default).
    fold_in_steps : int, default=20
        Adam updates of a new user's V_u when ``new_user="fold_in"``.
    fold_in_learning_rate : float, default=0.05
        Adam's step size of those updates.
    epochs : int or "auto", default="auto"
        Passes over the training users. "auto" is Liang et al.'s 200, or more on small data:
        enough for at least 3,000 updates (see Notes).
    batch_size : int, default=500
        Users per update, and users scored (and folded in) at once (Khawar et al. §4.4).
    learning_rate : float, default=1e-3
        Adam's step size (Liang et al.'s; Khawar et al. §4.4 train CDAE with Adam).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the users, keep the epoch with the best
        validation NDCG@100 and stop after ``n_iter_no_change`` epochs without improvement.
        The validation users are new users, scored through ``new_user``; they get no row in V.
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
        Seeds the initialisation, the shuffling, the corruption and the negative samples.
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network: ``encoder`` (W, b), ``user`` (V, one row per training user, in
        the order of the rows of the training X, less the validation users with
        ``early_stopping=True``), ``decoder`` (W', b').
    n_users_ : int
        Number of training users (rows of V).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (the data term), ``dur`` and ``valid_ndcg`` when
        validating.
    best_epoch_ : int
        Epoch whose weights were kept (only when validating).
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    MultDAE : the denoising autoencoder without a user node, multinomial likelihood.
    SparseWideDAE : Khawar et al.'s sparse and wide denoising autoencoder.

    Notes
    -----
    *New users (strong generalization).* Wu et al. evaluate on held-out items of their
    training users, so every user they score has a V_u. For users never seen in training
    (the protocol of Liang et al. and of Khawar et al., §4.1) two ways are implemented.
    ``"zero"`` sets V_u = 0: the network of the shared weights alone. ``"fold_in"``
    minimises the part of the training objective that involves V_u, with every other weight
    frozen: ``fold_in_steps`` Adam updates from V_u = 0 of
    ``ℓ_u + n_users_ · l2_reg · ||V_u||²`` (the data term of Le's Eq. 10 is a mean over the
    users, the penalty is not, hence the factor). ``ℓ_u`` is the loss of the clean history
    (no corruption); with negative sampling each unobserved item is weighted by
    ``s · |O_u| / (n_items - |O_u|)``, the expectation of the sampled loss. The fold-in is
    thus deterministic: a user's scores depend neither on the other users of the batch nor
    on a random draw.

    Measured with ``make_interactions(3000, 1000, random_state=0)`` and
    ``strong_generalization_split(X, n_heldout_users=300)`` (2,400 training users),
    NDCG@100 of ``recommend(test_fold_in, 100)`` against ``test_holdout``, defaults
    otherwise, ``random_state`` 0 / 1 / 2:

    ========================  =============  =====================  =========  ==========
    training                  ``new_user``   test, seeds 0 / 1 / 2  test mean  valid mean
    ========================  =============  =====================  =========  ==========
    defaults ("auto": 600)    ``"zero"``     0.326 / 0.324 / 0.329  **0.326**  **0.316**
    defaults ("auto": 600)    ``"fold_in"``  0.316 / 0.317 / 0.324  0.319      0.312
    ``epochs=200``            ``"zero"``     0.295 / 0.287 / 0.288  0.290      0.275
    ``epochs=200``            ``"fold_in"``  0.303 / 0.297 / 0.299  0.300      0.287
    ========================  =============  =====================  =========  ==========

    ("valid": the 300 validation users of the split, also new users.) Paired over the 600
    held-out users, fold-in minus zero is -0.005 / -0.009 / -0.004 (standard error 0.004)
    at the defaults and +0.011 / +0.010 / +0.011 (0.003) at 200 epochs: the fold-in helps
    an under-trained network; at 300 epochs (``l2_reg=5e-6``) the two are level (+0.009 /
    +0.005 / +0.004). A converged network's shared weights serve a zero node better than a
    node fitted to the clean history, and scoring with ``"zero"`` is ~10 times faster (one
    forward pass against 20 updates): hence the default ``"zero"``. For reference, on the
    same test users Popularity scores 0.213, EASE (λ = 50) 0.299 and MultDAE (defaults)
    0.314. Fewer or smaller fold-in steps move ``"fold_in"`` towards ``"zero"`` without
    passing it (5 steps: 0.323 against 0.326, seed 0 at 600 epochs, ``l2_reg=5e-6``), and
    so does a fold-in under the training's corruption (0.314).

    *Defaults.* K = 50, corruption 0.5, sigmoid hidden layer, sigmoid output with the
    logistic loss and 5 negatives per observed item follow Wu et al. (§4, §5).
    Khawar et al. (§4.4) trained CDAE as a baseline "with the settings of Liang et al.":
    the weighted square loss and Adam with a batch size of 500; the weight, the penalty and
    whether negatives were sampled are not given. ``loss="square", negative_samples=None,
    positive_weight=c`` (c > 1) is that setting. Measured as above at 200 epochs (seed 0,
    ``new_user="zero"``, ``l2_reg=5e-6``): logistic loss with 5 negatives 0.295, with every
    item 0.213 (it stays near popularity, 0.213, for 400 epochs); square loss with 5
    negatives 0.293, with every item 0.313 (0.301 with ``positive_weight=10``). The square
    loss over every item overfits after ~175 epochs (validation NDCG@100 0.315, then 0.264
    at 400); with it, ``"zero"`` beat ``"fold_in"`` too (0.319 against 0.264 at 175
    epochs). ``l2_reg`` from 0 to 5e-5 made no difference (0.295); 5e-4 lost 0.011.

    *Deviation: the optimiser.* Wu et al. train by SGD with AdaGrad step sizes (§4; Le's
    survey §3); this uses Adam with a learning rate of 1e-3 and batches of 500 users, as
    Khawar et al. and Liang et al. did for this baseline.

    *Deviation: epochs.* Neither paper fixes a number of epochs for CDAE; Liang et al.
    train their autoencoders 200 epochs (46,800 updates on ML-20M). On small data 200 epochs
    are few updates: on the data above (5 updates per epoch) the validation NDCG@100 of
    ``"zero"`` rises from 0.275 after 200 epochs to 0.31-0.32 after 450-600. ``"auto"``
    trains ``max(200, ceil(3000 / updates per epoch))`` epochs (600 there, still 200 on
    ML-20M). Pass ``X_valid`` or ``early_stopping=True`` to choose the epoch on validation
    users instead.

    *Deviation: biases are not penalised.* Wu et al.'s penalty includes b and b';
    the engine's weight decay, shared by every skcfae model, penalises the weight matrices
    (W, W', V) only. The penalty applies to all of V at every update, so that the minibatch
    updates descend the objective itself: the mean data term over the users plus the penalty.

    *Initialisation* (not given by the paper): W and W' Xavier-uniform, biases
    N(0, 0.001²) (Liang et al.'s), V zeros, so that before training a training user's node
    is a new user's.

    References
    ----------
    Y. Wu, C. DuBois, A. X. Zheng and M. Ester. Collaborative Denoising Auto-Encoders for
    Top-N Recommender Systems. WSDM 2016, doi:10.1145/2835776.2835837.

    F. Khawar, L. K. M. Poon and N. L. Zhang. Learning the Structure of Auto-Encoding
    Recommenders. WWW 2020, doi:10.1145/3366423.3380135 (§4.4, the CDAE baseline).

    D. Liang, R. G. Krishnan, M. D. Hoffman and T. Jebara. Variational Autoencoders for
    Collaborative Filtering. WWW 2018 (the strong-generalization protocol).

    Examples
    --------
    >>> from skcfae import CDAE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = CDAE(n_components=8, epochs=2, random_state=0).fit(X)
    >>> model.module_.user.shape  # one user node per training user
    torch.Size([200, 8])
    >>> model.recommend(X[:2], n=3).shape
    (2, 3)
    """

    #: ``epochs="auto"``: Liang et al.'s 200 epochs, or enough for 3,000 updates on small data.
    _auto_epochs = 200
    _parameter_constraints: dict[str, list[Any]] = {
        **RESUME_CONSTRAINTS,
        **NEURAL_CONSTRAINTS,
        "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "loss": [StrOptions({"logistic", "square"})],
        "negative_samples": [Interval(Integral, 1, None, closed="left"), None],
        "positive_weight": [Interval(Real, 0, None, closed="neither")],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "new_user": [StrOptions({"fold_in", "zero"})],
        "fold_in_steps": [Interval(Integral, 1, None, closed="left")],
        "fold_in_learning_rate": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_components: int = 50,
        *,
        dropout: float = 0.5,
        loss: str = "logistic",
        negative_samples: int | None = 5,
        positive_weight: float = 1.0,
        l2_reg: float = 2e-5,
        new_user: str = "zero",
        fold_in_steps: int = 20,
        fold_in_learning_rate: float = 0.05,
        epochs: int | str = "auto",
        batch_size: int = 500,
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
        self.n_components = n_components
        self.dropout = dropout
        self.loss = loss
        self.negative_samples = negative_samples
        self.positive_weight = positive_weight
        self.l2_reg = l2_reg
        self.new_user = new_user
        self.fold_in_steps = fold_in_steps
        self.fold_in_learning_rate = fold_in_learning_rate

    # -- network and training ----------------------------------------------------------------
    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return _CDAENet(self.n_users_, self.n_items_in_, int(self.n_components), generator)

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        self.n_users_ = int(X_train.shape[0])  # rows of V: the users the network trains on
        return super()._phases(X_train, config, **given)

    def _weight_decay(self) -> float:
        return 2.0 * float(self.l2_reg)  # gradient of l2_reg · ||W||²

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """The objective's data term on one batch of training users (ids given: V_u is theirs)."""
        assert isinstance(module, _CDAENet)
        target = batch.with_values(torch.ones_like(batch.vals))  # binary history y_u
        corrupted = dropout_values(target, float(self.dropout), state.generator)
        h = module.hidden(corrupted)
        c = float(self.positive_weight)
        if self.negative_samples is None:
            return _dense_cdae_loss(module.decoder(h), target, loss=self.loss, positive_weight=c)
        rows, cols = sample_negatives(target, int(self.negative_samples), state.generator)
        z_pos = module.at(h, target.row_of, target.cols)
        z_neg = module.at(h, rows, cols)
        return cdae_loss(z_pos, z_neg, batch.size, loss=self.loss, positive_weight=c)

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        """Outputs (before f) for the clean history; V_u from ``batch.ids``, 0 without."""
        return module(batch.with_values(torch.ones_like(batch.vals)))

    # -- new users ---------------------------------------------------------------------------
    def _fold_in_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """Sum over the new users of their clean data term; unobserved items weighted by the
        expected share of them the sampler would draw."""
        target = batch.with_values(torch.ones_like(batch.vals))
        weight = None
        if self.negative_samples is not None:
            counts = target.counts.to(target.vals.dtype)
            room = (target.n_items - counts).clamp_min(1.0)
            weight = float(self.negative_samples) * counts / room
        value = _dense_cdae_loss(
            module(target),
            target,
            loss=self.loss,
            positive_weight=float(self.positive_weight),
            neg_weight=weight,
        )
        return value * batch.size  # a sum: each row's vector sees its own term only

    def _fold_in(self, module: nn.Module, X: sp.csr_array) -> Tensor:
        """V_u of each row of X (new users), fitted with every other weight frozen."""
        assert isinstance(module, _CDAENet)
        device = next(module.parameters()).device
        # the ids of these rows are their positions in X: they index the fresh table of
        # _NewUsers, never the training users' V
        rows = user_rows(X, device)
        with torch.no_grad():
            clean = rows.batch(torch.arange(X.shape[0], device=device))
            pre = module.encoder(clean.with_values(torch.ones_like(clean.vals)))
            new = _NewUsers(pre, module.decoder.weight.detach(), module.decoder.bias.detach())
        config = TrainConfig(
            epochs=int(self.fold_in_steps),
            batch_size=max(1, X.shape[0]),  # one update per step, every row at once
            learning_rate=float(self.fold_in_learning_rate),
            device=device,
            seed=0,
            optimizer="adam",
            weight_decay=self._weight_decay() * self.n_users_,
            desc=f"{type(self).__name__} fold-in",
        )
        phase = Phase(
            "fold_in",
            new,
            rows,
            self._fold_in_loss,
            validate=False,
            parameters=_new_user_vectors,
        )
        with torch.enable_grad():
            fit_loop(phase, config)
        return new.user.detach()

    def _module_scores(self, module: nn.Module, X: sp.csr_array) -> np.ndarray:
        """Scores of the rows of X as new users: V_u = 0, or folded in."""
        if self.new_user == "zero" or X.shape[0] == 0:
            return self._module_apply(module, X, self._scores)
        was_training = module.training
        module.eval()
        user = self._fold_in(module, X)
        module.train(was_training)

        def scores(m: nn.Module, batch: Batch) -> Tensor:
            return m(batch.with_values(torch.ones_like(batch.vals)), user)

        return self._module_apply(module, X, scores)
