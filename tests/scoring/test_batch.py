"""score_checkpoints: run directories, files, the cache, and failures that do not stop a batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genmeasures.checkpoints import CheckpointMeta, ModelSpec, load_checkpoint, save_checkpoint
from genmeasures.errors import CheckpointError, OptionError
from genmeasures.measures import MEASURES, MeasureContext, MeasureResult, register_measure
from genmeasures.scoring import score_checkpoints
from tests.conftest import TINY_MLP, write_run


def test_run_directory_gets_metrics_gap_and_hyperparameters(run_dir: Path) -> None:
    report = score_checkpoints(
        [run_dir], measures=["distance_from_init", "layerwise_distance"], progress=False
    )
    assert report.ok and report.computed == 6 and report.cached == 0
    table = report.table
    whole = table[(table.measure == "distance_from_init") & (table.layer == "")]
    assert list(whole.epoch) == [1, 2, 3]
    assert list(whole.train_loss) == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert list(whole.gap_loss) == pytest.approx([1.2 - 1 / 2, 1.2 - 1 / 3, 1.2 - 1 / 4])
    assert list(whole.gap_acc) == pytest.approx([0.1, 0.2, 0.3])
    assert set(whole.algorithm) == {"erm"} and set(whole["optim.lr"]) == {0.1}
    assert set(whole.run) == {str(run_dir)}
    assert whole.value.is_monotonic_increasing  # checkpoints move further each epoch
    init = load_checkpoint(run_dir / "checkpoints" / "epoch_0000.safetensors").state
    last = load_checkpoint(run_dir / "checkpoints" / "epoch_0003.safetensors").state
    expected = np.sqrt(
        sum(
            float(((last[n].double() - init[n].double()) ** 2).sum())
            for n in ("layers.0.weight", "head.weight")
        )
    )
    assert whole.value.iloc[-1] == pytest.approx(expected, rel=1e-12)


def test_files_with_explicit_init_and_with_init_beside(tmp_path: Path, run_dir: Path) -> None:
    ckpt = run_dir / "checkpoints" / "epoch_0002.safetensors"
    init = run_dir / "checkpoints" / "epoch_0000.safetensors"
    a = score_checkpoints([ckpt], init=init, measures=["distance_from_init"], progress=False)
    b = score_checkpoints([ckpt], measures=["distance_from_init"], progress=False)
    assert a.ok and b.ok and a.table.value.tolist() == b.table.value.tolist()
    lone = tmp_path / "lone.safetensors"
    save_checkpoint(lone, load_checkpoint(ckpt).state, CheckpointMeta())
    report = score_checkpoints([lone], measures=["distance_from_init"], progress=False)
    assert [str(f) for f in report.failures] == [f"{lone}: no init found for {lone}; pass --init"]


def test_second_run_computes_nothing(run_dir: Path, counting_measure) -> None:
    first = score_checkpoints([run_dir], measures=["counted"], progress=False)
    assert counting_measure() == 3 and first.computed == 3
    second = score_checkpoints([run_dir], measures=["counted"], progress=False)
    assert counting_measure() == 3 and second.cached == 3 and second.computed == 0
    assert second.table.drop(columns="seconds").equals(first.table.drop(columns="seconds"))
    changed = score_checkpoints([run_dir], measures=["counted:scale=2"], progress=False)
    assert counting_measure() == 6 and changed.computed == 3
    # The seed and the data do not enter the key of a deterministic weight-only measure.
    score_checkpoints([run_dir], measures=["counted"], seed=5, progress=False)
    assert counting_measure() == 6
    score_checkpoints([run_dir], measures=["counted"], use_cache=False, progress=False)
    assert counting_measure() == 9


def test_only_cached_computes_nothing_and_counts_what_is_left(
    run_dir: Path, counting_measure
) -> None:
    empty = score_checkpoints([run_dir], measures=["counted"], only_cached=True, progress=False)
    assert counting_measure() == 0 and empty.pending == 3 and len(empty.table) == 0
    full = score_checkpoints([run_dir], measures=["counted"], progress=False)
    probe = score_checkpoints([run_dir], measures=["counted"], only_cached=True, progress=False)
    assert counting_measure() == 3 and probe.pending == 0 and probe.cached == 3
    columns = [c for c in full.table.columns if c != "seconds"]
    assert probe.table[columns].equals(full.table[columns])


def test_changed_checkpoint_is_recomputed(run_dir: Path, counting_measure) -> None:
    score_checkpoints([run_dir], measures=["counted"], progress=False)
    path = run_dir / "checkpoints" / "epoch_0002.safetensors"
    ckpt = load_checkpoint(path)
    save_checkpoint(path, {k: v * 2 for k, v in ckpt.state.items()}, ckpt.meta)
    report = score_checkpoints([run_dir], measures=["counted"], progress=False)
    assert report.computed == 1 and report.cached == 2


def test_interrupted_run_resumes(run_dir: Path) -> None:
    calls: list[int] = []

    @register_measure("flaky", summary="test", needs=("init",))
    def flaky(ctx: MeasureContext) -> MeasureResult:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second checkpoint
        return MeasureResult(value=1.0)

    try:
        with pytest.raises(KeyboardInterrupt):
            score_checkpoints([run_dir], measures=["flaky"], progress=False)
        report = score_checkpoints([run_dir], measures=["flaky"], progress=False)
        assert report.cached == 1 and report.computed == 2 and len(calls) == 4
    finally:
        MEASURES.remove("flaky")


def test_bad_checkpoints_do_not_stop_the_batch(tmp_path: Path, run_dir: Path) -> None:
    folder = run_dir / "checkpoints"
    good = load_checkpoint(folder / "epoch_0001.safetensors")
    nan_state = {k: v.clone() for k, v in good.state.items()}
    nan_state["head.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", nan_state, good.meta)
    shape_state = {**good.state, "head.weight": torch.zeros(4, 8)}
    save_checkpoint(tmp_path / "shape.safetensors", shape_state, good.meta)
    names_state = {k.replace("head", "classifier"): v for k, v in good.state.items()}
    save_checkpoint(tmp_path / "names.safetensors", names_state, good.meta)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((folder / "epoch_0001.safetensors").read_bytes()[:100])
    torch.save({"w": torch.ones(1), "x": _Exploit(tmp_path / "pwned")}, tmp_path / "evil.pt")
    paths = [
        "nan.safetensors",
        "missing.safetensors",
        "shape.safetensors",
        "names.safetensors",
        "cut.safetensors",
        "evil.pt",
    ]
    report = score_checkpoints(
        [folder / "epoch_0001.safetensors", *(tmp_path / p for p in paths)],
        init=folder / "epoch_0000.safetensors",
        measures=["distance_from_init"],
        progress=False,
    )
    assert set(report.table.checkpoint) == {str(folder / "epoch_0001.safetensors")}
    messages = {Path(f.item).name: f.message for f in report.failures}
    assert set(messages) == set(paths)
    assert "tensor 'head.weight' contains NaN" in messages["nan.safetensors"]
    assert "no such checkpoint" in messages["missing.safetensors"]
    assert "'head.weight' has shape (4, 8)" in messages["shape.safetensors"]
    assert (
        "the checkpoint lacks 2 tensor(s): 'head.weight', 'head.bias'"
        in messages["names.safetensors"]
    )
    assert "corrupt or truncated" in messages["cut.safetensors"]
    assert "refusing to load" in messages["evil.pt"]
    assert not (tmp_path / "pwned").exists()
    assert all("\n" not in m for m in messages.values())


def test_bad_init_and_unknown_names_fail_before_any_work(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        score_checkpoints([run_dir], init=tmp_path / "nope.pt", progress=False)
    with pytest.raises(OptionError, match="unknown measure 'hessian'"):
        score_checkpoints([run_dir], measures=["hessian"], progress=False)
    with pytest.raises(OptionError, match="unknown option 'nrom'"):
        score_checkpoints([run_dir], measures=["distance_from_init:nrom=mars"], progress=False)


def test_nan_in_a_runs_init_fails_that_run_only(tmp_path: Path) -> None:
    good = write_run(tmp_path / "good", n_epochs=1)
    bad = write_run(tmp_path / "bad", n_epochs=1)
    init_path = bad / "checkpoints" / "epoch_0000.safetensors"
    init = load_checkpoint(init_path)
    state = {k: v.clone() for k, v in init.state.items()}
    state["layers.0.weight"][0, 0] = float("inf")
    save_checkpoint(init_path, state, init.meta)
    report = score_checkpoints([bad, good], measures=["distance_from_init"], progress=False)
    assert set(report.table.run) == {str(good)}
    assert len(report.failures) == 1 and "contains Inf" in report.failures[0].message


def test_data_measures_use_the_recorded_dataset(tmp_path: Path, mean_loss_measure: str) -> None:
    inputs = np.random.default_rng(0).random((30, 1, 8, 8)).astype("float32")
    labels = np.arange(30) % 5
    np.savez(tmp_path / "target.npz", x=inputs, y=labels)
    run = write_run(tmp_path / "run", n_epochs=2, data=str(tmp_path / "target.npz"))
    report = score_checkpoints([run], measures=[mean_loss_measure], progress=False)
    assert report.ok and list(report.table.n_samples) == [30, 30]
    subset = score_checkpoints([run], measures=[mean_loss_measure], n_samples=7, progress=False)
    assert subset.computed == 2 and list(subset.table.n_samples) == [7, 7]
    labels[4] = 9
    np.savez(tmp_path / "wrong.npz", x=inputs, y=labels, num_classes=10)
    wrong = score_checkpoints(
        [run], data=tmp_path / "wrong.npz", measures=[mean_loss_measure], progress=False
    )
    assert len(wrong.failures) == 2
    assert "label 9 is outside the model's 5 classes" in wrong.failures[0].message


def test_foreign_safetensors_are_put_in_network_order(tmp_path: Path, run_dir: Path) -> None:
    from safetensors.torch import save_file

    folder = run_dir / "checkpoints"
    for name in ("epoch_0000", "epoch_0002"):
        save_file(
            dict(load_checkpoint(folder / f"{name}.safetensors").state),
            tmp_path / f"{name}.safetensors",
        )
    report = score_checkpoints(
        [tmp_path / "epoch_0002.safetensors"],
        init=tmp_path / "epoch_0000.safetensors",
        measures=["layerwise_distance"],
        model=TINY_MLP,
        progress=False,
    )
    layers = report.table[report.table.layer != ""].layer.unique().tolist()
    assert layers == ["layers.0.weight", "head.weight"]


def test_unknown_model_is_reported(run_dir: Path, mean_loss_measure: str, tmp_path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 64), "float32"), y=np.zeros(4, "int64"))
    report = score_checkpoints(
        [run_dir],
        data=tmp_path / "d.npz",
        measures=[mean_loss_measure],
        model=ModelSpec("resnet7"),
        progress=False,
    )
    assert len(report.failures) == 3 and "unknown model 'resnet7'" in report.failures[0].message


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_default_measures_are_those_whose_inputs_exist(run_dir: Path) -> None:
    weight_only = {"distance_from_init", "layerwise_distance", "distance_bound"}
    report = score_checkpoints([run_dir], progress=False)
    assert report.ok and set(report.table.measure.str.split(".").str[0]) == weight_only
    # The rest are listed as skipped, with what they lack (the run records no dataset).
    assert ("hessian_trace", "evaluation data (--data)") in report.skipped
    assert any("noise_stability skipped on 3 checkpoint(s)" in n for n in report.notes())


def test_default_measures_use_the_dataset_a_run_records(tmp_path: Path) -> None:
    """`score RUN` without --data scores the data measures on the run's own dataset."""
    run = write_run(tmp_path / "run", n_epochs=1, data="digits-target:split=train")
    report = score_checkpoints([run], n_samples=16, progress=False)
    assert report.ok, report.failures
    measures = set(report.table.measure.str.split(".").str[0])
    assert {"noise_stability", "hessian_trace", "hessian_distance"} <= measures
    assert not report.skipped


def test_a_recorded_metric_named_like_a_result_column_keeps_its_value(tmp_path: Path) -> None:
    """The epoch's training time ('seconds' in metrics.csv) is not overwritten by the
    measure's own 'seconds' column."""
    root = tmp_path / "run"
    write_run(root, n_epochs=1)
    sidecar = root / "checkpoints" / "epoch_0001.json"
    import json

    obj = json.loads(sidecar.read_text())
    obj["metrics"]["seconds"] = 123.5
    sidecar.write_text(json.dumps(obj))
    table = score_checkpoints([root], measures=["distance_from_init"], progress=False).table
    assert set(table["recorded_seconds"]) == {123.5}
    assert (table["seconds"] != 123.5).all()


@pytest.mark.parametrize(
    "error",
    [RuntimeError("shapes cannot be multiplied"), TypeError("bad operand"), MemoryError()],
)
def test_any_exception_costs_only_its_checkpoint(
    tmp_path: Path, error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the toolkit's own tests (no GENMEASURES_DEBUG) any exception while scoring
    one checkpoint is a one-line failure naming its type, and the others are scored."""
    from genmeasures.errors import DEBUG_ENV

    monkeypatch.delenv(DEBUG_ENV)
    root = write_run(tmp_path / "run", n_epochs=3)

    @register_measure("fragile", summary="test: fails on epoch 2", needs=("init",))
    def fragile(ctx: MeasureContext) -> MeasureResult:
        if ctx.source.endswith("epoch_0002.safetensors"):
            raise error
        return MeasureResult(value=1.0)

    try:
        report = score_checkpoints([root], measures=["fragile"], progress=False)
    finally:
        MEASURES.remove("fragile")
    assert sorted(report.table.epoch) == [1, 3]
    (failure,) = report.failures
    assert failure.item.endswith("epoch_0002.safetensors [fragile]")
    assert failure.message.startswith(type(error).__name__) and "\n" not in failure.message


def test_bugs_propagate_in_the_toolkits_tests(run_dir: Path) -> None:
    """Under GENMEASURES_DEBUG (set for this suite) an unexpected exception is a bug to see."""

    @register_measure("buggy", summary="test", needs=("init",))
    def buggy(ctx: MeasureContext) -> MeasureResult:
        raise ZeroDivisionError("a bug")

    try:
        with pytest.raises(ZeroDivisionError):
            score_checkpoints([run_dir], measures=["buggy"], progress=False)
    finally:
        MEASURES.remove("buggy")


def test_an_unwritable_cache_is_noted_and_scoring_goes_on(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from genmeasures.scoring.cache import ResultCache

    def read_only(self, key, result) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self.root / key))

    monkeypatch.setattr(ResultCache, "put", read_only)
    report = score_checkpoints([run_dir], measures=["distance_from_init"], progress=False)
    assert report.ok and report.computed == 3
    (note,) = report.notes()
    assert "results are not cached" in note and "Read-only file system" in note


def test_selecting_last_or_best_checkpoint(tmp_path: Path) -> None:
    from genmeasures.checkpoints import RunWriter

    run = write_run(tmp_path / "run", n_epochs=3)
    ckpt = load_checkpoint(run / "checkpoints" / "epoch_0002.safetensors")
    RunWriter(run).save(ckpt.state, CheckpointMeta(epoch=2, tag="best"), name="best")
    for select, epochs in (("all", [1, 2, 3]), ("last", [3]), ("best", [2])):
        report = score_checkpoints(
            [run], measures=["distance_from_init"], select=select, progress=False
        )
        whole = report.table[report.table.layer == ""]
        assert sorted(set(whole.epoch)) == epochs, select
    with pytest.raises(OptionError, match="unknown checkpoint selection 'first'"):
        score_checkpoints([run], measures=["distance_from_init"], select="first", progress=False)


def test_warnings_are_counted_not_repeated(run_dir: Path) -> None:
    import warnings

    @register_measure("warns", summary="test", needs=("init",))
    def warns(ctx: MeasureContext) -> MeasureResult:
        warnings.warn(
            f"budget ran out at {len(ctx.weights) * 0.1:.3f}", RuntimeWarning, stacklevel=1
        )
        return MeasureResult(value=1.0)

    try:
        report = score_checkpoints([run_dir], measures=["warns"], progress=False)
    finally:
        MEASURES.remove("warns")
    assert report.ok and report.notes() == ["warns: 3 time(s): budget ran out at 0.400"]


def _foreign_safetensors(path: Path, state: dict) -> Path:
    """A safetensors file as another tool writes it: no genmeasures order, no sidecar."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_a_foreign_safetensors_file_has_one_order_in_every_process(tmp_path: Path) -> None:
    """safetensors returns tensors in a different order in every process; genmeasures uses
    the header's order (or the model's, when one is known) and says which in the table, and
    the result cache tells the two apart."""
    import json
    import os
    import struct
    import subprocess
    import sys

    from tests.conftest import tiny_mlp

    init = tiny_mlp(0).state_dict()
    # Each tensor moves by a different amount, so the depth slope depends on their order.
    moved = {name: t + 0.1 * (i + 1) for i, (name, t) in enumerate(init.items())}
    init_file = _foreign_safetensors(tmp_path / "init.safetensors", init)
    moved_file = _foreign_safetensors(tmp_path / "moved.safetensors", moved)
    data = moved_file.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header_order = [n for n in json.loads(data[8 : 8 + length]) if n != "__metadata__"]
    assert header_order != list(init)  # (sorted by dtype and name: not the network's order)
    loaded = load_checkpoint(moved_file)
    assert loaded.order == "file" and list(loaded.state) == header_order

    script = (
        "import sys, json\n"
        "from genmeasures.scoring import score_checkpoints\n"
        "r = score_checkpoints([sys.argv[1]], init=sys.argv[2], measures=['layerwise_distance'],"
        " use_cache=False, progress=False)\n"
        "t = r.table[r.table.measure == 'layerwise_distance.depth_slope']\n"
        "print(json.dumps([float(t.value.iloc[0]), t.tensor_order.iloc[0]]))\n"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", script, str(moved_file), str(init_file)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(seen) == 1, seen  # the same number in every process
    (file_slope, where) = json.loads(seen.pop())
    assert where == "file"

    first = score_checkpoints(
        [moved_file], init=init_file, measures=["layerwise_distance"], progress=False
    )
    assert first.computed == 1
    report = score_checkpoints(
        [moved_file],
        init=init_file,
        measures=["layerwise_distance"],
        model=TINY_MLP,
        progress=False,
    )
    rows = report.table[report.table.measure == "layerwise_distance.depth_slope"]
    assert set(rows.tensor_order) == {"model"} and report.computed == 1  # not the cached one
    per_layer = report.table[
        (report.table.measure == "layerwise_distance") & (report.table.layer != "")
    ]
    assert list(per_layer.layer) == ["layers.0.weight", "head.weight"]  # network order
    assert float(rows.value.iloc[0]) == pytest.approx(-file_slope)  # two layers, reversed


def test_a_foreign_torchvision_safetensors_file_is_recognized(tmp_path: Path) -> None:
    """A torchvision ResNet written by another tool: its architecture is recognized from the
    names and shapes, so per-layer results follow the network's order."""
    from genmeasures.models import build_model

    kwargs = {"num_classes": 5, "width_multiplier": 0.0625, "small_input": True}
    torch.manual_seed(0)
    state = build_model("resnet18", kwargs).state_dict()
    path = _foreign_safetensors(tmp_path / "resnet.safetensors", state)
    ckpt = load_checkpoint(path)
    assert ckpt.meta.model == ModelSpec("resnet18", kwargs) and list(ckpt.state) == list(state)


def test_the_default_selection_scores_a_run_whose_dataset_is_gone(tmp_path: Path) -> None:
    """An archived run records a dataset that is not on this machine: the default selection
    skips the data measures with the reason and still scores the weight-space ones."""
    run = write_run(tmp_path / "run", n_epochs=1, data=str(tmp_path / "archived.npz"))
    report = score_checkpoints([run], progress=False)
    assert report.ok, report.failures
    assert set(report.table.measure.str.split(".").str[0]) == {
        "distance_from_init",
        "layerwise_distance",
        "distance_bound",
    }
    assert any("the recorded dataset: no such file" in note for note in report.notes())
    explicit = score_checkpoints([run], measures=["noise_stability"], progress=False)
    assert "no such file" in explicit.failures[0].message  # asked for: a failure


def meta_hostile_factory(**kwargs) -> torch.nn.Module:
    """A user's factory that cannot be built on the meta device (it reads a tensor's value)."""
    from tests.conftest import tiny_mlp

    if torch.zeros(1).item() != 0.0:  # .item() raises on the meta device
        raise AssertionError
    return tiny_mlp()


def test_a_model_that_cannot_be_built_on_the_meta_device_keeps_the_file_order(
    run_dir: Path,
) -> None:
    spec = ModelSpec("tests.scoring.test_batch:meta_hostile_factory")
    report = score_checkpoints(
        [run_dir], measures=["distance_from_init"], model=spec, allow_import=True, progress=False
    )
    assert report.ok, report.failures
    assert set(report.table.tensor_order) == {"recorded"} and len(report.table) == 12
