"""Datasets for genmeasures: a registry of builders, path loaders and evaluation helpers.

``load_dataset('digits:split=test')`` builds a registered dataset; ``load_dataset(path)`` reads
an image folder, a CIFAR-10/100 python folder or a ``.npz`` file. Registered: ``digits``,
``digits-source``/``digits-target`` (a transfer experiment's source and target tasks),
``digits10-source``/``digits10-target`` (the ten-class transfer: disjoint halves of every digit),
``teacher-student``, ``image-folder``, ``cifar`` and ``npz``.
"""

from genmeasures.data import cifar, digits, image_folder, npz, teacher_student  # registers
from genmeasures.data.base import LabeledDataset, TensorDataset
from genmeasures.data.evalset import EvaluationSet, as_evaluation_set
from genmeasures.data.loading import DATASETS, load_dataset, register_dataset
from genmeasures.data.noise import NoisyLabels, apply_label_noise, count_correct
from genmeasures.data.sampling import evaluation_sample, make_loader

del cifar, digits, image_folder, npz, teacher_student

__all__ = [
    "DATASETS",
    "EvaluationSet",
    "LabeledDataset",
    "NoisyLabels",
    "TensorDataset",
    "apply_label_noise",
    "as_evaluation_set",
    "count_correct",
    "evaluation_sample",
    "load_dataset",
    "make_loader",
    "register_dataset",
]
