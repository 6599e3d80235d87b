import math

import numpy as np
import pytest
import torch

from genmeasures.data.base import TensorDataset
from genmeasures.data.noise import (
    NOISE_KINDS,
    NoiseModel,
    NoisyLabels,
    apply_label_noise,
    count_correct,
    transition_matrix,
    validate_transition,
)
from genmeasures.errors import DataError, OptionError
from tests.data.helpers import assert_error

N, K, RATE = 20000, 5, 0.3
CLEAN = torch.arange(N) % K  # uniform clean labels: N / K of each class

HAND_MATRIX = [
    [0.7, 0.1, 0.1, 0.1, 0.0],
    [0.0, 0.8, 0.2, 0.0, 0.0],
    [0.05, 0.05, 0.6, 0.15, 0.15],
    [0.0, 0.0, 0.0, 1.0, 0.0],
    [0.25, 0.0, 0.25, 0.0, 0.5],
]


def _check_statistics(result: NoisyLabels, expected_flip: float) -> None:
    """Flip rate and realised matrix within 4 binomial standard errors of the model."""
    se = math.sqrt(expected_flip * (1 - expected_flip) / N)
    assert abs(result.flip_rate - expected_flip) <= 4 * se, (result.flip_rate, expected_flip)
    realised = result.realised_transition()
    expected = result.transition
    n_row = torch.bincount(result.clean, minlength=K).to(torch.float64)[:, None]
    tolerance = 4 * torch.sqrt(expected * (1 - expected) / n_row)
    diff = (realised - expected).abs()
    assert bool((diff <= tolerance + 1e-12).all()), (realised, expected)


# ----------------------------------------------------------------------------- matrices


def test_transition_matrices():
    eye = torch.eye(K, dtype=torch.float64)
    for kind in ("none", "symmetric", "symmetric_all", "pair"):
        rate = 0.0 if kind == "none" else RATE
        t = transition_matrix(kind, rate, K)
        assert t.dtype == torch.float64 and t.shape == (K, K)
        torch.testing.assert_close(t.sum(dim=1), torch.ones(K, dtype=torch.float64))
        assert bool((t >= 0).all())
    torch.testing.assert_close(transition_matrix("none", 0.0, K), eye)
    sym = transition_matrix("symmetric", RATE, K)
    torch.testing.assert_close(torch.diagonal(sym), torch.full((K,), 1 - RATE, dtype=eye.dtype))
    torch.testing.assert_close(sym[0, 1:], torch.full((K - 1,), RATE / (K - 1), dtype=eye.dtype))
    sym_all = transition_matrix("symmetric_all", RATE, K)
    torch.testing.assert_close(sym_all[0, 0], torch.tensor(1 - RATE + RATE / K, dtype=eye.dtype))
    torch.testing.assert_close(sym_all[0, 1], torch.tensor(RATE / K, dtype=eye.dtype))
    pair = transition_matrix("pair", RATE, K)
    for c in range(K):
        assert pair[c, c] == pytest.approx(1 - RATE)
        assert pair[c, (c + 1) % K] == pytest.approx(RATE)
    custom = transition_matrix("pair", 0.2, 3, pairs=[2, 0, 1])
    expected = torch.tensor([[0.8, 0, 0.2], [0.2, 0.8, 0], [0, 0.2, 0.8]], dtype=torch.float64)
    torch.testing.assert_close(custom, expected)
    # rate 0 is the identity for every kind; "-" may stand for "_"
    for kind in ("symmetric", "symmetric-all", "pair"):
        torch.testing.assert_close(transition_matrix(kind, 0.0, K), eye)
    torch.testing.assert_close(transition_matrix("none", 0, 1), torch.ones(1, 1).double())


# ----------------------------------------------------------------------------- statistics


def test_symmetric_flips_at_rate_and_never_to_itself():
    result = apply_label_noise(CLEAN, K, kind="symmetric", rate=RATE, seed=1)
    assert result.kind == "symmetric" and result.rate == RATE and result.seed == 1
    assert result.noisy.dtype == torch.int64 and result.noisy.shape == (N,)
    _check_statistics(result, RATE)
    # a flipped label lands on each OTHER class about equally often, never on its own
    flipped = ~result.is_clean
    assert bool((result.noisy[flipped] != result.clean[flipped]).all())
    realised = result.realised_transition()
    off = realised[~torch.eye(K, dtype=torch.bool)]
    assert bool((off > 0).all())


def test_symmetric_all_flip_rate_is_r_times_k_minus_1_over_k():
    result = apply_label_noise(CLEAN, K, kind="symmetric_all", rate=RATE, seed=2)
    _check_statistics(result, RATE * (K - 1) / K)
    model = NoiseModel(K, kind="symmetric_all", rate=RATE)
    assert model.expected_flip_rate == pytest.approx(RATE * (K - 1) / K)
    # clearly below r: resampling over all K classes often returns the clean label
    assert result.flip_rate < RATE - 4 * math.sqrt(RATE * (1 - RATE) / N)


def test_pair_flips_only_to_the_mapped_class():
    result = apply_label_noise(CLEAN, K, kind="pair", rate=RATE, seed=3)
    _check_statistics(result, RATE)
    flipped = ~result.is_clean
    assert bool((result.noisy[flipped] == (result.clean[flipped] + 1) % K).all())


def test_pair_with_a_given_mapping():
    pairs = [3, 0, 4, 1, 2]
    result = apply_label_noise(CLEAN, K, kind="pair", rate=0.4, pairs=pairs, seed=4)
    _check_statistics(result, 0.4)
    flipped = ~result.is_clean
    assert bool((result.noisy[flipped] == torch.tensor(pairs)[result.clean[flipped]]).all())
    assert NoiseModel(K, kind="pair", rate=0.4, pairs=np.array(pairs)).pairs == tuple(pairs)


def test_class_conditional_from_a_hand_written_matrix():
    result = apply_label_noise(CLEAN, K, kind="class_conditional", matrix=HAND_MATRIX, seed=5)
    matrix = torch.tensor(HAND_MATRIX, dtype=torch.float64)
    torch.testing.assert_close(result.transition, matrix)
    nominal = 1 - float(torch.diagonal(matrix).mean())
    assert result.kind == "class_conditional" and result.rate == pytest.approx(nominal)
    _check_statistics(result, nominal)
    realised = result.realised_transition()
    assert bool((realised[matrix == 0] == 0).all())  # zero-probability entries are never drawn
    assert bool((result.noisy[result.clean == 3] == 3).all())  # a clean row stays clean
    # the same matrix as a tensor (float32) or numpy array; the derived rate is accepted back
    for given in (matrix.float(), matrix.numpy()):
        again = apply_label_noise(CLEAN, K, kind="class-conditional", matrix=given, seed=5)
        assert torch.equal(again.noisy, result.noisy)
    model = NoiseModel(K, kind="class_conditional", rate=result.rate, matrix=HAND_MATRIX)
    assert torch.equal(model.apply(CLEAN, seed=5).noisy, result.noisy)


def test_class_conditional_with_rows_summing_to_one_within_tolerance():
    matrix = torch.eye(3, dtype=torch.float64) * (1 - 5e-7)
    matrix[:, 0] += 2.5e-7
    checked = validate_transition(matrix, 3)
    torch.testing.assert_close(checked.sum(dim=1), torch.ones(3, dtype=torch.float64))


def test_realised_transition_marks_absent_classes_nan():
    result = apply_label_noise(torch.tensor([0, 0, 2, 2, 2]), 4, kind="symmetric", rate=0.5)
    realised = result.realised_transition()
    assert realised.shape == (4, 4) and realised.dtype == torch.float64
    assert bool(torch.isnan(realised[1]).all()) and bool(torch.isnan(realised[3]).all())
    torch.testing.assert_close(realised[[0, 2]].sum(dim=1), torch.ones(2, dtype=torch.float64))


def test_trailing_zero_probability_class_never_drawn():
    # rows whose last classes have probability 0 and cumulative sums that round below 1
    matrix = [[0.1] * 10 + [0.0, 0.0] for _ in range(12)]
    result = apply_label_noise(
        torch.arange(12000) % 12, 12, kind="class_conditional", matrix=matrix, seed=0
    )
    assert int(result.noisy.max()) <= 9


# ----------------------------------------------------------------------------- seeds, no noise


def test_same_seed_same_labels_different_seed_different():
    a = apply_label_noise(CLEAN, K, kind="symmetric", rate=RATE, seed=7)
    b = apply_label_noise(CLEAN.clone(), K, kind="symmetric", rate=RATE, seed=7)
    c = apply_label_noise(CLEAN, K, kind="symmetric", rate=RATE, seed=8)
    assert torch.equal(a.noisy, b.noisy)
    assert not torch.equal(a.noisy, c.noisy)
    model = NoiseModel(K, kind="symmetric", rate=RATE)
    assert torch.equal(model.apply(CLEAN, seed=7).noisy, a.noisy)


def test_clean_labels_preserved():
    targets = CLEAN.clone()
    result = apply_label_noise(targets, K, kind="pair", rate=RATE, seed=0)
    assert torch.equal(targets, CLEAN)  # the input is not modified
    assert torch.equal(result.clean, CLEAN) and result.clean.dtype == torch.int64
    assert result.clean.data_ptr() != targets.data_ptr()
    from_list = apply_label_noise(CLEAN.tolist(), K, kind="pair", rate=RATE, seed=0)
    assert torch.equal(from_list.noisy, result.noisy)


def test_no_noise_changes_nothing():
    for kind in ("none", "symmetric", "symmetric_all", "pair"):
        result = apply_label_noise(CLEAN, K, kind=kind, rate=0.0, seed=3)
        assert torch.equal(result.noisy, CLEAN), kind
        assert result.flip_rate == 0.0 and bool(result.is_clean.all())
    default = apply_label_noise(CLEAN, K)
    assert default.kind == "none" and torch.equal(default.noisy, CLEAN)
    identity = apply_label_noise(CLEAN, K, kind="class_conditional", matrix=np.eye(K))
    assert torch.equal(identity.noisy, CLEAN)
    single = apply_label_noise(torch.zeros(4, dtype=torch.int64), 1)
    assert single.noisy.tolist() == [0, 0, 0, 0]
    empty = apply_label_noise(torch.zeros(0, dtype=torch.int64), K, kind="symmetric", rate=0.5)
    assert empty.noisy.shape == (0,) and empty.flip_rate == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_draw_does_not_depend_on_the_device():
    cpu = apply_label_noise(CLEAN, K, kind="symmetric", rate=RATE, seed=9)
    gpu = apply_label_noise(CLEAN.cuda(), K, kind="symmetric", rate=RATE, seed=9)
    assert gpu.noisy.device.type == "cuda" and gpu.clean.device.type == "cuda"
    assert torch.equal(gpu.noisy.cpu(), cpu.noisy)
    assert gpu.realised_transition().equal(cpu.realised_transition())


def test_apply_to_dataset():
    dataset = TensorDataset(torch.randn(N, 2), CLEAN, K, spec="toy")
    result = apply_label_noise(dataset.targets, K, kind="symmetric", rate=RATE, seed=0)
    noisy = result.apply_to(dataset)
    assert torch.equal(noisy.targets, result.noisy) and noisy.inputs is dataset.inputs
    assert noisy.num_classes == K
    with pytest.raises(DataError) as excinfo:
        result.apply_to(noisy)
    assert_error(excinfo, "toy", "not the clean labels")


# ----------------------------------------------------------------------------- count_correct


def test_count_correct():
    assert count_correct(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 3])) == 3
    assert count_correct([1, 1], [0, 0]) == 0
    assert count_correct(torch.zeros(0, dtype=torch.int64), torch.zeros(0)) == 0
    result = apply_label_noise(CLEAN, K, kind="pair", rate=RATE, seed=0)
    correct = count_correct(result.noisy, result.clean)
    assert isinstance(correct, int)
    assert correct == N - result.num_flipped == int(result.is_clean.sum())
    assert count_correct(result.clean, result.clean) == N
    with pytest.raises(DataError) as excinfo:
        count_correct(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))
    assert_error(excinfo, "length", "2", "3")


# ----------------------------------------------------------------------------- bad input

BAD_OPTIONS = [
    # (kwargs for apply_label_noise, fragments of the message)
    ({"kind": "gaussian", "rate": 0.1}, ["'gaussian'", "kind", *NOISE_KINDS]),
    ({"kind": 3}, ["label noise: kind must be one of", "got 3"]),
    ({"kind": "symmetric", "rate": 1.2}, ["label noise: rate must be in [0, 1), got 1.2"]),
    ({"kind": "symmetric", "rate": 1.0}, ["label noise: rate must be in [0, 1), got 1.0"]),
    ({"kind": "pair", "rate": -0.1}, ["label noise: rate must be in [0, 1), got -0.1"]),
    ({"kind": "symmetric", "rate": float("nan")}, ["label noise: rate must be finite, got nan"]),
    ({"kind": "symmetric", "rate": "0.2"}, ["label noise: rate must be float, got '0.2'"]),
    ({"kind": "symmetric", "rate": True}, ["label noise: rate must be float, got True"]),
    ({"kind": "none", "rate": 0.2}, ["noise rate", "kind 'none'", "0.2"]),
    ({"kind": "class_conditional"}, ["class_conditional", "matrix"]),
    ({"kind": "class_conditional", "matrix": np.eye(4)}, ["noise matrix", "5 x 5", "(4, 4)"]),
    ({"kind": "class_conditional", "matrix": np.ones(5)}, ["noise matrix", "5 x 5", "(5,)"]),
    ({"kind": "class_conditional", "matrix": "eye"}, ["noise matrix", "str"]),
    (
        {"kind": "class_conditional", "matrix": [[1.2, -0.2, 0, 0, 0], *np.eye(5)[1:].tolist()]},
        ["noise matrix", "[0, 1]", "negative"],
    ),
    (
        {"kind": "class_conditional", "matrix": np.eye(5) + np.diag([0, 0, 1e-3, 0, 0])},
        ["noise matrix row 2", "sums to 1.001", "not 1"],
    ),
    (
        {"kind": "class_conditional", "matrix": np.diag([1, 1, np.nan, 1, 1])},
        ["noise matrix", "[2, 2]", "not finite"],
    ),
    (
        {"kind": "class_conditional", "matrix": HAND_MATRIX, "rate": 0.2},
        ["noise rate", "0.2", "class_conditional"],
    ),
    (
        {"kind": "class_conditional", "matrix": HAND_MATRIX, "pairs": [1, 2, 3, 4, 0]},
        ["noise pairs", "kind 'pair'"],
    ),
    ({"kind": "symmetric", "rate": 0.1, "matrix": np.eye(5)}, ["noise matrix", "'symmetric'"]),
    ({"kind": "symmetric", "rate": 0.1, "pairs": [1, 2, 3, 4, 0]}, ["noise pairs", "'pair'"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, 2, 3]}, ["noise pairs", "5 classes", "3"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, 2, 3, 4, 5]}, ["noise pairs[4] = 5", "[0, 5)"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, 2, 3, 4, -1]}, ["noise pairs[4] = -1"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, 1, 3, 4, 0]}, ["noise pairs[1]", "itself"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, 2.5, 3, 4, 0]}, ["noise pairs[1]", "2.5"]),
    ({"kind": "pair", "rate": 0.1, "pairs": "12340"}, ["noise pairs", "'12340'"]),
    ({"kind": "pair", "rate": 0.1, "pairs": [1, "a", 3, 4, 0]}, ["noise pairs"]),
    ({"kind": "symmetric", "rate": 0.1, "seed": -1}, ["label noise: seed must be in [0, 2**64)"]),
    ({"kind": "symmetric", "rate": 0.1, "seed": 1.5}, ["label noise: seed must be int, got 1.5"]),
    ({"kind": "symmetric", "rate": 0.1, "seed": 2.0}, ["label noise: seed must be int, got 2.0"]),
    ({"kind": "symmetric", "rate": 0.1, "seed": 2**64}, ["label noise: seed", "2**64"]),
]


@pytest.mark.parametrize(("kwargs", "fragments"), BAD_OPTIONS)
def test_bad_options_raise_one_line(kwargs, fragments):
    with pytest.raises(OptionError) as excinfo:
        apply_label_noise(CLEAN[:50], K, **kwargs)
    assert_error(excinfo, *fragments)


def test_bad_num_classes():
    with pytest.raises(OptionError) as excinfo:
        apply_label_noise(torch.zeros(3, dtype=torch.int64), 1, kind="symmetric", rate=0.2)
    assert_error(excinfo, "num_classes >= 2", "got 1", "0.2")
    with pytest.raises(OptionError) as excinfo:
        transition_matrix("pair", 0.2, 1)
    assert_error(excinfo, "num_classes >= 2")
    for bad in (0, -3, 2.0, "5"):
        with pytest.raises(OptionError) as excinfo:
            apply_label_noise(CLEAN[:5], bad)
        assert_error(excinfo, "num_classes", repr(bad))


def test_transition_matrix_rejects_class_conditional_and_unknown_kinds():
    with pytest.raises(OptionError) as excinfo:
        transition_matrix("class_conditional", 0.1, K)
    assert_error(
        excinfo,
        "label noise: kind must be one of none|symmetric|symmetric_all|pair",
        "got 'class_conditional'",
    )
    with pytest.raises(OptionError) as excinfo:
        transition_matrix("asymmetric", 0.1, K)
    assert_error(excinfo, "'asymmetric'", "one of none|symmetric|symmetric_all|pair")
    with pytest.raises(OptionError) as excinfo:
        transition_matrix("symmetric", 1.2, K)
    assert_error(excinfo, "label noise: rate must be in [0, 1), got 1.2")


@pytest.mark.parametrize(
    ("targets", "fragments"),
    [
        (torch.tensor([0, 1, 5, 2]), ["label 5", "index 2", "[0, 5)"]),
        (torch.tensor([0, -1]), ["label -1", "index 1"]),
        (torch.tensor([0.0, 1.5]), ["labels must be integers"]),
        (torch.zeros(2, 2, dtype=torch.int64), ["labels must be 1-D", "(2, 2)"]),
    ],
)
def test_bad_labels_raise_data_error(targets, fragments):
    with pytest.raises(DataError) as excinfo:
        apply_label_noise(targets, K, kind="symmetric", rate=0.2)
    assert_error(excinfo, "noisy-label targets", *fragments)
