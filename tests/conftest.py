"""Shared fixtures: the case table, tiny models, run directories written without training,
an isolated cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from genmeasures.checkpoints import CheckpointMeta, ModelSpec, RunWriter
from genmeasures.errors import DEBUG_ENV
from genmeasures.measures import MEASURES, MeasureContext, MeasureResult, register_measure
from genmeasures.models import build_model
from tests.cases import CASES, Case, case_param

TINY_MLP = ModelSpec("mlp", {"in_features": 64, "hidden": [8], "num_classes": 5})


@pytest.fixture(autouse=True, scope="session")
def suite_environment():
    """In the toolkit's own tests an unexpected exception is a bug: let it propagate with its
    traceback instead of becoming a one-line failure (see genmeasures.errors.is_bad_input)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DEBUG_ENV, "1")
        # The command-line tests' own processes use one thread too: two on two cores beside
        # anything else busy spin-wait (measured: a 13 s score took over 4 minutes).
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The suite's models are tiny: one thread avoids thread overhead and contention on CI's
    two cores (measured: small steps ran 10-50x slower with 2 threads on a loaded box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[case_param(case) for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    """Every case of the table (tests/cases.py): model x loss x batch layout x dtype x device;
    the CUDA ones are marked ``gpu`` and skipped, with the reason, without a GPU."""
    return request.param


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never read or write the user's real cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GENMEASURES_CACHE_DIR", str(cache))
    return cache


def tiny_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(TINY_MLP.name, dict(TINY_MLP.kwargs))


def perturbed(state: dict[str, torch.Tensor], scale: float, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: t + scale * torch.randn(t.shape, generator=generator) if t.is_floating_point() else t
        for name, t in state.items()
    }


def write_run(root: Path, n_epochs: int = 3, data: str | None = None, seed: int = 0) -> Path:
    """A run directory: init at epoch 0 and ``n_epochs`` checkpoints moving away from it
    (runs with different ``seed`` move differently)."""
    init = tiny_mlp().state_dict()
    writer = RunWriter(root)
    writer.write_info({"model": TINY_MLP.to_json()})
    config = {"algorithm": "erm", "optim": {"lr": 0.1}}
    for epoch in range(n_epochs + 1):
        state = init if epoch == 0 else perturbed(init, 0.01 * epoch, seed=epoch + 1000 * seed)
        metrics = {
            "train_loss": 1.0 / (epoch + 1),
            "test_loss": 1.2,
            "train_acc": 0.5 + 0.1 * epoch,
            "test_acc": 0.5,
        }
        meta = CheckpointMeta(
            model=TINY_MLP,
            epoch=epoch,
            tag="init" if epoch == 0 else "epoch",
            metrics=metrics,
            n_train=100,
            data=data,
            config=config,
        )
        writer.save(state, meta)
        writer.log_metrics({"epoch": epoch, **metrics})
    return root


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


@pytest.fixture
def counting_measure() -> Iterator[Callable[[], int]]:
    """A registered measure ``counted`` that counts its calls; yields a call-count getter."""
    calls = {"n": 0}

    @register_measure("counted", summary="test: counts calls", needs=("init",))
    def counted(ctx: MeasureContext, *, scale: float = 1.0) -> MeasureResult:
        calls["n"] += 1
        return MeasureResult(value=scale * len(ctx.weights))

    yield lambda: calls["n"]
    MEASURES.remove("counted")


@pytest.fixture
def mean_loss_measure() -> Iterator[str]:
    """A registered test measure that needs data and a model: the mean loss on S."""

    @register_measure("test_mean_loss", summary="test: mean loss", needs=("data", "model"))
    def test_mean_loss(ctx: MeasureContext) -> MeasureResult:
        model = ctx.model.eval()
        total = 0.0
        with torch.no_grad():
            for inputs, targets in ctx.data.batches(ctx.device):
                total += float(ctx.loss(model(inputs), targets).sum())
        return MeasureResult(value=total / len(ctx.data))

    yield "test_mean_loss"
    MEASURES.remove("test_mean_loss")
