"""The over-parameterized matrix-sensing problem of the NSO paper, in closed form.

Ground truth ``X = U* U*^T`` with ``U*`` in R^{d x r} (i.i.d. N(0, 1) entries); ``m``
symmetric Gaussian measurement matrices ``A_k = (B_k + B_k^T) / 2`` (``B_k`` i.i.d.
N(0, 1)); labels ``y_k = <A_k, X>``; a validation set of fresh measurements drawn the same
way. The model is ``U`` in R^{d x d} (over-parameterized: rank up to d) and the objective

    f(U) = 1 / (4 m) * sum_k (<A_k, U U^T> - y_k)^2,     grad f(U) = (1 / m) sum_k r_k A_k U

with residuals ``r_k = <A_k, U U^T> - y_k`` (the 1/4 makes the gradient the one the authors'
script steps with, so their learning rate 0.0025 means the same here). Reported errors are
relative: ``mse = mean_k r_k^2 / mean_k y_k^2`` on the training or validation measurements,
and ``distance = ||U U^T - X||_F / ||X||_F``.

Since every A_k is symmetric, the measurements are stored as one (m, d(d+1)/2) matrix of
their upper triangles: ``<A_k, S>`` for all k is one matrix-vector product with the packed
(off-diagonal entries doubled) upper triangle of S, and ``sum_k r_k A_k`` is one product with
the transpose, unpacked to a symmetric matrix. Half the memory and time of the dense
(m, d*d) layout, same numbers.

Everything is drawn on the CPU in float64 from one seed (so a problem is the same on every
device and in either precision), then stored in ``dtype`` on ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genmeasures._device import resolve_device
from genmeasures.errors import OptionError

Split = Literal["train", "val"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CHUNK = 128  # measurement matrices drawn per block (bounds the float64 scratch memory)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]  # type: ignore[index]
    raise OptionError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def check_shape(d: int, r: int, m: int | None = None, m_val: int | None = None) -> None:
    """Raise :class:`OptionError` (one line) unless 1 <= r <= d and the counts are positive."""
    for name, value in (("d", d), ("r", r), ("m", m), ("m_val", m_val)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"matrix sensing: {name} must be a positive integer, got {value!r}")
    if r > d:
        raise OptionError(f"matrix sensing: rank r={r} exceeds the dimension d={d}")


@dataclass(frozen=True, eq=False)
class SensingProblem:
    """A generated problem: ground truth, packed measurements and labels, on one device."""

    d: int
    r: int
    seed: int
    u_star: torch.Tensor  # (d, r)
    x: torch.Tensor  # (d, d) = u_star u_star^T
    a_train: torch.Tensor  # (m, d(d+1)/2) packed upper triangles
    y_train: torch.Tensor  # (m,)
    a_val: torch.Tensor  # (m_val, d(d+1)/2)
    y_val: torch.Tensor  # (m_val,)

    @property
    def m(self) -> int:
        return int(self.a_train.shape[0])

    @property
    def m_val(self) -> int:
        return int(self.a_val.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.a_train.dtype

    @property
    def device(self) -> torch.device:
        return self.a_train.device

    # -- the measurement operator -------------------------------------------------------
    def measure(self, s: torch.Tensor, split: Split = "train") -> torch.Tensor:
        """``<A_k, S>`` for every measurement k of ``split`` (S symmetric, d x d)."""
        return torch.mv(self._a(split), pack(s, weighted=True))

    def adjoint(self, coefficients: torch.Tensor, split: Split = "train") -> torch.Tensor:
        """``sum_k c_k A_k`` (d x d, symmetric)."""
        return unpack(torch.mv(self._a(split).T, coefficients), self.d)

    def residual(self, u: torch.Tensor, split: Split = "train") -> torch.Tensor:
        return self.measure(u @ u.T, split) - self._y(split)

    # -- objective and metrics -------------------------------------------------------------
    def loss(self, u: torch.Tensor) -> torch.Tensor:
        """The training objective ``f(U) = sum_k r_k^2 / (4 m)``."""
        r = self.residual(u)
        return r.square().sum() / (4 * self.m)

    def gradient(self, u: torch.Tensor) -> torch.Tensor:
        """``grad f(U) = (1/m) sum_k r_k A_k U``: two passes over the measurements."""
        return self.adjoint(self.residual(u) / self.m) @ u

    def mse(self, u: torch.Tensor, split: Split = "train") -> float:
        """Relative mean squared error ``mean r_k^2 / mean y_k^2`` on ``split``."""
        y = self._y(split)
        return float(self.residual(u, split).square().mean() / y.square().mean())

    def distance(self, u: torch.Tensor) -> float:
        """``||U U^T - X||_F / ||X||_F``."""
        return float(torch.linalg.norm(u @ u.T - self.x) / torch.linalg.norm(self.x))

    def dense_measurements(self, split: Split = "train", index: slice | None = None):
        """The measurement matrices ``A_k`` themselves, (k, d, d) (for checks; memory m d^2)."""
        packed = self._a(split)[index if index is not None else slice(None)]
        return torch.stack([unpack(row, self.d) for row in packed]) if len(packed) else packed

    def _a(self, split: Split) -> torch.Tensor:
        if split == "train":
            return self.a_train
        if split == "val":
            return self.a_val
        raise OptionError(f"split must be 'train' or 'val', got {split!r}")

    def _y(self, split: Split) -> torch.Tensor:
        if split == "val":
            return self.y_val
        self._a(split)  # raises on an unknown split
        return self.y_train


def make_problem(
    d: int = 100,
    r: int = 5,
    *,
    m: int | None = None,
    m_val: int | None = None,
    seed: int = 0,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = "cpu",
) -> SensingProblem:
    """Generate a problem from ``seed``: the same numbers on every call, device and dtype.

    ``m`` defaults to the paper's ``5 d r`` measurements; ``m_val`` (fresh validation
    measurements) to ``m``.
    """
    m = 5 * d * r if m is None and isinstance(d, int) and isinstance(r, int) else m
    m_val = m if m_val is None else m_val
    check_shape(d, r, m, m_val)
    torch_dtype = resolve_dtype(dtype)
    target = resolve_device(device)
    generator = torch.Generator().manual_seed(int(seed))
    u_star = torch.randn(d, r, generator=generator, dtype=torch.float64)
    x = u_star @ u_star.T
    a_train, y_train = _draw_measurements(m, x, generator)
    a_val, y_val = _draw_measurements(m_val, x, generator)

    def put(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=target, dtype=torch_dtype).contiguous()

    return SensingProblem(
        d, r, int(seed), put(u_star), put(x), put(a_train), put(y_train), put(a_val), put(y_val)
    )


def _draw_measurements(
    count: int, x: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` packed symmetric Gaussian matrices (float64) and their labels <A_k, X>."""
    d = x.shape[0]
    rows, cols = _triu(d, torch.device("cpu"))
    packed = torch.empty(count, len(rows), dtype=torch.float64)
    for start in range(0, count, _CHUNK):
        stop = min(count, start + _CHUNK)
        b = torch.randn(stop - start, d, d, generator=generator, dtype=torch.float64)
        packed[start:stop] = (0.5 * (b + b.transpose(1, 2)))[:, rows, cols]
    return packed, torch.mv(packed, pack(x, weighted=True))


_TRIU: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _triu(d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (d, str(device))
    if key not in _TRIU:
        index = torch.triu_indices(d, d, device=device)
        _TRIU[key] = (index[0], index[1])
    return _TRIU[key]


def pack(s: torch.Tensor, *, weighted: bool = False) -> torch.Tensor:
    """The upper triangle of a symmetric matrix, row by row; ``weighted`` doubles the
    off-diagonal entries so that ``pack(A) . pack(S, weighted=True) = <A, S>``."""
    rows, cols = _triu(s.shape[0], s.device)
    packed = s[rows, cols]
    return torch.where(rows == cols, packed, 2 * packed) if weighted else packed


def unpack(packed: torch.Tensor, d: int) -> torch.Tensor:
    """The symmetric d x d matrix whose upper triangle is ``packed``."""
    rows, cols = _triu(d, packed.device)
    s = packed.new_zeros(d, d)
    s[rows, cols] = packed
    s[cols, rows] = packed
    return s
