"""Conditional mutual information: 0 for an independent measure, 1 for a perfect one."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from genmeasures.correlation import conditional_mutual_information
from genmeasures.errors import DataError, OptionError


def grid(n_seeds: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"alg": alg, "lr": lr, "seed": s}
        for alg, lr, s in itertools.product(["erm", "sam"], [0.01, 0.1, 1.0], range(n_seeds))
    ]
    table = pd.DataFrame(rows)
    table["gap"] = np.log10(table["lr"]) + rng.normal(scale=0.5, size=len(table))
    table["perfect"] = 3 * table["gap"] + 1
    table["reversed"] = -table["gap"]
    table["independent"] = rng.normal(size=len(table))
    table["lr_proxy"] = np.log10(table["lr"])  # tracks what drives the gap, nothing more
    return table


def naive_cmi(table: pd.DataFrame, measure: str, gap: str, subset: tuple[str, ...]) -> float:
    """Plug-in I(V_m; V_g | U_S) / H(V_g | U_S) by counting ordered pairs, cell by cell."""
    cells: dict = {}
    records = table.to_dict("records")
    for i, j in itertools.permutations(range(len(records)), 2):
        a, b = records[i], records[j]
        key = tuple((a[h], b[h]) for h in subset)
        v = (np.sign(a[measure] - b[measure]), np.sign(a[gap] - b[gap]))
        cells.setdefault(key, Counter())[v] += 1
    total = sum(sum(c.values()) for c in cells.values())
    mi = h = 0.0
    for counts in cells.values():
        n = sum(counts.values())
        joint = {k: v / n for k, v in counts.items()}
        pm, pg = Counter(), Counter()
        for (m, g), p in joint.items():
            pm[m] += p
            pg[g] += p
        mi += n / total * sum(p * np.log2(p / (pm[m] * pg[g])) for (m, g), p in joint.items())
        h += n / total * -sum(p * np.log2(p) for p in pg.values())
    return mi / h


def test_perfect_measure_is_maximal_and_direction_blind() -> None:
    summary, subsets = conditional_mutual_information(
        grid(), ["perfect", "reversed"], "gap", ["alg", "lr"]
    )
    assert summary["cmi"].tolist() == pytest.approx([1.0, 1.0])
    assert subsets["subset"].tolist()[:4] == ["(none)", "alg", "lr", "alg,lr"]
    assert subsets["cmi"].to_numpy() == pytest.approx(1.0)


def test_independent_measure_is_zero() -> None:
    summary, _ = conditional_mutual_information(grid(40), "independent", "gap", ["alg", "lr"])
    assert summary.loc[0, "cmi"] == pytest.approx(0.0, abs=0.01)
    assert summary.loc[0, "n"] == 240


def test_a_proxy_of_the_hyperparameter_gets_no_credit_once_conditioned() -> None:
    summary, subsets = conditional_mutual_information(grid(), "lr_proxy", "gap", ["alg", "lr"])
    by_subset = subsets.set_index("subset")["cmi"]
    assert by_subset["(none)"] > 0.2  # unconditionally it looks informative
    assert by_subset["lr"] == pytest.approx(0.0, abs=1e-12)  # given lr it says nothing
    assert summary.loc[0, "cmi"] == pytest.approx(0.0, abs=1e-12)
    assert summary.loc[0, "cmi_subset"] in {"lr", "alg,lr"}


def test_equals_a_direct_count_over_pairs() -> None:
    table = grid(3, seed=1)
    table["noisy"] = table["gap"] + np.random.default_rng(2).normal(size=len(table))
    table["tied"] = np.round(table["noisy"])
    _, subsets = conditional_mutual_information(table, ["noisy", "tied"], "gap", ["alg", "lr"])
    for _, row in subsets.iterrows():
        subset = () if row["subset"] == "(none)" else tuple(row["subset"].split(","))
        assert row["cmi"] == pytest.approx(naive_cmi(table, row["measure"], "gap", subset))
        assert row["n_pairs"] == len(table) * (len(table) - 1)


def test_subset_sizes() -> None:
    table = grid(2).assign(width=lambda t: t["seed"] + 1)
    _, subsets = conditional_mutual_information(table, "perfect", "gap", ["alg", "lr", "width"])
    assert subsets["size"].value_counts().sort_index().tolist() == [1, 3, 3]
    _, only = conditional_mutual_information(
        table, "perfect", "gap", ["alg", "lr", "width"], max_subset_size=1
    )
    assert only["size"].max() == 1 and len(only) == 4


def test_bad_input() -> None:
    table = grid().assign(flat=2.0, one="x")
    with pytest.raises(DataError, match="measure 'flat' is constant"):
        conditional_mutual_information(table, "flat", "gap", ["alg"])
    with pytest.raises(DataError, match="axis 'one' has a single level"):
        conditional_mutual_information(table, "perfect", "gap", ["one"])
    with pytest.warns(UserWarning, match="'flat' is constant"):
        summary, _ = conditional_mutual_information(table, ["perfect", "flat"], "gap", ["alg"])
    assert np.isnan(summary.loc[1, "cmi"]) and "constant" in summary.loc[1, "note"]


# --- cmi_variant="pgdl": the competition's scoring program, re-implemented by loops ---


def pgdl_cell(counts: np.ndarray) -> tuple[float, float]:
    """One cell's 2 x 2 table (gap +/-, measure +/-): mutual information, and the gap's
    entropy with the program's log2(p + 1e-12); NaN for an empty cell (0 / 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        total = counts.sum()
        p_gap = counts.sum(axis=1) / total
        p_measure = counts.sum(axis=0) / total
        mi = np.float64(0.0)
        for s in range(2):
            for t in range(2):
                joint = counts[s, t] / total
                if joint == 0:
                    continue
                mi += joint * np.log2(joint / (p_gap[s] * p_measure[t]))
        h = -np.sum(p_gap * np.log2(p_gap + 1e-12))
    return mi, h


def pgdl_reference(table: pd.DataFrame, measure: str, gap: str, axes: list[str]):
    """The PGDL score step by step: for each ordered pair (h1, h2) of distinct axes, the
    cells are every str(v1) + str(w1) + str(v2) + str(w2) over the levels (a name seen
    twice keeps its last index, the earlier one stays empty); every ordered pair of models,
    a model with itself included, adds 1 at (gap_a > gap_b ? + : -, measure_a > measure_b ?
    + : -, cell); mean MI / mean entropy over the cells; Python's min over the pairs."""
    models = table.to_dict("records")
    levels = {h: list(dict.fromkeys(r[h] for r in models)) for h in axes}
    per_pair, score = {}, np.inf
    for h1 in axes:
        for h2 in axes:
            if h1 == h2:
                continue
            names = [
                str(v1) + str(w1) + str(v2) + str(w2)
                for v1 in levels[h1]
                for w1 in levels[h1]
                for v2 in levels[h2]
                for w2 in levels[h2]
            ]
            index = {name: k for k, name in enumerate(names)}
            counts = np.zeros((2, 2, len(names)))
            for a in models:
                for b in models:
                    name = str(a[h1]) + str(b[h1]) + str(a[h2]) + str(b[h2])
                    s = 0 if a[gap] > b[gap] else 1
                    t = 0 if a[measure] > b[measure] else 1
                    counts[s, t, index[name]] += 1
            mi = h = np.float64(0.0)
            for k in range(len(names)):
                cell_mi, cell_h = pgdl_cell(counts[:, :, k])
                mi, h = mi + cell_mi, h + cell_h
            with np.errstate(divide="ignore", invalid="ignore"):
                value = (mi / len(names)) / (h / len(names))
            per_pair[f"{h1},{h2}"] = value
            score = min(value, score)
    return per_pair, score


def pgdl_grid(seeds: int = 1, drop=(), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"depth": d, "dropout": p, "wd": w, "seed": s}
        for d, p, w, s in itertools.product([6, 9, 12], [0.0, 0.5], [0.0, 0.001], range(seeds))
        if (d, p) not in drop
    ]
    table = pd.DataFrame(rows)
    table["gap"] = 0.05 * table["depth"] - 0.3 * table["dropout"]
    table["gap"] += rng.normal(scale=0.2, size=len(table))
    table["gap_tied"] = np.round(table["gap"] * 4)
    table["noisy"] = table["gap"] + rng.normal(scale=0.3, size=len(table))
    table["tied"] = np.round(table["noisy"] * 3)
    table["params"] = 1000.0 * table["depth"]
    table["flat"] = 1.0
    return table


def assert_same(got: float, expected: float) -> None:
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


PGDL_AXES = ["depth", "dropout", "wd"]
PGDL_MEASURES = ["noisy", "tied", "params", "flat"]


@pytest.mark.parametrize("seeds", [1, 2])
@pytest.mark.parametrize("gap", ["gap", "gap_tied"])
def test_pgdl_variant_equals_the_scoring_program_on_complete_grids(seeds, gap) -> None:
    table = pgdl_grid(seeds=seeds, seed=seeds)
    summary, subsets = conditional_mutual_information(
        table, PGDL_MEASURES, gap, PGDL_AXES, cmi_variant="pgdl"
    )
    for measure in PGDL_MEASURES:
        per_pair, score = pgdl_reference(table, measure, gap, PGDL_AXES)
        mine = subsets[subsets["measure"] == measure].set_index("subset")
        assert list(mine.index) == list(per_pair)  # ordered pairs, in loop order
        for name, value in per_pair.items():
            assert_same(mine.loc[name, "cmi"], value)
        row = summary.set_index("measure").loc[measure]
        assert_same(row["cmi"], score)
        assert row["note"] == "cmi_variant='pgdl'" and row["n_subsets"] == 6
    assert (subsets["n_pairs"] == len(table) ** 2).all()  # self-pairs included
    assert subsets.set_index("subset").loc["depth,dropout", "n_cells"].iloc[0] == 36
    flat = summary.set_index("measure").loc["flat", "cmi"]
    assert flat == 0.0  # a constant measure scores 0, not NaN


def test_pgdl_differs_from_the_default_on_the_same_table() -> None:
    table = pgdl_grid(seeds=2)
    default, _ = conditional_mutual_information(table, "noisy", "gap", PGDL_AXES)
    pgdl, _ = conditional_mutual_information(table, "noisy", "gap", PGDL_AXES, cmi_variant="pgdl")
    assert default.loc[0, "cmi"] != pytest.approx(pgdl.loc[0, "cmi"])
    assert default.loc[0, "note"] == ""  # the default output carries no variant tag


def test_pgdl_one_model_per_cell_scores_zero_as_the_program_does() -> None:
    # Two axes, one model per configuration: every cell holds one pair, V_g is determined,
    # the program's entropy is -log2(1 + 1e-12) < 0 and MI / H = -0.0.
    table = pgdl_grid().query("wd == 0.0")
    summary, subsets = conditional_mutual_information(
        table, "noisy", "gap", ["depth", "dropout"], cmi_variant="pgdl"
    )
    _, score = pgdl_reference(table, "noisy", "gap", ["depth", "dropout"])
    assert score == 0.0 and summary.loc[0, "cmi"] == 0.0
    assert (subsets["h_gap_bits"] < 0).all() and (subsets["h_gap_bits"] > -1e-11).all()
    default, _ = conditional_mutual_information(table, "noisy", "gap", ["depth", "dropout"])
    assert default.loc[0, "cmi_subset"] == "(none)"  # the default leaves H = 0 subsets out


@pytest.mark.parametrize(
    ("axes", "last_is_nan"),
    [(["depth", "dropout", "wd"], False), (["wd", "depth", "dropout"], True)],
)
def test_pgdl_on_an_incomplete_grid_reproduces_the_running_minimum(axes, last_is_nan) -> None:
    # Without depth=12 & dropout=0.5 the (depth, dropout) cells of that combination are
    # empty: the program's value for that axis pair is NaN, which resets its running min.
    table = pgdl_grid(seeds=2, drop={(12, 0.5)})
    summary, subsets = conditional_mutual_information(
        table, ["noisy", "tied"], "gap", axes, cmi_variant="pgdl"
    )
    for measure in ("noisy", "tied"):
        per_pair, score = pgdl_reference(table, measure, "gap", axes)
        mine = subsets[subsets["measure"] == measure].set_index("subset")["cmi"]
        for name, value in per_pair.items():
            assert_same(mine[name], value)
        row = summary.set_index("measure").loc[measure]
        assert_same(row["cmi"], score)
        assert np.isnan(score) == last_is_nan and row["n_subsets"] == 4
        assert "empty cell (NaN): " in row["note"] and "depth,dropout" in row["note"]


def test_pgdl_a_random_incomplete_grid() -> None:
    rng = np.random.default_rng(9)
    table = pgdl_grid(seeds=2, seed=5)
    table = table[rng.random(len(table)) > 0.3].reset_index(drop=True)
    summary, subsets = conditional_mutual_information(
        table, ["noisy", "params"], "gap_tied", PGDL_AXES, cmi_variant="pgdl"
    )
    for measure in ("noisy", "params"):
        per_pair, score = pgdl_reference(table, measure, "gap_tied", PGDL_AXES)
        mine = subsets[subsets["measure"] == measure].set_index("subset")["cmi"]
        for name, value in per_pair.items():
            assert_same(mine[name], value)
        assert_same(summary.set_index("measure").loc[measure, "cmi"], score)


def test_pgdl_cell_names_that_coincide_make_the_pair_nan() -> None:
    # Widths 1 and 11: '1' + '11' == '11' + '1', two cells share a name, one stays empty.
    table = pgdl_grid(seeds=2).assign(width=lambda t: np.where(t["seed"] == 0, 1, 11))
    _, subsets = conditional_mutual_information(
        table, "noisy", "gap", ["depth", "width"], cmi_variant="pgdl"
    )
    per_pair, _ = pgdl_reference(table, "noisy", "gap", ["depth", "width"])
    assert all(np.isnan(v) for v in per_pair.values()) and subsets["cmi"].isna().all()
    fine = table.assign(width=lambda t: t["width"].replace(11, 2))
    _, subsets = conditional_mutual_information(
        fine, "noisy", "gap", ["depth", "width"], cmi_variant="pgdl"
    )
    assert subsets["cmi"].notna().all()


def test_pgdl_needs_two_axes_and_bad_options() -> None:
    table = pgdl_grid(seeds=2)
    _, score = pgdl_reference(table, "noisy", "gap", ["depth"])
    assert score == np.inf  # the program never enters its loop
    summary, subsets = conditional_mutual_information(
        table, "noisy", "gap", ["depth"], cmi_variant="pgdl"
    )
    assert np.isnan(summary.loc[0, "cmi"]) and len(subsets) == 0
    assert "conditions on pairs of axes and there are 1" in summary.loc[0, "note"]
    with pytest.raises(OptionError, match="unknown cmi_variant 'codalab'"):
        conditional_mutual_information(table, "noisy", "gap", ["depth"], cmi_variant="codalab")
    with pytest.raises(OptionError, match="max_subset_size=1 does not apply to cmi_variant"):
        conditional_mutual_information(
            table, "noisy", "gap", PGDL_AXES, max_subset_size=1, cmi_variant="pgdl"
        )
