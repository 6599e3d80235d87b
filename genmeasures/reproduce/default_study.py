"""The default study on the built-in data: which measure predicts the fine-tuning gap?

In the papers' regime shrunk to a CPU (:mod:`genmeasures.reproduce.regime`): a depth-20
ResNet-18 at width 1/8, pretrained on one half of every digit's images, is fine-tuned on 30
images per digit of the other half with the papers' algorithms, on clean labels and with 40%
symmetric label noise (which erm memorizes), three seeds each; every measure is scored on
the last checkpoint and correlated with the loss gap. ``genmeasures study`` runs
:data:`DEFAULT_STUDY`.
"""

from __future__ import annotations

from genmeasures.reproduce.regime import quick_base, quick_pretrain
from genmeasures.reproduce.study import Study

#: One layer-wise constraint for every method that has one (D for the stem and stages 1-2,
#: D * gamma for stage 3, D * gamma^2 for stage 4).
RADII = {"distance": 0.2, "gamma": 2.0}

DEFAULT_STUDY = Study(
    name="genmeasures default study: digits, ResNet-18 (width 1/8), clean and 40% noise",
    description=(
        "A depth-20 ResNet-18 (width 1/8) pretrained on one half of every digit's images "
        "(scikit-learn's real 8x8 digits), fine-tuned on 30 images per digit of the other half "
        "for 30 epochs with erm, constraint, l2sp, regsl, robust, nso and sam, on clean labels "
        "and with 40% symmetric label noise, three seeds each (a seed fixes the head's init, the "
        "batch order and the noisy labels, the same for every method). Every measure is "
        "computed on the last checkpoint (data measures on the whole training split, with the "
        "labels the model was trained on) and correlated with the observed loss gap (test loss "
        "- train loss)."
    ),
    pretrain=quick_pretrain(),
    base=quick_base(data={"noise": "symmetric"}),
    grid={
        "algorithm": [
            {"name": "erm"},
            {"name": "constraint", **RADII},
            {"name": "l2sp", "alpha": 0.1},
            {"name": "regsl", **RADII},
            {"name": "robust", **RADII, "estimate": "known"},
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
        "hessian_trace:rtol=0.1,max_matvecs=30",
        "hessian_eigenvalue:rtol=0.001,max_matvecs=40",
        "hessian_distance",
        "hessian_bound",
        "pacbayes_trace_bound:batch_size=50,rtol=0.1,max_matvecs=30",
    ),
    score_samples=0,
)
