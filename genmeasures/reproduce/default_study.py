"""The default study on the built-in data: which measure predicts the fine-tuning gap?

A CNN pretrained on digits 0-4 is fine-tuned on a small split of digits 5-9 (30 images per
class) with the papers' algorithms, on clean labels and with 40% symmetric label noise, three
seeds each; every measure is scored on the last checkpoint and correlated with the loss gap.
``genmeasures study`` runs :data:`DEFAULT_STUDY`.
"""

from __future__ import annotations

from genmeasures.reproduce.study import Study

TARGET = "digits-target:split=train,n_per_class=30"

DEFAULT_STUDY = Study(
    name="genmeasures default study: digits 0-4 -> 5-9",
    description=(
        "A CNN pretrained on digits 0-4 (scikit-learn's real 8x8 digits), fine-tuned on 30 "
        "images per class of digits 5-9 with erm, constraint at three radii, l2sp, regsl, "
        "robust, nso and sam, on clean labels and with 40% symmetric label noise, three seeds "
        "each. Every measure is computed on the last checkpoint (data measures on the whole "
        "training split, with the labels the model was trained on) and correlated with the "
        "observed loss gap (test loss - train loss)."
    ),
    pretrain={
        "model": {"name": "cnn"},
        "data": {"train": "digits-source:split=train", "test": "digits-source:split=test"},
        "train": {"epochs": 20, "batch_size": 32, "lr": 0.02},
    },
    base={
        "model": {"name": "cnn"},
        "data": {"train": TARGET, "test": "digits-target:split=test", "noise": "symmetric"},
        "train": {"epochs": 30, "batch_size": 16, "lr": 0.01},
    },
    grid={
        "algorithm": [
            {"name": "erm"},
            {"name": "constraint", "distance": 0.2},
            {"name": "constraint", "distance": 0.5},
            {"name": "constraint", "distance": 1.0},
            {"name": "l2sp", "alpha": 0.1},
            {"name": "regsl", "distance": 0.5, "correct_epoch": 5, "reweight_epoch": 3},
            {"name": "robust", "distance": 0.5, "estimate": "known"},
            {"name": "nso", "sigma": 0.01},
            {"name": "sam", "rho": 0.05},
        ],
        "data.noise_rate": [0.0, 0.4],
    },
    seeds=(0, 1, 2),
    measures=(
        "distance_from_init",
        "layerwise_distance",
        "distance_bound",
        "noise_stability:draws=20",
        "hessian_trace:rtol=0.05,max_matvecs=60",
        "hessian_eigenvalue:rtol=0.001,max_matvecs=40",
        "hessian_distance",
        "hessian_bound",
        "pacbayes_trace_bound:batch_size=50,rtol=0.1,max_matvecs=30",
    ),
    score_samples=0,
)
