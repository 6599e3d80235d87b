"""find_checkpoints: run directories, folders and files to score, and the paths unusable."""

from __future__ import annotations

from pathlib import Path

from genmeasures.checkpoints import (
    CheckpointMeta,
    FoundCheckpoint,
    find_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from genmeasures.errors import CheckpointError
from tests.conftest import write_run


def test_a_run_directory_gives_its_checkpoints_with_its_init(run_dir: Path) -> None:
    folder = run_dir / "checkpoints"
    init = folder / "epoch_0000.safetensors"
    found, unusable = find_checkpoints([run_dir])
    assert unusable == []
    assert found == [
        FoundCheckpoint(folder / f"epoch_000{epoch}.safetensors", init, run_dir)
        for epoch in (1, 2, 3)
    ]
    last, _ = find_checkpoints([run_dir], select="last")
    assert [item.checkpoint.name for item in last] == ["epoch_0003.safetensors"]
    best, _ = find_checkpoints([run_dir], select="best")  # no best kept: the last
    assert [item.checkpoint.name for item in best] == ["epoch_0003.safetensors"]


def test_a_file_in_a_run_finds_its_init_and_an_explicit_init_replaces_it(run_dir: Path) -> None:
    file = run_dir / "checkpoints" / "epoch_0002.safetensors"
    init = run_dir / "checkpoints" / "epoch_0000.safetensors"
    assert find_checkpoints([file]) == ([FoundCheckpoint(file, init, run_dir)], [])
    found, _ = find_checkpoints([file, run_dir], init=init)
    assert found[0] == FoundCheckpoint(file, None, run_dir)
    assert all(item.init is None for item in found) and len(found) == 4


def test_a_folder_without_init_needs_one_and_bad_paths_do_not_stop_the_others(
    tmp_path: Path,
) -> None:
    run = write_run(tmp_path / "run", n_epochs=1)
    state = load_checkpoint(run / "checkpoints" / "epoch_0001.safetensors").state
    folder = tmp_path / "folder"
    folder.mkdir()
    save_checkpoint(folder / "a.safetensors", state, CheckpointMeta(epoch=4))
    lone = tmp_path / "lone.safetensors"
    save_checkpoint(lone, state, CheckpointMeta())
    missing = tmp_path / "missing.safetensors"

    found, unusable = find_checkpoints([missing, folder, lone, run])
    assert [item.checkpoint for item in found] == [run / "checkpoints" / "epoch_0001.safetensors"]
    assert [path for path, _ in unusable] == [missing, folder, lone]
    assert all(isinstance(exc, CheckpointError) for _, exc in unusable)
    messages = [str(exc) for _, exc in unusable]
    assert messages[0] == f"no such checkpoint: {missing}"
    assert messages[2] == f"no init found for {lone}; pass --init"

    init = run / "checkpoints" / "epoch_0000.safetensors"
    found, unusable = find_checkpoints([folder], init=init)
    assert unusable == [] and found == [FoundCheckpoint(folder / "a.safetensors", None, folder)]
