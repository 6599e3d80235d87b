import os

import numpy as np
import pytest
import torch
from PIL import Image

from genmeasures.data import load_dataset, make_loader
from genmeasures.data.image_folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset
from genmeasures.errors import DataError, OptionError
from tests.data.helpers import assert_error, write_image_folder, write_png

PLAIN = {"mean": 0, "std": 1}


def test_class_subfolders_become_sorted_labels(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"cat": 2, "ant": 3, "bee": 1})
    ds = load_dataset(root, image_size=6)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["ant", "bee", "cat"] and ds.num_classes == 3
    assert ds.targets.tolist() == [0, 0, 0, 1, 2, 2]
    assert ds.spec == f"image-folder:image_size=6,path={root},split=train"
    x, y = ds[0]
    assert x.shape == (3, 6, 6) and x.dtype == torch.float32 and int(y) == 0


def test_pixels_are_resized_scaled_and_normalized(tmp_path):
    pixels = write_png(tmp_path / "f" / "a" / "one.png", seed=1, size=(4, 4))
    raw = load_dataset(tmp_path / "f", image_size=4, **PLAIN)
    x, _ = raw[0]
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), pixels / 255.0, atol=1e-6)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    normalized, _ = load_dataset(str(tmp_path / "f"), image_size=4)[0]
    mean = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    torch.testing.assert_close(normalized, (x - mean) / std)
    resized = Image.fromarray(pixels).resize((2, 2), Image.Resampling.BILINEAR)
    small, _ = load_dataset(tmp_path / "f", image_size=2, **PLAIN)[0]
    np.testing.assert_allclose(
        small.permute(1, 2, 0).numpy(), np.asarray(resized) / 255.0, atol=1e-6
    )


def test_grayscale_has_one_unnormalized_channel(tmp_path):
    root = write_image_folder(tmp_path / "g", {"a": 1, "b": 1})
    x, _ = load_dataset(root, grayscale=True, image_size=5)[1]
    assert x.shape == (1, 5, 5)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_train_test_layout(tmp_path):
    write_image_folder(tmp_path / "d" / "train", {"a": 2, "b": 2, "c": 1})
    write_image_folder(tmp_path / "d" / "test", {"a": 1, "c": 1}, seed=50)
    train = load_dataset(tmp_path / "d", image_size=4)
    test = load_dataset(f"{tmp_path / 'd'}:split=test,image_size=4")
    assert len(train) == 5 and len(test) == 2
    assert train.num_classes == test.num_classes == 3  # union of class folders
    assert test.targets.tolist() == [0, 2]  # "c" keeps label 2 although "b" is missing
    everything = load_dataset(tmp_path / "d", split="all", image_size=4)
    assert len(everything) == 7
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path / "d", split="val")
    assert_error(excinfo, str(tmp_path / "d"), "val/")


def test_val_folder_serves_as_test(tmp_path):
    write_image_folder(tmp_path / "d" / "train", {"a": 1, "b": 1})
    write_image_folder(tmp_path / "d" / "val", {"a": 1, "b": 2})
    assert len(load_dataset(tmp_path / "d", split="test")) == 3


def test_flat_folder_has_no_test_split(tmp_path):
    root = write_image_folder(tmp_path / "flat", {"a": 1, "b": 1})
    with pytest.raises(DataError) as excinfo:
        load_dataset(root, split="test")
    assert_error(excinfo, str(root), "split='test'")


def test_other_extensions_and_non_images_ignored(tmp_path):
    root = tmp_path / "mixed"
    write_png(root / "a" / "x.png", 0)
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "a" / "y.JPG")
    (root / "b").mkdir()
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "b" / "z.bmp")
    (root / "a" / "notes.txt").write_text("hello")
    (root / "readme.md").write_text("top-level files are ignored")
    ds = load_dataset(root, image_size=3)
    assert len(ds) == 3 and ds.targets.tolist() == [0, 0, 1]


def test_undecodable_image_raises_when_accessed(tmp_path):
    root = write_image_folder(tmp_path / "bad", {"a": 1, "b": 1})
    broken = root / "b" / "broken.png"
    broken.write_bytes(b"this is not a png")
    ds = load_dataset(root, image_size=4)
    assert len(ds) == 3
    ds[0]
    with pytest.raises(DataError) as excinfo:
        ds[ds.files.index(broken)]
    assert_error(excinfo, "cannot decode image", str(broken))
    with pytest.raises(DataError):
        list(make_loader(ds, batch_size=2))


def test_empty_folder_and_folder_without_classes(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as excinfo:
        load_dataset(empty)
    assert_error(excinfo, str(empty), "no class subfolders")

    loose = tmp_path / "loose"
    write_png(loose / "a.png", 0)
    with pytest.raises(DataError) as excinfo:
        load_dataset(loose)
    assert_error(excinfo, str(loose), "no class subfolders")

    no_images = tmp_path / "noimg"
    (no_images / "a").mkdir(parents=True)
    (no_images / "a" / "x.txt").write_text("x")
    with pytest.raises(DataError) as excinfo:
        load_dataset(no_images)
    assert_error(excinfo, str(no_images), "no images")


def test_fingerprint_tracks_files_labels_and_preprocessing(tmp_path):
    root = write_image_folder(tmp_path / "fp", {"a": 2, "b": 2})
    first = load_dataset(root).fingerprint()
    assert load_dataset(root).fingerprint() == first
    assert load_dataset(root, image_size=32).fingerprint() != first
    image = root / "a" / "img0.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_dataset(root).fingerprint() != first


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"image_size": 0}, "image_size must be >= 1, got 0"),
        ({"std": [1, 0, 1]}, "std must be > 0, got [1, 0, 1]"),
        ({"mean": [0.5, 0.5]}, "mean must be a number or a list of 3 numbers, got [0.5, 0.5]"),
        ({"grayscale": "yes please"}, "grayscale must be bool, got 'yes please'"),
        ({"resize": 3}, "'resize'"),
    ],
)
def test_bad_options(tmp_path, options, fragment):
    root = write_image_folder(tmp_path / "o", {"a": 1})
    with pytest.raises(OptionError) as excinfo:
        load_dataset(root, **options)
    assert_error(excinfo, fragment, "image-folder")
