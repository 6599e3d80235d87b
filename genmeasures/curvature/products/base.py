"""The product-method interface and its registry.

A product method computes one batch's share of ``[H v for v in vectors]``, H the Hessian of
the sample-weighted loss (each batch's per-sample losses summed and divided by the total m,
see :mod:`genmeasures.curvature.functional`). A new method is one file with a subclass that
writes :meth:`ProductMethod.batch_matmat`, registered with :func:`register_product_method`
and imported in this package's ``__init__``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch

from genmeasures._registry import Registry
from genmeasures.curvature.functional import FunctionalModel
from genmeasures.curvature.vectors import Vector


class ProductMethod(ABC):
    """Hessian-vector products of one :class:`FunctionalModel` over an evaluation set of
    ``total`` samples. ``reuse`` is True when the set is a single batch, so state built for
    it (a first-order graph, a linearization) may be kept for every later product."""

    name: ClassVar[str]
    # Where the method cannot run (an operation without the derivative it needs), the
    # operator falls back to this registered method and says so once.
    fallback: ClassVar[str | None] = None

    def __init__(self, fmodel: FunctionalModel, total: int, *, reuse: bool) -> None:
        self.fmodel = fmodel
        self.total = total
        self.reuse = reuse

    @abstractmethod
    def batch_matmat(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: Sequence[Vector]
    ) -> list[Vector]:
        """This batch's share (loss weighted by 1/m) of H v for each v."""

    def loss_of(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> Callable[[Sequence[torch.Tensor]], torch.Tensor]:
        """The batch's share of L_S as a function of the selected parameters."""

        def loss(params: Sequence[torch.Tensor]) -> torch.Tensor:
            return self.fmodel.weighted_loss(params, inputs, targets, self.total)

        return loss


PRODUCT_METHODS: Registry[type[ProductMethod]] = Registry("product method")


def register_product_method(name: str) -> Callable[[type[ProductMethod]], type[ProductMethod]]:
    def register(cls: type[ProductMethod]) -> type[ProductMethod]:
        cls.name = name
        return PRODUCT_METHODS.add(name, cls)

    return register
