"""Hessian-vector product methods: how H v is computed, apart from what is done with it.

* ``autograd`` (:mod:`.autograd`): double backward with the first-order graph reused;
* ``func`` (:mod:`.func`): forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``;
* ``linearize`` (:mod:`.linearize`): ``torch.func.linearize`` of the gradient.

``auto`` is double backward: on every model and CPU we measured it is the fastest (see
benchmarks/curvature.py), and choosing by a timing probe cost more on a cold first call than
the products it could save. A method that cannot run on a model (no forward-mode rule for an
operation) falls back to its ``fallback`` and warns once.
"""

from genmeasures.curvature.products import autograd, func, linearize  # noqa: F401 (registers)
from genmeasures.curvature.products.base import (
    PRODUCT_METHODS,
    ProductMethod,
    register_product_method,
)

AUTO = "autograd"

__all__ = ["AUTO", "PRODUCT_METHODS", "ProductMethod", "register_product_method"]
