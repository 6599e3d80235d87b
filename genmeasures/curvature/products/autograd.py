"""Double backward: ``torch.autograd.grad`` of the gradient, its first-order graph reused.

The graph of a batch's gradient is built once per ``batch_matmat`` call and reused for every
vector of the block; when the whole sample is one batch it is kept for every later product
too. Measured on CPU (benchmarks/curvature.py) this is the fastest method on every model we
ship (2-4x forward-over-reverse), so ``products=auto`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genmeasures.curvature.products.base import ProductMethod, register_product_method
from genmeasures.curvature.vectors import Vector


@register_product_method("autograd")
class DoubleBackward(ProductMethod):
    _graph: tuple | None = None

    def batch_matmat(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: Sequence[Vector]
    ) -> list[Vector]:
        if self.reuse and self._graph is not None:
            params, gradients = self._graph
        else:
            params = tuple(p.detach().requires_grad_(True) for p in self.fmodel.params)
            with torch.enable_grad():
                loss = self.loss_of(inputs, targets)(params)
                gradients = torch.autograd.grad(loss, params, create_graph=True)
            if self.reuse:
                self._graph = (params, gradients)
        products = []
        for index, vector in enumerate(vectors):
            keep = self.reuse or index < len(vectors) - 1
            hv = torch.autograd.grad(
                gradients, params, grad_outputs=vector, retain_graph=keep, allow_unused=True
            )
            # None for a parameter the loss does not depend on: H v is 0 there.
            products.append(
                tuple(
                    torch.zeros_like(p) if h is None else h for h, p in zip(hv, params, strict=True)
                )
            )
        return products
