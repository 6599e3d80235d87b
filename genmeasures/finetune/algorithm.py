"""Fine-tuning algorithms as plugins: small objects the one training loop calls.

An algorithm changes at most three things, each through one hook, never through a branch in
the loop:

* the loss of a batch (:meth:`Algorithm.batch_loss`): label smoothing, mixup, reweighting,
  loss correction, a penalty towards the init;
* how a step's gradient is computed (:meth:`Algorithm.compute_gradient`): SAM's ascent,
  NSO's perturbations;
* what happens after the optimizer step (:meth:`Algorithm.after_step`): the projection of
  layer-wise constraints;

plus epoch events (:meth:`Algorithm.on_epoch_start`, :meth:`Algorithm.on_epoch_end`) for
label correction and schedules. Options are a frozen dataclass (``Options``, a subclass of
:class:`AlgorithmOptions`) whose fields declare type, range and help once, in their
annotations (``rho: Annotated[float, Positive(), "ascent radius"] = 0.05``); they are checked
by the same coercion layer as the rest of the config and listed by ``genmeasures algorithms
-v``. ``register_algorithm`` adds a class under its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from genmeasures._coerce import CheckedFields, check_option, type_hints
from genmeasures._registry import Registry
from genmeasures.errors import OptionError
from genmeasures.losses import cross_entropy_per_sample


@dataclass
class TrainState:
    """What an algorithm may read and change during training.

    ``labels`` are the current training labels (noisy, possibly corrected); ``clean_labels``
    the true ones; ``init`` the parameters at epoch 0 (pretrained backbone + new head);
    ``generator`` is reseeded every epoch from (seed, epoch), so a resumed run draws the same
    numbers as an uninterrupted one. Draw from it, not from torch's global generator: runs
    sharing a process race on that one (a plugin algorithm's run therefore keeps reseeding it
    every epoch, and is safe only in a process of its own; see :mod:`.randomness`).
    """

    model: nn.Module
    init: dict[str, torch.Tensor]
    labels: torch.Tensor
    clean_labels: torch.Tensor
    num_classes: int
    device: torch.device
    head_prefix: str
    stage_of: Callable[[str], int]
    epoch: int = 0
    generator: torch.Generator = field(default_factory=torch.Generator)
    seed: int = 0
    train_dataset: Any = None  # the training inputs (a LabeledDataset), for predictions
    noise_transition: torch.Tensor | None = None  # T[clean, noisy] the label noise was drawn from

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def is_head(self, name: str) -> bool:
        return name.startswith(self.head_prefix + ".")


@dataclass(frozen=True)
class AlgorithmOptions(CheckedFields):
    """Base of every algorithm's ``Options``: each field is checked against its annotation
    when the options are built (from a config or directly), messages naming
    ``algorithm.<field>``. Cross-field rules go in ``__post_init__`` after
    ``super().__post_init__()``."""

    option_where: ClassVar[str] = "config"
    option_prefix: ClassVar[str] = "algorithm."


class Algorithm:
    """Plain fine-tuning (empirical risk minimization); subclasses override hooks."""

    name: ClassVar[str] = "erm"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        pass

    def __init__(self, options: Any, state: TrainState) -> None:
        self.options = options
        self.state = state

    # --- the loss -------------------------------------------------------------------------
    def batch_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        """The scalar loss of a batch (default: mean cross-entropy)."""
        return cross_entropy_per_sample(outputs, targets).mean()

    def prepare_batch(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, Any]:
        """Transform the inputs (mixup); return them and what ``batch_loss`` needs."""
        return inputs, targets

    def loss_at_current_weights(
        self, inputs: torch.Tensor, targets: Any, indices: torch.Tensor
    ) -> torch.Tensor:
        return self.batch_loss(self.state.model(inputs), targets, indices)

    # --- the gradient ---------------------------------------------------------------------
    def compute_gradient(
        self, inputs: torch.Tensor, targets: Any, indices: torch.Tensor
    ) -> torch.Tensor:
        """Fill ``.grad`` of the trainable parameters; return the batch loss (detached)."""
        loss = self.loss_at_current_weights(inputs, targets, indices)
        loss.backward()
        return loss.detach()

    def passes_per_step(self) -> int:
        """Forward/backward passes per step (for the cost benchmark)."""
        return 1

    # --- after the step and around epochs --------------------------------------------------
    def after_step(self) -> None:
        """Called after every optimizer step (e.g. a projection)."""

    def on_epoch_start(self) -> None:
        """Called before the first step of each epoch."""

    def on_epoch_end(self) -> dict[str, float]:
        """Called after the last step of each epoch; may return extra metrics to log."""
        return {}

    # --- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


ALGORITHMS: Registry[type[Algorithm]] = Registry(
    "algorithm", entry_point_group="genmeasures.algorithms"
)


def register_algorithm(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    ALGORITHMS.add(cls.name, cls)
    return cls


def get_algorithm(name: str) -> type[Algorithm]:
    import genmeasures.finetune.algorithms  # noqa: F401  (registers the built-ins)

    return ALGORITHMS.get(name)


def resolve_algorithm_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check an ``[algorithm]`` section: a known name and valid options; fill defaults."""
    name = str(raw.get("name", "erm"))
    cls = get_algorithm(name)
    options = build_options(cls, {k: v for k, v in raw.items() if k != "name"})
    return {"name": name, **dataclasses.asdict(options)}


def build_options(cls: type[Algorithm], values: Mapping[str, Any]) -> Any:
    """``cls.Options`` built from ``values``: unknown keys refused, every value checked."""
    option_type = cls.Options
    fields = {f.name for f in dataclasses.fields(option_type)}
    hints = type_hints(option_type)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "none"
            raise OptionError(
                f"unknown key 'algorithm.{key}' for algorithm {cls.name!r}; valid: {valid}"
            )
        # Also for a plugin whose Options do not derive from AlgorithmOptions.
        kwargs[key] = check_option(value, hints[key], where="config", name=f"algorithm.{key}")
    return option_type(**kwargs)
