"""The case table itself (tests/cases.py): complete, named uniquely, built reproducibly."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.cases import CASES, DEVICES, DTYPES, LAYOUTS, LOSSES, MODELS, N_SAMPLES, Case, make_case


def test_the_table_is_the_full_cross_product_with_unique_names() -> None:
    axes = (MODELS, LOSSES, LAYOUTS, DTYPES, DEVICES)
    assert {(c.model, c.loss, c.layout, c.dtype, c.device) for c in CASES} == set(
        itertools.product(*axes)
    )
    assert len({case.id for case in CASES}) == len(CASES)
    with pytest.raises(KeyError, match="no model"):
        make_case(model="resnet1000")


def test_a_case_builds_the_same_objects_for_the_same_seed() -> None:
    first, second = make_case(model="cnn").build(), make_case(model="cnn").build()
    for (name, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(first.inputs, second.inputs) and torch.equal(first.targets, second.targets)
    other = make_case(model="cnn").build(seed=1)
    assert not torch.equal(first.inputs, other.inputs)


def test_case_fixture_gives_a_model_that_takes_its_data(case: Case) -> None:
    """Every case: the model in training mode on its device and dtype, moved away from its
    init; the loss one value per sample; the layout's batches covering the sample once."""
    built = case.build()
    parameter = next(built.model.parameters())
    assert parameter.dtype == DTYPES[case.dtype] and parameter.device.type == case.device
    assert built.model.training
    moved = [
        not torch.equal(a, b)
        for a, b in zip(built.model.parameters(), built.init.parameters(), strict=True)
    ]
    assert all(moved)
    sizes = [len(targets) for _, targets in built.data.batches()]
    assert sum(sizes) == len(built.data) == N_SAMPLES
    assert len(sizes) == -(-N_SAMPLES // LAYOUTS[case.layout].batch_size)
    inputs, targets = next(built.data.batches(built.device))
    with torch.no_grad():
        losses = built.loss(built.model.eval()(inputs), targets)
    assert losses.shape == (len(targets),) and torch.isfinite(losses).all()
