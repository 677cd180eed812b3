"""Mult-DAE: denoising autoencoder with multinomial likelihood (Liang et al. 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..base import shared_args
from ..nn import Batch, TrainState
from ._mult import _BaseMultAE
from ._neural import RESUME_CONSTRAINTS


class MultDAE(_BaseMultAE):
    """Denoising autoencoder with a multinomial likelihood.

    The Mult-DAE of Liang et al. (WWW 2018; Le 2020 survey, §4), a baseline of Khawar et al.
    (WWW 2020, §4.4): ``[n_items -> 200 -> n_items]``, tanh hidden
    layer, L2-normalised input corrupted by dropout 0.5, loss the multinomial negative
    log-likelihood ``-Σ_i x_i log softmax(f(x̃))_i`` plus ``l2_reg Σ ||W||²`` (Liang's code
    uses λ = 0.01 / batch size = 2e-5). Scores are the output logits of the clean input.

    Parameters
    ----------
    n_components : int, default=200
        Width of the bottleneck layer.
    hidden_layer_sizes : tuple of int, default=()
        Extra encoder layers before the bottleneck (mirrored in the decoder).
    dropout : float, default=0.5
        Input dropout probability (the corruption).
    l2_reg : float, default=2e-5
        L2 penalty ``l2_reg * Σ ||W||²`` on the weight matrices.
    epochs : int, default=200
    batch_size : int, default=500
    learning_rate : float, default=1e-3
    early_stopping : bool, default=False
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
    module_, history_, best_epoch_, device_, n_items_in_, n_features_in_
        As in :class:`MultVAE`.

    See Also
    --------
    MultVAE : the variational variant.

    Examples
    --------
    >>> from skcfae import MultDAE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> MultDAE(epochs=2, random_state=0).fit(X).recommend(X[:2], n=3).shape
    (2, 3)
    """

    _parameter_constraints = {**_BaseMultAE._parameter_constraints, **RESUME_CONSTRAINTS}
    _variational = False

    def __init__(
        self,
        n_components: int = 200,
        *,
        hidden_layer_sizes: tuple[int, ...] = (),
        dropout: float = 0.5,
        l2_reg: float = 2e-5,
        epochs: int = 200,
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
        super().__init__(**shared_args(locals(), _BaseMultAE))
        self.warm_start = warm_start
        self.checkpoint = checkpoint

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        logits, _, _ = module(batch, state.generator)
        return self._nll(logits, batch)
