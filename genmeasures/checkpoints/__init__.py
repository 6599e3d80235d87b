"""Checkpoints: the safetensors + JSON format, safe readers for PyTorch files, run directories,
finding what to score from user paths, and pretrained weights loaded into a new model."""

from genmeasures.checkpoints.backbone import load_backbone
from genmeasures.checkpoints.discovery import FoundCheckpoint, find_checkpoints
from genmeasures.checkpoints.format import (
    Checkpoint,
    CheckpointMeta,
    ModelSpec,
    load_checkpoint,
    save_checkpoint,
)
from genmeasures.checkpoints.run import (
    RunFiles,
    RunWriter,
    find_run_files,
    flatten_config,
    is_run_dir,
    metrics_table,
    read_metrics,
    read_run_info,
)
from genmeasures.checkpoints.validate import (
    check_finite,
    check_matches_init,
    describe_difference,
    same_layout,
)

__all__ = [
    "Checkpoint",
    "CheckpointMeta",
    "FoundCheckpoint",
    "ModelSpec",
    "RunFiles",
    "RunWriter",
    "check_finite",
    "check_matches_init",
    "describe_difference",
    "find_checkpoints",
    "find_run_files",
    "flatten_config",
    "is_run_dir",
    "load_backbone",
    "load_checkpoint",
    "metrics_table",
    "read_metrics",
    "read_run_info",
    "same_layout",
    "save_checkpoint",
]
