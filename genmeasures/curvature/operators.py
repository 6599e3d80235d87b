"""Curvature operators: symmetric linear maps on the selected parameters, summed over a sample.

A :class:`CurvatureOperator` is a symmetric linear map on the selected parameters. A subclass
writes one method, ``_batch_matmat``: this batch's contribution to ``[A v for v in vectors]``
where the batch's loss is already weighted by ``1/m`` (see :mod:`.functional`). The base class
sums the contributions over the evaluation set and counts products. Under a distributed
:class:`~genmeasures.curvature.distributed.Shard` each process computes the contributions of
its own batches and the sum is formed in the single-process order
(:func:`~genmeasures.curvature.distributed.ordered_sum`): the same bits as one process.

Curvatures are registered by name (:data:`CURVATURES`): ``hessian`` (:class:`HessianOperator`,
here) and ``ggn`` (:class:`~genmeasures.curvature.ggn.GGNOperator`). A new curvature (a
Fisher, say) is one new file with a subclass and :func:`register_curvature`, imported in
``genmeasures.curvature``. How the Hessian's products are computed is a separate choice, the
product method (:mod:`genmeasures.curvature.products`).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from genmeasures._registry import Registry
from genmeasures.curvature import distributed
from genmeasures.curvature.functional import FunctionalModel, PerSampleLoss, verify_loss
from genmeasures.curvature.products import AUTO, PRODUCT_METHODS, ProductMethod
from genmeasures.curvature.vectors import Vector, add
from genmeasures.errors import MeasureError

Batch = tuple[torch.Tensor, torch.Tensor]


class CurvatureOperator(ABC):
    """A symmetric operator on the parameters ``names`` of ``model``, summed over ``batches``.

    ``batches`` is the evaluation sample (held as a list on the operator's device); the model
    must already be in eval mode (see :func:`~.functional.evaluation_mode`). The shard active
    when the operator is made (:func:`~genmeasures.curvature.distributed.active`) is the one
    its products are shared over: every rank holds the whole list and computes the batches
    it owns.
    """

    # Whether the operator takes a ``products`` method (Hessian-vector products can be
    # computed several ways; a Gauss-Newton product has one).
    takes_products: ClassVar[bool] = False

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
        self.shard = distributed.active()
        # The batches this process computes: all of them, or its shard's contiguous range.
        self.own = (
            range(len(self.batches)) if self.shard is None else self.shard.owned(len(self.batches))
        )
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
        """``[A v for v in vectors]``, each a sum over the whole evaluation set (the batches'
        contributions added in batch order, also when they are computed by several ranks)."""
        vectors = [tuple(v) for v in vectors]
        if self.shard is not None:

            def contribution(index: int) -> list[Vector]:
                inputs, targets = self.batches[index]
                return self._batch_matmat(inputs, targets, [tuple(v) for v in vectors])

            products = distributed.ordered_sum(
                self.shard, len(self.batches), contribution, self.params, vectors
            )
            self.n_matvecs += len(vectors)
            return [tuple(t.detach() for t in product) for product in products]
        totals: list[Vector] | None = None
        for inputs, targets in self.batches:
            parts = self._batch_matmat(inputs, targets, [tuple(v) for v in vectors])
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


class HessianOperator(CurvatureOperator):
    """H v, H = d^2 L_S / dW^2 over the selected parameters.

    ``products`` names the product method (:data:`~genmeasures.curvature.products.
    PRODUCT_METHODS`; ``auto`` is double backward). A method that cannot run on this model
    (forward mode missing for some operation) is replaced by its fallback on the first
    product, with one warning.
    """

    takes_products = True

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        batches: Sequence[Batch],
        loss: PerSampleLoss,
        *,
        products: str = "auto",
        weights: dict[str, torch.Tensor] | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(model, names, batches, loss, weights=weights, check=check)
        # auto is a constant (double backward), not a timing, so every rank of a distributed
        # run, given the same options (checked), makes the same method.
        self.method = self._make_method(AUTO if products == "auto" else products)

    @property
    def products(self) -> str:
        """The product method in use (after any fallback)."""
        return self.method.name

    def _make_method(self, name: str) -> ProductMethod:
        method_class = PRODUCT_METHODS.get(name)
        # State is kept across products when this process computes a single batch (its own
        # batch of a shard included): the same numbers, one graph build instead of one per call.
        return method_class(self.fmodel, self.total, reuse=len(self.own) == 1)

    def _batch_matmat(self, inputs, targets, vectors):
        try:
            return self.method.batch_matmat(inputs, targets, vectors)
        except (NotImplementedError, RuntimeError) as exc:
            fallback = self.method.fallback
            if fallback is None or not is_transform_gap(exc):
                raise
            warn_unsupported(
                exc,
                f"computing Hessian-vector products by {fallback} instead of {self.method.name}",
            )
            self.method = self._make_method(fallback)
            return self.method.batch_matmat(inputs, targets, vectors)


CURVATURES: Registry[type[CurvatureOperator]] = Registry("curvature")


def register_curvature(
    name: str,
) -> Callable[[type[CurvatureOperator]], type[CurvatureOperator]]:
    return CURVATURES.decorator(name)


register_curvature("hessian")(HessianOperator)


def make_operator(
    curvature: str,
    model: nn.Module,
    names: Sequence[str],
    batches: Sequence[Batch],
    loss: PerSampleLoss,
    *,
    products: str = "auto",
    check: bool = True,
) -> CurvatureOperator:
    """The registered ``curvature`` operator; ``products`` applies where it has methods."""
    operator_class = CURVATURES.get(curvature)
    if operator_class.takes_products:
        # (takes_products: the subclass's __init__ has the keyword, the base's has not)
        return operator_class(model, names, batches, loss, products=products, check=check)  # type: ignore[call-arg]
    return operator_class(model, names, batches, loss, check=check)


def is_transform_gap(exc: BaseException) -> bool:
    """Whether an exception says a torch.func transform cannot run some operation: forward
    mode missing (jvp), or vmap unable to batch it (``.item()``, data-dependent branches)."""
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or any(
        word in text for word in ("forward", "jvp", "vmap")
    )


def warn_unsupported(
    reason: BaseException | str, consequence: str, *, what: str = "forward-mode AD"
) -> None:
    """The one warning for a model that some transform cannot run on: what is missing, why
    (the first line of torch's message), and what is done instead."""
    text = first_line(reason) if isinstance(reason, BaseException) else reason
    warnings.warn(
        f"{what} is not supported by this model ({text}); {consequence}",
        RuntimeWarning,
        stacklevel=3,
    )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
