"""hessian_density: SLQ nodes and weights against an exact eigendecomposition; the CLI."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

import genmeasures
from genmeasures.cli import main
from genmeasures.curvature.vectors import flatten, rademacher_like
from genmeasures.data import EvaluationSet
from genmeasures.measures.density import density_table
from genmeasures.scoring import write_table
from tests.curvature.oracle import Oracle, data_for, small_cnn, tanh_mlp
from tests.measures.test_hessian_measures import fine_tuned, weight_names


def _scored(model, init, spec: str, seed: int = 0):
    inputs, targets = data_for(model)
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=10)
    return genmeasures.score(model, init, data, [spec], n_train=100, seed=seed), inputs, targets


@pytest.mark.parametrize("make", [tanh_mlp, small_cnn])
def test_full_length_quadrature_is_the_exact_spectral_measure(make) -> None:
    """With as many steps as parameters, SLQ is exact: the weights are the start vector's
    squared projections on H's eigenvectors, so every eigenvalue the start vector sees is a
    node, and the negative mass is v^T 1[H < 0] v / ||v||^2."""
    model, init = fine_tuned(make)
    names = weight_names(model)
    table, inputs, targets = _scored(model, init, "hessian_density:steps=500,runs=2")
    oracle = Oracle(model, names, inputs, targets)
    values, vectors = torch.linalg.eigh(oracle.hessian())
    generator = torch.Generator().manual_seed(0)
    like = [model.state_dict()[n] for n in names]
    starts = [flatten(rademacher_like(like, generator)) for _ in range(2)]
    floor = 32 * torch.finfo(torch.float64).eps * float(values.abs().max())
    expected = []
    for v in starts:
        share = (vectors.T @ (v / v.norm())) ** 2
        expected.append(float(share[values < -floor].sum()))
    whole = table[(table.measure == "hessian_density") & (table.layer == "")].iloc[0]
    assert whole.value == pytest.approx(sum(expected) / 2, abs=1e-8)
    assert 0 < whole.value < 1  # a fine-tuned tanh/ReLU net has both signs
    tidy = density_table(table)
    for _, rows in tidy.groupby("run"):
        assert rows.weight.sum() == pytest.approx(1.0, abs=1e-10)
        heavy = rows[rows.weight > 1e-6]  # nodes that carry weight are eigenvalues of H
        gaps = [float((values - node).abs().min()) for node in heavy.node]
        assert max(gaps) < 1e-7
    extremes = table.set_index("measure").value
    assert extremes["hessian_density.node_max"] == pytest.approx(float(values.max()), abs=1e-8)


def test_density_command_writes_the_tidy_table_and_plot(tmp_path) -> None:
    model, init = fine_tuned(tanh_mlp)
    table, _, _ = _scored(model, init, "hessian_density:steps=20,runs=3")
    scores = tmp_path / "scores.csv"
    write_table(table.assign(checkpoint="ckpt"), scores)
    result = CliRunner().invoke(
        main,
        [
            "density",
            str(scores),
            "--out",
            str(tmp_path / "nodes.csv"),
            "--plot",
            str(tmp_path / "density"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "negative mass" in result.stdout
    nodes = genmeasures.scoring.read_table(tmp_path / "nodes.csv")
    assert list(nodes.columns) == ["checkpoint", "options", "run", "node", "weight"]
    assert sorted(nodes.run.unique()) == [0, 1, 2]
    assert (tmp_path / "density.png").stat().st_size > 0
    assert (tmp_path / "density.pdf").stat().st_size > 0
    whole = table[(table.measure == "hessian_density") & (table.layer == "")].iloc[0]
    assert not math.isnan(whole.stderr)  # three runs: a standard error


def test_density_command_refuses_a_table_without_density(tmp_path) -> None:
    model, init = fine_tuned(tanh_mlp)
    table, _, _ = _scored(model, init, "distance_from_init")
    scores = tmp_path / "scores.csv"
    write_table(table, scores)
    result = CliRunner().invoke(main, ["density", str(scores), "--plot", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert "no hessian_density nodes" in result.output
    assert not (tmp_path / "d.png").exists()
