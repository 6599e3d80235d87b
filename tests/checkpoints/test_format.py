"""The checkpoint format and the safe readers of PyTorch files."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from genmeasures._io import atomic_open
from genmeasures.checkpoints import (
    CheckpointMeta,
    ModelSpec,
    check_finite,
    check_matches_init,
    load_checkpoint,
    save_checkpoint,
)
from genmeasures.errors import CheckpointError
from tests.conftest import tiny_mlp


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path: Path) -> None:
    state = tiny_mlp().state_dict()
    meta = CheckpointMeta(
        model=ModelSpec("mlp", {"hidden": [8]}),
        epoch=3,
        tag="epoch",
        metrics={"train_loss": 0.5},
        n_train=40,
        data="digits-target:split=train",
        config={"lr": 0.1},
    )
    path = save_checkpoint(tmp_path / "ckpt", state, meta)
    assert path.name == "ckpt.safetensors" and path.with_suffix(".json").exists()
    loaded = load_checkpoint(path)
    assert loaded.meta == meta
    assert list(loaded.state) == list(state)
    for name, tensor in state.items():
        assert torch.equal(loaded.state[name], tensor)
    assert loaded.digest == load_checkpoint(path).digest
    save_checkpoint(tmp_path / "other", {k: v + 1 for k, v in state.items()}, meta)
    assert load_checkpoint(tmp_path / "other.safetensors").digest != loaded.digest


def test_checkpoint_without_sidecar_has_empty_metadata(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", {"w": torch.ones(2, 2)}, CheckpointMeta())
    path.with_suffix(".json").unlink()
    assert load_checkpoint(path).meta == CheckpointMeta()


def test_plain_state_dict_pt(tmp_path: Path) -> None:
    state = tiny_mlp().state_dict()
    torch.save(state, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert all(torch.equal(loaded.state[k], v) for k, v in state.items())


def test_papers_script_dict_with_dataparallel_prefix(tmp_path: Path) -> None:
    state = tiny_mlp().state_dict()
    wrapped = {
        "arch": "mlp",
        "epoch": 7,
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "best_acc1": 81.5,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
    }
    torch.save(wrapped, tmp_path / "checkpoint.pth.tar")
    loaded = load_checkpoint(tmp_path / "checkpoint.pth.tar")
    assert set(loaded.state) == set(state)
    assert loaded.meta.model == ModelSpec("mlp") and loaded.meta.epoch == 7
    assert loaded.meta.metrics == {"best_acc1": 81.5}


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_would_run_code_is_refused(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    payload = {"w": torch.ones(2), "evil": _Exploit(marker)}
    path = tmp_path / "evil.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "refusing to load" in one_line(exc) and str(path) in str(exc.value)
    assert not marker.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint") as exc:
        load_checkpoint(tmp_path / "nope.safetensors")
    one_line(exc)


def test_empty_and_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.safetensors")
    (tmp_path / "weights.h5").write_bytes(b"xx")
    with pytest.raises(CheckpointError, match=r"unsupported checkpoint type '\.h5'"):
        load_checkpoint(tmp_path / "weights.h5")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_safetensors(tmp_path: Path, keep: float) -> None:
    path = save_checkpoint(tmp_path / "a", tiny_mlp().state_dict(), CheckpointMeta())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as exc:
        load_checkpoint(path)
    assert str(path) in one_line(exc)


def test_truncated_and_garbage_pt(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(tiny_mlp().state_dict(), buffer)
    (tmp_path / "cut.pt").write_bytes(buffer.getvalue()[:200])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all" * 10)
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"w": [1.0]}, protocol=5))
    for name in ("cut.pt", "junk.pth", "raw.pt"):
        with pytest.raises(CheckpointError, match="corrupt or truncated") as exc:
            load_checkpoint(tmp_path / name)
        assert name in one_line(exc)


def test_corrupt_sidecar(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a", {"w": torch.ones(1, 1)}, CheckpointMeta(epoch=1))
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read sidecar"):
        load_checkpoint(path)


def test_non_tensor_entries_are_rejected(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2), "lr": 0.1}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="entry 'lr' is a float"):
        load_checkpoint(tmp_path / "mixed.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")


def test_check_matches_init_names_and_shapes() -> None:
    init = {"a.weight": torch.zeros(2, 3), "b.weight": torch.zeros(4, 2)}
    check_matches_init({k: v + 1 for k, v in init.items()}, init, "ckpt")
    with pytest.raises(CheckpointError, match=r"the checkpoint lacks 1 tensor\(s\): 'b.weight'"):
        check_matches_init({"a.weight": torch.zeros(2, 3)}, init, "ckpt")
    with pytest.raises(
        CheckpointError, match=r"the checkpoint has 1 tensor\(s\): 'c' that the init lacks"
    ):
        check_matches_init({**init, "c": torch.zeros(1)}, init, "ckpt")
    with pytest.raises(CheckpointError, match=r"'a.weight' has shape \(3, 2\), init has \(2, 3\)"):
        check_matches_init({**init, "a.weight": torch.zeros(3, 2)}, init, "ckpt")


@pytest.mark.parametrize(("bad", "kind"), [(float("nan"), "NaN"), (float("inf"), "Inf")])
def test_check_finite(bad: float, kind: str) -> None:
    state = {"ok": torch.ones(3), "w": torch.tensor([1.0, bad]), "steps": torch.tensor(3)}
    with pytest.raises(CheckpointError, match=f"tensor 'w' contains {kind} values"):
        check_finite(state, "ckpt.safetensors")
    check_finite({"ok": torch.ones(3), "steps": torch.tensor(3)}, "ckpt")


def test_atomic_open_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    """Not mkstemp's 0o600: results stay readable to the group on a shared machine; a file
    that exists keeps its mode, as it would when rewritten in place."""
    from genmeasures._io import atomic_write_text, atomic_write_with

    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # 0o666 less this process's umask
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_with(tmp_path / "b.txt", lambda name: Path(name).write_text("x"))
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes["a.txt"] == modes["b.txt"] == modes["plain.txt"]
    private = tmp_path / "private.txt"
    private.write_text("old")
    private.chmod(0o600)
    atomic_write_text(private, "new")
    assert private.read_text() == "new" and private.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.txt",
        "b.txt",
        "plain.txt",
        "private.txt",
    ]
