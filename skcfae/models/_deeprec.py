"""DeepRec: the deep rating autoencoder of Kuchaiev and Ginsburg (NVIDIA, 2017)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from ..base import shared_args
from ..nn import Batch, Phase, TrainConfig, TrainState, user_rows
from ..nn._engine import LossFn, PhaseFactory, apply_update
from ..nn._modules import SparseLinear, dense_linear, dropout
from ._neural import NEURAL_CONSTRAINTS, RESUME_CONSTRAINTS, NeuralRecommender
from ._rating_ae import RatingNet, _RatingAE

__all__ = ["DeepRec"]

#: The infimum of SELU, ``-scale · alpha``: SELU's range is ``(SELU_MIN, +inf)``.
SELU_MIN = -1.0507009873554805 * 1.6732632423543772

_OUTPUT_ACTIVATIONS = ("auto", "selu", "identity")


class _DeepRecNet(RatingNet):
    """``[n -> hidden... -> code -> hidden[::-1]... -> n]``, SELU after every layer (the last
    one too unless ``output_activation="identity"``), dropout on the code only.

    The first layer reads a sparse :class:`~skcfae.nn.Batch` (the observed ratings) or a dense
    ``(b, n)`` tensor (a re-fed output), with the same weights.
    """

    def __init__(
        self,
        n_items: int,
        hidden_layer_sizes: tuple[int, ...],
        n_components: int,
        *,
        dropout: float,
        output_activation: str,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        enc = [*hidden_layer_sizes, n_components]
        dec = [n_components, *hidden_layer_sizes[::-1]]
        self.input_layer = SparseLinear(n_items, enc[0], generator)
        self.encoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(enc[:-1], enc[1:], strict=True)
        )
        self.decoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(dec[:-1], dec[1:], strict=True)
        )
        self.out = dense_linear(dec[-1], n_items, generator)
        with torch.no_grad():  # Xavier weights (drawn from generator), zero biases
            for name, param in self.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
        self.dropout = dropout
        self.output_activation = output_activation

    def encode(self, x: Batch | Tensor) -> Tensor:
        """The code ``z`` of sparse ratings or of a dense re-fed vector (no dropout)."""
        if isinstance(x, Batch):
            h = self.input_layer(x)
        else:
            h = torch.addmm(self.input_layer.bias, x, self.input_layer.weight)
        h = F.selu(h)
        for layer in self.encoder:
            h = F.selu(layer(h))
        return h

    def decode_hidden(self, z: Tensor) -> Tensor:
        """The decoder's activations entering the output layer."""
        for layer in self.decoder:
            z = F.selu(layer(z))
        return z

    def hidden(self, batch: Batch) -> Tensor:
        return self.decode_hidden(self.encode(batch))

    def finish(self, z: Tensor) -> Tensor:
        return F.selu(z) if self.output_activation == "selu" else z

    def reconstruct(self, x: Batch | Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The dense output ``f(x)``; in training mode with a generator, the code is dropped
        out with probability ``dropout`` (kept units scaled by ``1 / (1 - dropout)``)."""
        z = self.encode(x)
        if self.training and generator is not None:
            z = dropout(z, self.dropout, generator)
        return self.finish(self.out(self.decode_hidden(z)))


def _deeprec_net(module: nn.Module) -> _DeepRecNet:
    assert isinstance(module, _DeepRecNet)
    return module


def masked_mean_squared_error(pred: Tensor, batch: Batch) -> Tensor:
    """The MMSE of Kuchaiev and Ginsburg (2017, Eq. 1): ``Σ m_i (r_i - y_i)² / Σ m_i`` over
    the whole batch, ``m_i = 1`` at the stored (observed) entries, a stored 0 included.

    Only ``pred`` at the stored entries is read: an unobserved entry never enters the loss or
    its gradient. (:func:`~skcfae.models._rating_ae.masked_squared_error`, AutoRec's, divides
    the same sum by the number of rows instead.)
    """
    err = pred[batch.row_of, batch.cols] - batch.vals
    return (err * err).sum() / max(int(batch.cols.shape[0]), 1)


class DeepRec(_RatingAE):
    """DeepRec: a deep autoencoder of the users' rating vectors with SELU, a heavily dropped
    out code and dense re-feeding.

    Kuchaiev and Ginsburg (2017) reconstruct each user's partially observed rating vector
    ``x`` (a row of R) with a deep autoencoder ``f`` of layers
    ``[n, 512, 512, 1024, 512, 512, n]`` (the encoder ``512-512-1024``, the decoder its
    mirror, not weight-tied), each ``SELU(W x + b)`` (§2 of the paper: hidden activations need
    a non-zero negative part; the last layer stays SELU because SELU's range
    ``(-1.758, inf)`` holds the ratings, and "should be kept linear" otherwise), and dropout
    with probability 0.8 on the code, the output of the 1024 layer. The loss is the masked
    mean squared error over the observed entries (the paper's Eq. 1; Le 2020, §2.2, Eq. 8):

        ``MMSE = Σ_i m_i (r_i - y_i)² / Σ_i m_i``, ``m_i = 1`` iff rating ``i`` is observed,

    summed and counted over the whole minibatch. Every iteration is augmented by **dense
    re-feeding** (Le 2020, §2.3): (1) forward the sparse x and compute the MMSE of
    ``f(x)``; (2) update the weights; (3) treat the dense ``f(x)`` as a new example: forward
    it and compute the loss of ``f(f(x))`` against ``f(x)``, now with every ``m_i = 1`` (a
    dense mean squared error); (4) update again. Steps 3-4 may be repeated
    (``refeed_steps``). The optimiser is SGD with momentum 0.9, learning rate 1e-3, batches
    of 512 users and Xavier initialisation (the settings of Le's survey of autoencoder
    recommenders, 2020, §2).

    The first layer reads the sparse ratings (its cost grows with the observed entries); the
    re-fed ``f(x)`` is a dense ``(batch, n_items)`` block. The prediction of rating (u, i) is
    entry i of the reconstruction of user u's known ratings, clipped to the training ratings'
    range; a new user is folded in from their known ratings by one forward pass (see
    :meth:`predict`). DeepRec is user-based only.

    Parameters
    ----------
    n_components : int, default=1024
        Size of the code (the paper's 1024 bottleneck), on which dropout acts.
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Encoder layers before the code; the decoder mirrors them.
    dropout : float, default=0.8
        Dropout probability on the code (training only).
    refeed_steps : int, default=1
        Dense re-feeding steps (3-4 above) after each update on the observed ratings; 0
        turns re-feeding off (one update per batch).
    output_activation : {"auto", "selu", "identity"}, default="auto"
        Activation of the last layer. "auto" follows the paper's rule: SELU when the training
        ratings lie in SELU's range (every rating above -1.758, as 1-5 stars), else linear.
    l2_reg : float, default=0.0
        ``l2_reg · Σ ‖W‖²`` on the weight matrices, added to each batch's loss (the authors'
        weight decay, 0 in their experiments).
    epochs : int, default=500
        The survey trains DeepRec for 500 epochs.
    batch_size : int, default=512
        Users per update.
    learning_rate : float, default=1e-3
        SGD's learning rate (momentum 0.9).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the stored ratings, keep the epoch of the lowest
        validation RMSE, stop after ``n_iter_no_change`` epochs without improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=20
    warm_start : bool, default=False
        With True, the next ``fit`` of a fitted model continues training its network and
        optimiser for ``epochs`` more epochs on data of the same shape. See "Resuming
        training" in the quick start.
    checkpoint : str, path-like or None, default=None
        File the complete training state is written to after every epoch (atomically); a
        later ``fit`` with the same parameters and data resumes from it. Needs an int
        ``random_state``.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (the MMSE of the sparse passes, the mean over the
        batches weighted by their users), ``dur``, and ``valid_rmse`` when validating.
    best_epoch_ : int
        Epoch whose weights were kept (only when validating).
    ratings_ : scipy.sparse.csr_array of shape (n_users, n_items)
        The training ratings, from which :meth:`predict` predicts by default.
    rating_range_ : tuple of float
        Smallest and largest training rating: predictions are clipped to it.
    n_users_ : int
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    AutoRec : the one-hidden-layer rating autoencoder DeepRec deepens.

    Notes
    -----
    ``kind`` is not a parameter: DeepRec reconstructs user rows only (``kind`` is fixed to
    "user" as a class attribute, which is what the shared rating-autoencoder base reads), so
    it always folds in new users.

    Choices where the texts leave room, after the authors' reference code: the re-fed example
    ``f(x)`` is the output of the first forward pass (computed before the first update, with
    its dropout mask), detached, so that step 3 costs no extra forward pass; the second
    forward pass draws a fresh dropout mask; biases start at zero. The authors' Netflix runs
    halve the learning rate at fixed epochs; the survey (and this class) keeps it constant.

    The defaults are the survey's, set for MovieLens-1M. On a small data set they train
    slowly: ml-100k (943 users, 90/10 split, 10% of the training ratings for validation)
    gets two updates per epoch from batches of 512 users, and the validation RMSE is still
    falling after 500 epochs (test RMSE 0.967, best epoch 499, 200 s on one CPU thread).
    The authors' Netflix settings, ``batch_size=128, learning_rate=5e-3``, reach test RMSE
    0.930 (seeds 0-2: 0.927, 0.930, 0.934; best epochs 121-158, about 2 min each); without
    re-feeding (``refeed_steps=0``) seed 0 gives 0.931 against 0.927, in less than half the
    time.

    References
    ----------
    O. Kuchaiev and B. Ginsburg. Training Deep AutoEncoders for Collaborative Filtering.
    arXiv:1708.01715, 2017.

    J. Le. The 6 Variants of Autoencoders for Collaborative Filtering. Towards Data Science,
    2020, §2 (DeepRec).

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import DeepRec
    >>> R = np.array([[5, 4, np.nan], [4, np.nan, 1], [np.nan, 5, 2], [1, 2, 5.0]])
    >>> model = DeepRec(16, hidden_layer_sizes=(8,), epochs=5, random_state=0).fit(R)
    >>> model.predict(R).shape
    (4, 3)
    """

    kind = "user"

    _parameter_constraints: dict[str, list[Any]] = {
        **RESUME_CONSTRAINTS,
        **NEURAL_CONSTRAINTS,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "refeed_steps": [Interval(Integral, 0, None, closed="left")],
        "output_activation": [StrOptions(set(_OUTPUT_ACTIVATIONS))],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
    }
    _optimizer = "sgd"

    def __init__(
        self,
        n_components: int = 1024,
        *,
        hidden_layer_sizes: tuple[int, ...] = (512, 512),
        dropout: float = 0.8,
        refeed_steps: int = 1,
        output_activation: str = "auto",
        l2_reg: float = 0.0,
        epochs: int = 500,
        batch_size: int = 512,
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
        # the shared parameters only: ``kind`` is a class attribute, not a parameter
        NeuralRecommender.__init__(self, **shared_args(locals(), NeuralRecommender))
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.refeed_steps = refeed_steps
        self.output_activation = output_activation
        self.l2_reg = l2_reg

    def _resolved_output_activation(self) -> str:
        """With "auto", SELU if every training rating lies in SELU's range, else the identity."""
        if self.output_activation != "auto":
            return str(self.output_activation)
        return "selu" if self.rating_range_[0] > SELU_MIN else "identity"

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return _DeepRecNet(
            self.n_items_in_,
            tuple(int(s) for s in self.hidden_layer_sizes),
            int(self.n_components),
            dropout=float(self.dropout),
            output_activation=self._resolved_output_activation(),
            generator=generator,
        )

    def _weight_decay(self) -> float:
        return 2.0 * float(self.l2_reg)  # gradient of l2_reg * ||W||²

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        rows = user_rows(X_train, config.device)
        step = self._refeed_step if self.refeed_steps > 0 else None
        return [Phase("train", module, rows, self._loss, step=step)]

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """The MMSE of ``f(x)`` on the observed ratings x (step 1)."""
        pred = _deeprec_net(module).reconstruct(batch, state.generator)
        return masked_mean_squared_error(pred, batch)

    def _refeed_step(
        self,
        module: nn.Module,
        batch: Batch,
        loss: LossFn,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
    ) -> Tensor:
        """Steps 1-4 of dense re-feeding on one batch: ``1 + refeed_steps`` updates; returns
        the detached MMSE of the sparse pass. (``loss`` is :meth:`_loss`, whose output
        ``f(x)`` this step needs too, so the step computes it itself.)"""
        net = _deeprec_net(module)
        out = net.reconstruct(batch, state.generator)
        value = masked_mean_squared_error(out, batch)
        apply_update(optimizer, value, state)
        for _ in range(int(self.refeed_steps)):
            x = out.detach()
            out = net.reconstruct(x, state.generator)
            apply_update(optimizer, F.mse_loss(out, x), state)
        return value.detach()
