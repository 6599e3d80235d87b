"""genmeasures.score: the Python API on in-memory models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import genmeasures
from genmeasures.errors import CheckpointError, DataError, OptionError
from tests.conftest import perturbed, tiny_mlp


def data(n: int = 20, num_classes: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 1, 8, 8, generator=generator),
        torch.randint(0, num_classes, (n,), generator=generator),
    )


def fine_tuned():
    init = tiny_mlp()
    model = tiny_mlp()
    model.load_state_dict(perturbed(init.state_dict(), 0.05, seed=1))
    return model, init


def test_score_returns_tidy_rows_matching_a_hand_computation() -> None:
    model, init = fine_tuned()
    table = genmeasures.score(model, init, None, ["distance_from_init", "layerwise_distance"])
    assert list(table.columns[:5]) == ["measure", "options", "layer", "value", "stderr"]
    whole = table[(table.measure == "distance_from_init") & (table.layer == "")]
    names = ["layers.0.weight", "head.weight"]
    expected = np.sqrt(
        sum(
            float(((model.state_dict()[n].double() - init.state_dict()[n].double()) ** 2).sum())
            for n in names
        )
    )
    assert whole.value.item() == pytest.approx(expected, rel=1e-12)
    layers = table[(table.measure == "layerwise_distance") & (table.layer != "")]
    assert list(layers.layer) == names


def test_init_as_state_dict_and_measures_as_mapping() -> None:
    model, init = fine_tuned()
    a = genmeasures.score(model, init, None, {"distance_from_init": {"norm": "mars"}})
    b = genmeasures.score(model, init.state_dict(), None, ["distance_from_init:norm=mars"])
    assert a.equals(b.assign(seconds=a.seconds))
    assert set(a.options) == {"layers=none,norm=mars"}


def test_data_as_tensors_loader_and_subset(mean_loss_measure: str) -> None:
    model, init = fine_tuned()
    inputs, targets = data(37)
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(model(inputs), targets))
    by_tensors = genmeasures.score(model, init, (inputs, targets), [mean_loss_measure])
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=8)  # short last batch
    by_loader = genmeasures.score(model, init, loader, [mean_loss_measure])
    assert by_tensors.value.item() == pytest.approx(expected, rel=1e-6)
    assert by_loader.value.item() == pytest.approx(expected, rel=1e-6)
    assert by_tensors.n_samples.item() == 37
    subset = genmeasures.score(model, init, (inputs, targets), [mean_loss_measure], n_samples=10)
    assert subset.n_samples.item() == 10
    again = genmeasures.score(model, init, (inputs, targets), [mean_loss_measure], n_samples=10)
    assert again.value.item() == subset.value.item()
    first10 = genmeasures.score(model, init, loader, [mean_loss_measure], n_samples=10)
    with torch.no_grad():
        loss10 = float(torch.nn.functional.cross_entropy(model(inputs[:10]), targets[:10]))
    assert first10.value.item() == pytest.approx(loss10, rel=1e-6)


def test_custom_loss_is_used(mean_loss_measure: str) -> None:
    model, init = fine_tuned()
    inputs, targets = data(12)

    def zero_loss(outputs, targets):
        return torch.zeros(len(targets))

    table = genmeasures.score(model, init, (inputs, targets), [mean_loss_measure], loss=zero_loss)
    assert table.value.item() == 0.0


def test_bad_inputs() -> None:
    model, init = fine_tuned()
    with pytest.raises(OptionError, match="unknown measure 'nope'"):
        genmeasures.score(model, init, None, ["nope"])
    with pytest.raises(OptionError, match="unknown option 'p'"):
        genmeasures.score(model, init, None, {"distance_from_init": {"p": 2}})
    bad = {k: v.clone() for k, v in model.state_dict().items()}
    bad["head.bias"][0] = float("nan")
    model.load_state_dict(bad)
    with pytest.raises(CheckpointError, match=r"tensor 'head.bias' contains NaN"):
        genmeasures.score(model, init, None, ["distance_from_init"])
    other = genmeasures.models.build_model("mlp", {"hidden": [9], "num_classes": 5})
    with pytest.raises(CheckpointError, match=r"'layers.0.weight' has shape"):
        genmeasures.score(other, init, None, ["distance_from_init"])
    with pytest.raises(OptionError, match="no CUDA device"):
        if torch.cuda.is_available():
            raise OptionError("no CUDA device (skipped: a GPU is present)")
        genmeasures.score(model, init, None, ["distance_from_init"], device="cuda")


def test_bad_data(mean_loss_measure: str) -> None:
    model, init = fine_tuned()
    empty = (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        genmeasures.score(model, init, empty, [mean_loss_measure])
    inputs, targets = data(10)
    targets[3] = 7
    with pytest.raises(DataError, match=r"label 7 is outside the model's 5 classes \(0..4\)"):
        genmeasures.score(model, init, (inputs, targets), [mean_loss_measure])
    with pytest.raises(DataError, match="10 inputs but 9 targets"):
        genmeasures.score(model, init, (inputs, targets[:9]), [mean_loss_measure])
    with pytest.raises(OptionError, match="evaluation sample: n_samples must be > 0, got 0"):
        genmeasures.score(model, init, data(10), [mean_loss_measure], n_samples=0)
