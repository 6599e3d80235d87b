"""Fine-tuning: one training loop, the papers' algorithms as plugins, run export and resume.

config = load_config("ft.toml", ["algorithm.name=constraint", "algorithm.distance=0.5"])
finetune(config, "runs/constraint")          # resumable; then `genmeasures score`
"""

from genmeasures.checkpoints.backbone import load_backbone
from genmeasures.finetune.algorithm import (
    ALGORITHMS,
    Algorithm,
    TrainState,
    get_algorithm,
    register_algorithm,
)
from genmeasures.finetune.config import FinetuneConfig, config_from_mapping, load_config
from genmeasures.finetune.example import example_run
from genmeasures.finetune.run import finetune, pretrain

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "FinetuneConfig",
    "TrainState",
    "config_from_mapping",
    "example_run",
    "finetune",
    "get_algorithm",
    "load_backbone",
    "load_config",
    "pretrain",
    "register_algorithm",
]
