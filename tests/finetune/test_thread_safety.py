"""Runs sharing a process (thread workers) train exactly as they do alone: a run's random
numbers come from its own generators, never torch's global one (genmeasures.finetune.randomness).
"""

from __future__ import annotations

import copy
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genmeasures._rng import Dropout, SeededGenerators, current_generator, dropout, lend
from genmeasures.checkpoints import load_checkpoint
from genmeasures.finetune import ALGORITHMS, Algorithm, config_from_mapping, finetune
from genmeasures.finetune import run as run_module
from genmeasures.finetune.algorithms.sam import SAM
from genmeasures.finetune.randomness import build_seeded, global_draws, route_dropout
from genmeasures.models import build_model
from tests.cases import CUDA_AVAILABLE
from tests.data.helpers import write_image_folder

DIGITS = {"train": "digits-target:split=train,n_per_class=6", "test": "digits-target:split=test"}


def config(model: str, algorithm: str, seed: int, **kwargs: Any) -> dict:
    return {
        "model": {"name": model, "kwargs": kwargs},
        "data": dict(DIGITS),
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.02, "seed": seed},
        "algorithm": {"name": algorithm},
    }


# Dropout in modules and, in the ViT, in the attention; mixup draws its own noise, SAM makes
# two passes (two dropout masks) a step.
CNN_MIXUP = config("cnn", "mixup", seed=1, width=4, dropout=0.3)
VIT_SAM = config(
    "vit_tiny", "sam", seed=2, hidden_dim=16, mlp_dim=16, dropout=0.2, attention_dropout=0.1
)


def train(raw: dict, out: Path) -> dict[str, torch.Tensor]:
    run = finetune(config_from_mapping(raw), out, progress=False, log=lambda _: None)
    return dict(load_checkpoint(run / "checkpoints" / "last.safetensors").state)


def assert_same_weights(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"weights differ: {different}"


def with_threads(raw: dict, threads: int) -> dict:
    raw = copy.deepcopy(raw)
    raw["train"]["threads"] = threads
    return raw


def test_two_runs_in_two_threads_train_as_they_do_alone(tmp_path: Path) -> None:
    """Also with different thread counts: torch.set_num_threads holds for the calling thread
    (torch's OpenMP backend), so each run keeps its own."""
    configs = {"cnn": with_threads(CNN_MIXUP, 1), "vit": with_threads(VIT_SAM, 2)}
    alone = {name: train(raw, tmp_path / "alone" / name) for name, raw in configs.items()}
    two_threads = train(with_threads(CNN_MIXUP, 2), tmp_path / "cnn_two_threads")
    assert any(not torch.equal(alone["cnn"][k], two_threads[k]) for k in two_threads), (
        "the cnn run should depend on its thread count, or it cannot tell whether it kept it"
    )
    together: dict[str, dict[str, torch.Tensor]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(configs))

    def run(name: str) -> None:
        try:
            start.wait()
            together[name] = train(configs[name], tmp_path / "together" / name)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in configs]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the threads take turns often: their draws interleave
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    for name in configs:
        assert_same_weights(alone[name], together[name])


def test_training_leaves_the_global_generator_alone(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images", {"a": 4, "b": 4, "c": 4})
    from_files = config("cnn", "erm", seed=3, width=4, dropout=0.5, in_channels=3)
    from_files["data"] = {"train": f"image-folder:path={folder},image_size=8", "test": ""}
    noisy = config("cnn", "regsl", seed=4, width=4, dropout=0.2)
    noisy["data"] |= {"noise": "symmetric", "noise_rate": 0.3}
    noisy["algorithm"]["correct_epoch"] = 1
    before = torch.random.get_rng_state()
    for name, raw in {
        "cnn": CNN_MIXUP,
        "vit": VIT_SAM,
        "nso": config("vit_tiny", "nso", seed=5, hidden_dim=16, mlp_dim=16, dropout=0.1),
        "noisy": noisy,
        "files": from_files,  # through a DataLoader, which draws its workers' seed
    }.items():
        train(raw, tmp_path / name)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_what_else_draws_from_the_global_generator_changes_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = train(CNN_MIXUP, tmp_path / "reference")
    original = run_module.train_one_epoch

    def after_a_neighbours_draws(*args, **kwargs):
        torch.manual_seed(12345)  # what another run (or any code) in the process might do
        torch.rand(100)
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_one_epoch", after_a_neighbours_draws)
    assert_same_weights(reference, train(CNN_MIXUP, tmp_path / "disturbed"))


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA GPU (none found)"),
            ],
        ),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lent_dropout_draws_what_torch_dropout_draws_after_seeding(
    device: str, dtype: torch.dtype
) -> None:
    """The mask, output, gradient and strides of torch's dropout after torch.manual_seed(s),
    from a generator seeded with s: so runs that moved off the global generator kept their
    numbers."""
    x0 = torch.randn(4, 3, 5, 6, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    weights = torch.arange(x0.numel(), dtype=dtype, device=device).reshape(x0.shape)

    def masks(drop) -> list[tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]]:
        out = []
        for layout in (torch.contiguous_format, torch.channels_last):
            for inplace in (False, True):
                x = x0.clone(memory_format=layout).requires_grad_()
                y = drop(drop(x * 1.0, 0.3, True, inplace), 0.45, True, False)
                (y * weights).sum().backward()
                assert x.grad is not None
                out.append((y.detach(), x.grad, y.stride()))
        return out

    torch.manual_seed(7)
    expected = masks(F.dropout)
    before = torch.random.get_rng_state()
    with lend(SeededGenerators(7)):
        got = masks(dropout)
    assert torch.equal(torch.random.get_rng_state(), before)
    for (y, grad, stride), (y_got, grad_got, stride_got) in zip(expected, got, strict=True):
        assert torch.equal(y, y_got) and torch.equal(grad, grad_got) and stride == stride_got
    # Nothing lent (scoring, any other caller): it is torch's dropout, on the global generator.
    torch.manual_seed(7)
    for (y, _, _), (y_unlent, _, _) in zip(expected, masks(dropout), strict=True):
        assert torch.equal(y, y_unlent)


def test_the_lent_generators_are_the_calling_threads_only() -> None:
    seen: list[torch.Generator | None] = []
    with lend(SeededGenerators(0)):
        assert current_generator("cpu") is not None
        thread = threading.Thread(target=lambda: seen.append(current_generator("cpu")))
        thread.start()
        thread.join()
    assert seen == [None] and current_generator("cpu") is None


def test_construction_is_exactly_the_seeded_one_and_restores_the_generator() -> None:
    def build() -> nn.Module:
        return build_model("vit_tiny", {"num_classes": 3, "dropout": 0.1})

    torch.manual_seed(11)
    expected = build().state_dict()
    after_expected = torch.random.get_rng_state()
    torch.manual_seed(99)
    before = torch.random.get_rng_state()
    model = build_seeded(build, 11)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert_same_weights(expected, model.state_dict())
    build_seeded(build, 11, keep_seeded=lambda _: True)  # as `manual_seed; build` leaves it
    assert torch.equal(torch.random.get_rng_state(), after_expected)


def test_routed_dropout_keeps_the_modules_names_and_state_dict() -> None:
    model = build_model("cnn", {"num_classes": 3, "width": 4, "dropout": 0.5}).train()
    plain = copy.deepcopy(model)
    route_dropout(model)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in plain.named_modules()]
    assert list(model.state_dict()) == list(plain.state_dict())
    assert type(model.dropout) is Dropout and isinstance(model.dropout, nn.Dropout)
    # Outside a run it is the model it was, masks from the global generator included.
    x = torch.randn(5, 1, 8, 8)
    torch.manual_seed(0)
    expected = plain(x)
    torch.manual_seed(0)
    assert torch.equal(model(x), expected)


class _UserBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _UserAlgorithm(Algorithm):
    name = "_test_global_draws"

    def prepare_batch(self, inputs: torch.Tensor, targets: torch.Tensor):
        # Noise from the global generator, as a plugin may draw it.
        return inputs + 0.1 * torch.randn(inputs.shape), targets


def test_runs_that_may_draw_from_the_global_generator_are_found() -> None:
    assert global_draws(build_model("cnn", {"dropout": 0.3}), SAM) is None
    vit = build_model("vit_tiny", {"dropout": 0.3, "attention_dropout": 0.3})
    assert global_draws(vit, SAM) is None
    assert global_draws(build_model("resnet18", {"num_classes": 3}), SAM) is None
    assert global_draws(nn.Sequential(nn.Linear(2, 2), nn.Dropout2d(0.0)), SAM) is None
    draws = global_draws(nn.Sequential(nn.Linear(2, 2), nn.Dropout2d(0.5)), SAM)
    assert draws is not None and "module 1 (torch.nn.modules.dropout.Dropout2d)" in draws
    attention = nn.Sequential(nn.MultiheadAttention(4, 2, dropout=0.1))
    assert "MultiheadAttention" in str(global_draws(attention, SAM))
    lstm = nn.Sequential(nn.LSTM(2, 2, num_layers=2, dropout=0.1))
    assert "LSTM" in str(global_draws(lstm, SAM))
    assert "_UserBlock" in str(global_draws(nn.Sequential(_UserBlock()), SAM))
    assert "_UserAlgorithm" in str(global_draws(nn.Linear(2, 2), _UserAlgorithm))


def test_a_run_on_the_global_generator_keeps_the_old_reseeding(tmp_path: Path) -> None:
    """A plugin's draws from the global generator stay reproducible (reseeded every epoch, as
    before), and such a run warns when it starts outside the main thread."""
    ALGORITHMS.add(_UserAlgorithm.name, _UserAlgorithm)
    try:
        raw = copy.deepcopy(CNN_MIXUP)
        raw["algorithm"] = {"name": _UserAlgorithm.name}
        first = train(raw, tmp_path / "first")
        torch.rand(10)
        assert_same_weights(first, train(raw, tmp_path / "second"))
        caught: list[Warning] = []

        def in_a_thread() -> None:
            with pytest.warns(RuntimeWarning, match="torch's global generator") as record:
                train(raw, tmp_path / "thread")
            caught.extend(w.message for w in record)

        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        assert caught
    finally:
        ALGORITHMS.remove(_UserAlgorithm.name)
