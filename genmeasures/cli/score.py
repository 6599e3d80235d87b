"""``genmeasures score``: score checkpoints or run directories against their init."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Literal

import click


@click.command("score")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--init",
    type=click.Path(path_type=Path),
    help="Init checkpoint for all PATHS (default: each run directory's epoch-0 checkpoint).",
)
@click.option(
    "--data",
    help="Evaluation data: a dataset spec (e.g. 'digits-target:split=train')"
    " or a path (image folder, CIFAR folder, .npz). Default: the dataset each "
    "checkpoint was trained on, when a measure needs data.",
)
@click.option(
    "--measures",
    "measure_list",
    help="Comma-separated measure names (default: every measure whose inputs are available).",
)
@click.option(
    "--measure",
    "measure_specs",
    multiple=True,
    metavar="'NAME:opt=value,...'",
    help="A measure with options; repeatable.",
)
@click.option(
    "--model",
    "model_spec",
    metavar="'NAME:kwarg=value,...'",
    help="Architecture, overriding what checkpoints record.",
)
@click.option(
    "--samples",
    "n_samples",
    type=click.IntRange(min=1),
    help="Evaluate on a seeded random subset of this many samples.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the subset and stochastic measures.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option(
    "--n-train",
    type=click.IntRange(min=1),
    help="Training-set size (default: from each checkpoint's metadata).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Write the full table to FILE.csv, .parquet or .json.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Result cache (default: $GENMEASURES_CACHE_DIR or ~/.cache/genmeasures).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--allow-import",
    is_flag=True,
    help="Allow model specs naming user code ('package.module:function').",
)
@click.option(
    "--checkpoints",
    "select",
    type=click.Choice(["all", "last", "best"]),
    default="all",
    show_default=True,
    help="Which checkpoints of each run directory to score.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Evaluation batch size. Curvature sums run batch by batch, so it is an input of the "
    "results (and of the cache key); a distributed run shares whole batches among processes.",
)
@click.option(
    "--distributed/--no-distributed",
    default=None,
    help="Share the evaluation batches among the processes torchrun starts "
    "(torchrun --nproc_per_node N -m genmeasures score ...): the same table as one process, "
    "bit for bit. Default: on when torchrun's environment is set.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    paths: tuple[Path, ...],
    init: Path | None,
    data: str | None,
    measure_list: str | None,
    measure_specs: tuple[str, ...],
    model_spec: str | None,
    n_samples: int | None,
    seed: int,
    device: str,
    n_train: int | None,
    out: Path | None,
    cache_dir: Path | None,
    no_cache: bool,
    allow_import: bool,
    select: Literal["all", "last", "best"],  # a click.Choice
    batch_size: int,
    distributed: bool | None,
    quiet: bool,
) -> None:
    """Score checkpoints against their initialization.

    PATHS are run directories (scored at every saved epoch, the init found automatically)
    or checkpoint files (.safetensors, .pt, .pth) with --init. Writes one row per
    checkpoint x measure x layer, with each checkpoint's metrics and gap alongside.
    Results are cached by content: a rerun computes only what changed.

    Under torchrun every process scores the same checkpoints with the same options; each
    computes its share of the evaluation batches (gloo on the CPU, NCCL on CUDA, one GPU per
    process) and rank 0 alone writes the table, the cache and the summary.
    """
    from genmeasures._device import resolve_device
    from genmeasures._specs import parse_model_spec
    from genmeasures.checkpoints import ModelSpec
    from genmeasures.curvature import distributed as shared
    from genmeasures.scoring import score_checkpoints
    from genmeasures.tables import check_table_path, write_table

    if out is not None:  # refused now, not after all the scoring
        check_table_path(out)
    measures = [m.strip() for m in (measure_list or "").split(",") if m.strip()]
    measures += list(measure_specs)
    model = ModelSpec(*parse_model_spec(model_spec)) if model_spec else None
    launched = shared.launched() if distributed is None else distributed
    group = (
        shared.from_environment(resolve_device(device))
        if launched
        else contextlib.nullcontext(None)
    )
    with group as shard:
        report = score_checkpoints(
            list(paths),
            init=init,
            data=data,
            measures=measures or None,
            model=model,
            n_samples=n_samples,
            seed=seed,
            device=device,
            n_train=n_train,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            allow_import=allow_import,
            select=select,
            progress=not quiet,
            batch_size=batch_size,
        )
    if shard is not None and shard.rank != 0:  # rank 0 reports for every rank
        sys.exit(1 if report.failures else 0)
    if shard is not None:
        import torch

        threads = torch.get_num_threads()
        click.echo(
            f"note: the evaluation batches were shared among {shard.world} processes "
            f"({shard.backend}, {threads} torch thread(s) each): the numbers are those of one "
            f"process with {threads} thread(s)",
            err=True,
        )
    table = report.table
    if out is not None and len(table):
        write_table(table, out)
        click.echo(f"wrote {len(table)} rows to {out}", err=True)
    elif len(table):
        _print_summary(table)
    click.echo(f"{report.computed} computed, {report.cached} from cache", err=True)
    for note in report.notes():
        click.echo(f"note: {note}", err=True)
    if report.failures:
        click.echo(f"{len(report.failures)} failure(s):", err=True)
        for failure in report.failures:
            click.echo(f"  {failure}", err=True)
        sys.exit(1)


def _print_summary(table) -> None:
    from genmeasures.tables import whole_model_rows

    whole = whole_model_rows(table)
    shown = whole[["checkpoint", "epoch", "measure", "value", "stderr"]].copy()
    shown["checkpoint"] = shown["checkpoint"].map(lambda p: Path(p).name)
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
