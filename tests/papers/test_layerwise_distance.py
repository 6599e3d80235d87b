"""layerwise-distance: the claim check on synthetic profiles; radii; the paper sweep expands."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genmeasures.checkpoints import CheckpointMeta, ModelSpec, save_checkpoint
from genmeasures.models import build_model
from genmeasures.sweeps import expand
from genmeasures_papers.layerwise_distance import RADIUS, check, constraint_radii, paper, quick


def plotted(erm: list[float], constraint: list[float], radius: list[float]) -> pd.DataFrame:
    """What line_panels draws: one line per method over layer positions; the last position
    is the head (no radius)."""
    rows = []
    for hue, values in (("erm", erm), ("constraint", constraint), (RADIUS, radius)):
        for k, value in enumerate(values):
            rows.append(
                {"panel": "", "hue": hue, "series": "distance", "x": float(k), "mean": value}
            )
    return pd.DataFrame(rows).assign(lo=lambda d: d["mean"], hi=lambda d: d["mean"], n=3)


def test_claim_passes_when_erm_grows_with_depth_and_the_constraint_stays_inside() -> None:
    claim = check(
        plotted(
            [0.1, 0.2, 0.3, 0.5, 0.9, 4.0],
            [0.1, 0.2, 0.2, 0.4, 0.8, 3.0],
            [0.2, 0.2, 0.2, 0.4, 0.8],
        )
    )
    assert claim.passed, claim
    assert "rho(depth, distance) over 5 backbone layers = 1.00" in claim.statistic
    assert "erm beyond the radius at 3/5 layers" in claim.statistic


def test_claim_fails_when_erm_shrinks_with_depth_or_the_cap_is_exceeded() -> None:
    shrinking = plotted([0.9, 0.5, 0.3, 0.2, 0.1, 4.0], [0.2] * 6, [0.2, 0.2, 0.2, 0.4, 0.8])
    assert not check(shrinking).passed
    exceeded = plotted([0.1, 0.2, 0.3, 0.5, 0.9, 4], [0.3] * 6, [0.2, 0.2, 0.2, 0.4, 0.8])
    claim = check(exceeded)
    assert not claim.passed and "max distance/radius = 1.500" in claim.statistic


def test_radii_come_from_the_projection_plan_of_the_run(tmp_path: Path) -> None:
    kwargs = {"width_multiplier": 0.125, "small_input": True, "in_channels": 1, "num_classes": 5}
    model = build_model("resnet18", kwargs)
    meta = CheckpointMeta(
        model=ModelSpec("resnet18", kwargs),
        epoch=0,
        config={"algorithm": {"name": "constraint", "distance": 0.2, "gamma": 2.0}},
    )
    path = save_checkpoint(tmp_path / "epoch_0000.safetensors", model.state_dict(), meta)
    radii = constraint_radii(str(path))
    assert radii["conv1.weight"] == radii["layer2.1.conv2.weight"] == 0.2
    assert radii["layer3.0.conv1.weight"] == 0.4 and radii["layer4.1.conv2.weight"] == 0.8
    assert "fc.weight" not in radii  # the head is bounded around zero, not the init
    assert all(isinstance(v, float) for v in radii.values())


def test_quick_and_paper_sweeps_expand() -> None:
    for study in (quick(), paper()):
        points = expand(study.base, study.grid, study.seeds)
        assert {p.config.algorithm_name for p in points} == {"erm", "constraint"}
        assert len(points) == 2 * len(study.seeds)
    config = expand(paper().base, paper().grid, paper().seeds)[0].config
    assert config.model.name == "resnet50" and config.train.device == "cuda"
    assert config.model.pretrained == "weights/resnet50-imagenet.pth"
