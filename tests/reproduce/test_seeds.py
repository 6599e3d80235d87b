"""Fresh seeds (issue 15): a study's seed draws its own noisy labels, and ``reproduce`` reruns
a figure with its seeds shifted (``seed_offset``) or replaced (``seeds``), naming them in
the figure's ``claim.txt``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import genmeasures.reproduce.figures as figures_module
from genmeasures._registry import Registry
from genmeasures.checkpoints.run import LABELS_FILE
from genmeasures.errors import OptionError
from genmeasures.plots import PlotResult
from genmeasures.reproduce import Claim, FigureSpec, Study, StudyGroup, register_figure, reproduce
from genmeasures.reproduce.figures import describe_seeds, experiment_seeds, with_seeds
from genmeasures.reproduce.study import STUDY_SEED_KEYS, FigureData
from genmeasures.sweeps import expand, load_sweep
from genmeasures.sweeps.grid import SWEEP_SEED_KEYS, config_seed_keys
from tests.reproduce.test_study import TINY

BASE = {"data": {"noise": "symmetric", "noise_rate": 0.5}, "train": {"epochs": 1}}
GRID = {"algorithm": [{"name": "erm"}, {"name": "constraint", "distance": 0.1}]}


def test_a_sweep_seed_keeps_the_noisy_labels_a_study_seed_draws_its_own() -> None:
    sweep = expand(BASE, GRID, (0, 3))
    assert [p.config.data.noise_seed for p in sweep] == [0, 0, 0, 0]
    assert [p.config.train.seed for p in sweep] == [0, 3, 0, 3]
    study = expand(BASE, GRID, (0, 3), seed_keys=STUDY_SEED_KEYS)
    for point in study:
        seed = point.values["seed"]
        assert point.config.data.noise_seed == seed
        assert point.config.train.seed == point.config.model.seed == seed
    assert [p.name for p in study] == [p.name for p in sweep]  # names carry the seed alone
    assert SWEEP_SEED_KEYS == ("train.seed", "model.seed")
    assert Study("s", None, {}, {}).seed_keys == STUDY_SEED_KEYS
    assert set(STUDY_SEED_KEYS) <= set(config_seed_keys())


def test_a_sweep_config_still_leaves_its_noise_seed_alone(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[sweep]\nseeds = [1, 2]\n[data]\nnoise = "symmetric"\nnoise_rate = 0.5\n'
        'noise_seed = 7\n[grid]\n"train.lr" = [0.1]\n'
    )
    _, points = load_sweep(config)
    assert [p.config.data.noise_seed for p in points] == [7, 7]
    assert [p.config.train.seed for p in points] == [1, 2]


@pytest.mark.parametrize(
    ("seed_keys", "message"),
    [
        (("train.epochs",), "'train.epochs' is not a seed key of the config; valid: "),
        (("data.noise",), "'data.noise' is not a seed key"),
        (("nowhere.seed",), "'nowhere.seed' is not a seed key"),
        ((), "must be distinct and non-empty"),
        (("train.seed", "train.seed"), "must be distinct and non-empty"),
        ("train.seed", "must be a list of dotted config keys"),
    ],
)
def test_bad_seed_keys_are_one_line_errors(seed_keys, message: str) -> None:
    with pytest.raises(OptionError, match=message) as raised:
        expand(BASE, GRID, (0,), seed_keys=seed_keys)
    assert "\n" not in str(raised.value)


def test_a_grid_key_that_every_seed_sets_is_an_error() -> None:
    grid = {"data.noise_seed": [1, 2]}
    assert len(expand(BASE, grid, (0,))) == 2  # a sweep may vary it: its seeds do not set it
    with pytest.raises(OptionError, match=r"grid key 'data\.noise_seed' is set by every seed"):
        expand(BASE, grid, (0,), seed_keys=STUDY_SEED_KEYS)


# A figure of this file: a tiny noisy study (pretraining included), drawn as a table.
NOISY = replace(
    TINY,
    name="seeded",
    base={**TINY.base, "train": {"epochs": 1, "batch_size": 8, "lr": 0.05}},
    grid={"algorithm": GRID["algorithm"], "data.noise_rate": [0.5]},
    seeds=(0, 1),
    measures=("distance_from_init",),
    score_samples=10,
    report=False,
)


def _draw(data: FigureData, stem: Path) -> PlotResult:
    for suffix in (".png", ".pdf"):
        stem.with_suffix(suffix).write_bytes(b"not an image")
    table = data.metrics.groupby(["method", "seed"], as_index=False).test_acc.mean()
    return PlotResult(stem.with_suffix(".png"), stem.with_suffix(".pdf"), table)


def _seeded_spec(**studies) -> FigureSpec:
    return FigureSpec(
        id="seeded",
        paper="a test",
        claim="the seeds are fresh",
        studies=studies,
        draw=_draw,
        check=lambda table: Claim(True, f"{len(table)} rows"),
    )


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch):
    """No installed figures: only those a test registers."""
    monkeypatch.setattr(figures_module, "FIGURES", Registry("figure"))
    monkeypatch.setattr(figures_module, "_SOURCES", {})
    monkeypatch.setattr(figures_module, "_installed_loaded", True)


def _initial_labels(run: Path) -> torch.Tensor:
    return load_file(run / LABELS_FILE)["initial"]


def test_a_seed_offset_gives_fresh_noisy_labels_beside_the_default_runs(
    figures, tmp_path: Path
) -> None:
    register_figure(_seeded_spec(tiny=lambda: NOISY))
    out, runs = tmp_path / "figures", tmp_path / "runs"
    default = reproduce("seeded", "tiny", out, runs=runs, jobs=1, progress=False)
    assert default.seeds == (0, 1)
    assert (out / "seeded.claim.txt").read_text().splitlines()[2] == "seeds: 0, 1"
    source = runs / "seeded" / "tiny" / "pretrained.safetensors"
    weights = load_file(source)
    trained = source.with_name("pretrained.run") / "checkpoints" / "last.safetensors"
    pretrained = trained.stat().st_mtime_ns

    shifted = reproduce("seeded", "tiny", out, runs=runs, jobs=1, progress=False, seed_offset=5)
    assert shifted.seeds == (5, 6) and shifted.claim == Claim(True, "4 rows")
    assert (out / "seeded.claim.txt").read_text().splitlines()[2] == "seeds: 5, 6"
    assert set(pd.read_csv(out / "seeded.csv").seed) == {5, 6}  # the figure drew only those
    assert trained.stat().st_mtime_ns == pretrained  # the source model was not trained again
    assert all(torch.equal(w, load_file(source)[k]) for k, w in weights.items())
    folder = runs / "seeded" / "tiny" / "runs"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        f"{method}_noise_rate=0.5_seed{seed}"
        for method in ("erm", "constraint_distance=0.1")
        for seed in (0, 1, 5, 6)
    )
    labels = {name: _initial_labels(folder / name) for name in names}
    config = json.loads((folder / "erm_noise_rate=0.5_seed5" / "run.json").read_text())["config"]
    assert config["data"]["noise_seed"] == config["train"]["seed"] == config["model"]["seed"] == 5
    for seed in (0, 1, 5, 6):  # paired: every method of a seed trains on the same labels
        erm, constraint = (
            labels[f"{m}_noise_rate=0.5_seed{seed}"] for m in ("erm", "constraint_distance=0.1")
        )
        assert torch.equal(erm, constraint)
    erm = [labels[f"erm_noise_rate=0.5_seed{seed}"] for seed in (0, 1, 5, 6)]
    for i, first in enumerate(erm):  # and each seed draws labels of its own
        for second in erm[i + 1 :]:
            assert not torch.equal(first, second)


def test_seeds_replace_those_of_each_part_and_leave_pretraining_alone() -> None:
    group = StudyGroup("g", {"a": TINY, "b": replace(TINY, seeds=(0, 1, 2))})
    shifted = with_seeds(group, lambda seeds: tuple(s + 10 for s in seeds))
    assert [p.seeds for p in shifted.parts.values()] == [(10,), (10, 11, 12)]
    assert all(p.pretrain == TINY.pretrain for p in shifted.parts.values())
    assert experiment_seeds(shifted) == {"a": (10,), "b": (10, 11, 12)}
    assert describe_seeds(experiment_seeds(shifted)) == "a 10; b 10, 11, 12"
    same = with_seeds(group, lambda seeds: (4, 5))
    assert experiment_seeds(same) == (4, 5) and describe_seeds((4, 5)) == "4, 5"
    assert experiment_seeds(group) == {"a": (0,), "b": (0, 1, 2)}  # the group is unchanged
    assert with_seeds(_NoSeeds(), lambda seeds: seeds) is None
    assert experiment_seeds(_NoSeeds()) is None


class _NoSeeds:
    """An experiment that takes no seeds."""

    workdir = None

    def run(self, out, *, jobs=2, progress=True) -> FigureData:
        metrics = pd.DataFrame({"method": ["erm"], "seed": [0], "test_acc": [0.5]})
        return FigureData(Path(out), pd.DataFrame(), pd.DataFrame(), metrics)


def test_an_experiment_without_seeds_says_the_offset_was_ignored(
    figures, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_figure(_seeded_spec(tiny=_NoSeeds))
    result = reproduce("seeded", "tiny", tmp_path, runs=tmp_path / "runs", seed_offset=3)
    assert result.seeds is None
    lines = (tmp_path / "seeded.claim.txt").read_text().splitlines()
    assert lines[2] == (
        "seeds: none (this figure's experiment takes no seeds); the seed change was ignored"
    )
    assert "its experiment takes no seeds; the seed change is ignored" in capsys.readouterr().err
    reproduce("seeded", "tiny", tmp_path, runs=tmp_path / "runs", progress=False)
    lines = (tmp_path / "seeded.claim.txt").read_text().splitlines()
    assert lines[2] == "seeds: none (this figure's experiment takes no seeds)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed_offset": -1}, r"seed_offset must be an integer >= 0, got -1"),
        ({"seed_offset": 1.5}, r"seed_offset must be an integer >= 0, got 1.5"),
        ({"seed_offset": True}, r"seed_offset must be an integer >= 0, got True"),
        ({"seeds": (1, 1)}, r"seeds must be distinct, got 1 twice"),
        ({"seeds": ()}, r"seeds must name at least one seed"),
        ({"seeds": ("1",)}, r"seeds must be integers >= 0, got '1'"),
        ({"seeds": (-2,)}, r"seeds must be integers >= 0, got -2"),
        ({"seeds": "5,6"}, r"seeds must be a list of integers"),
        ({"seeds": (5,), "seed_offset": 1}, r"give seeds or a seed_offset, not both"),
        ({"seeds": (2**32,)}, r"seeds must be at most 4294967295, got 4294967296"),
        ({"seed_offset": 2**32 - 1}, r"seeds must be at most 4294967295, got 4294967296"),
    ],
)
def test_bad_seeds_are_refused_before_anything_runs(
    figures, tmp_path: Path, change: dict, message: str
) -> None:
    register_figure(_seeded_spec(tiny=lambda: replace(NOISY, seeds=(0, 1))))
    with pytest.raises(OptionError, match=message) as raised:
        reproduce("seeded", "tiny", tmp_path / "figures", runs=tmp_path / "runs", **change)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "figures").exists()


def test_a_papers_figure_reruns_with_other_seeds(tmp_path: Path) -> None:
    """matrix sensing is no Study: its seeds (the problem, the init, the optimizers' noise)
    are replaced all the same, and its claim.txt names them."""
    result = reproduce(
        "matrix-sensing",
        "tiny",
        tmp_path / "figures",
        runs=tmp_path / "runs",
        jobs=1,
        progress=False,
        seeds=(7,),
    )
    assert result.seeds == (7,)
    claim = (tmp_path / "figures" / "matrix-sensing.claim.txt").read_text().splitlines()
    assert claim[2] == "seeds: 7"
    folder = tmp_path / "runs" / "matrix-sensing" / "tiny" / "runs"
    runs = sorted(p.name for p in folder.iterdir())
    assert runs and all(name.endswith("-seed7") for name in runs)
