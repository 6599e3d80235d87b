"""The curvature engine: second-order information of the empirical risk L_S(W).

* :mod:`.functional`: L_S as a pure, sample-weighted function of selected parameters, in eval
  mode; the NaN and determinism checks.
* :mod:`.operators`: the curvature operators' base class and registry (``hessian``; ``ggn``
  in :mod:`.ggn`), products over a whole sample;
* :mod:`.products`: how Hessian-vector products are computed (double backward,
  forward-over-reverse, linearized), a registry of its own;
* :mod:`.structure`: which layer blocks the outputs are affine in (a numerical probe);
* :mod:`.ggn`: Gauss-Newton products and exact Gauss-Newton block traces;
* :mod:`.trace`: Hutchinson, Hutch++ and exact traces with per-block traces.
* :mod:`.lanczos`: extreme eigenvalues with residual bounds; quadrature for v^T f(A) v.
* :mod:`.persample`: per-sample curvature along directions for a whole batch at once.
* :mod:`.distributed`: data-parallel curvature (torchrun, gloo/NCCL): the evaluation batches
  shared among processes, every sum formed in the single-process order (bit-identical).
"""

from genmeasures.curvature.functional import (
    FunctionalModel,
    evaluation_mode,
    verify_loss,
)
from genmeasures.curvature.ggn import GGNOperator
from genmeasures.curvature.lanczos import EigenEstimate, lanczos_eigenvalues, lanczos_quadrature
from genmeasures.curvature.operators import (
    CURVATURES,
    CurvatureOperator,
    HessianOperator,
    make_operator,
    register_curvature,
)
from genmeasures.curvature.persample import bilinear_ggn, bilinear_hessian, positive_part_form
from genmeasures.curvature.trace import TraceEstimate, exact_trace, hutchinson, hutchpp

__all__ = [
    "CURVATURES",
    "CurvatureOperator",
    "EigenEstimate",
    "FunctionalModel",
    "GGNOperator",
    "HessianOperator",
    "TraceEstimate",
    "bilinear_ggn",
    "bilinear_hessian",
    "evaluation_mode",
    "exact_trace",
    "hutchinson",
    "hutchpp",
    "lanczos_eigenvalues",
    "lanczos_quadrature",
    "make_operator",
    "positive_part_form",
    "register_curvature",
    "verify_loss",
]
