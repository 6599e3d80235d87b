"""The NSO paper's controlled experiment: over-parameterized matrix sensing.

Fit ``U`` in R^{d x d} to measurements ``y_k = <A_k, U* U*^T>`` of a rank-r ground truth by
gradient descent (``gd``), weight-perturbed GD (``wp``, one-sided noise) and noise stability
optimization (``nso``, two-sided), and follow the training MSE, the validation MSE on fresh
measurements and the distance to the ground truth epoch by epoch (Zhang, Li & Ju, TMLR 2024).

- :func:`make_problem` -> :class:`SensingProblem`: a problem drawn from a seed, with the loss
  and its gradient in closed form (torch, float32 or float64, CPU or CUDA);
- :data:`OPTIMIZERS`, :func:`make_optimizer` (``'nso:sigma=0.02,k=1'``): the optimizers as
  plug-ins; :func:`train`: one run, resumable;
- :class:`MatrixSensingExperiment`: every (optimizer, seed), in parallel (through
  :func:`genmeasures.parallel.parallel_map`), resumable, as a figure's experiment;
- :mod:`~genmeasures_papers.matrix_sensing.figure`: the figure drawn from it (imported only
  when figures are listed, so worker processes skip the plotting code).
"""

from genmeasures_papers.matrix_sensing.experiment import MatrixSensingExperiment
from genmeasures_papers.matrix_sensing.problem import SensingProblem, make_problem
from genmeasures_papers.matrix_sensing.train import (
    GD,
    NSO,
    OPTIMIZERS,
    Diverged,
    Optimizer,
    TrainSettings,
    TrainState,
    WeightPerturbedGD,
    make_optimizer,
    train,
)

__all__ = [
    "GD",
    "NSO",
    "OPTIMIZERS",
    "Diverged",
    "MatrixSensingExperiment",
    "Optimizer",
    "SensingProblem",
    "TrainSettings",
    "TrainState",
    "WeightPerturbedGD",
    "make_optimizer",
    "make_problem",
    "train",
]
