"""noise-stability-vs-sigma: the claim check on synthetic plotted data, the reshaping of the
score table, and the sweeps (quick, tiny, paper) expand and validate."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures.sweeps import expand
from genmeasures_papers.noise_stability_vs_sigma import (
    ONE_SIDED,
    PREDICTED,
    RATIO,
    SIGMAS,
    TWO_SIDED,
    VALUES,
    check,
    noise_measures,
    paper,
    quick,
    sigma_table,
    small_sigmas,
    tiny,
)

TRACE = {"erm": 800.0, "sam": 550.0}


def plotted(ratio: float, relative_se: float) -> pd.DataFrame:
    """What line_panels draws: per method and sigma the prediction (1% stderr), the
    two-sided noise stability at ``ratio`` times it, a noisy one-sided one, and ratio rows."""
    rows = []
    for method, trace in TRACE.items():
        for sigma in SIGMAS:
            predicted = sigma**2 / 2 * trace
            # the quartic term: the two-sided value bends away from the prediction at large sigma
            two = predicted * ratio * (1 + 50 * sigma**2)
            for hue, mean, se in (
                (PREDICTED, predicted, 0.01 * predicted),
                (TWO_SIDED, two, relative_se * two),
                (ONE_SIDED, 3 * predicted, predicted),
            ):
                rows.append(
                    {
                        "row": VALUES,
                        "col": method,
                        "hue": hue,
                        "x": sigma,
                        "mean": mean,
                        "stderr": se,
                    }
                )
            rows.append(
                {
                    "row": RATIO,
                    "col": method,
                    "hue": TWO_SIDED,
                    "x": sigma,
                    "mean": two / predicted,
                    "stderr": relative_se,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.assign(lo=frame["mean"], hi=frame["mean"], n=3, panel=frame["col"])


def test_claim_passes_when_the_two_sided_values_agree_at_small_sigma() -> None:
    claim = check(plotted(ratio=1.03, relative_se=0.04))
    assert claim.passed, claim.statistic
    assert "small sigma = 0.001, 0.003" in claim.statistic
    assert "over 4 method x sigma cells" in claim.statistic


def test_claim_fails_when_the_noise_stability_is_a_quarter_higher() -> None:
    claim = check(plotted(ratio=1.25, relative_se=0.03))
    assert not claim.passed
    assert "erm 1.250" in claim.statistic and "claim: <= 2" in claim.statistic


def test_sigma_table_scales_the_trace_and_divides_by_it() -> None:
    long = []
    for method, trace in TRACE.items():
        checkpoint = f"{method}/last"
        base = {"checkpoint": checkpoint, "method": method, "seed": 0, "layer": ""}
        long.append(
            {
                **base,
                "measure": "hessian_trace",
                "options": "estimator=hutchpp",
                "value": trace,
                "stderr": 8.0,
            }
        )
        long.append(
            {
                **base,
                "measure": "hessian_trace",
                "options": "estimator=hutchpp",
                "value": 1.0,
                "stderr": 0.0,
                "layer": "head.weight",
            }
        )  # per-layer row
        for sigma in (0.001, 0.01):
            for side, factor in (("two", 1.2), ("one", 2.0)):
                long.append(
                    {
                        **base,
                        "measure": "noise_stability",
                        "options": f"draws=100,sided={side},sigma={sigma:g}",
                        "value": factor * sigma**2 / 2 * trace,
                        "stderr": 1e-6,
                    }
                )
    table = sigma_table(pd.DataFrame(long))
    values = table[table["view"] == VALUES]
    assert len(values) == 2 * 2 * 3
    predicted = values[(values["quantity"] == PREDICTED) & (values["method"] == "erm")]
    assert predicted.set_index("sigma")["value"].to_dict() == pytest.approx(
        {0.001: 0.001**2 / 2 * 800, 0.01: 0.01**2 / 2 * 800}
    )
    assert predicted["stderr"].tolist() == pytest.approx([0.001**2 / 2 * 8, 0.01**2 / 2 * 8])
    ratios = table[table["view"] == RATIO]
    assert set(ratios["quantity"]) == {TWO_SIDED, PREDICTED}
    assert ratios.loc[ratios["quantity"] == TWO_SIDED, "value"].tolist() == pytest.approx([1.2] * 4)
    assert ratios.loc[ratios["quantity"] == PREDICTED, "value"].tolist() == pytest.approx([1.0] * 4)


def test_more_draws_two_sided_at_the_small_sigmas() -> None:
    specs = noise_measures((0.001, 0.01, 0.1, 0.003), 100, 300)
    assert small_sigmas((0.001, 0.01, 0.1, 0.003)) == [0.001, 0.003]
    assert "noise_stability:sigma=0.001,sided=two,draws=300" in specs
    assert "noise_stability:sigma=0.01,sided=two,draws=100" in specs
    assert "noise_stability:sigma=0.001,sided=one,draws=100" in specs
    assert len(specs) == 8


@pytest.mark.parametrize("scale", [quick, tiny, paper])
def test_every_scale_expands_and_validates(scale) -> None:
    """The paper sweep names files that do not exist here (weights/resnet50-imagenet.pth,
    data/indoor): config validation does not open them, so only the configs are checked."""
    group = scale()
    for part in group.parts.values():
        points = expand(part.base, part.grid, part.seeds)
        assert len(points) == len(part.grid["algorithm"]) * len(part.seeds)
        assert any(m.startswith("hessian_trace") for m in part.measures)
    if scale is paper:
        config = points[0].config
        assert config.model.name == "resnet50" and config.train.device == "cuda"
