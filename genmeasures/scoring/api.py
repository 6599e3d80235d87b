"""``genmeasures.score``: measures of an in-memory model against its init, as a DataFrame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from genmeasures._device import Device, resolve_device
from genmeasures.checkpoints import check_finite, check_matches_init
from genmeasures.data.evalset import as_evaluation_set
from genmeasures.measures import MeasureContext, cross_entropy_per_sample, resolve_requests
from genmeasures.measures.context import PerSampleLoss
from genmeasures.scoring.engine import check_labels, state_of, uses_model
from genmeasures.tables.schema import RESULT_COLUMN_NAMES


def score(
    model: nn.Module,
    init: nn.Module | Mapping[str, torch.Tensor] | None,
    data: Any,
    measures: Iterable[str] | Mapping[str, Mapping[str, Any] | None],
    *,
    loss: PerSampleLoss | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    device: Device = None,
    n_train: int | None = None,
) -> pd.DataFrame:
    """Score ``model`` against its initialization with the given measures.

    Args:
        model: the fine-tuned network.
        init: the network (or state dict) it was fine-tuned from; None for measures that
            do not need it.
        data: the evaluation sample: a DataLoader (iterated in its own order), a dataset,
            an ``(inputs, targets)`` tensor pair, or None for weight-space measures.
        measures: names or ``'name:opt=value'`` specs, or a mapping name -> options.
        loss: maps (outputs, targets) to per-sample losses; default cross-entropy.
        n_samples: evaluate on a seeded random subset of this size (a DataLoader: its first
            n_samples samples).
        seed: seed of the subset and of stochastic measures.
        device: 'cpu', 'cuda' or None/'auto'.
        n_train: training-set size, for bounds that divide by sqrt(n).

    Returns:
        One row per measure x (whole model, each layer, each extra quantity), with the
        result columns of :mod:`genmeasures.tables.schema`: measure, options, layer ('' for
        the whole model), value, stderr, n_samples, score_seed, seconds, n_matvecs.
    """
    requests = resolve_requests(measures)
    device = resolve_device(device)
    weights = state_of(model, "model")
    assert weights is not None  # state_of gives None only for None, and model is a module
    init_state = state_of(init, "init")
    check_finite(weights, "model")
    if init_state is not None:
        check_finite(init_state, "init")
        check_matches_init(weights, init_state, "model")
    evaluation = as_evaluation_set(data, n_samples=n_samples, seed=seed)

    def model_on_device() -> nn.Module:
        return model.to(device)

    ctx = MeasureContext(
        weights=weights,
        init=init_state,
        model_factory=model_on_device,
        data=evaluation,
        loss=loss or cross_entropy_per_sample,
        n_train=n_train,
        seed=seed,
        device=device,
    )
    if evaluation is not None and loss is None and uses_model(requests):
        check_labels(ctx.model, evaluation, device)
    rows = [row for spec, options in requests for row in spec(ctx, **options).rows()]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMN_NAMES))
