"""Fc-dae: the fully connected Sw-dae, and its pruned (Fc-prune) and ℓ1 (Fc-reg) variants."""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._compat import Interval
from ..base import shared_args
from ..nn import Phase, TrainConfig
from ..nn._engine import PhaseFactory
from ..nn._modules import SparseLinear, WideAE, dense_linear
from ..nn._sparse import SparseDecoder, SparseEncoder
from ._neural import RESUME_CONSTRAINTS
from ._wide import _WIDE_CONSTRAINTS, _WideDAE

__all__ = ["FCDAE"]


class FCDAE(_WideDAE):
    """Fully connected denoising autoencoder (Fc-dae) and its pruned / L1 variants.

    Khawar et al. (WWW 2020, §5.3-5.6): identical to :class:`SparseWideDAE`
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
        Most training epochs. "auto" is the paper's 100, or more on small data: at least
        ``30 / learning_rate`` Adam updates (10,000 at 3e-3), ``max(100, ceil(30 /
        learning_rate / ceil(n_users / batch_size)))``. With early stopping this is a cap,
        rarely reached (see :class:`SparseWideDAE`).
    batch_size : int, default=128
        Users per Adam update (the paper: 500; see :class:`SparseWideDAE`).
    learning_rate : float, default=3e-3
        Adam's learning rate (the paper: 1e-3), SparseWideDAE's (chosen there, see
        :class:`SparseWideDAE`; not measured separately for Fc-dae).

        .. versionchanged:: 0.1
           Default 3e-3 instead of 1e-2, with SparseWideDAE's.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training users (drawn among those with at
        least 5 interactions, each split 80/20 into fold-in and hold-out items), score every
        epoch by their NDCG@100, keep the best epoch and stop after ``n_iter_no_change``
        epochs without improvement. "auto" does so when that gives at least 10 validation
        users, else trains every epoch on all users. Ignored when ``fit`` gets ``X_valid``.
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
        **RESUME_CONSTRAINTS,
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
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 20,
        warm_start: bool = False,
        checkpoint: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(**shared_args(locals(), _WideDAE))
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.l1_activation = l1_activation
        self.prune = prune
        self.prune_epochs = prune_epochs

    def _l1(self) -> float:
        return float(self.l1_activation)

    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        if self.encoder_pattern_ is None:
            decoder = dense_linear(self.K, self.n_items_in_, generator)
            return [SparseLinear(self.n_items_in_, self.K, generator)], [decoder]
        return self._sparse_layers(generator)

    def _sparse_layers(
        self,
        generator: torch.Generator,
        enc_values: Tensor | None = None,
        dec_values: Tensor | None = None,
    ) -> tuple[list[nn.Module], list[nn.Module]]:
        return (
            [SparseEncoder(self.encoder_pattern_, generator, enc_values)],
            [SparseDecoder(self.decoder_pattern_, generator, dec_values)],
        )

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        """The dense training; with ``prune``, then the retraining of the pruned network."""
        self.encoder_pattern_ = self.decoder_pattern_ = None
        phases = super()._phases(X_train, config)
        if self.prune is None:
            return phases
        assert isinstance(phases[0], Phase)
        dense = replace(phases[0], name="dense")

        def retrain(trained: dict[str, nn.Module]) -> Phase:
            epochs = int(self.prune_epochs) if self.prune_epochs else config.epochs
            return replace(
                dense, name="retrain", module=self._pruned(trained["dense"]), epochs=epochs
            )

        return [dense, retrain]

    def _pruned(self, module: nn.Module) -> WideAE:
        """The sparse network of the ``1 - prune`` largest trained weights (biases kept)."""
        assert isinstance(module, WideAE)
        enc, dec = module.encoders[0], module.decoders[0]
        assert isinstance(enc, SparseLinear) and isinstance(dec, nn.Linear)
        # both weights are (n_items, K)
        fraction = float(self.prune or 0.0)
        self.encoder_pattern_, enc_values = _prune(enc.weight.detach().cpu(), fraction)
        self.decoder_pattern_, dec_values = _prune(dec.weight.detach().cpu(), fraction)
        encoders, decoders = self._sparse_layers(
            torch.Generator().manual_seed(0), enc_values, dec_values
        )
        sparse_enc, sparse_dec = encoders[0], decoders[0]
        assert isinstance(sparse_enc, SparseEncoder) and isinstance(sparse_dec, SparseDecoder)
        with torch.no_grad():  # biases carry over too
            sparse_enc.bias.copy_(enc.bias)
            sparse_dec.bias.copy_(dec.bias)
        return self._wide(encoders, decoders)


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
