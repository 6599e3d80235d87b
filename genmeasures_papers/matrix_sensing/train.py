"""Full-batch training on a :class:`SensingProblem`: GD, WP-GD and NSO as plug-ins.

An optimizer is a small object whose :meth:`direction` returns the vector the step moves
against, from the problem's closed-form gradient and a source of standard-normal noise:

- ``gd``: ``grad f(U)``;
- ``wp`` (weight-perturbed GD, one-sided): ``(1/k) sum_j grad f(U + V_j)``;
- ``nso`` (noise stability optimization, two-sided): ``(1/2k) sum_j [grad f(U + V_j) +
  grad f(U - V_j)]``;

with ``V_j`` i.i.d. N(0, sigma^2) entries (Zhang, Li & Ju, TMLR 2024). ``U <- U - lr *
direction``. New optimizers register with :data:`OPTIMIZERS` and need no other change.

:func:`train` runs one (problem, optimizer, seed) from a small random init, logs the relative
training and validation MSE and the distance to the ground truth every ``log_every`` epochs
(one epoch = one full-batch step), and can hand its complete state to a callback so an
interrupted run resumes exactly where it stopped (the noise generator's state included).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from genmeasures._registry import Registry
from genmeasures._specs import parse_spec
from genmeasures.errors import GenMeasuresError, OptionError
from genmeasures_papers.matrix_sensing.problem import SensingProblem

Gradient = Callable[[torch.Tensor], torch.Tensor]
Noise = Callable[[], torch.Tensor]  # a fresh d x d standard-normal matrix


class Optimizer(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]  # how figures name it

    def direction(self, gradient: Gradient, u: torch.Tensor, noise: Noise) -> torch.Tensor: ...

    def options(self) -> dict[str, Any]: ...


OPTIMIZERS: Registry[type] = Registry("matrix-sensing optimizer")


def _check_sigma_k(name: str, sigma: float, k: int) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma >= 0:
        raise OptionError(f"optimizer {name!r}: sigma must be a number >= 0, got {sigma!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise OptionError(f"optimizer {name!r}: k must be a positive integer, got {k!r}")


@OPTIMIZERS.decorator("gd")
@dataclass(frozen=True)
class GD:
    """Plain full-batch gradient descent."""

    name: ClassVar[str] = "gd"
    label: ClassVar[str] = "GD"

    def direction(self, gradient: Gradient, u: torch.Tensor, noise: Noise) -> torch.Tensor:
        return gradient(u)

    def options(self) -> dict[str, Any]:
        return {}


@OPTIMIZERS.decorator("wp")
@dataclass(frozen=True)
class WeightPerturbedGD:
    """One-sided: the gradient at ``k`` random perturbations ``U + V``, averaged."""

    sigma: float = 0.02
    k: int = 1
    name: ClassVar[str] = "wp"
    label: ClassVar[str] = "WP-GD"

    def __post_init__(self) -> None:
        _check_sigma_k(self.name, self.sigma, self.k)

    def direction(self, gradient: Gradient, u: torch.Tensor, noise: Noise) -> torch.Tensor:
        total = torch.zeros_like(u)
        for _ in range(self.k):
            total += gradient(u + self.sigma * noise())
        return total / self.k

    def options(self) -> dict[str, Any]:
        return {"sigma": float(self.sigma), "k": self.k}


@OPTIMIZERS.decorator("nso")
@dataclass(frozen=True)
class NSO:
    """Two-sided: the gradients at ``U + V`` and ``U - V`` averaged, ``k`` draws of V."""

    sigma: float = 0.02
    k: int = 1
    name: ClassVar[str] = "nso"
    label: ClassVar[str] = "NSO"

    def __post_init__(self) -> None:
        _check_sigma_k(self.name, self.sigma, self.k)

    def direction(self, gradient: Gradient, u: torch.Tensor, noise: Noise) -> torch.Tensor:
        total = torch.zeros_like(u)
        for _ in range(self.k):
            v = self.sigma * noise()
            total += gradient(u + v) + gradient(u - v)
        return total / (2 * self.k)

    def options(self) -> dict[str, Any]:
        return {"sigma": float(self.sigma), "k": self.k}


def make_optimizer(spec: str | Optimizer, **options: Any) -> Optimizer:
    """``'nso:sigma=0.02,k=1'`` (or a name and keyword options) -> an optimizer.

    Unknown names and options, and bad values, raise :class:`OptionError` in one line.
    """
    if not isinstance(spec, str):
        return spec
    name, parsed = parse_spec(spec)
    parsed.update(options)
    cls = OPTIMIZERS.get(name)
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(parsed) - valid)
    if unknown:
        raise OptionError(
            f"optimizer {name!r} has no option {unknown[0]!r}; "
            f"valid: {', '.join(sorted(valid)) or '(none)'}"
        )
    return cls(**parsed)


def describe(optimizer: Optimizer) -> str:
    """A short display name: ``GD``, ``WP-GD σ=0.02``, ``NSO σ=0.02 k=2``."""
    options = optimizer.options()
    parts = [optimizer.label]
    if "sigma" in options:
        parts.append(f"σ={options['sigma']:g}")
    if options.get("k", 1) != 1:
        parts.append(f"k={options['k']}")
    return " ".join(parts)


@dataclass(frozen=True)
class TrainSettings:
    """One run's schedule; invalid values raise :class:`OptionError` when constructed."""

    lr: float = 0.0025
    epochs: int = 2000
    init_scale: float = 0.1  # U_0 = init_scale * G, G with i.i.d. N(0, 1) entries
    seed: int = 0  # the init and the noise (the problem has its own seed)
    log_every: int = 10

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_positive("init_scale", self.init_scale)
        for name in ("epochs", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(
                    f"matrix sensing: {name} must be a positive integer, got {value!r}"
                )


def check_positive(name: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if not ok or not math.isfinite(value):
        raise OptionError(f"matrix sensing: {name} must be a positive number, got {value!r}")


@dataclass
class TrainState:
    """Everything needed to continue a run bit for bit: U, the noise generator, the log."""

    epoch: int
    u: torch.Tensor
    noise_state: torch.Tensor
    rows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "u": self.u.detach().cpu()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainState:
        return cls(
            int(data["epoch"]),
            data["u"],
            data["noise_state"],
            list(data["rows"]),
            float(data.get("seconds", 0.0)),
        )


class Diverged(GenMeasuresError):
    """The iterate became non-finite (learning rate too large for the init)."""


def derived_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one named random stream of a run."""
    words = [int(seed) & 0xFFFFFFFF, *(ord(c) for c in stream)]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def initial_state(problem: SensingProblem, settings: TrainSettings) -> TrainState:
    init = torch.Generator().manual_seed(derived_seed(settings.seed, "init"))
    g = torch.randn(problem.d, problem.d, generator=init, dtype=torch.float64)
    u = (settings.init_scale * g).to(problem.device, problem.dtype)
    noise = torch.Generator().manual_seed(derived_seed(settings.seed, "noise"))
    return TrainState(0, u, noise.get_state())


def train(
    problem: SensingProblem,
    optimizer: Optimizer | str,
    settings: TrainSettings,
    *,
    state: TrainState | None = None,
    on_log: Callable[[TrainState], None] | None = None,
    on_epochs: Callable[[int], None] | None = None,
) -> TrainState:
    """Run ``settings.epochs`` full-batch steps (from ``state`` when resuming).

    Rows ``epoch, train_mse, val_mse, distance, loss, u_norm`` are logged at epoch 0, every
    ``log_every`` epochs and at the last epoch; ``on_log`` gets the state after each (to
    checkpoint it), ``on_epochs`` the number of epochs just done (for progress bars).
    Raises :class:`Diverged` if U stops being finite.
    """
    optimizer = make_optimizer(optimizer)
    state = state if state is not None else initial_state(problem, settings)
    u = state.u.to(problem.device, problem.dtype)
    generator = torch.Generator()
    generator.set_state(state.noise_state)
    d = problem.d

    def noise() -> torch.Tensor:
        draw = torch.randn(d, d, generator=generator, dtype=torch.float64)
        return draw.to(problem.device, problem.dtype)

    start = time.perf_counter() - state.seconds
    rows = list(state.rows)
    epoch = state.epoch

    def log() -> TrainState:
        row = metrics_row(problem, u, epoch)
        if not all(math.isfinite(value) for value in row.values()):
            raise Diverged(
                f"{describe(optimizer)} diverged by epoch {epoch} (lr={settings.lr:g}, "
                f"init_scale={settings.init_scale:g}); lower the learning rate"
            )
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        snapshot = TrainState(epoch, u.clone(), generator.get_state(), list(rows), row["seconds"])
        if on_log is not None:
            on_log(snapshot)
        return snapshot

    last = log() if epoch == 0 and not rows else state
    done_since_report = 0
    with torch.no_grad():
        while epoch < settings.epochs:
            u = u - settings.lr * optimizer.direction(problem.gradient, u, noise)
            epoch += 1
            done_since_report += 1
            if epoch % settings.log_every == 0 or epoch == settings.epochs:
                last = log()
                if on_epochs is not None:
                    on_epochs(done_since_report)
                done_since_report = 0
    return last


def metrics_row(problem: SensingProblem, u: torch.Tensor, epoch: int) -> dict[str, float]:
    """The logged quantities at U (three passes over the measurements: train twice, val)."""
    residual = problem.residual(u, "train").square()
    return {
        "epoch": epoch,
        "train_mse": float(residual.mean() / problem.y_train.square().mean()),
        "val_mse": problem.mse(u, "val"),
        "distance": problem.distance(u),
        "loss": float(residual.sum() / (4 * problem.m)),
        "u_norm": float(torch.linalg.norm(u)),
    }
