"""Curvature operators: Hessian- and Gauss-Newton-vector products of L_S over a whole sample.

A :class:`CurvatureOperator` is a symmetric linear map on the selected parameters. A subclass
writes one method, ``_batch_matmat``: this batch's contribution to ``[A v for v in vectors]``
where the batch's loss is already weighted by ``1/m`` (see :mod:`.functional`). The base class
sums the contributions over the evaluation set and counts products.

Two Hessian backends compute the same numbers:

* ``func``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``;
* ``autograd``: double backward, ``torch.autograd.grad`` twice. The first-order graph of a
  batch is built once and reused for every vector of a block (and, when the whole sample is
  one batch, for every later product too).

``backend="auto"`` times both on a few samples of the first batch and keeps the faster (once
per process for models of one class and parameter shapes); if forward mode is not supported
by some operation of the model, it falls back to double backward and says so.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import grad, jvp, vjp

from genmeasures.curvature.functional import FunctionalModel, PerSampleLoss, verify_loss
from genmeasures.curvature.vectors import Vector, add
from genmeasures.errors import MeasureError

Batch = tuple[torch.Tensor, torch.Tensor]
Backend = Literal["auto", "func", "autograd"]


class CurvatureOperator(ABC):
    """A symmetric operator on the parameters ``names`` of ``model``, summed over ``batches``.

    ``batches`` is the evaluation sample (held as a list on the operator's device); the model
    must already be in eval mode (see :func:`~.functional.evaluation_mode`).
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        batches: Sequence[Batch],
        loss: PerSampleLoss,
        *,
        weights: dict[str, torch.Tensor] | None = None,
        check: bool = True,
    ) -> None:
        if not names:
            raise MeasureError("no parameters selected for the curvature operator")
        self.fmodel = FunctionalModel.create(model, names, loss, weights)
        self.batches = list(batches)
        self.total = sum(len(targets) for _, targets in self.batches)
        if self.total == 0:
            raise MeasureError("the evaluation data is empty")
        self.n_matvecs = 0
        if check:
            verify_loss(self.fmodel, self.batches)

    @property
    def names(self) -> tuple[str, ...]:
        return self.fmodel.names

    @property
    def params(self) -> Vector:
        return self.fmodel.params

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params)

    def matvec(self, vector: Sequence[torch.Tensor]) -> Vector:
        return self.matmat([vector])[0]

    def matmat(self, vectors: Sequence[Sequence[torch.Tensor]]) -> list[Vector]:
        """``[A v for v in vectors]``, each a sum over the whole evaluation set."""
        vectors = [tuple(v) for v in vectors]
        totals: list[Vector] | None = None
        for inputs, targets in self.batches:
            parts = self._batch_matmat(inputs, targets, vectors)
            totals = (
                parts if totals is None else [add(t, p) for t, p in zip(totals, parts, strict=True)]
            )
        self.n_matvecs += len(vectors)
        assert totals is not None
        return [tuple(t.detach() for t in total) for total in totals]

    @abstractmethod
    def _batch_matmat(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: list[Vector]
    ) -> list[Vector]:
        """This batch's share (loss weighted by 1/m) of A v for each v."""

    def _weighted(self, inputs: torch.Tensor, targets: torch.Tensor):
        def loss_of(params: Sequence[torch.Tensor]) -> torch.Tensor:
            return self.fmodel.weighted_loss(params, inputs, targets, self.total)

        return loss_of


class HessianOperator(CurvatureOperator):
    """H v, H = d^2 L_S / dW^2 over the selected parameters.

    ``backend``: ``func`` (forward-over-reverse), ``autograd`` (double backward) or ``auto``
    (whichever is faster on this model, by a short probe).
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        batches: Sequence[Batch],
        loss: PerSampleLoss,
        *,
        backend: Backend = "auto",
        weights: dict[str, torch.Tensor] | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(model, names, batches, loss, weights=weights, check=check)
        self._graph: tuple | None = None  # the single batch's first-order graph, reused
        self.backend = self._choose(backend)

    def _batch_matmat(self, inputs, targets, vectors):
        if self.backend == "func":
            return [self._func_hvp(inputs, targets, v) for v in vectors]
        return self._autograd_hvps(inputs, targets, vectors)

    def _func_hvp(self, inputs: torch.Tensor, targets: torch.Tensor, vector: Vector) -> Vector:
        gradient = grad(self._weighted(inputs, targets))
        return jvp(gradient, (self.params,), (vector,))[1]

    def _autograd_hvps(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: list[Vector]
    ) -> list[Vector]:
        reuse = len(self.batches) == 1
        if reuse and self._graph is not None:
            params, gradients = self._graph
        else:
            params = tuple(p.detach().requires_grad_(True) for p in self.params)
            with torch.enable_grad():
                loss = self._weighted(inputs, targets)(params)
                gradients = torch.autograd.grad(loss, params, create_graph=True)
            if reuse:
                self._graph = (params, gradients)
        products = []
        for index, vector in enumerate(vectors):
            keep = reuse or index < len(vectors) - 1
            products.append(
                torch.autograd.grad(
                    gradients, params, grad_outputs=vector, retain_graph=keep, allow_unused=True
                )
            )
        return [
            tuple(
                torch.zeros_like(p) if h is None else h
                for h, p in zip(hv, self.params, strict=True)
            )
            for hv in products
        ]

    def _choose(self, backend: Backend) -> str:
        if backend not in ("auto", "func", "autograd"):
            raise MeasureError(f"unknown backend {backend!r}; valid: auto, func, autograd")
        if backend == "autograd":
            return backend
        key = self._probe_key() if backend == "auto" else None
        if key is not None and key in _CHOSEN_BACKEND:
            return _CHOSEN_BACKEND[key]
        # The probe runs on a few samples: the ratio of the two backends' costs hardly depends
        # on the batch size, and timing the whole first batch cost as much as ~5 products.
        inputs, targets = (t[:_PROBE_SAMPLES] for t in self.batches[0])
        probe = tuple(torch.ones_like(p) for p in self.params)
        try:
            seconds_func = _best_of(1, lambda: self._func_hvp(inputs, targets, probe))
        except (NotImplementedError, RuntimeError) as exc:
            if not _is_forward_mode_gap(exc):
                raise
            warnings.warn(
                f"forward-mode AD is not supported by this model ({_first_line(exc)}); "
                f"using double-backward Hessian-vector products",
                RuntimeWarning,
                stacklevel=3,
            )
            chosen = "autograd"
        else:
            if backend == "func":
                return backend
            # Alternating rounds, best of each: a one-off stall (first-call set-up, another
            # process on the core) must not decide the backend of every product that follows.
            seconds_autograd = float("inf")
            for _ in range(3):
                seconds_autograd = min(
                    seconds_autograd,
                    _best_of(1, lambda: self._fresh_autograd_hvp(inputs, targets, probe)),
                )
                seconds_func = min(
                    seconds_func, _best_of(1, lambda: self._func_hvp(inputs, targets, probe))
                )
            chosen = "func" if seconds_func < seconds_autograd else "autograd"
        if key is not None:
            _CHOSEN_BACKEND[key] = chosen
        return chosen

    def _fresh_autograd_hvp(self, inputs: torch.Tensor, targets: torch.Tensor, vector: Vector):
        params = tuple(p.detach().requires_grad_(True) for p in self.params)
        with torch.enable_grad():
            loss = self._weighted(inputs, targets)(params)
            gradients = torch.autograd.grad(loss, params, create_graph=True)
            return torch.autograd.grad(gradients, params, grad_outputs=vector, allow_unused=True)

    def _probe_key(self) -> tuple:
        """Models of one class with the same selected parameters, on inputs of one shape,
        dtype and device, get the same backend: the probe runs once per process for them."""
        inputs, _ = self.batches[0]
        model = self.fmodel.model
        return (
            type(model).__module__,
            type(model).__qualname__,
            tuple(
                (n, tuple(p.shape), p.dtype) for n, p in zip(self.names, self.params, strict=True)
            ),
            tuple(inputs.shape[1:]),
            inputs.dtype,
            str(inputs.device),
            getattr(self.fmodel.loss, "__qualname__", type(self.fmodel.loss).__qualname__),
        )


_PROBE_SAMPLES = 8
_CHOSEN_BACKEND: dict[tuple, str] = {}


class GGNOperator(CurvatureOperator):
    """G v = sum_j J_j^T H_out(x_j) J_j v / m: the generalized Gauss-Newton matrix, PSD for a
    convex loss; J_j the Jacobian of the outputs, H_out the Hessian of the loss in the outputs.
    """

    def _batch_matmat(self, inputs, targets, vectors):
        def outputs_of(params):
            return self.fmodel.outputs(params, inputs)

        outputs, pullback = vjp(outputs_of, self.params)

        def output_loss(out):
            return self.fmodel.loss(out, targets).sum() / self.total

        results = []
        for vector in vectors:
            jv = jvp(outputs_of, (self.params,), (vector,))[1]
            h_jv = jvp(grad(output_loss), (outputs.detach(),), (jv,))[1]
            results.append(tuple(pullback(h_jv)[0]))
        return results


def _best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _is_forward_mode_gap(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or "forward" in text or "jvp" in text


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
