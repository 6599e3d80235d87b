import os
import pickle

import numpy as np
import pytest
import torch

from genmeasures.data import load_dataset
from genmeasures.data.cifar import read_cifar_batch
from genmeasures.errors import DataError, OptionError
from tests.data.helpers import (
    assert_error,
    cifar_batch,
    write_cifar10,
    write_cifar100,
    write_pickle,
)


def _expected(batches, names, key):
    data = np.concatenate([batches[n][b"data"] for n in names])
    labels = [label for n in names for label in batches[n][key]]
    return torch.from_numpy(data.reshape(-1, 3, 32, 32) / 255.0).float(), labels


def test_cifar10_train_and_test(tmp_path):
    batches = write_cifar10(tmp_path / "c10", n=3)
    train = load_dataset(tmp_path / "c10")
    test = load_dataset(str(tmp_path / "c10"), split="test")
    names = [f"data_batch_{i}" for i in range(1, 6)]
    inputs, labels = _expected(batches, names, b"labels")
    assert train.num_classes == test.num_classes == 10
    assert train.inputs.shape == (15, 3, 32, 32) and train.inputs.dtype == torch.float32
    torch.testing.assert_close(train.inputs, inputs)
    assert train.targets.tolist() == labels
    test_inputs, test_labels = _expected(batches, ["test_batch"], b"labels")
    torch.testing.assert_close(test.inputs, test_inputs)
    assert test.targets.tolist() == test_labels
    assert train.spec == f"cifar:path={tmp_path / 'c10'},split=train"
    assert load_dataset(train.spec).fingerprint() == train.fingerprint()


def test_cifar100_fine_and_coarse(tmp_path):
    batches = write_cifar100(tmp_path / "c100", n=4)
    fine = load_dataset(tmp_path / "c100")
    coarse = load_dataset(tmp_path / "c100", label_type="coarse", split="test")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert fine.targets.tolist() == batches["train"][b"fine_labels"]
    assert coarse.targets.tolist() == batches["test"][b"coarse_labels"]
    torch.testing.assert_close(fine.inputs, _expected(batches, ["train"], b"fine_labels")[0])


def test_normalization_options(tmp_path):
    write_cifar10(tmp_path / "c", n=2)
    raw = load_dataset(tmp_path / "c")
    norm = load_dataset(tmp_path / "c", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.25])
    mean = torch.tensor([0.5, 0.4, 0.3]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.2, 0.25]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(norm.inputs, (raw.inputs - mean) / std)
    assert norm.fingerprint() != raw.fingerprint()
    with pytest.raises(OptionError) as excinfo:
        load_dataset(tmp_path / "c", std=[1, 1])
    assert_error(excinfo, "dataset 'cifar': std must be a number or a list of 3 numbers")
    with pytest.raises(OptionError) as excinfo:
        load_dataset(tmp_path / "c", label_type="coarse")
    assert_error(excinfo, "label_type must be 'fine'", "CIFAR-10", "got 'coarse'")


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("where", ["data_batch_1", "test_batch"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, where):
    root = tmp_path / "evil"
    write_cifar10(root, n=2)
    marker = tmp_path / "pwned"
    batch = cifar_batch(2, 0, {b"labels": 10})
    batch[b"data"] = _Exploit(f"touch {marker}")
    write_pickle(root / where, batch)
    split = "train" if where.startswith("data") else "test"
    with pytest.raises(DataError) as excinfo:
        load_dataset(root, split=split)
    message = assert_error(excinfo, "refusing to unpickle", str(root / where), "system")
    assert message.startswith(f"refusing to unpickle {root / where}: it references ")
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = tmp_path / "batch"
    write_pickle(path, {b"data": np.zeros(2), b"f": pickle.dumps})
    with pytest.raises(DataError) as excinfo:
        read_cifar_batch(path)
    assert_error(excinfo, str(path), "_pickle.dumps")
    write_pickle(path, {b"data": np.zeros(3, np.uint8)}, protocol=5)
    assert read_cifar_batch(path)[b"data"].tolist() == [0, 0, 0]


def test_corrupt_and_incomplete_folders(tmp_path):
    root = tmp_path / "c"
    write_cifar10(root, n=2)
    good = (root / "data_batch_2").read_bytes()
    (root / "data_batch_2").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, "cannot read CIFAR batch", str(root / "data_batch_2"))

    (root / "data_batch_2").write_bytes(b"\x00garbage")
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, str(root / "data_batch_2"))

    (root / "data_batch_2").unlink()
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, str(root), "missing data_batch_2")

    write_pickle(root / "data_batch_2", [1, 2, 3])
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, str(root / "data_batch_2"), "expected a dict")

    write_pickle(root / "data_batch_2", {b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, str(root / "data_batch_2"), "3072")

    batch = cifar_batch(2, 0, {b"labels": 10})
    batch[b"labels"] = [0]
    write_pickle(root / "data_batch_2", batch)
    with pytest.raises(DataError) as excinfo:
        load_dataset(root)
    assert_error(excinfo, str(root / "data_batch_2"), "labels")


def test_labels_out_of_range(tmp_path):
    root = tmp_path / "c"
    write_cifar10(root, n=2)
    batch = cifar_batch(2, 0, {b"labels": 10})
    batch[b"labels"] = [3, 12]
    write_pickle(root / "test_batch", batch)
    with pytest.raises(DataError) as excinfo:
        load_dataset(root, split="test")
    assert_error(excinfo, "label 12", str(root))
