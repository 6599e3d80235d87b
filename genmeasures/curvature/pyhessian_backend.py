# mypy: disable-error-code="assignment,arg-type"
# (PyHessian's own code, adapted: kept as close to the original as its fixes allow.)
"""PyHessian's own estimators, adapted to run on current torch.

Users who report numbers from PyHessian (Yao et al., 2020; package ``pyhessian`` 0.1) can
reproduce them here with the *same algorithms and stopping rules*:

* top eigenvalues: PyHessian's power iteration with deflation by orthogonalisation, stopped
  when the Rayleigh quotient changes by less than ``tol`` relative to its previous value;
* trace: PyHessian's Hutchinson estimator with Rademacher vectors, stopped when the running
  mean changes by less than ``tol`` relative to the previous running mean;
* Hessian-vector products: PyHessian's code, i.e. with a single batch the gradient graph is
  built once and reused for every product, with several batches ``dataloader_hv_product``
  recomputes each batch's gradient and averages the products weighted by batch size
  (sample-weighted, so a short last batch is not over-weighted).

PyHessian itself no longer runs as-is on current torch, or has side effects genmeasures cannot
accept. :class:`_AdaptedHessian` subclasses ``pyhessian.hessian`` and changes only this:

* random and zero vectors take the parameters' dtype and device (``randn_like``/``zeros_like``)
  instead of float32 tensors drawn on the CPU and moved afterwards (PyHessian then relies on
  autograd silently casting float32 ``grad_outputs`` to a float64 model's dtype, and its
  ``dataloader_hv_product`` promotes a half-precision model's products to float32);
* the device is taken from the model, not from the ``cuda`` flag (whose default, True, crashes
  on a CPU model);
* only the parameters named in ``names`` require grad during the computation, so PyHessian's
  "every parameter that requires grad" is exactly that subset;
* the model's train/eval mode, every parameter's ``requires_grad`` and ``.grad`` are restored
  afterwards (PyHessian leaves the model in eval mode and graph-carrying ``.grad`` fields);
* the ``data != None`` checks and the ``cuda`` flag of the constructor are gone;
* the random vectors are drawn from the global generators seeded with ``seed`` inside
  ``torch.random.fork_rng``, so the caller's RNG state is untouched. For a float32 model on the
  CPU the draws, and so the numbers, are exactly those of ``torch.manual_seed(seed)`` followed
  by plain PyHessian; for other dtypes or devices the power-iteration start vectors are
  different (identically distributed) draws, the Rademacher vectors of the trace are the same
  on the CPU;
* ``density()`` (which calls the removed ``torch.eig``) is not adapted and raises;
* Hessian-vector products are counted (one per ``hessian_vector_product`` or
  ``dataloader_hv_product`` call).

PyHessian's ``criterion`` is a mean-reduction loss; genmeasures' losses are per-sample, so they
are wrapped as ``loss(outputs, targets).mean()``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from pyhessian import hessian as _PyHessian
from pyhessian.utils import (
    get_params_grad,
    group_product,
    hessian_vector_product,
    normalization,
    orthnormal,
)
from torch import nn

from genmeasures.curvature.functional import PerSampleLoss, evaluation_mode
from genmeasures.curvature.lanczos import EigenEstimate
from genmeasures.curvature.trace import TraceEstimate
from genmeasures.errors import MeasureError

Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["pyhessian_eigenvalues", "pyhessian_trace"]


class _AdaptedHessian(_PyHessian):
    """``pyhessian.hessian`` with the fixes listed in the module docstring.

    The caller (:func:`_pyhessian_engine`) sets up eval mode, ``requires_grad`` and ``.grad``;
    this class only replaces the parts of PyHessian's methods that are broken, keeping the
    algorithms line for line.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        batches: Sequence[Batch],
        device: torch.device,
    ) -> None:
        # PyHessian's constructor, without ``model.eval()`` (done reversibly by the caller),
        # the ``data != None`` asserts and the ``cuda`` flag.
        self.model = model
        self.criterion = criterion
        self.device = device
        self.n_matvecs = 0
        if len(batches) == 1:
            self.data = batches[0]
            self.full_dataset = False
            inputs, targets = self.data
            self.inputs, self.targets = inputs.to(device), targets.to(device)
            # Single batch: build the gradient graph once and reuse it for every product.
            outputs = self.model(self.inputs)
            loss = self.criterion(outputs, self.targets)
            loss.backward(create_graph=True)
        else:
            self.data = list(batches)
            self.full_dataset = True
        self.params, self.gradsH = get_params_grad(self.model)

    def release(self) -> None:
        """Drop every reference to the gradient graph."""
        self.gradsH = None
        self.params = None
        self.inputs = self.targets = None

    def single_batch_hv_product(self, v: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """PyHessian's ``hessian_vector_product`` on the stored graph, counted."""
        self.n_matvecs += 1
        return hessian_vector_product(self.gradsH, self.params, v)

    def dataloader_hv_product(self, v: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        """PyHessian's ``dataloader_hv_product``, counted; the accumulator uses ``zeros_like``."""
        self.n_matvecs += 1
        device = self.device
        num_data = 0

        THv = [torch.zeros_like(p) for p in self.params]  # was torch.zeros(p.size()).to(device)
        for inputs, targets in self.data:
            self.model.zero_grad()
            tmp_num_data = inputs.size(0)
            outputs = self.model(inputs.to(device))
            loss = self.criterion(outputs, targets.to(device))
            loss.backward(create_graph=True)
            params, gradsH = get_params_grad(self.model)
            self.model.zero_grad()
            Hv = torch.autograd.grad(
                gradsH, params, grad_outputs=v, only_inputs=True, retain_graph=False
            )
            THv = [
                THv1 + Hv1 * float(tmp_num_data) + 0.0 for THv1, Hv1 in zip(THv, Hv, strict=True)
            ]
            num_data += float(tmp_num_data)

        THv = [THv1 / float(num_data) for THv1 in THv]
        eigenvalue = group_product(THv, v).cpu().item()
        return eigenvalue, THv

    def eigenvalues(
        self, maxIter: int = 100, tol: float = 1e-3, top_n: int = 1
    ) -> tuple[list[float], list[list[torch.Tensor]]]:
        """PyHessian's power iteration; the start vector uses ``randn_like``."""
        assert top_n >= 1

        eigenvalues: list[float] = []
        eigenvectors: list[list[torch.Tensor]] = []

        computed_dim = 0

        while computed_dim < top_n:
            eigenvalue = None
            v = [torch.randn_like(p) for p in self.params]  # was torch.randn(p.size()).to(device)
            v = normalization(v)

            for _ in range(maxIter):
                v = orthnormal(v, eigenvectors)
                self.model.zero_grad()

                if self.full_dataset:
                    tmp_eigenvalue, Hv = self.dataloader_hv_product(v)
                else:
                    Hv = self.single_batch_hv_product(v)
                    tmp_eigenvalue = group_product(Hv, v).cpu().item()

                v = normalization(Hv)

                if eigenvalue is None:
                    eigenvalue = tmp_eigenvalue
                elif abs(eigenvalue - tmp_eigenvalue) / (abs(eigenvalue) + 1e-6) < tol:
                    break
                else:
                    eigenvalue = tmp_eigenvalue
            eigenvalues.append(eigenvalue)
            eigenvectors.append(v)
            computed_dim += 1

        return eigenvalues, eigenvectors

    def trace(self, maxIter: int = 100, tol: float = 1e-3) -> list[float]:
        """PyHessian's Hutchinson estimator, unchanged except for counting the products."""
        device = self.device
        trace_vhv: list[float] = []
        trace = 0.0

        for _ in range(maxIter):
            self.model.zero_grad()
            v = [torch.randint_like(p, high=2, device=device) for p in self.params]
            # generate Rademacher random variables
            for v_i in v:
                v_i[v_i == 0] = -1

            if self.full_dataset:
                _, Hv = self.dataloader_hv_product(v)
            else:
                Hv = self.single_batch_hv_product(v)
            trace_vhv.append(group_product(Hv, v).cpu().item())
            # PyHessian's rule; note the denominator has no abs(): with a negative running
            # mean the ratio is negative and the estimator stops after two samples.
            if abs(np.mean(trace_vhv) - trace) / (trace + 1e-6) < tol:
                return trace_vhv
            trace = np.mean(trace_vhv)

        return trace_vhv

    def density(self, iter: int = 100, n_v: int = 1):
        raise MeasureError(
            "PyHessian's density() calls the removed torch.eig; genmeasures adapts only its "
            "trace() and eigenvalues()"
        )


def _mean_criterion(loss: PerSampleLoss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """PyHessian's criterion (a batch mean) from genmeasures' per-sample loss."""

    def criterion(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        values = loss(outputs, targets)
        if values.ndim != 1:
            raise MeasureError(
                f"the loss must return one value per sample (reduction='none'); got shape "
                f"{tuple(values.shape)}"
            )
        return values.mean()

    return criterion


def _select(model: nn.Module, names: Sequence[str]) -> set[int]:
    """ids of the parameters named in ``names``; MeasureError on an empty or unknown name."""
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise MeasureError("no parameter names given for the PyHessian computation")
    lookup = dict(model.named_parameters(remove_duplicate=False))
    for name in names:
        if name not in lookup:
            raise MeasureError(f"{name!r} is not a parameter of the model")
    return {id(lookup[name]) for name in names}


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the generators PyHessian draws from; restore the caller's state afterwards.

    Only the CPU generator and that of the model's accelerator are forked and seeded (with the
    same seed ``torch.manual_seed`` would use), so no other device's RNG is touched.
    """
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index], device_type="cuda"):
            torch.default_generator.manual_seed(seed)
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(device_type=device.type):
            torch.manual_seed(seed)
            yield


@contextmanager
def _pyhessian_engine(
    model: nn.Module,
    loss: PerSampleLoss,
    batches: Sequence[Batch],
    names: Sequence[str],
    seed: int,
) -> Iterator[_AdaptedHessian]:
    """An :class:`_AdaptedHessian` on the named parameters; all model state restored on exit."""
    batches = list(batches)
    if not batches:
        raise MeasureError("no data batches given for the PyHessian computation")
    selected = _select(model, names)
    params = list(model.parameters())
    device = next(p for p in params if id(p) in selected).device
    saved = [(p, p.requires_grad, p.grad) for p in params]
    engine: _AdaptedHessian | None = None
    with (
        evaluation_mode(model),
        _seeded(seed, device),
        torch.enable_grad(),
        warnings.catch_warnings(),
    ):
        # PyHessian's ``loss.backward(create_graph=True)`` makes torch warn about a reference
        # cycle between each parameter and its ``.grad``; the ``finally`` below breaks it.
        warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
        try:
            for p in params:
                p.grad = None
                p.requires_grad_(id(p) in selected)
            engine = _AdaptedHessian(model, _mean_criterion(loss), batches, device)
            yield engine
        finally:
            if engine is not None:
                engine.release()
            for p, requires_grad, grad in saved:
                p.grad = grad
                p.requires_grad_(requires_grad)


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise MeasureError(f"{key} must be at least 1, got {value}")


def pyhessian_trace(
    model: nn.Module,
    loss: PerSampleLoss,
    batches: Sequence[Batch],
    names: Sequence[str],
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> TraceEstimate:
    """Trace of the Hessian of the mean loss w.r.t. the named parameters, by PyHessian.

    This runs PyHessian's ``hessian.trace``: Hutchinson's estimator with Rademacher vectors,
    at most ``max_iter`` samples, stopped as soon as the running mean changes by less than
    ``tol`` relative to the previous running mean (PyHessian's rule, whose denominator is the
    signed previous mean: a negative trace stops after two samples). With one element in
    ``batches`` PyHessian's single-batch mode is used (``data=``, one gradient graph reused);
    with several, its dataloader mode (``batches`` is the dataloader; products are averaged
    weighted by batch size). See the module docstring for what was adapted to current torch.

    Args:
        model: the network; its mode, ``requires_grad`` flags and ``.grad`` are restored.
        loss: per-sample loss, ``(outputs, targets) -> (B,)``; PyHessian gets its batch mean.
        batches: list of ``(inputs, targets)`` tensors.
        names: parameter names (as in ``model.named_parameters()``) to differentiate w.r.t.
        max_iter, tol: PyHessian's ``maxIter`` and ``tol``.
        seed: seed of the Rademacher draws; the caller's global RNG state is not changed.
    """
    _check_positive(max_iter=max_iter)
    with _pyhessian_engine(model, loss, batches, names, seed) as engine:
        samples = tuple(float(s) for s in engine.trace(maxIter=max_iter, tol=tol))
        n_matvecs = engine.n_matvecs
    n = len(samples)
    stderr = float(np.std(samples, ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    return TraceEstimate(
        value=float(np.mean(samples)),
        stderr=stderr,
        blocks=(),
        block_stderrs=(),
        samples=samples,
        n_matvecs=n_matvecs,
        converged=n < max_iter,
        method="pyhessian",
    )


def pyhessian_eigenvalues(
    model: nn.Module,
    loss: PerSampleLoss,
    batches: Sequence[Batch],
    names: Sequence[str],
    *,
    top_n: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> EigenEstimate:
    """Top eigenvalues of the Hessian of the mean loss w.r.t. the named parameters, by PyHessian.

    This runs PyHessian's ``hessian.eigenvalues``: for each of ``top_n`` eigenvalues, power
    iteration from a Gaussian start vector, orthogonalised against the eigenvectors already
    found, at most ``max_iter`` products, stopped when the Rayleigh quotient changes by less
    than ``tol`` relative to its previous value. Power iteration finds the eigenvalues of
    largest *magnitude*, and a relative-change rule stops it early when convergence is slow, so
    a positive top eigenvalue typically comes out slightly low. The values are returned in
    PyHessian's order, unsorted. Single-batch vs dataloader mode as in :func:`pyhessian_trace`;
    see the module docstring for what was adapted to current torch.

    Args:
        model: the network; its mode, ``requires_grad`` flags and ``.grad`` are restored.
        loss: per-sample loss, ``(outputs, targets) -> (B,)``; PyHessian gets its batch mean.
        batches: list of ``(inputs, targets)`` tensors.
        names: parameter names (as in ``model.named_parameters()``) to differentiate w.r.t.
        top_n, max_iter, tol: PyHessian's ``top_n``, ``maxIter`` and ``tol``.
        seed: seed of the start vectors; the caller's global RNG state is not changed.
    """
    _check_positive(top_n=top_n, max_iter=max_iter)
    with _pyhessian_engine(model, loss, batches, names, seed) as engine:
        values, _ = engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=top_n)
        n_matvecs = engine.n_matvecs
    # PyHessian gives no error bounds; its values stay in its own (unsorted) order.
    return EigenEstimate(
        values=tuple(float(v) for v in values),
        errors=tuple(math.nan for _ in values),
        n_matvecs=n_matvecs,
        converged=n_matvecs < max_iter * top_n,
        value_errors=tuple(math.nan for _ in values),
        method="pyhessian",
    )
