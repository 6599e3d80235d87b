"""Forward-over-reverse: ``torch.func.jvp`` of ``torch.func.grad``, one pass per vector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import grad, jvp

from genmeasures.curvature.products.base import ProductMethod, register_product_method
from genmeasures.curvature.vectors import Vector


@register_product_method("func")
class ForwardOverReverse(ProductMethod):
    fallback = "autograd"  # for models with an operation that has no forward-mode rule

    def batch_matmat(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: Sequence[Vector]
    ) -> list[Vector]:
        gradient = grad(self.loss_of(inputs, targets))
        return [tuple(jvp(gradient, (self.fmodel.params,), (v,))[1]) for v in vectors]
