"""CFN: the stacked denoising autoencoders of Strub and Mary (NIPS workshop 2015)."""

from __future__ import annotations

import math
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._compat import Interval
from ..base import shared_args
from ..nn import (
    Batch,
    Phase,
    TrainConfig,
    TrainState,
    fold_in_rows,
    item_rows,
    train_step,
    user_rows,
)
from ..nn._engine import LossFn, PhaseFactory, StepFn
from ..nn._modules import SparseLinear, dense_linear
from ._rating_ae import _RATING_CONSTRAINTS, RatingNet, _RatingAE

__all__ = ["CFN"]

#: The three training stages of Fig. 1, in order: the outer layers (a 2-layer autoencoder of
#: the sparse ratings), the inner layers (a 2-layer autoencoder of the outer codes) and the
#: fine-tuning of the stacked 4-layer autoencoder. A per-stage parameter is a 3-tuple in
#: this order (one column of Table 1 each).
STAGES = ("outer", "inner", "finetune")

#: The per-stage parameters and the range of each of their values.
_PER_STAGE: dict[str, Interval] = {
    "alpha": Interval(Real, 0, None, closed="left"),
    "beta": Interval(Real, 0, None, closed="left"),
    "gaussian": Interval(Real, 0, 1, closed="both"),
    "masking": Interval(Real, 0, 1, closed="both"),
    "salt_and_pepper": Interval(Real, 0, 1, closed="both"),
    "learning_rate": Interval(Real, 0, None, closed="neither"),
    "learning_rate_decay": Interval(Real, 0, None, closed="left"),
    "weight_decay": Interval(Real, 0, None, closed="left"),
    "epochs": Interval(Integral, 1, None, closed="left"),
}


def _fan_in_init(weight: Tensor, bias: Tensor, fan_in: int, generator: torch.Generator) -> None:
    """The fan-in rule of §3.1 (Torch's default): weights and biases ~ U[-1/√n, 1/√n]."""
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)
        bias.uniform_(-bound, bound, generator=generator)


def corrupt(
    vals: Tensor,
    *,
    gaussian: float,
    gaussian_std: float,
    salt_and_pepper: float,
    masking: float,
    low: Tensor | float,
    high: Tensor | float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The three noises of Vincent et al. on the known entries ``vals`` (§2.1).

    Each entry draws one uniform number: with probability ``gaussian`` it gets additive
    N(0, ``gaussian_std``²) noise, with probability ``salt_and_pepper`` it is set to ``low``
    or ``high`` (the input minimum or maximum, a fair coin), with probability ``masking`` it
    is set to zero; otherwise it is kept. Returns the noisy values and the boolean mask of
    the corrupted entries (J(x̃) of the paper). All draws come from ``generator``.
    """
    kw: dict[str, Any] = {"generator": generator, "device": vals.device, "dtype": vals.dtype}
    draw = torch.rand(vals.shape, **kw)
    is_gauss = draw < gaussian
    is_flip = (draw >= gaussian) & (draw < gaussian + salt_and_pepper)
    is_mask = (draw >= gaussian + salt_and_pepper) & (draw < gaussian + salt_and_pepper + masking)
    noise = torch.randn(vals.shape, **kw) * gaussian_std
    coin = torch.rand(vals.shape, **kw) < 0.5
    low_t = torch.as_tensor(low, device=vals.device, dtype=vals.dtype).expand_as(vals)
    high_t = torch.as_tensor(high, device=vals.device, dtype=vals.dtype).expand_as(vals)
    noisy = torch.where(is_gauss, vals + noise, vals)
    noisy = torch.where(is_flip, torch.where(coin, high_t, low_t), noisy)
    noisy = torch.where(is_mask, torch.zeros_like(vals), noisy)
    return noisy, is_gauss | is_flip | is_mask


def denoising_loss(
    pred: Tensor, target: Batch, corrupted: Tensor, alpha: float, beta: float
) -> Tensor:
    """The sparse DAE loss of §2.2 per row on average:
    ``(α Σ_{j ∈ J(x̃) ∩ K(x)} (ŷ_j - x_j)² + β Σ_{j ∈ K(x) \\ J(x̃)} (ŷ_j - x_j)²) / b``.

    ``pred`` is the dense (b, n) output, ``target`` the clean batch (its stored entries are
    the known values K(x)), ``corrupted`` the mask of the corrupted stored entries. Only
    ``pred`` at the stored entries is read: unknown entries never enter the loss.
    """
    err = pred[target.row_of, target.cols] - target.vals
    weight = torch.where(
        corrupted,
        torch.as_tensor(alpha, dtype=err.dtype, device=err.device),
        torch.as_tensor(beta, dtype=err.dtype, device=err.device),
    )
    return (weight * err * err).sum() / target.size


class _CFNNet(RatingNet):
    """The U-/V-CFN network: ``n -> h1 [-> h2 -> h1] -> n``, tanh after every layer (§3.1).

    The input rows are raw ratings; :meth:`prepare` maps them to [-1, 1] (``(r - mid) /
    half``) and subtracts each row's mean (the unbiasing of §4.1). ``hidden`` reads a raw
    batch; ``finish`` is the output tanh; the row means are added back by the estimator.
    """

    def __init__(
        self,
        n_inputs: int,
        sizes: tuple[int, ...],
        *,
        mid: float,
        half: float,
        mean: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        first = SparseLinear(n_inputs, sizes[0], generator)
        _fan_in_init(first.weight, first.bias, n_inputs, generator)
        self.encoders = nn.ModuleList(
            [first, *(dense_linear(a, b, generator) for a, b in pairwise(sizes))]
        )
        self.decoders = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in pairwise(sizes[::-1])
        )
        self.out = dense_linear(sizes[0], n_inputs, generator)
        for layer in [*self.encoders[1:], *self.decoders, self.out]:
            _fan_in_init(layer.weight, layer.bias, layer.in_features, generator)
        self.mid, self.spread, self.empty_bias = mid, half, (mean - mid) / half

    def prepare(self, batch: Batch) -> tuple[Batch, Tensor]:
        """Normalised, unbiased rows and each row's bias (its normalised mean rating; the
        training mean for a row without any)."""
        vals = (batch.vals - self.mid) / self.spread
        counts = batch.counts.to(vals.dtype)
        sums = batch.row_sums(vals)
        empty = torch.full_like(sums, self.empty_bias)
        bias = torch.where(counts > 0, sums / counts.clamp_min(1), empty)
        return batch.with_values(vals - bias[batch.row_of]), bias

    def code(self, batch: Batch) -> Tensor:
        """The outer code ``tanh(W1 x + b1)`` of a prepared batch."""
        return torch.tanh(self.encoders[0](batch))

    def hidden_of(self, batch: Batch) -> Tensor:
        """Activations entering ``out`` for a prepared batch."""
        h = self.code(batch)
        for layer in [*self.encoders[1:], *self.decoders]:
            h = torch.tanh(layer(h))
        return h

    def hidden(self, batch: Batch) -> Tensor:
        return self.hidden_of(self.prepare(batch)[0])

    def finish(self, z: Tensor) -> Tensor:
        return torch.tanh(z)


class _InnerAE(nn.Module):
    """The inner 2-layer autoencoder ``h1 -> h2 -> h1`` (tanh) of Fig. 1, on outer codes."""

    def __init__(self, n_code: int, n_hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.encoder = dense_linear(n_code, n_hidden, generator)
        self.decoder = dense_linear(n_hidden, n_code, generator)
        for layer in (self.encoder, self.decoder):
            _fan_in_init(layer.weight, layer.bias, layer.in_features, generator)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.decoder(torch.tanh(self.encoder(x))))


def _stage_step(lr: float, decay: float, weight_decay: float, momentum: float) -> StepFn:
    """Each update of a stage: the stage's learning rate, decayed per epoch as Torch's
    ``optim.sgd`` with ``evalCounter = epoch`` (``lr / (1 + epoch · decay)``), scaled by
    ``1 - momentum`` (Torch's momentum is dampened, PyTorch's is not: the same updates), and
    the stage's weight decay on the weight matrices."""

    def step(
        module: nn.Module,
        batch: Batch,
        loss: LossFn,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
    ) -> Tensor:
        rate = lr * (1.0 - momentum) / (1.0 + state.epoch * decay)
        for group in optimizer.param_groups:
            group["lr"] = rate
            if all(p.ndim >= 2 for p in group["params"]):
                group["weight_decay"] = weight_decay
        return train_step(module, batch, loss, optimizer, state)

    return step


class CFN(_RatingAE):
    """CFN: stacked denoising autoencoders on sparse rating vectors (U-CFN and V-CFN).

    Strub and Mary (2015): each item's vector of ratings by the users (``kind="item"``,
    the V-encoder, V-CFN) or each user's vector of ratings (``kind="user"``, U-CFN) is
    corrupted and reconstructed by a tanh autoencoder ``n -> n/10 -> n/12 -> n/10 -> n``
    (§3.1; ``n`` the input size; ``hidden_ratios=(0.1,)`` gives the 2-layer ``n -> n/10 ->
    n``). Unknown ratings are zeros of the input and never enter the loss; the known ones
    are corrupted by Gaussian, masking and salt-and-pepper noise, and the loss of §2.2
    weights the errors on the corrupted known entries by α (denoising) and on the intact
    known entries by β (reconstruction):

        ``L(x, x̃) = α Σ_{j ∈ J(x̃) ∩ K(x)} (nn(x̃)_j - x_j)² + β Σ_{j ∈ K(x) \\ J(x̃)}
        (nn(x̃)_j - x_j)²``.

    Ratings are mapped to [-1, 1] and each row is unbiased by its mean (the user's for
    U-CFN, the item's for V-CFN, §4.1); the mean is added back to the predictions. Training
    follows Fig. 1 and Table 1, each stage a phase of ``history_``: the outer 2-layer
    autoencoder on the ratings (``"outer"``), then a 2-layer autoencoder on its clean codes
    (``"inner"``), then the 4-layer network stacked from these weights is fine-tuned on the
    ratings (``"finetune"``). SGD with momentum 0.8 on minibatches of 20 rows, weight decay
    and a learning rate decayed every epoch.

    V-CFN was the more accurate on MovieLens in the paper (RMSE 0.840 vs 0.861 on ML-1M,
    Table 2). It predicts for the training users only; a U-CFN folds in new users from their
    known ratings (see :meth:`predict`).

    Parameters
    ----------
    hidden_ratios : tuple of float, default=(1/10, 1/12)
        Sizes of the hidden layers as fractions of the input size ``n`` (the number of users
        for V-CFN, of items for U-CFN), each rounded, at least 1: one value for the 2-layer
        autoencoder (only the ``"outer"`` stage is trained), two for the 4-layer one (§3.1:
        ``n/10`` and ``n/12``).
    kind : {"item", "user"}, default="item"
        V-CFN (rows of Rᵀ) or U-CFN (rows of R).
    alpha : float or tuple of 3 floats, default=(1.0, 1.0, 1.2)
        Weight of the errors on corrupted known entries per stage (``outer``, ``inner``,
        ``finetune``: the columns of Table 1); a float applies to every stage.
    beta : float or tuple of 3 floats, default=(0.8, 1.0, 0.8)
        Weight of the errors on the intact known entries per stage.
    gaussian : float or tuple of 3 floats, default=(0.0, 0.8, 0.0)
        Fraction of the known entries that get additive Gaussian noise per stage.
    gaussian_std : float, default=0.02
        Standard deviation of the Gaussian noise (in the [-1, 1] scale).
    masking : float or tuple of 3 floats, default=(0.15, 0.0, 0.15)
        Fraction of the known entries set to zero (hidden) per stage.
    salt_and_pepper : float or tuple of 3 floats, default=(0.05, 0.1, 0.05)
        Fraction of the known entries set to the input minimum or maximum (the lowest or
        highest rating; -1 or 1 for the tanh codes of the inner stage) per stage. The
        three fractions of a stage sum to at most 1 (each entry gets at most one noise).
    learning_rate : float or tuple of 3 floats, default=(0.03, 1e-5, 0.004)
        Learning rate per stage (Table 1), in the dampened-momentum convention of Torch's
        ``optim.sgd`` that the paper used (see Notes).
    learning_rate_decay : float or tuple of 3 floats, default=(0.1, 0.1, 0.2)
        Epoch ``e`` of a stage runs at ``learning_rate / (1 + e · decay)``.
    weight_decay : float or tuple of 3 floats, default=(0.03, 0.2, 0.03)
        Coupled L2 (``wd/2 · ‖W‖²`` added to each batch's loss) on the weight matrices.
    momentum : float, default=0.8
        SGD momentum (§3.1).
    epochs : int or tuple of 3 ints, default=(50, 5, 100)
        Epochs per stage (the paper gives none; see Notes).
    batch_size : int, default=20
        Rows per update (§3.1).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the stored ratings; the rating stages keep the
        epoch of the lowest validation RMSE and stop after ``n_iter_no_change`` epochs
        without improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=10
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    module_ : torch.nn.Module
    history_ : list of dict
        Per epoch: ``phase`` (``"outer"``, ``"inner"``, ``"finetune"``; absent for the
        2-layer autoencoder), ``epoch``, ``train_loss``, ``dur``, and ``valid_rmse`` when
        validating (the rating stages only).
    best_epoch_ : int
        Epoch whose weights were kept in the last stage (only when validating).
    ratings_ : scipy.sparse.csr_array of shape (n_users, n_items)
        The training ratings, from which :meth:`predict` predicts by default.
    rating_range_ : tuple of float
        Smallest and largest training rating: ratings are mapped from it to [-1, 1] and
        predictions are clipped to it.
    rating_mean_ : float
        Mean training rating: the bias of a row without any known rating.
    n_users_ : int
    n_items_in_ : int
    n_features_in_ : int
    device_ : torch.device

    See Also
    --------
    AutoRec : one sigmoid layer, the squared error of the observed entries, no corruption.

    Notes
    -----
    Measured on ml-100k (90/10 protocol, seeds 0, 1, 2, defaults): V-CFN test RMSE 0.907,
    0.920, 0.904; U-CFN 0.906, 0.921, 0.911 (I-AutoRec 0.911 on seed 0). Choices where the
    paper is silent, and deviations:

    - *Noises.* Each known entry gets at most one noise: one uniform draw per entry picks
      Gaussian, salt-and-pepper, masking or none with the stage's fractions (as the authors'
      ``SDAECriterion``); J(x̃) is the set of entries that got one. Salt and pepper are the
      bounds of the rating scale in the unbiased inputs (``±1 - bias``), ±1 on the codes.
    - *Momentum.* Torch's ``optim.sgd`` dampens its momentum (``v ← μv + (1 - μ)g``);
      PyTorch's does not (``v ← μv + g``), so each stage's Table 1 learning rate is
      multiplied by ``1 - μ``: the same updates. The decay is applied per epoch, as the
      authors' trainer does (it sets ``evalCounter`` to the epoch). Five times larger
      steps (Table 1's rates in PyTorch's undampened SGD, ``learning_rate=(0.15, 5e-5,
      0.02)``) trained faster and no worse on ml-100k (seed 0: test RMSE 0.9035, early
      stops after 44 epochs, best 34, 18 s; against 0.9072, best epoch 155 of 155).
    - *Weight decay* applies to the weight matrices only (Torch's to the biases too).
    - *Loss scale.* Each batch's loss is the sum of the weighted squared errors of its rows
      divided by the number of rows, as the authors' trainer (which divides the gradient of
      the summed loss by the batch size); weight decay is added to that.
    - *Epochs.* The paper gives none. Measured on ml-100k (90/10 split, seed 0, 10% of the
      training ratings for validation): the outer stage reaches its best validation RMSE
      at epoch 43 of 50 (V-CFN, 0.9108); the fine-tuning still improves slowly after 50
      epochs (0.9080 at 50, 0.9071 at 100; test 0.9087 and 0.9072), hence (50, 5, 100).
    - *Output.* tanh, as every layer (the authors' code): an unbiased rating beyond ±1 is
      out of reach (the prediction of a row of mean m lies within m ± (high - low) / 2).
    - *Empty rows.* A row without any known rating (a new user of U-CFN without ratings)
      is unbiased by the mean training rating.
    - *Validation.* ``X_valid`` scores the two rating stages (``"outer"``, ``"finetune"``)
      by validation RMSE and keeps each one's best epoch; the inner stage, on codes, is not
      validated.

    References
    ----------
    F. Strub and J. Mary. Collaborative Filtering with Stacked Denoising AutoEncoders and
    Sparse Inputs. NIPS Workshop on Machine Learning for eCommerce, 2015, arXiv:1511.06443.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import CFN
    >>> R = np.array([[5, 4, np.nan], [4, np.nan, 1], [np.nan, 5, 2], [1, 2, 5.0]])
    >>> model = CFN(hidden_ratios=(0.5,), epochs=2, random_state=0).fit(R)
    >>> model.predict(R).shape
    (4, 3)
    """

    _optimizer = "sgd"
    _parameter_constraints: dict[str, list[Any]] = {
        **_RATING_CONSTRAINTS,
        "hidden_ratios": [tuple, list],
        **{name: [interval, tuple, list] for name, interval in _PER_STAGE.items()},
        "gaussian_std": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        hidden_ratios: tuple[float, ...] = (1 / 10, 1 / 12),
        *,
        kind: str = "item",
        alpha: float | tuple[float, ...] = (1.0, 1.0, 1.2),
        beta: float | tuple[float, ...] = (0.8, 1.0, 0.8),
        gaussian: float | tuple[float, ...] = (0.0, 0.8, 0.0),
        gaussian_std: float = 0.02,
        masking: float | tuple[float, ...] = (0.15, 0.0, 0.15),
        salt_and_pepper: float | tuple[float, ...] = (0.05, 0.1, 0.05),
        learning_rate: float | tuple[float, ...] = (0.03, 1e-5, 0.004),
        learning_rate_decay: float | tuple[float, ...] = (0.1, 0.1, 0.2),
        weight_decay: float | tuple[float, ...] = (0.03, 0.2, 0.03),
        momentum: float = 0.8,
        epochs: int | tuple[int, ...] = (50, 5, 100),
        batch_size: int = 20,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 10,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), _RatingAE))
        self.hidden_ratios = hidden_ratios
        self.alpha = alpha
        self.beta = beta
        self.gaussian = gaussian
        self.gaussian_std = gaussian_std
        self.masking = masking
        self.salt_and_pepper = salt_and_pepper
        self.learning_rate_decay = learning_rate_decay
        self.weight_decay = weight_decay
        self.momentum = momentum

    # -- parameters ----------------------------------------------------------------------------
    def _stage_values(self, name: str) -> tuple[Any, Any, Any]:
        """A per-stage parameter as its (outer, inner, finetune) values, checked."""
        value = getattr(self, name)
        interval = _PER_STAGE[name]
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
        if len(values) != 3 or not all(
            isinstance(v, (Real, Integral))
            and not isinstance(v, bool)
            and interval.is_satisfied_by(v)
            for v in values
        ):
            raise ValueError(
                f"The {name!r} parameter of CFN must be {interval} or a tuple of 3 such values "
                f"(outer, inner, finetune stages). Got {value!r} instead."
            )
        return values[0], values[1], values[2]

    def _stages(self) -> dict[str, dict[str, Any]]:
        table = {name: self._stage_values(name) for name in _PER_STAGE}
        stages = {s: {name: table[name][i] for name in table} for i, s in enumerate(STAGES)}
        for stage, p in stages.items():
            total = p["gaussian"] + p["salt_and_pepper"] + p["masking"]
            if total > 1.0 + 1e-9:
                raise ValueError(
                    f"CFN: the noise fractions of the {stage!r} stage (gaussian "
                    f"{p['gaussian']}, salt_and_pepper {p['salt_and_pepper']}, masking "
                    f"{p['masking']}) sum to {total:g}; each entry gets at most one noise, so "
                    "they must sum to at most 1."
                )
        return stages

    def _sizes(self) -> tuple[int, ...]:
        n = self._n_outputs()
        return tuple(max(1, int(round(n * r))) for r in self.hidden_ratios)

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        ratios = self.hidden_ratios
        if (
            len(ratios) not in (1, 2)
            or not all(isinstance(r, Real) and not isinstance(r, bool) for r in ratios)
            or not all(0 < r <= 1 for r in ratios)
        ):
            raise ValueError(
                "The 'hidden_ratios' parameter of CFN must be a tuple of 1 (2-layer) or 2 "
                f"(4-layer autoencoder) fractions in (0, 1]. Got {ratios!r} instead."
            )
        self._stages()
        super()._check_params_vs_input(X, **given)
        self.rating_mean_ = float(np.mean(X.data, dtype=np.float64))

    # -- network -------------------------------------------------------------------------------
    def _scale(self) -> tuple[float, float]:
        low, high = self.rating_range_
        half = (high - low) / 2.0
        return (low + high) / 2.0, half if half > 0 else 1.0

    def _net(self, sizes: tuple[int, ...], generator: torch.Generator) -> _CFNNet:
        mid, half = self._scale()
        return _CFNNet(
            self._n_outputs(),
            sizes,
            mid=mid,
            half=half,
            mean=self.rating_mean_,
            generator=generator,
        )

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return self._net(self._sizes(), generator)

    def _train_config(self, X_train: sp.csr_array, seed: int) -> TrainConfig:
        outer = self._stages()["outer"]
        return TrainConfig(
            epochs=int(outer["epochs"]),
            batch_size=self.batch_size,
            learning_rate=float(outer["learning_rate"]) * (1.0 - self.momentum),
            device=self.device_,
            seed=seed,
            optimizer="sgd",
            weight_decay=float(outer["weight_decay"]),
            momentum=float(self.momentum),
            n_iter_no_change=self.n_iter_no_change,
            verbose=self.verbose,
            desc="CFN",
        )

    # -- losses --------------------------------------------------------------------------------
    def _rating_loss(self, p: dict[str, Any]) -> LossFn:
        """The sparse DAE loss of a rating stage (outer or finetune), corruption included."""

        def loss(module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
            assert isinstance(module, _CFNNet)
            clean, bias = module.prepare(batch)
            shift = bias[batch.row_of]
            noisy, hit = corrupt(
                clean.vals,
                gaussian=p["gaussian"],
                gaussian_std=self.gaussian_std,
                salt_and_pepper=p["salt_and_pepper"],
                masking=p["masking"],
                low=-1.0 - shift,
                high=1.0 - shift,
                generator=state.generator,
            )
            pred = module.finish(module.out(module.hidden_of(clean.with_values(noisy))))
            return denoising_loss(pred, clean, hit, p["alpha"], p["beta"])

        return loss

    def _code_loss(self, p: dict[str, Any]) -> LossFn:
        """The DAE loss of the inner stage on the (dense) outer codes."""

        def loss(module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
            noisy, hit = corrupt(
                batch.vals,
                gaussian=p["gaussian"],
                gaussian_std=self.gaussian_std,
                salt_and_pepper=p["salt_and_pepper"],
                masking=p["masking"],
                low=-1.0,
                high=1.0,
                generator=state.generator,
            )
            pred = module(batch.with_values(noisy).dense())
            return denoising_loss(pred, batch, hit, p["alpha"], p["beta"])

        return loss

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        return self._rating_loss(self._stages()["finetune"])(module, batch, state)

    # -- the stacked training of Fig. 1 --------------------------------------------------------
    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        stages = self._stages()
        sizes = self._sizes()
        make_rows = user_rows if self.kind == "user" else item_rows
        rows = make_rows(X_train, config.device)
        momentum = float(self.momentum)

        def stage_phase(
            name: str, module: nn.Module, source: Any, loss: LossFn, seed: int, validate: bool
        ) -> Phase:
            p = stages[name]
            step = _stage_step(
                p["learning_rate"], p["learning_rate_decay"], p["weight_decay"], momentum
            )
            return Phase(
                name,
                module,
                source,
                loss,
                epochs=int(p["epochs"]),
                validate=validate,
                seed=seed,
                desc=f"CFN {name}",
                step=step,
            )

        outer_net = self._net(sizes[:1], torch.Generator().manual_seed(config.seed))
        outer = stage_phase(
            "outer", outer_net, rows, self._rating_loss(stages["outer"]), config.seed, True
        )
        if len(sizes) == 1:
            return [outer]

        def inner(trained: dict[str, nn.Module]) -> Phase:
            codes = self._codes(trained["outer"], self._inputs(X_train))
            ae = _InnerAE(sizes[0], sizes[1], torch.Generator().manual_seed(config.seed + 1))
            source = user_rows(codes, config.device)
            return stage_phase(
                "inner", ae, source, self._code_loss(stages["inner"]), config.seed + 1, False
            )

        def finetune(trained: dict[str, nn.Module]) -> Phase:
            outer_net, inner_ae = trained["outer"], trained["inner"]
            assert isinstance(outer_net, _CFNNet) and isinstance(inner_ae, _InnerAE)
            net = self._net(sizes, torch.Generator().manual_seed(config.seed + 2))
            net.encoders[0].load_state_dict(outer_net.encoders[0].state_dict())
            net.encoders[1].load_state_dict(inner_ae.encoder.state_dict())
            net.decoders[0].load_state_dict(inner_ae.decoder.state_dict())
            net.out.load_state_dict(outer_net.out.state_dict())
            loss = self._rating_loss(stages["finetune"])
            return stage_phase("finetune", net, rows, loss, config.seed + 2, True)

        return [outer, inner, finetune]

    def _codes(self, module: nn.Module, inputs: sp.csr_array) -> sp.csr_array:
        """The clean outer codes of every input row (eval mode), with every entry stored:
        the data of the inner stage."""
        assert isinstance(module, _CFNNet)
        module.eval()
        device = next(module.parameters()).device
        source = fold_in_rows(inputs, device)
        parts = []
        with torch.no_grad():
            for start in range(0, source.n_rows, 1024):
                idx = torch.arange(start, min(start + 1024, source.n_rows), device=device)
                parts.append(module.code(module.prepare(source.batch(idx))[0]).cpu().numpy())
        codes = np.vstack(parts).astype(np.float32)
        n_rows, width = codes.shape
        indptr = np.arange(0, n_rows * width + 1, width, dtype=np.int64)
        indices = np.tile(np.arange(width, dtype=np.int64), n_rows)
        return sp.csr_array((codes.ravel(), indices, indptr), shape=codes.shape)

    # -- predictions: the row means added back (§4.1, post-processing) -------------------------
    def _row_means(self, inputs: sp.csr_array) -> np.ndarray:
        counts = np.diff(inputs.indptr)
        sums = np.asarray(inputs.sum(axis=1, dtype=np.float64)).ravel()
        return np.where(counts > 0, sums / np.maximum(counts, 1), self.rating_mean_)

    def _module_entries(
        self, module: nn.Module, known: sp.csr_array, users: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        z = super()._module_entries(module, known, users, items)
        rows = users if self.kind == "user" else items
        _, half = self._scale()
        return self._row_means(self._inputs(known))[rows] + half * z

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
        """Predicted ratings of every item for a batch of users (see ``_RatingAE``)."""
        if self.kind == "user":
            known, users = X, np.arange(X.shape[0])
        else:
            known, users = self.ratings_, np.arange(self.n_users_)[rows]
        n = self.n_items_in_
        entries = self._predict_entries(
            known, np.repeat(users, n), np.tile(np.arange(n), users.size)
        )
        return self._clip(entries).reshape(users.size, n)
