"""Granulated Kendall Psi on hand-built grids with known answers, and on incomplete grids."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genmeasures.correlation import granulated_kendall
from genmeasures.errors import DataError, OptionError
from tests.correlation.synthetic import grid_table


def test_perfect_along_one_axis_reversed_along_the_other() -> None:
    psi, per_axis = granulated_kendall(grid_table(), "m", "gap", ["a", "b"])
    axes = per_axis.set_index("axis")
    assert axes.loc["a", "psi_axis"] == 1.0  # m = a - b and gap = a + 10 b rise together in a
    assert axes.loc["b", "psi_axis"] == -1.0  # ... and move apart in b
    assert axes["n_groups"].tolist() == [3, 3]
    assert axes["n_groups_skipped"].tolist() == [0, 0]
    assert axes["n_levels"].tolist() == [3, 3]
    row = psi.iloc[0]
    assert row["psi"] == 0.0 and row["n_axes"] == 2 and row["n"] == 9 and row["n_configs"] == 9


def test_incomplete_grid_skips_and_counts_groups_with_one_level() -> None:
    # Without (1, 1), (2, 1) and (2, 2): in the b = 1 group only a = 0 is left (skipped);
    # the a = 2 group has b = 0 only (skipped).
    table = grid_table(drop={(1, 1), (2, 1), (2, 2)})
    _, per_axis = granulated_kendall(table, "m", "gap", ["a", "b"])
    axes = per_axis.set_index("axis")
    assert axes.loc["a", "n_groups"] == 2 and axes.loc["a", "n_groups_skipped"] == 1
    assert axes.loc["b", "n_groups"] == 2 and axes.loc["b", "n_groups_skipped"] == 1
    assert axes.loc["a", "psi_axis"] == 1.0 and axes.loc["b", "psi_axis"] == -1.0


def test_seeds_are_averaged_first() -> None:
    # Seed noise of +-30 on the gap flips ranks within groups, but cancels in the seed mean.
    table = grid_table(seeds=(0, 1), noise=30.0)
    psi, per_axis = granulated_kendall(table, "m", "gap", ["a", "b"])
    assert per_axis["psi_axis"].tolist() == [1.0, -1.0]
    assert psi.loc[0, "n"] == 18 and psi.loc[0, "n_configs"] == 9
    _, raw = granulated_kendall(table, "m", "gap", ["a", "b"], average_seeds=False)
    assert raw["psi_axis"].tolist() != [1.0, -1.0]
    with pytest.raises(OptionError, match="seed column 'seed' is an axis"):
        granulated_kendall(table, "m", "gap", ["a", "seed"])


def test_matches_a_direct_computation_on_a_random_incomplete_grid() -> None:
    rng = np.random.default_rng(5)
    rows = [
        {"x": x, "y": y, "z": z, "m": rng.normal(), "gap": rng.normal()}
        for x, y, z in itertools.product(range(3), range(2), ["p", "q", "r"])
        if rng.random() > 0.2
    ]
    table = pd.DataFrame(rows)
    psi, per_axis = granulated_kendall(table, "m", "gap", ["x", "y", "z"])
    expected = {}
    for axis in ("x", "y", "z"):
        others = [a for a in ("x", "y", "z") if a != axis]
        taus = [
            stats.kendalltau(g["m"], g["gap"]).statistic
            for _, g in table.groupby(others)
            if g[axis].nunique() >= 2
        ]
        expected[axis] = np.mean(taus)
    assert per_axis.set_index("axis")["psi_axis"].to_dict() == pytest.approx(expected)
    assert psi.loc[0, "psi"] == pytest.approx(np.mean(list(expected.values())))


def test_epoch_is_held_fixed_within_groups() -> None:
    early = grid_table().assign(epoch=1)
    late = grid_table().assign(epoch=2, gap=lambda t: t["gap"] + 100)  # late gaps all larger
    table = pd.concat([early, late], ignore_index=True)
    _, per_axis = granulated_kendall(table, "m", "gap", ["a", "b"])
    assert per_axis["psi_axis"].tolist() == [1.0, -1.0]
    assert per_axis["n_groups"].tolist() == [6, 6]


def test_nan_rows_dropped_and_counted_constant_groups_counted() -> None:
    table = grid_table()
    table.loc[0, "m"] = np.nan
    table["flat"] = np.where(table["b"] == 0, 1.0, table["m"])  # constant along a when b = 0
    with pytest.warns(UserWarning, match="dropped 1"):
        psi, per_axis = granulated_kendall(table, ["m", "flat"], "gap", ["a", "b"])
    assert psi.set_index("measure").loc["m", "n_dropped"] == 1
    flat = per_axis[per_axis["measure"] == "flat"].set_index("axis")
    assert flat.loc["a", "n_groups_undefined"] == 1 and flat.loc["a", "n_groups"] == 2


def test_bad_axes() -> None:
    table = grid_table().assign(one=7)
    with pytest.raises(DataError, match="hyperparameter axis 'one' has a single level"):
        granulated_kendall(table, "m", "gap", ["a", "one"])
    with pytest.raises(DataError, match="no hyperparameter column 'radius'"):
        granulated_kendall(table, "m", "gap", ["radius"])
    with pytest.raises(DataError, match="at least one hyperparameter axis"):
        granulated_kendall(table, "m", "gap", [])
    with pytest.raises(DataError, match="no gap column 'gap_acc'"):
        granulated_kendall(table, "m", "gap_acc", ["a"])


# --- psi_variant="jiang": Jiang et al.'s formula, against a re-implementation by loops ---


def jiang_reference(table: pd.DataFrame, measure: str, gap: str, axes: list[str]):
    """Psi as Jiang et al. write it: seed means per configuration; for axis i and every
    combination of the other axes' levels, their tau = sum over ordered pairs a != b of
    sign(mu_a - mu_b) sign(g_a - g_b) / (|T| (|T| - 1)) (a constant group gives 0);
    psi_i = mean over those groups, Psi = mean over axes. A group where axis i has one
    level (the grid is incomplete) is not a group of axis i."""
    configs: dict = {}
    for row in table.to_dict("records"):
        configs.setdefault(tuple(row[a] for a in axes), []).append((row[measure], row[gap]))
    points = {
        k: (np.mean([m for m, _ in v]), np.mean([g for _, g in v])) for k, v in configs.items()
    }
    psi = {}
    for i, axis in enumerate(axes):
        rest = [j for j in range(len(axes)) if j != i]
        levels = [sorted({k[j] for k in points}) for j in rest]
        taus = []
        for other in itertools.product(*levels):
            group = [v for k, v in points.items() if tuple(k[j] for j in rest) == other]
            if len({k[i] for k in points if tuple(k[j] for j in rest) == other}) < 2:
                continue
            n, total = len(group), 0.0
            for a in range(n):
                for b in range(n):
                    if a != b:
                        total += np.sign(group[a][0] - group[b][0]) * np.sign(
                            group[a][1] - group[b][1]
                        )
            taus.append(total / (n * (n - 1)))
        psi[axis] = float(np.mean(taus))
    return psi, float(np.mean(list(psi.values())))


def jiang_grid(drop: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A 3 x 3 x 2 grid, two seeds per configuration (some rows dropped when ``drop``).
    ``params`` depends on depth only (constant along the other axes, like a parameter
    count); ``tied`` and ``gap_tied`` are rounded (ties, and some constant groups)."""
    rng = np.random.default_rng(seed)
    rows = []
    for depth, dropout, wd, s in itertools.product([6, 9, 12], [0.0, 0.25, 0.5], [0, 1], [0, 1]):
        if rng.random() < drop:
            continue
        gap = 0.1 * depth - dropout + rng.normal(scale=0.3)
        rows.append({"depth": depth, "dropout": dropout, "wd": wd, "seed": s, "gap": gap})
    table = pd.DataFrame(rows)
    table["params"] = 1000.0 * table["depth"]
    table["noisy"] = table["gap"] + rng.normal(scale=0.3, size=len(table))
    table["tied"] = np.round(table["noisy"] * 2)
    table["gap_tied"] = np.round(table["gap"])
    return table


AXES = ["depth", "dropout", "wd"]


@pytest.mark.parametrize("drop", [0.0, 0.3])
@pytest.mark.parametrize("gap", ["gap", "gap_tied"])
def test_jiang_variant_equals_the_formula_on_complete_and_incomplete_grids(drop, gap) -> None:
    table = jiang_grid(drop=drop, seed=3)
    measures = ["params", "noisy", "tied"]
    psi, per_axis = granulated_kendall(table, measures, gap, AXES, psi_variant="jiang")
    for measure in measures:
        expected_axes, expected_psi = jiang_reference(table, measure, gap, AXES)
        got = per_axis[per_axis["measure"] == measure].set_index("axis")["psi_axis"]
        assert got.to_dict() == pytest.approx(expected_axes, abs=1e-12), measure
        row = psi.set_index("measure").loc[measure]
        assert row["psi"] == pytest.approx(expected_psi, abs=1e-12)
        assert row["note"] == "psi_variant='jiang'"


def test_a_parameter_count_scores_its_axis_divided_by_the_number_of_axes() -> None:
    # The case: a measure that varies along one axis only. The default keeps that
    # axis alone (Psi = psi_depth); Jiang's formula counts the constant groups as 0.
    table = jiang_grid()
    default, default_axes = granulated_kendall(table, "params", "gap", AXES)
    jiang, jiang_axes = granulated_kendall(table, "params", "gap", AXES, psi_variant="jiang")
    psi_depth = default_axes.set_index("axis").loc["depth", "psi_axis"]
    assert default.loc[0, "psi"] == psi_depth and default.loc[0, "n_axes"] == 1
    assert jiang.loc[0, "psi"] == pytest.approx(psi_depth / 3) and jiang.loc[0, "n_axes"] == 3
    counts = jiang_axes.set_index("axis")
    assert counts.loc["dropout", "psi_axis"] == 0.0
    assert (
        counts.loc["dropout", "n_groups"] == 6 and counts.loc["dropout", "n_groups_undefined"] == 6
    )
    assert default_axes.set_index("axis").loc["dropout", "n_groups"] == 0
    assert default.loc[0, "note"] == ""  # the default output is unchanged: no variant tag


def test_without_ties_the_variants_agree() -> None:
    table = jiang_grid(seed=4)
    default, default_axes = granulated_kendall(table, "noisy", "gap", AXES)
    jiang, jiang_axes = granulated_kendall(table, "noisy", "gap", AXES, psi_variant="jiang")
    assert jiang.loc[0, "psi"] == pytest.approx(default.loc[0, "psi"], abs=1e-12)
    np.testing.assert_allclose(jiang_axes["psi_axis"], default_axes["psi_axis"], atol=1e-12)


def test_jiang_constant_measure_scores_zero_and_bad_variant() -> None:
    table = jiang_grid().assign(flat=2.0)
    psi, per_axis = granulated_kendall(table, "flat", "gap", AXES, psi_variant="jiang")
    assert psi.loc[0, "psi"] == 0.0 and (per_axis["psi_axis"] == 0.0).all()
    with pytest.raises(DataError, match="'flat' is constant"):
        granulated_kendall(table, "flat", "gap", AXES)
    with pytest.raises(OptionError, match="unknown psi_variant 'paper'; choose one of"):
        granulated_kendall(table, "noisy", "gap", AXES, psi_variant="paper")
