"""Sw-dae: the sparse and wide denoising autoencoder of Khawar, Poon and Zhang (WWW 2020)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._compat import Interval, StrOptions, _fit_context
from .._typing import InteractionMatrix
from ..base import shared_args
from ..exceptions import UnusedParameterWarning
from ..nn import Batch, Phase, TrainConfig, user_rows
from ..nn._distributed import fit_on_all_rows
from ..nn._engine import PhaseFactory
from ..nn._modules import WideAE
from ..nn._sparse import SparseDecoder, SparseEncoder
from ._neural import RESUME_CONSTRAINTS
from ._wide import _WIDE_CONSTRAINTS, _WideDAE

__all__ = ["SparseWideDAE", "matching_width"]

#: Defaults of the grouping parameters: set to anything else after an ItemGrouper, they would
#: be ignored, and SparseWideDAE warns.
_GROUPING_DEFAULTS = {"K": "auto", "R": None, "F": "auto", "method": "laplacian"}


def matching_width(n_items: int, n_parameters: int, *, density: float = 0.1, depth: int = 1) -> int:
    """Width K of a Sw-dae with ``n_parameters`` parameters: the Sw-dae-p of Table 2.

    Khawar et al. (WWW 2020), §5.2 and Table 2, compare Mult-VAE with a Sw-dae of the
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


class SparseWideDAE(_WideDAE):
    """Sparse and wide denoising autoencoder (Sw-dae) with a learned item-group structure.

    Khawar et al. (WWW 2020, §3.2-3.3 and §4.3): one hidden layer of K neurons, one
    per overlapping item group; item i is connected (in the encoder and, transposed, in the
    decoder) to exactly the R groups it belongs to; untied weights; sigmoid hidden units
    ``h = σ(W x̃ + b)`` (Eq. 4); input dropout 0.6 as the corruption and dropout 0.2 on the
    hidden layer. The paper's Adam 1e-3, batch 500, 100 epochs are replaced by Adam 3e-3,
    batch 128, early stopping on held-out users and one learning-rate decay, and K by
    ``min(2000, 2 n_items / 3)`` groups (see Notes). The
    groups come from the :class:`~skcfae.ItemGrouper` before it in a Pipeline, or, used
    alone, from an ``ItemGrouper(K, R, F, method)`` fitted on the training users. Items are
    read as a binary history; scores are the decoder outputs before the output
    softmax/sigmoid.

    The layers are truly sparse (:mod:`skcfae.nn._sparse`): memory and time scale with
    ``n_items x R``, not ``n_items x K``.

    Parameters
    ----------
    K : int or "auto", default="auto"
        Number of item groups = hidden neurons; "auto" is ``min(2000, 2 * n_items // 3)``
        (:func:`skcfae.grouping.auto_K`), and ``K_`` holds the value used. After an
        ItemGrouper, the groups come with X and K, R (and F, method, unless stacked) are
        unused: setting them then warns
        (:class:`~skcfae.exceptions.UnusedParameterWarning`); search ``group__K`` instead.

        .. versionchanged:: 0.1
           Default "auto" instead of 1000 (see Notes).
    R : int or None, default=None
        Groups per item; None means K / 10 rounded half up, at least 1 (the paper's 10%
        density, §4.3).
    F : int or "auto", default="auto"
        Dimension of the spectral item embedding; "auto" is min(50, K), the paper's 50 for
        K >= 50 (see :class:`~skcfae.ItemGrouper`).

        .. versionchanged:: 0.1
           Default "auto" instead of 50 (identical for K >= 50).
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
        Most training epochs. "auto" is the paper's 100, or more on small data: at least
        ``30 / learning_rate`` Adam updates (10,000 at the default 3e-3; 30,000 at the
        paper's 1e-3, near its ~27,000), ``max(100, ceil(30 / learning_rate / ceil(n_users /
        batch_size)))``. With early stopping this is a cap, rarely reached (see Notes).

        .. versionchanged:: 0.1
           At least ``30 / learning_rate`` updates instead of 3,000.
    batch_size : int, default=128
        Users per Adam update (the paper: 500; see Notes).
    learning_rate : float, default=3e-3
        Adam's learning rate (the paper: 1e-3; see Notes).

        .. versionchanged:: 0.1
           Default 3e-3 instead of 1e-2.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training users (drawn among those with at
        least 5 interactions, each split 80/20 into fold-in and hold-out items), score every
        epoch by their NDCG@100, keep the best epoch and stop after ``n_iter_no_change``
        epochs without improvement. "auto" does so when that gives at least 10 validation
        users, else trains every epoch on all users. Ignored when ``fit`` gets ``X_valid``.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, "auto" or None, default="auto"
        Epochs without improvement before the learning rate is divided (``n_lr_decays``) or
        training stops. "auto" is ``max(10, ceil(200 / updates per epoch))``: 10 epochs
        where an epoch has 20 or more Adam updates (ml-1m: 34), more on small data
        (ml-latest-small: 4 updates per epoch, 50 epochs), whose validation score can stay
        flat for dozens of updates before it rises. None never stops early.

        .. versionchanged:: 0.1
           Default "auto" instead of 20.
    n_lr_decays : int, default=1
        With early stopping: the first ``n_lr_decays`` times that ``n_iter_no_change`` epochs
        pass without improvement, the best epoch's weights are restored, the learning rate is
        divided by 10 and training goes on (each epoch's rate is in ``history_`` as
        ``learning_rate``); after the last division it ends ``min(n_iter_no_change, 10)``
        epochs later, keeping the best epoch. 0 stops at the first plateau. Not in the paper
        (see Notes).

        .. versionchanged:: 0.1
           Default 1 instead of 0; at most 10 epochs after the last division (on ml-100k,
           ml-latest-small and lastfm-2k, 5 splits each, nothing improved after the 7th:
           the same scores, 6-17% fewer epochs).
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
    verbose : int, default=0

    Attributes
    ----------
    membership_ : scipy.sparse.csr_array of shape ``(n_items, K_)``
        The connectivity (1 where an item belongs to a group).
    K_ : int
        The number of groups = hidden neurons of the first layer (the columns of
        ``membership_``).
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
    *Defaults.* The paper trains with Adam 1e-3, batch 500, for 100 epochs (§4.3) on ML-20M,
    ~27,000 updates. On smaller data those settings are far from converged, and off MovieLens
    they fail (lastfm-2k: NDCG@100 0.13 on validation users). The defaults were chosen by one
    protocol across ml-100k, ml-1m, ml-latest-small and lastfm-2k (strong generalization,
    split seed 98765, validation users only; ``benchmarks/defaults.py``, tables in
    ``benchmarks/results/defaults.md``), validation NDCG@100 at the best epoch:

    ============================  =======  ======  ==========  =========
    candidate                     ml-100k  ml-1m   ml-l-small  lastfm-2k
    ============================  =======  ======  ==========  =========
    logistic, 1e-3, batch 500     0.434    0.474*  0.259       0.132
    multinomial, 1e-3, batch 500  0.449    0.461*  0.309       0.362
    logistic, 1e-2, batch 500     0.469    0.475   0.362       0.380
    multinomial, 1e-2, batch 500  0.473    0.459   0.344       0.371
    logistic, 1e-2, batch 128     --       0.472   0.370       0.405
    ============================  =======  ======  ==========  =========

    (* 300 epochs, from ``benchmarks/swdae.py likelihood``.) The logistic likelihood at
    learning rate 1e-2 is the best or within 0.004 of it everywhere; the paper's 1e-3 loses
    up to 0.25 for lack of updates. A batch of 128 gives 4x the updates per epoch at ~1.3x
    the epoch time: on ml-1m it reaches its best epoch at 29 (batch 500: 99), on
    ml-latest-small (1 update per epoch at batch 500) it scores 0.370 instead of 0.362, on
    lastfm-2k 0.405 instead of 0.380.
    Early stopping on held-out users is on ("auto") because the best epoch varies from 29 to
    300 across these sets; the ``epochs="auto"`` cap is then rarely reached.

    *Width, decay and patience* (0.1). The paper found Sw-dae better the wider it is (§5.3,
    Figure 5) and searched K in multiples of 1000 (§4.3). At K=1000, patience 20 and no
    decay, the default fit scored below ``EASE()`` on the test users of 5 ml-1m splits
    (0.4761 vs 0.4824). On the validation users of ml-1m split 0, K=2000 (R=200) gave
    0.4768 instead of 0.4722, and with one learning-rate decay and a patience of 10 epochs
    0.4811; input dropout 0.5, hidden dropout 0 or 0.5, R=200 at K=1000 and a learning rate
    of 2e-2 gave 0.469-0.474. So the defaults are now ``K="auto"`` (``min(2000, 2 n_items /
    3)``), ``n_lr_decays=1`` and ``n_iter_no_change="auto"``: 10 epochs on ml-1m, but
    ``ceil(200 / updates per epoch)`` where an epoch has fewer than 20 updates: on small
    data the validation score can stay flat for dozens of updates before it rises (~75 on
    a 600-user synthetic set), and on ml-latest-small (4 updates per epoch) a patience of 10
    epochs gave validation NDCG@100 0.335 over 5 splits, "auto" (50 epochs) 0.346. On the
    test users of the same 5 splits these defaults (at learning rate 1e-2) scored 0.4845 on
    ml-1m (+0.0084 ± 0.0009 over K=1000, patience 20, no decay), 0.3404 on
    ml-latest-small, 0.3945 on lastfm-2k and 0.4463 on ml-100k. On ml-100k (1,682 items, so
    ``K_`` = 1121) K=1000 with the same schedule was level on test users (+0.0010 ± 0.0038)
    and 0.0045 ahead on validation users.

    *Learning rate* (3e-3 instead of 1e-2). At 1e-2 the default stayed below ``EASE()`` on
    ml-latest-small (test users: -0.0063 ± 0.0051), and no other change tried there (5
    splits) beat it on validation users by more than a second seed of the default itself
    did (``random_state=1``: +0.0048): ``l2_reg`` 1e-3 or 3e-3, input dropout 0.7, hidden
    dropout 0.5, batch 64, K=4000, R=400 at K=2000 (-0.0039 to +0.0019); ``l2_reg=1e-3``,
    ahead on the validation users of ml-100k, ml-1m and ml-latest-small, lost 0.0090 on
    those of lastfm-2k. A learning rate of 3e-3 was ahead on the validation users of every
    set (paired ± s.e.): ml-100k +0.0043 ± 0.0038, ml-1m +0.0015 ± 0.0006, ml-latest-small
    +0.0039 ± 0.0024, lastfm-2k +0.0018 ± 0.0009, the sparse synthetic set of the next
    paragraph +0.0085 (one split). It needs more updates, so ``epochs="auto"`` allows at
    least ``30 / learning_rate`` of them (3,000 at 1e-2 as before, 10,000 at 3e-3): with
    3,000 the quick start's 4,000-user demo ended at its cap. On the test users of the same 5 splits
    (mean, and paired differences ± s.e.):

    ===============  =======  ================  ================  =================
    data             default  minus ``EASE()``  minus Mult-DAE    minus 1e-2
    ===============  =======  ================  ================  =================
    ml-1m            0.4858   +0.0034 ± 0.0014  +0.0209 ± 0.0019  +0.0013 ± 0.0012
    ml-latest-small  0.3470   +0.0003 ± 0.0061  +0.0198 ± 0.0020  +0.0066 ± 0.0038
    lastfm-2k        0.3982   +0.0138 ± 0.0023  +0.0290 ± 0.0023  +0.0037 ± 0.0020
    ml-100k          0.4473   -0.0008 ± 0.0018  -0.0086 ± 0.0049  +0.0010 ± 0.0013
    ===============  =======  ================  ================  =================

    On the sparse synthetic set (5,000 users x 17,000 items, 0.2% dense, one split) the
    default scored 0.3057, learning rate 1e-2 0.3040, Mult-DAE 0.2801 and ``EASE()``
    0.3160: on such sparse data EASE stays ahead. A default fit on the ml-1m training users
    took 35 s on 2 cores (53 epochs; ``MultDAE()`` 50 s, ``EASE()`` 9 s in the same run), 71 s
    on a slower machine (``MultDAE()`` 91 s; there the default at 1e-2 took 64.7 s, 47
    epochs), and 3-7 minutes on lastfm-2k (1 thread, shared cores).
    Pass ``learning_rate=1e-2`` for the earlier default, ``K=1000, n_lr_decays=0,
    n_iter_no_change=20, learning_rate=1e-2`` for the defaults before 0.1.

    *Likelihood.* The paper's wording is ambiguous: Eq. 4-5 define a sigmoid decoder and its
    log-likelihood (Bernoulli per item, "logistic"), while §4 ranks "the output at the
    decoder before the softmax" (a multinomial, as Mult-DAE). Both are implemented;
    "logistic" is the default (table above).

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
        **RESUME_CONSTRAINTS,
        **_WIDE_CONSTRAINTS,
        "K": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "R": [Interval(Integral, 1, None, closed="left"), None],
        "F": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "method": [StrOptions({"laplacian", "svd"})],
        "stacked_sizes": [tuple, list],
        "n_lr_decays": [Interval(Integral, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
    }

    def __init__(
        self,
        K: int | str = "auto",
        *,
        R: int | None = None,
        F: int | str = "auto",
        method: str = "laplacian",
        stacked_sizes: tuple[int, ...] = (),
        dropout: float = 0.6,
        hidden_dropout: float = 0.2,
        loss: str = "logistic",
        l2_reg: float = 0.0,
        record_diagnostics: bool = False,
        epochs: int | str = "auto",
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | str | None = "auto",
        n_lr_decays: int = 1,
        warm_start: bool = False,
        checkpoint: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), _WideDAE))
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.R = R
        self.F = F
        self.method = method
        self.stacked_sizes = stacked_sizes
        self.n_lr_decays = n_lr_decays

    @_fit_context(prefer_skip_nested_validation=True)
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
        membership = getattr(X, "membership", None)
        return self._fit(X, X_valid, membership=membership)  # type: ignore[return-value]

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        membership = given.get("membership")
        if membership is None:
            if self.K != "auto" and self.K > X.shape[1]:
                raise ValueError(
                    f"SparseWideDAE: X has {X.shape[1]} feature(s) (items) but K={self.K} "
                    "groups; k-means cannot place more centroids than items, so use "
                    "K <= n_items."
                )
            return
        # F and method still group the hidden units of stacked layers
        unused = ("K", "R") if self.stacked_sizes else tuple(_GROUPING_DEFAULTS)
        changed = [n for n in unused if getattr(self, n) != _GROUPING_DEFAULTS[n]]
        if changed:
            settings = ", ".join(f"{n}={getattr(self, n)!r}" for n in changed)
            warnings.warn(
                f"SparseWideDAE got {settings}, but X carries the groups of an ItemGrouper, "
                "so these are unused: set them on the ItemGrouper instead (in a Pipeline, "
                "e.g. group__K rather than dae__K).",
                UnusedParameterWarning,
                stacklevel=5,
            )

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        """One phase; a stacked Sw-dae (§3.4) trains the first layer ("pretrain"), each
        further layer greedily on the codes of the one below ("pretrain_layer<d>"), then the
        stacked network from the pre-trained weights ("finetune")."""
        from ..grouping import ItemGrouper

        membership = given.get("membership")
        if membership is not None:
            membership = sp.csr_array(membership, dtype=np.float32)
            if membership.shape[0] != X_train.shape[1]:
                raise ValueError(
                    f"SparseWideDAE.fit: the membership carried by X has {membership.shape[0]} "
                    f"items but X has {X_train.shape[1]}; fit the ItemGrouper on the same "
                    "item columns."
                )
            if membership.nnz == 0:
                raise ValueError(
                    "SparseWideDAE.fit: the membership carried by X has no connections; every "
                    "item needs at least one group (fit the ItemGrouper with R >= 1)."
                )
            self.grouper_ = None
        else:
            grouper = ItemGrouper(
                self.K, R=self.R, F=self.F, method=self.method, random_state=config.seed
            )
            self.grouper_ = fit_on_all_rows(grouper, X_train)  # data-parallel: on all ranks' rows
            membership = self.grouper_.membership_
        self.membership_ = membership
        self.K_ = membership.shape[1]
        self.stacked_memberships_: list[sp.csr_array] = []
        first = super()._phases(X_train, config)[0]
        if not self.stacked_sizes:
            return [first]
        assert isinstance(first, Phase)
        names = ["pretrain"] + [f"pretrain_layer{d}" for d in range(2, len(self.stacked_sizes) + 2)]
        inputs = [X_train]  # the data of each greedy layer: items, then codes of the one below

        def greedy(depth: int, width: int) -> PhaseFactory:
            def make(trained: dict[str, nn.Module]) -> Phase:
                below = trained[names[depth - 2]]
                codes = self._codes(below, inputs[-1])  # hidden units as observed variables
                inputs.append(codes)
                grouper = ItemGrouper(
                    width,
                    F=self.F,
                    method=self.method,
                    random_state=config.seed,
                ).fit(codes)
                M = grouper.membership_
                self.stacked_memberships_.append(M)
                generator = torch.Generator().manual_seed(config.seed + depth)
                layer = self._wide([SparseEncoder(M, generator)], [SparseDecoder(M, generator)])
                return Phase(
                    names[depth - 1],
                    layer,
                    user_rows(codes, config.device),
                    self._reconstruction_loss,
                    validate=False,
                    seed=config.seed + depth,
                    desc=f"{type(self).__name__} layer {depth}",
                )

            return make

        def finetune(trained: dict[str, nn.Module]) -> Phase:
            stacked = self._build_module(torch.Generator().manual_seed(config.seed))
            n = len(names)
            for depth, name in enumerate(names):  # copy the pre-trained weights (Eq. 6-7)
                layer = trained[name]
                assert isinstance(layer, WideAE)
                stacked.encoders[depth].load_state_dict(layer.encoders[0].state_dict())
                stacked.decoders[n - 1 - depth].load_state_dict(layer.decoders[0].state_dict())
            return replace(first, name="finetune", module=stacked)

        greedy_layers = [greedy(d, w) for d, w in enumerate(self.stacked_sizes, start=2)]
        return [replace(first, name="pretrain"), *greedy_layers, finetune]

    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        memberships = [self.membership_, *self.stacked_memberships_]
        return (
            [SparseEncoder(M, generator) for M in memberships],
            [SparseDecoder(M, generator) for M in memberships[::-1]],
        )

    def _codes(self, module: nn.Module, X: sp.csr_array) -> sp.csr_array:
        """The innermost code of every row of X (eval mode), as a CSR matrix: the data of the
        next greedy layer."""
        assert isinstance(module, WideAE)
        module.eval()
        step = self.batch_size
        parts = [
            self._module_apply(module, X[i : i + step], _encode) for i in range(0, X.shape[0], step)
        ]
        return sp.csr_array(np.vstack(parts).astype(np.float32))


def _encode(module: nn.Module, batch: Batch) -> Tensor:
    assert isinstance(module, WideAE)
    return module.encode(batch)
