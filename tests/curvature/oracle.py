"""Exact second-order oracles on tiny float64 models, by torch.func.hessian."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import functional_call, hessian

from genmeasures.curvature.vectors import flatten, unflatten
from genmeasures.measures import cross_entropy_per_sample
from genmeasures.models import build_model


def tanh_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = {"in_features": 4, "hidden": [6], "num_classes": 3, "activation": "tanh"}
    return build_model("mlp", spec).double().eval()


def small_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("cnn", {"in_channels": 1, "num_classes": 3, "width": 3, "depth": 2})
    model = model.double()
    # Give BatchNorm non-trivial running statistics, so eval mode matters.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def data_for(model: torch.nn.Module, n: int = 23, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    shape = (4,) if model.__class__.__name__ == "MLP" or hasattr(model, "layers") else (1, 5, 5)
    inputs = torch.randn(n, *shape, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (n,), generator=generator)
    return inputs, targets


def split(inputs: torch.Tensor, targets: torch.Tensor, size: int):
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, len(targets), size)]


class Oracle:
    """Exact Hessians of the mean loss and of each sample's loss over ``names``."""

    def __init__(
        self, model, names: Sequence[str], inputs, targets, loss=cross_entropy_per_sample
    ) -> None:
        self.loss = loss
        self.model, self.names = model, list(names)
        # Parameters once each (tied weights under their first name), as the library takes them.
        state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        self.state = {k: v.detach() for k, v in state.items()}
        self.like = [self.state[n] for n in self.names]
        self.point = flatten(self.like)
        self.inputs, self.targets = inputs, targets
        self.sizes = [t.numel() for t in self.like]

    def losses(self, flat: torch.Tensor, inputs, targets) -> torch.Tensor:
        params = dict(zip(self.names, unflatten(flat, self.like), strict=True))
        outputs = functional_call(self.model, {**self.state, **params}, (inputs,))
        return self.loss(outputs, targets)

    def hessian(self) -> torch.Tensor:
        return hessian(lambda f: self.losses(f, self.inputs, self.targets).mean())(self.point)

    def sample_hessian(self, j: int) -> torch.Tensor:
        x, y = self.inputs[j : j + 1], self.targets[j : j + 1]
        return hessian(lambda f: self.losses(f, x, y)[0])(self.point)

    def outputs(self, flat: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        params = dict(zip(self.names, unflatten(flat, self.like), strict=True))
        inputs = self.inputs if inputs is None else inputs
        return functional_call(self.model, {**self.state, **params}, (inputs,))

    def ggn(self) -> torch.Tensor:
        """G = (1/m) sum_j J_j^T Lambda_j J_j, from the full Jacobian and each sample's
        Hessian of the loss in the outputs (both by torch.func)."""
        loss = self.loss
        jacobian = torch.func.jacrev(self.outputs)(self.point)  # (m, K, P)
        logits = self.outputs(self.point)
        lam = torch.stack(
            [
                hessian(lambda f, j=j: loss(f[None], self.targets[j : j + 1])[0])(logits[j])
                for j in range(len(self.targets))
            ]
        )
        return torch.einsum("nkp,nkl,nlq->pq", jacobian, lam, jacobian) / len(self.targets)

    def block(self, matrix: torch.Tensor, i: int) -> torch.Tensor:
        start = sum(self.sizes[:i])
        return matrix[start : start + self.sizes[i], start : start + self.sizes[i]]

    def flat(self, vector: Sequence[torch.Tensor]) -> torch.Tensor:
        return flatten(vector)

    def unflat(self, flat: torch.Tensor):
        return unflatten(flat, self.like)


def positive_part(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0)) @ vectors.T


class MatrixOperator:
    """A dense symmetric matrix as a curvature operator over one flat parameter."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.params = (torch.zeros(matrix.shape[0], dtype=matrix.dtype),)
        self.n_matvecs = 0

    def matmat(self, vectors):
        self.n_matvecs += len(vectors)
        return [(self.matrix @ v[0],) for v in vectors]
