"""hessian-vs-method: the claim check on synthetic plotted data, method labels, the sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genmeasures.sweeps import expand
from genmeasures_papers.hessian_vs_method import METHOD_ORDER, check, method_table, paper, quick

PANELS = ("clean", "40% symmetric")


def plotted(slopes: dict[str, float]) -> pd.DataFrame:
    """What group_means draws: one row per (panel, method) with the method means."""
    rows = []
    for panel, slope in slopes.items():
        for k, method in enumerate(METHOD_ORDER):
            bound = 0.5 + 0.05 * k
            gap = slope * bound + 0.001 * np.sin(k)
            rows.append(
                {
                    "panel": panel,
                    "hue": method,
                    "x": bound,
                    "x_lo": bound - 0.01,
                    "x_hi": bound + 0.01,
                    "mean": gap,
                    "lo": gap - 0.01,
                    "hi": gap + 0.01,
                    "n": 3,
                }
            )
    return pd.DataFrame(rows)


def test_claim_passes_when_the_bound_ranks_the_methods_like_the_gap() -> None:
    claim = check(plotted({"clean": 1.0, "40% symmetric": 0.5}))
    assert claim.passed, claim
    assert "clean: Kendall tau = 1.00" in claim.statistic and "over 10 methods" in claim.statistic


def test_claim_fails_when_one_noise_level_is_anticorrelated() -> None:
    claim = check(plotted({"clean": 1.0, "40% symmetric": -1.0}))
    assert not claim.passed
    assert "40% symmetric: Kendall tau = -1.00" in claim.statistic


def test_claim_fails_on_a_constant_gap() -> None:
    data = plotted({"clean": 1.0}).assign(mean=0.1)
    claim = check(data)
    assert not claim.passed and "undefined" in claim.statistic


def test_method_labels_tell_the_variants_apart() -> None:
    scores = pd.DataFrame(
        {
            "algorithm.name": ["constraint", "erm", "constraint", "erm", "sam", "erm"],
            "algorithm.norm": ["mars", None, "frobenius", None, None, None],
            "train.early_stopping": [0, 3, 0, 0, 0, 0],
            "data.noise_rate": [0.0, 0.4, 0.0, 0.0, 0.4, 0.0],
            "study": ["methods", "methods", "methods", "methods", "early-stop", "early-stop"],
        }
    )
    table = method_table(scores)
    assert table["method"].tolist() == [
        "erm",
        "erm + early stop",  # the best checkpoint of the early-stop part
        "constraint (Frobenius)",
        "constraint (MARS)",
        "erm + early stop",  # train.early_stopping set
        "sam",
    ]
    assert table["label noise"].tolist() == ["clean"] * 4 + ["40% symmetric"] * 2


def test_quick_and_paper_sweeps_expand_and_validate() -> None:
    # expand() validates every point's config (keys, types, algorithm options); it does not
    # open the paper's dataset folder or weights file, which only exist on the GPU machine.
    for scale, group in (("quick", quick()), ("paper", paper())):
        assert group.workdir == "methods"
        methods, early = group.parts["methods"], group.parts["early-stop"]
        points = expand(methods.base, methods.grid, methods.seeds)
        stopped = expand(early.base, early.grid, early.seeds)
        assert len(points) == 9 * 2 * 3 and len(stopped) == 2 * 3
        assert {p.config.algorithm_name for p in stopped} == {"erm"}
        # the same erm runs, scored on the best checkpoint by validation accuracy
        assert early.select == "best" and methods.select == "last"
        assert early.base == methods.base and early.pretrain == methods.pretrain
        assert all(p.config.data.val for p in points + stopped)
        norms = {
            p.config.algorithm.get("norm")
            for p in points
            if p.config.algorithm_name == "constraint"
        }
        assert norms == {"frobenius", "mars"}
        if scale == "paper":
            config = points[0].config
            assert config.model.name == "resnet50" and config.train.device == "cuda"
            assert config.model.pretrained == "weights/resnet50-imagenet.pth"
            assert config.data.train.startswith("data/indoor:split=train")
