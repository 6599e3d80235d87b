import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from genmeasures.data import TensorDataset, load_dataset
from genmeasures.data.digits import digits_split_indices
from genmeasures.errors import OptionError
from tests.data.helpers import assert_error

SKLEARN = load_digits()


def test_all_split_is_sklearn_digits_scaled():
    ds = load_dataset("digits:split=all")
    assert isinstance(ds, TensorDataset)
    assert ds.inputs.shape == (1797, 1, 8, 8)
    assert ds.inputs.dtype == torch.float32
    assert ds.targets.dtype == torch.int64
    assert ds.num_classes == 10
    assert float(ds.inputs.min()) == 0.0 and float(ds.inputs.max()) == 1.0
    np.testing.assert_allclose(ds.inputs.reshape(1797, 64).numpy(), SKLEARN.data / 16, atol=1e-7)
    assert ds.targets.tolist() == SKLEARN.target.tolist()
    x, y = ds[3]
    assert x.shape == (1, 8, 8) and y.dtype == torch.int64 and y.dim() == 0


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_holds_the_real_images_at_its_indices(split):
    ds = load_dataset("digits", split=split)
    idx = digits_split_indices(split=split)
    assert len(ds) == len(idx)
    np.testing.assert_allclose(ds.inputs.reshape(-1, 64).numpy(), SKLEARN.data[idx] / 16, atol=1e-7)
    assert ds.targets.tolist() == SKLEARN.target[idx].tolist()


def test_classes_are_reindexed_in_the_given_order():
    ds = load_dataset("digits:classes=[5,6,7,8,9],split=all")
    idx = np.flatnonzero(SKLEARN.target >= 5)
    assert ds.num_classes == 5 and len(ds) == len(idx)
    assert ds.targets.tolist() == (SKLEARN.target[idx] - 5).tolist()
    assert ds.spec == "digits:classes=[5,6,7,8,9],split=all"

    ds = load_dataset("digits", classes=[9, 3], split="all")
    idx = np.flatnonzero(np.isin(SKLEARN.target, [3, 9]))
    expected = np.where(SKLEARN.target[idx] == 9, 0, 1)
    assert ds.targets.tolist() == expected.tolist()
    np.testing.assert_allclose(ds.inputs.reshape(-1, 64).numpy(), SKLEARN.data[idx] / 16, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 3])
def test_splits_are_disjoint_stratified_and_cover_the_set(seed):
    parts = {s: digits_split_indices(split=s, split_seed=seed) for s in ("train", "val", "test")}
    sets = {s: set(v.tolist()) for s, v in parts.items()}
    assert not sets["train"] & sets["val"]
    assert not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert sets["train"] | sets["val"] | sets["test"] == set(range(1797))
    counts = np.bincount(SKLEARN.target, minlength=10)
    test_counts = np.bincount(SKLEARN.target[parts["test"]], minlength=10)
    val_counts = np.bincount(SKLEARN.target[parts["val"]], minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * counts) <= 1)
    assert np.all(np.abs(val_counts - 0.1 * counts) <= 1)
    # deterministic
    assert np.array_equal(parts["test"], digits_split_indices(split="test", split_seed=seed))


def test_split_seed_changes_the_split_and_fingerprint():
    a = load_dataset("digits:split=test,split_seed=0")
    b = load_dataset("digits:split=test,split_seed=1")
    assert not np.array_equal(
        digits_split_indices(split="test", split_seed=0),
        digits_split_indices(split="test", split_seed=1),
    )
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == load_dataset("digits:split=test").fingerprint()


def test_n_per_class_caps_train_only():
    small = load_dataset("digits:n_per_class=3")
    assert torch.bincount(small.targets).tolist() == [3] * 10
    full_train = set(digits_split_indices(split="train").tolist())
    assert set(digits_split_indices(split="train", n_per_class=3).tolist()) <= full_train
    test = load_dataset("digits:split=test,n_per_class=3")
    assert len(test) == len(load_dataset("digits:split=test"))


def test_presets_are_source_and_target_tasks():
    source = load_dataset("digits-source")
    target = load_dataset("digits-target:split=test")
    assert source.num_classes == target.num_classes == 5
    assert source.spec == "digits-source:split=train"
    assert source.fingerprint() == load_dataset("digits:classes=[0,1,2,3,4]").fingerprint()
    assert (
        target.fingerprint()
        == load_dataset("digits", classes=[5, 6, 7, 8, 9], split="test").fingerprint()
    )
    small = load_dataset("digits-target", n_per_class=4)
    assert len(small) == 20


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"classes": [10]}, ["classes must be in [0, 9], got [10]"]),
        ({"classes": [5.0]}, ["classes must be", "got [5.0]"]),
        ({"classes": []}, ["classes must list at least one digit, got []"]),
        ({"classes": [1, 1]}, ["classes must not repeat a digit, got [1, 1]"]),
        ({"split": "bogus"}, ["split must be one of train|val|test|all, got 'bogus'"]),
        ({"split": "TRAIN"}, ["split must be one of train|val|test|all, got 'TRAIN'"]),
        ({"val_fraction": 0.8}, ["val_fraction + test_fraction must be < 1, got 0.8 + 0.3"]),
        ({"test_fraction": -0.1}, ["test_fraction must be in [0, 1), got -0.1"]),
        ({"n_per_class": 0}, ["n_per_class must be >= 1, got 0"]),
        ({"split_seed": "x"}, ["split_seed must be int, got 'x'"]),
        ({"split_seed": -1}, ["split_seed must be >= 0, got -1"]),
    ],
)
def test_bad_options_name_the_option(options, fragments):
    with pytest.raises(OptionError) as excinfo:
        load_dataset("digits", **options)
    assert_error(excinfo, "dataset 'digits': ", *fragments)


def test_preset_rejects_classes():
    with pytest.raises(OptionError) as excinfo:
        load_dataset("digits-source:classes=[1]")
    assert_error(excinfo, "'classes'", "digits-source", "n_per_class, split, split_seed")


@pytest.mark.parametrize("split_seed", [0, 3])
def test_ten_class_halves_are_disjoint_and_cover_every_digit(split_seed):
    """digits10-source and digits10-target: disjoint halves of every digit's images, each
    split into train/val/test inside it, together the whole set."""
    indices = {
        (half, split): set(
            digits_split_indices(
                None, split, 0.1, 0.3, split_seed, None, half, 0.5, name="digits10"
            ).tolist()
        )
        for half in ("source", "target")
        for split in ("train", "val", "test")
    }
    every = [i for part in indices.values() for i in part]
    assert len(every) == len(set(every)) == len(SKLEARN.target)
    for half in ("source", "target"):
        members = np.array(sorted(set().union(*(indices[(half, s)] for s in ("train", "test")))))
        counts = np.bincount(SKLEARN.target[members], minlength=10)
        assert counts.min() > 0.3 * np.bincount(SKLEARN.target).min()  # every digit in both
    source = load_dataset(f"digits10-source:split_seed={split_seed}")
    target = load_dataset(f"digits10-target:split=test,split_seed={split_seed}")
    assert source.num_classes == target.num_classes == 10
    images = {tuple(x.reshape(-1).tolist()) for x in np.asarray(source.inputs)}
    shared = [x for x in np.asarray(target.inputs) if tuple(x.reshape(-1).tolist()) in images]
    assert len(shared) <= 2  # the digits set itself holds a few duplicate images


def test_ten_class_target_labels_are_the_digits_and_n_per_class_caps():
    target = load_dataset("digits10-target:n_per_class=30")
    labels = np.asarray(target.targets)
    assert np.bincount(labels).tolist() == [30] * 10
    rows = digits_split_indices(None, "train", 0.1, 0.3, 0, 30, "target", 0.5, name="x")
    np.testing.assert_array_equal(SKLEARN.target[rows], labels)
    fewer = load_dataset("digits10-source:source_fraction=0.25,split=all")
    assert 0.2 * len(SKLEARN.target) < len(fewer) < 0.3 * len(SKLEARN.target)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("digits10-source:source_fraction=1", "source_fraction must be in (0, 1), got 1"),
        ("digits10-target:source_fraction=0", "source_fraction must be in (0, 1), got 0"),
        ("digits10-target:classes=[1]", "'classes'"),
    ],
)
def test_ten_class_bad_options_name_the_option(spec, fragment):
    with pytest.raises(OptionError) as excinfo:
        load_dataset(spec)
    assert_error(excinfo, fragment)
