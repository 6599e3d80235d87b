"""The training loop, config validation, export, resume, freezing, pretraining, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genmeasures.checkpoints import find_run_files, load_checkpoint, read_metrics
from genmeasures.errors import CheckpointError, OptionError
from genmeasures.finetune import config_from_mapping, finetune, load_backbone, load_config
from genmeasures.finetune import run as run_module
from genmeasures.finetune.blocks import parameter_blocks
from genmeasures.models import build_model
from genmeasures.scoring import score_checkpoints

TINY = {
    "model": {"name": "cnn", "kwargs": {"width": 4}},
    "data": {
        "train": "digits-target:split=train,n_per_class=8",
        "val": "digits-target:split=val",
        "test": "digits-target:split=test",
    },
    "train": {"epochs": 3, "batch_size": 8, "lr": 0.05},
}


def tiny(**changes) -> dict:
    raw = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return raw


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return dict(load_checkpoint(run / "checkpoints" / "last.safetensors").state)


def test_run_directory_layout_and_metrics(tmp_path: Path) -> None:
    run = finetune(config_from_mapping(tiny()), tmp_path / "run", progress=False)
    files = find_run_files(run)
    assert files.init.name == "epoch_0000.safetensors"
    assert [p.name for p in files.checkpoints][:3] == [
        "epoch_0001.safetensors",
        "epoch_0002.safetensors",
        "epoch_0003.safetensors",
    ]
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        assert row["gap_loss"] == pytest.approx(row["test_loss"] - row["train_loss"])
        assert row["gap_acc"] == pytest.approx(row["train_acc"] - row["test_acc"])
        assert 0 <= row["val_acc"] <= 1
    info = json.loads((run / "run.json").read_text())
    assert info["complete"] and info["epochs_done"] == 3 and info["n_train"] == 40
    best = load_checkpoint(run / "checkpoints" / "best.safetensors").meta
    assert best.metrics["val_acc"] == max(r["val_acc"] for r in rows[1:])
    report = score_checkpoints([run], measures=["distance_from_init"], progress=False)
    assert report.ok and set(report.table.method) == {"erm"}


def test_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from_mapping(
        tiny(
            train__optimizer="adam",
            train__lr=0.01,
            train__schedule="cosine",
            model__kwargs={"width": 4, "dropout": 0.3},
        )
    )
    reference = finetune(config, tmp_path / "reference", progress=False)
    original = run_module.train_one_epoch
    calls = {"n": 0}

    def crash_in_epoch_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during epoch 3
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_one_epoch", crash_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        finetune(config, tmp_path / "resumed", progress=False)
    # The killed run's directory is readable and scores as it is.
    killed = tmp_path / "resumed"
    assert not json.loads((killed / "run.json").read_text())["complete"]
    assert score_checkpoints([killed], measures=["distance_from_init"], progress=False).ok
    assert [r["epoch"] for r in read_metrics(killed)] == [0, 1, 2]
    monkeypatch.setattr(run_module, "train_one_epoch", original)
    finetune(config, killed, progress=False)
    expected, got = final_weights(reference), final_weights(killed)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert [r["epoch"] for r in read_metrics(killed)] == [0, 1, 2, 3]


def test_finished_run_is_reused_and_other_configs_refused(tmp_path: Path, capsys) -> None:
    run = finetune(config_from_mapping(tiny()), tmp_path / "run", progress=False)
    before = (run / "checkpoints" / "last.safetensors").stat().st_mtime_ns
    finetune(config_from_mapping(tiny()), run, progress=False)
    assert (run / "checkpoints" / "last.safetensors").stat().st_mtime_ns == before
    with pytest.raises(OptionError, match=r"another config \(train.lr differs\)"):
        finetune(config_from_mapping(tiny(train__lr=0.2)), run, progress=False)
    # More epochs continue the same run.
    finetune(config_from_mapping(tiny(train__epochs=4)), run, progress=False)
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1, 2, 3, 4]


def test_training_uses_the_configs_threads_whatever_the_caller_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU thread count changes results in the last bits and training amplifies them;
    a run pins it (train.threads) so that --jobs cannot change its numbers."""
    original = run_module.train_one_epoch
    seen: list[int] = []

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_one_epoch", recording)
    caller = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = finetune(config_from_mapping(tiny()), tmp_path / "two", progress=False)
        assert torch.get_num_threads() == 2  # restored for the caller
        torch.set_num_threads(1)
        one = finetune(config_from_mapping(tiny()), tmp_path / "one", progress=False)
        finetune(config_from_mapping(tiny(train__threads=2)), tmp_path / "t2", progress=False)
    finally:
        torch.set_num_threads(caller)
    assert seen == [1, 1, 1, 1, 1, 1, 2, 2, 2]
    expected, got = final_weights(two), final_weights(one)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    with pytest.raises(OptionError, match=r"config: train\.threads must be >= 0, got -1"):
        config_from_mapping(tiny(train__threads=-1))


def test_a_run_saved_before_a_config_key_existed_is_the_same_run(tmp_path: Path) -> None:
    run = finetune(config_from_mapping(tiny()), tmp_path / "run", progress=False)
    info_file = run / "run.json"
    info = json.loads(info_file.read_text())
    del info["config"]["train"]["threads"]  # as written by an earlier version
    info_file.write_text(json.dumps(info))
    assert run_module.run_is_finished(info, config_from_mapping(tiny()))
    assert not run_module.run_is_finished(info, config_from_mapping(tiny(train__threads=2)))


def test_resuming_a_run_started_by_an_earlier_trainer_warns_and_keeps_its_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = run_module.train_one_epoch
    calls = {"n": 0}

    def crash_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_one_epoch", crash_in_epoch_two)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune(config_from_mapping(tiny()), run, progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["trainer"] == run_module.TRAINER_VERSION
    del info["trainer"]  # as written before the stamp existed: trainer 1
    (run / "run.json").write_text(json.dumps(info))
    monkeypatch.setattr(run_module, "train_one_epoch", original)
    with pytest.warns(RuntimeWarning, match=r"earlier trainer \(version 1, now \d+\)"):
        finetune(config_from_mapping(tiny()), run, progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["complete"] and info["trainer"] == 1  # the mixed run stays marked


def test_label_noise_is_recorded_and_used_for_scoring(tmp_path: Path) -> None:
    config = config_from_mapping(tiny(data__noise="symmetric", data__noise_rate=0.5))
    run = finetune(config, tmp_path / "run", progress=False)
    rows = read_metrics(run)
    assert all("train_acc_clean" in r and "correct_labels" in r for r in rows)
    assert rows[0]["correct_labels"] < 40
    meta = load_checkpoint(run / "checkpoints" / "epoch_0001.safetensors").meta
    assert meta.labels == "train_labels.safetensors#initial"
    from genmeasures.checkpoints.run import read_labels

    noisy, clean = read_labels(run, meta.labels), read_labels(run, "train_labels.safetensors#clean")
    assert int((noisy != clean).sum()) == 40 - rows[0]["correct_labels"]


def test_freezing_keeps_the_first_blocks_fixed(tmp_path: Path) -> None:
    config = config_from_mapping(tiny(train__freeze=1))
    run = finetune(config, tmp_path / "run", progress=False)
    init = load_checkpoint(run / "checkpoints" / "epoch_0000.safetensors").state
    last = final_weights(run)
    model = build_model("cnn", {"width": 4, "num_classes": 5})
    first = parameter_blocks(model, "head")[0]
    assert first == ["features.0.conv.weight", "features.0.bn.weight", "features.0.bn.bias"]
    for name in [*first, "features.0.bn.running_mean", "features.0.bn.running_var"]:
        assert torch.equal(init[name], last[name]), name
    assert not torch.equal(init["features.1.conv.weight"], last["features.1.conv.weight"])
    with pytest.raises(OptionError, match=r"train.freeze=9 but the model has only 2 blocks"):
        finetune(config_from_mapping(tiny(train__freeze=9)), tmp_path / "x", progress=False)


def test_config_validation_names_the_key(tmp_path: Path) -> None:
    cases = [
        ({"train": {"lrr": 0.1}}, "unknown key 'train.lrr'; valid: epochs"),
        ({"train": {"lr": -0.1}}, "config: train.lr must be >= 0, got -0.1"),
        ({"train": {"epochs": 0}}, "config: train.epochs must be > 0, got 0"),
        ({"data": {"batch_size_eval": 0}}, "config: data.batch_size_eval must be > 0, got 0"),
        ({"data": {"workers": -1}}, "config: data.workers must be >= 0, got -1"),
        ({"data": {"noise_rate": 1.0}}, r"data.noise_rate must be in \[0, 1\), got 1.0"),
        ({"data": {"noise": "gaussian"}}, "data.noise must be one of none|symmetric"),
        ({"train": {"epochs": "ten"}}, "train.epochs must be int, got 'ten'"),
        ({"algorithm": {"name": "nope"}}, "unknown algorithm 'nope'; valid: "),
        ({"algorithm": {"name": "erm", "rho": 1}}, "unknown key 'algorithm.rho' for algorithm"),
        ({"optimizer": {}}, "unknown config section 'optimizer'"),
    ]
    for raw, message in cases:
        with pytest.raises(OptionError, match=message) as exc:
            config_from_mapping(raw)
        assert "\n" not in str(exc.value)
    toml = tmp_path / "ft.toml"
    toml.write_text('[train]\nepochs = 2\n[algorithm]\nname = "erm"\n')
    config = load_config(toml, ["train.lr=0.5", "data.noise=pair", "data.noise_rate=0.2"])
    assert config.train.lr == 0.5 and config.train.epochs == 2 and config.data.noise == "pair"
    yaml = tmp_path / "ft.yaml"
    yaml.write_text("train:\n  epochs: 4\n")
    assert load_config(yaml).train.epochs == 4
    with pytest.raises(OptionError, match=r"bad override 'train\.lr'"):
        load_config(toml, ["train.lr"])
    (tmp_path / "bad.toml").write_text("[train\n")
    with pytest.raises(OptionError, match="cannot parse config"):
        load_config(tmp_path / "bad.toml")


def test_torchvision_format_weights_load_into_a_resnet(tmp_path: Path) -> None:
    source = build_model("resnet18", {"num_classes": 1000, "width_multiplier": 0.125})
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")  # as torchvision writes them
    target = build_model("resnet18", {"num_classes": 7, "width_multiplier": 0.125})
    skipped = load_backbone(target, tmp_path / "resnet18.pth")
    assert skipped == ["fc.weight", "fc.bias"]
    for name, tensor in target.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(tensor, source.state_dict()[name]), name
    wrong = build_model("resnet34", {"num_classes": 7, "width_multiplier": 0.125})
    with pytest.raises(CheckpointError, match="do not fit the model: missing"):
        load_backbone(wrong, tmp_path / "resnet18.pth")


def test_pretrain_then_finetune_from_it(tmp_path: Path) -> None:
    from genmeasures.finetune import pretrain

    source = config_from_mapping(
        {
            "model": {"name": "cnn", "kwargs": {"width": 4}},
            "data": {"train": "digits-source:split=train,n_per_class=10", "test": ""},
            "train": {"epochs": 2, "batch_size": 16},
        }
    )
    weights = pretrain(source, tmp_path / "source.safetensors", progress=False)
    assert load_checkpoint(weights).meta.tag == "pretrained"
    config = config_from_mapping(tiny(model__pretrained=str(weights)))
    run = finetune(config, tmp_path / "run", progress=False)
    init = load_checkpoint(run / "checkpoints" / "epoch_0000.safetensors").state
    pretrained = load_checkpoint(weights).state
    assert torch.equal(init["features.1.conv.weight"], pretrained["features.1.conv.weight"])


def test_sweep_expands_runs_skips_and_scores(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from genmeasures.cli import main
    from genmeasures.sweeps import load_sweep

    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f"""
[sweep]
out = "{tmp_path / "runs"}"
seeds = [0, 1]
jobs = 2
measures = ["distance_from_init"]
[model]
name = "cnn"
kwargs = {{width = 4}}
[data]
train = "digits-target:split=train,n_per_class=6"
test = "digits-target:split=test"
[train]
epochs = 1
batch_size = 8
[grid]
algorithm = [{{name = "erm"}}]
"data.noise_rate" = [0.0, 0.3]
"data.noise" = ["symmetric"]
""")
    settings, points = load_sweep(sweep)
    assert len(points) == 4 and settings.jobs == 2
    assert points[0].name == "erm_noise_rate=0_noise=symmetric_seed0"
    result = CliRunner().invoke(main, ["sweep", "--config", str(sweep), "-q"])
    assert result.exit_code == 0, result.output
    assert "4 trained, 0 already finished, 0 failed" in result.stderr
    table = __import__("pandas").read_csv(tmp_path / "runs" / "scores.csv")
    assert set(table["data.noise_rate"]) == {0.0, 0.3} and set(table.seed) == {0, 1}
    again = CliRunner().invoke(main, ["sweep", "--config", str(sweep), "-q", "--no-score"])
    assert "0 trained, 4 already finished" in again.stderr


def test_long_run_names_are_cut_but_keep_their_seed_and_stay_distinct() -> None:
    from genmeasures.sweeps import expand

    regsl = {
        "name": "regsl",
        "distance": 1.0,
        "gamma": 2.0,
        "head_distance": 10.0,
        "correct_epoch": 10,
        "correct_threshold": 0.9,
        "reweight_epoch": 5,
        "temperature": 2.0,
    }
    other = {**regsl, "temperature": 1.5}
    grid = {"algorithm": [regsl, other], "data.noise_rate": [0.2]}
    points = expand({}, grid, (0, 1))
    names = [p.name for p in points]
    assert len(set(names)) == 4
    assert all(len(n) <= 120 for n in names)
    assert [n.rsplit("_", 1)[1] for n in names] == ["seed0", "seed1", "seed0", "seed1"]


def test_an_early_stopped_run_is_finished_and_not_trained_further(tmp_path: Path) -> None:
    from genmeasures.sweeps import expand
    from genmeasures.sweeps.executor import is_finished

    raw = tiny(train__epochs=40, train__early_stopping=1, train__lr=0.5)
    config = config_from_mapping(raw)
    out = tmp_path / "early"
    finetune(config, out, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["stopped_early"] and info["epochs_done"] < 40
    for _ in range(2):
        finetune(config, out, progress=False)
        assert json.loads((out / "run.json").read_text())["epochs_done"] == info["epochs_done"]
    point = expand(raw, {"train.lr": [0.5]}, (0,))[0]
    assert is_finished(out, point)


def test_a_sweep_does_not_reuse_a_finished_run_of_another_config(tmp_path: Path) -> None:
    from genmeasures.sweeps import SweepSettings, expand, run_sweep
    from genmeasures.sweeps.executor import is_finished

    settings = SweepSettings(out=tmp_path / "sweep", seeds=(0,), jobs=1, score=False)
    first = expand(tiny(), {"train.momentum": [0.9]}, (0,))
    assert not run_sweep(first, settings, progress=False).failures
    run_dir = settings.out / first[0].name
    assert is_finished(run_dir, first[0])
    changed = expand(tiny(train__lr=0.01), {"train.momentum": [0.9]}, (0,))
    assert changed[0].name == first[0].name and not is_finished(run_dir, changed[0])
    report = run_sweep(changed, settings, progress=False)
    assert len(report.failures) == 1 and "train.lr differs" in report.failures[0][1]
