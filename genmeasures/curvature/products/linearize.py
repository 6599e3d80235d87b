"""Linearized products: ``torch.func.linearize`` of the gradient, built once per batch.

The linearization traces the gradient's forward-mode derivative into a graph that is then
applied to every vector; it pays off only when building it is repaid by many cheaper
products. Measured on CPU (benchmarks/curvature.py) the build costs 40-70 double-backward
products and each product costs more than a reused double-backward graph, so ``auto``
never chooses it; it is here for devices and models where it measures faster.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch.func import grad, linearize

from genmeasures.curvature.products.base import ProductMethod, register_product_method
from genmeasures.curvature.vectors import Vector


@register_product_method("linearize")
class Linearized(ProductMethod):
    fallback = "autograd"  # linearize runs forward mode
    _linear: Callable | None = None

    def batch_matmat(
        self, inputs: torch.Tensor, targets: torch.Tensor, vectors: Sequence[Vector]
    ) -> list[Vector]:
        linear = self._linear
        if linear is None:
            with warnings.catch_warnings():
                # torch's constant folding inside linearize warns about its own graph.
                warnings.filterwarnings("ignore", message="Attempted to insert a get_attr Node")
                _, linear = linearize(grad(self.loss_of(inputs, targets)), self.fmodel.params)
            if self.reuse:
                self._linear = linear
        return [tuple(t.detach() for t in linear(tuple(v))) for v in vectors]
