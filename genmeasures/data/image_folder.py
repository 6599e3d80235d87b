"""A folder of class subfolders of images (``image-folder``), decoded lazily with Pillow."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from genmeasures.constraints import AtLeast, Strict
from genmeasures.data.base import ChannelStd, ChannelValues, LabeledDataset, per_channel
from genmeasures.data.loading import register_dataset
from genmeasures.errors import DataError, one_line

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "ImageFolderDataset"]

_NAME = "image-folder"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_DIRS = ("train", "val", "test")


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot list image folder {folder}: {one_line(exc)}") from None
    return [p for p in entries if p.is_dir() and not p.name.startswith(".")]


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, symbolic links followed, in sorted order.

    Each real directory is read once: a link back to an ancestor (``ln -s . sub``) or a
    second link to the same directory would count its images again (or loop forever), so it
    is an error naming the link.
    """
    files = []
    seen: dict[tuple[int, int], Path] = {}
    for root, dirs, names in os.walk(folder, followlinks=True, onerror=_raise_walk_error):
        here = Path(root)
        try:
            info = here.stat()
        except OSError as exc:
            raise DataError(f"cannot read image folder {here}: {one_line(exc)}") from None
        identity = (info.st_dev, info.st_ino)
        if identity in seen:
            raise DataError(
                f"image folder {folder}: {here} leads back to {seen[identity]} (a symbolic-link "
                "loop or a second link to one folder), which would count its images twice"
            )
        seen[identity] = here
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in sorted(names):
            if not file_name.startswith(".") and file_name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(here / file_name)
    return files


def _raise_walk_error(exc: OSError) -> None:
    raise DataError(f"cannot read image folder {exc.filename}: {exc.strerror or exc}")


def _split_folder(root: Path, split: str) -> tuple[Path, list[Path]]:
    """The folder holding the class subfolders for ``split`` and all split folders."""
    present = [root / s for s in SPLIT_DIRS if (root / s).is_dir()]
    if not present:
        if split in ("train", "all"):
            return root, [root]
        raise DataError(
            f"image folder {root} has no train/, val/ or test/ subfolders, so split={split!r} "
            "is not available (use split=train for the whole folder)"
        )
    if split == "all":
        return root, present
    wanted = {"test": ("test", "val"), "val": ("val",), "train": ("train",)}[split]
    for name in wanted:
        if (root / name).is_dir():
            return root / name, present
    missing = " or ".join(f"{name}/" for name in wanted)
    raise DataError(f"image folder {root} has no {missing} subfolder for split={split!r}")


class ImageFolderDataset(LabeledDataset):
    """Images under ``root/<class>/...``; labels are the class subfolders in sorted order.

    Images are decoded on ``__getitem__``: converted to RGB (or to one channel with
    ``grayscale``), resized to ``image_size x image_size`` (bilinear), scaled to ``[0, 1]`` and
    normalized with ``mean``/``std`` (``None`` for no normalization). An undecodable file
    raises :class:`DataError` naming it when it is accessed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        class_names: list[str],
        files: list[Path],
        labels: list[int],
        image_size: int = 224,
        grayscale: bool = False,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        spec: str = _NAME,
    ) -> None:
        self.root = Path(root)
        self.classes = list(class_names)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.files = list(files)
        self.targets = torch.tensor(labels, dtype=torch.int64)
        self.num_classes = len(self.classes)
        self.image_size = image_size
        self.grayscale = grayscale
        channels = 1 if grayscale else 3
        self._mean = None if mean is None else torch.tensor(mean).reshape(channels, 1, 1)
        self._std = None if std is None else torch.tensor(std).reshape(channels, 1, 1)
        self.mean, self.std = mean, std
        self.spec = spec
        self._fingerprint = None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load_image(self.files[index]), self.targets[index]

    def load_image(self, path: Path) -> torch.Tensor:
        """Decode and preprocess one image file into a ``(C, S, S)`` float tensor."""
        from PIL import Image

        try:
            with Image.open(path) as opened:
                image = opened.convert("L" if self.grayscale else "RGB")
                image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {path}: {one_line(exc)}") from None
        x = torch.from_numpy(array.copy())
        x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        return x

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(
            f"image-folder;size={self.image_size};gray={self.grayscale};"
            f"mean={self.mean};std={self.std};classes={self.num_classes}\n".encode()
        )
        for path, label in zip(self.files, self.targets.tolist(), strict=True):
            try:
                stat = path.stat()
            except OSError as exc:
                raise DataError(f"cannot read image {path}: {one_line(exc)}") from None
            relative = path.relative_to(self.root).as_posix()
            digest.update(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}\t{label}\n".encode())
        return digest.hexdigest()


@register_dataset(_NAME)
def image_folder(
    path: str,
    split: Annotated[Literal["train", "val", "test", "all"], Strict()] = "train",
    image_size: Annotated[int, AtLeast(1)] = 224,
    grayscale: bool = False,
    mean: ChannelValues = None,
    std: ChannelStd = None,
) -> ImageFolderDataset:
    """A directory of class subfolders of images (.png .jpg .jpeg .bmp .gif .webp).

    Layouts: ``path/<class>/<images>`` or ``path/{train,test,val}/<class>/<images>``. With
    split folders, ``split`` picks one (``test`` falls back to ``val``; ``all`` takes them
    all) and the classes are the sorted union of the class subfolders of every split, so labels
    agree between splits. Without them the folder itself is the ``train`` split.

    Images are decoded lazily, converted to RGB (or grayscale), resized to ``image_size``
    (square, bilinear), scaled to ``[0, 1]`` and normalized with ``mean``/``std`` (default:
    ImageNet's for RGB, none for grayscale; pass ``mean=0,std=1`` to turn it off).
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"no such file or directory: {path}")
    if not root.is_dir():
        raise DataError(f"image folder {path} is not a directory")
    channels = 1 if grayscale else 3
    mean_option: float | Sequence[float] | None = mean
    std_option: float | Sequence[float] | None = std
    if not grayscale:
        mean_option = IMAGENET_MEAN if mean is None else mean
        std_option = IMAGENET_STD if std is None else std
    mean_values = per_channel(mean_option, channels, where=f"dataset {_NAME!r}", name="mean")
    std_values = per_channel(std_option, channels, where=f"dataset {_NAME!r}", name="std")

    folder, split_folders = _split_folder(root, split)
    class_names = sorted({d.name for s in split_folders for d in _visible_dirs(s)})
    if not class_names:
        raise DataError(f"image folder {folder} has no class subfolders")
    sources = split_folders if folder == root and split == "all" else [folder]
    files: list[Path] = []
    labels: list[int] = []
    for source in sources:
        for label, class_name in enumerate(class_names):
            class_dir = source / class_name
            if class_dir.is_dir():
                found = _image_files(class_dir)
                files.extend(found)
                labels.extend([label] * len(found))
    if not files:
        raise DataError(
            f"image folder {folder} contains no images ({' '.join(IMAGE_EXTENSIONS)}) "
            "in its class subfolders"
        )
    return ImageFolderDataset(
        root, class_names, files, labels, image_size, grayscale, mean_values, std_values
    )
