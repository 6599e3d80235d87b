import numpy as np
import pytest
import torch

from genmeasures.data import load_dataset
from genmeasures.errors import DataError, OptionError
from tests.data.helpers import assert_error


def _xy(n=6, shape=(2, 3), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)), rng.integers(0, classes, n)


def test_flat_layout(tmp_path):
    x, y = _xy()
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    ds = load_dataset(path)
    assert ds.inputs.dtype == torch.float32 and ds.inputs.shape == (6, 2, 3)
    np.testing.assert_allclose(ds.inputs.numpy(), x.astype(np.float32))
    assert ds.targets.tolist() == y.tolist()
    assert ds.num_classes == int(y.max()) + 1
    assert ds.spec == f"npz:path={path},split=train"
    assert load_dataset(ds.spec).fingerprint() == ds.fingerprint()
    assert load_dataset(str(path)).fingerprint() == ds.fingerprint()


def test_alternative_names_and_num_classes(tmp_path):
    x, y = _xy()
    path = tmp_path / "alt.npz"
    np.savez_compressed(path, inputs=x.astype(np.uint8), labels=y, num_classes=np.array(7))
    ds = load_dataset(path)
    assert ds.num_classes == 7
    assert ds.inputs.dtype == torch.float32
    np.savez(tmp_path / "t.npz", inputs=x, targets=y.astype(np.float64))
    assert load_dataset(tmp_path / "t.npz").targets.tolist() == y.tolist()


def test_split_layout(tmp_path):
    x_train, y_train = _xy(8, seed=1)
    x_test, y_test = _xy(4, seed=2, classes=5)
    path = tmp_path / "s.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    train = load_dataset(path)
    test = load_dataset(f"{path}:split=test")
    assert len(train) == 8 and len(test) == 4
    assert test.targets.tolist() == y_test.tolist()
    # classes are counted over both splits, so train and test agree
    assert train.num_classes == test.num_classes == max(y_train.max(), y_test.max()) + 1
    with pytest.raises(DataError) as excinfo:
        load_dataset(path, split="val")
    assert_error(excinfo, str(path), "x_val")


def test_flat_layout_has_no_test_split(tmp_path):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path / "d.npz", split="test")
    assert_error(excinfo, str(tmp_path / "d.npz"), "split='test'")
    with pytest.raises(OptionError) as excinfo:
        load_dataset(tmp_path / "d.npz", split="everything")
    assert_error(excinfo, "dataset 'npz': split must be one of train|val|test, got 'everything'")


@pytest.mark.parametrize(
    ("arrays", "error", "fragments"),
    [
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, np.int64)}, DataError, ["is empty"]),
        ({"x": np.ones((3, 2)), "y": np.array([0, -1, 1])}, DataError, ["label -1"]),
        (
            {"x": np.ones((3, 2)), "y": np.array([0, 4, 1]), "num_classes": np.array(3)},
            DataError,
            ["label 4", "[0, 3)"],
        ),
        ({"x": np.array([[0.0, np.nan], [1, 1]]), "y": np.array([0, 1])}, DataError, ["NaN"]),
        ({"x": np.array([[0.0, np.inf]]), "y": np.array([0])}, DataError, ["infinite"]),
        ({"x": np.ones((3, 2)), "y": np.array([0.5, 1, 1])}, DataError, ["integers"]),
        ({"x": np.ones((3, 2)), "y": np.array([0, 1])}, DataError, ["3 samples", "2"]),
        ({"x": np.ones((2, 2)), "y": np.zeros((2, 2), int)}, DataError, ["shape (N,)"]),
        ({"x": np.array(["a", "b"]), "y": np.array([0, 1])}, DataError, ["numeric"]),
        ({"inputs": np.ones((2, 2))}, DataError, ["found: inputs"]),
    ],
)
def test_bad_content_names_the_file(tmp_path, arrays, error, fragments):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(error) as excinfo:
        load_dataset(path)
    assert_error(excinfo, str(path), *fragments)


def test_unreadable_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive at all")
    with pytest.raises(DataError) as excinfo:
        load_dataset(garbage)
    assert_error(excinfo, "cannot read npz file", str(garbage))

    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, x=np.ones((50, 50)), y=np.zeros(50, np.int64))
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(DataError) as excinfo:
        load_dataset(truncated)
    assert_error(excinfo, str(truncated))

    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DataError) as excinfo:
        load_dataset(pickled)
    assert_error(excinfo, "holds object arrays", str(pickled))
    assert "allow_pickle" not in str(excinfo.value)  # no advice to load it unsafely

    single = tmp_path / "single.npz"
    with open(single, "wb") as file:
        np.save(file, np.ones(3))
    with pytest.raises(DataError) as excinfo:
        load_dataset(single)
    assert_error(excinfo, str(single), "single array")


def test_other_file_types_are_rejected(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2\n")
    with pytest.raises(DataError) as excinfo:
        load_dataset(path)
    assert_error(excinfo, str(path), ".npz")
