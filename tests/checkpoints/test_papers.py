"""Files written the way the papers' public scripts and torchvision write them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genmeasures.checkpoints import ModelSpec, load_checkpoint
from genmeasures.models import build_model
from genmeasures.scoring import score_checkpoints

KWARGS = {"num_classes": 7, "width_multiplier": 0.0625, "small_input": True}


def _resnet(seed: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet18", {**KWARGS, **overrides})


def _wrapped(state: dict) -> dict:
    """The scripts' layout: the torchvision model as `feature_extractor` (its fc replaced by an
    identity, so no fc tensors) and the new head as `pred_head`."""
    return {
        ("pred_head." + k.removeprefix("fc."))
        if k.startswith("fc.")
        else f"feature_extractor.{k}": v
        for k, v in state.items()
    }


def _save_script_checkpoint(path: Path, state: dict, epoch: int, arch: str = "ResNet18") -> Path:
    """What their trainer's _save_checkpoint writes (without its optimizer and config)."""
    torch.save({"arch": arch, "epoch": epoch, "state_dict": _wrapped(state)}, path)
    return path


@pytest.mark.parametrize(
    "write",
    [
        lambda p, s: _save_script_checkpoint(p, s, epoch=5),
        lambda p, s: torch.save(
            {
                "arch": "DataParallel",
                "epoch": 5,
                "state_dict": {f"module.{k}": v for k, v in _wrapped(s).items()},
            },
            p,
        ),
        lambda p, s: torch.save(_swa(s), p),
        lambda p, s: torch.save(s, p),
    ],
    ids=["wrapper", "dataparallel", "swa", "torchvision"],
)
def test_paper_and_torchvision_files_map_onto_the_registered_resnet(tmp_path: Path, write) -> None:
    model = _resnet(1)
    path = tmp_path / "model.pth"
    write(path, model.state_dict())
    ckpt = load_checkpoint(path)
    assert ckpt.meta.model == ModelSpec("resnet18", KWARGS)
    assert list(ckpt.state) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(ckpt.state[name], tensor), name


def _swa(state: dict) -> dict:
    from torch.optim.swa_utils import AveragedModel

    model = _resnet(0)
    model.load_state_dict(state)
    return AveragedModel(model).state_dict()


def test_a_paper_run_scored_from_its_pretrained_file_measures_the_new_head_from_zero(
    tmp_path: Path,
) -> None:
    """A run of the scripts scored against the torchvision file it started from (another
    head: 1000 classes): the backbone is measured from the file, the new head from zero."""
    pretrained = _resnet(0, num_classes=1000)
    init_file = tmp_path / "resnet18-imagenet.pth"
    torch.save(pretrained.state_dict(), init_file)
    tuned = _resnet(0)
    backbone = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("fc.")}
    tuned.load_state_dict(backbone, strict=False)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01)
    ckpt_file = _save_script_checkpoint(tmp_path / "model_epoch_30.pth", tuned.state_dict(), 30)
    report = score_checkpoints(
        [ckpt_file], init=init_file, measures=["distance_from_init"], progress=False
    )
    assert report.ok, report.failures
    rows = report.table
    assert set(rows.init_head) == {"zero"} and set(rows.tensor_order) == {"model"}
    layers = dict(zip(rows.layer, rows.value, strict=True))
    assert layers["fc.weight"] == pytest.approx(float(tuned.fc.weight.detach().double().norm()))
    conv = (tuned.conv1.weight - pretrained.conv1.weight).detach().double()
    assert layers["conv1.weight"] == pytest.approx(float(conv.norm()))
    assert set(rows.epoch) == {30}


def test_a_key_mismatch_is_a_short_diff_that_names_the_prefix() -> None:
    from genmeasures.checkpoints import check_matches_init, describe_difference
    from genmeasures.errors import CheckpointError

    state = _resnet(0).state_dict()
    prefixed = {f"net.{k}": v for k, v in state.items()}
    text = describe_difference(list(state), list(prefixed), "the model", "the file")
    assert text.startswith("the file lacks 122 tensor(s): 'conv1.weight'")
    assert text.endswith("(the file adds the prefix 'net.' to every name)") and len(text) < 400
    text = describe_difference(list(prefixed), list(state), "the model", "the file")
    assert text.endswith("(the file's names lack the prefix 'net.')")
    with pytest.raises(CheckpointError, match=r"adds the prefix 'net\.' to every name"):
        check_matches_init(prefixed, state, "ckpt")


class UserWrapper(torch.nn.Module):
    """A user's own copy of the scripts' wrapper class (their names, not torchvision's)."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.feature_extractor = _resnet(0)
        self.feature_extractor.fc = torch.nn.Identity()
        self.pred_head = torch.nn.Linear(4 * 8, num_classes)

    def forward(self, x):
        return self.pred_head(self.feature_extractor(x))


def user_wrapper(**kwargs) -> torch.nn.Module:
    return UserWrapper(**kwargs)


def test_a_users_own_wrapper_model_keeps_the_files_names(tmp_path: Path) -> None:
    model = UserWrapper()
    path = tmp_path / "m.pth"
    torch.save({"arch": "ResNet18", "epoch": 1, "state_dict": model.state_dict()}, path)
    init = tmp_path / "i.pth"
    torch.save({"arch": "ResNet18", "epoch": 0, "state_dict": model.state_dict()}, init)
    assert load_checkpoint(path).meta.model.name == "resnet18"  # recognized without --model
    report = score_checkpoints(
        [path],
        init=init,
        measures=["distance_from_init"],
        model=ModelSpec("tests.checkpoints.test_papers:user_wrapper"),
        allow_import=True,
        progress=False,
    )
    assert report.ok, report.failures
    layers = set(report.table.layer) - {""}
    assert "pred_head.weight" in layers and "feature_extractor.conv1.weight" in layers


def test_damaged_recognition_inputs_are_not_exceptions(tmp_path: Path) -> None:
    """Half a ViT's names, a 2-d stem: not recognized, no KeyError."""
    from genmeasures.checkpoints import papers

    assert (
        papers.recognize({"conv_proj.weight": torch.zeros(2, 2), "class_token": torch.zeros(1)})
        is None
    )
    assert (
        papers.recognize(
            {"conv1.weight": torch.zeros(2, 2), "layer1.0.conv1.weight": torch.zeros(1)}
        )
        is None
    )


def test_a_damaged_recorded_order_falls_back_to_the_header(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"genmeasures.order": '[["w"]]'})
    ckpt = load_checkpoint(path)
    assert ckpt.order == "file" and list(ckpt.state) == ["w"]
