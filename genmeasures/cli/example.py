"""``genmeasures example``: write a small fine-tuning run on the built-in digits."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("example")
@click.argument("out", type=click.Path(path_type=Path), default=Path("runs/example"))
@click.option("--model", default="cnn", show_default=True, help="Registered model name.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fine-tuning epochs (one checkpoint each).",
)
@click.option("--pretrain-epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--n-per-class",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Target training images per class (small, so the model overfits).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(
    out: Path,
    model: str,
    epochs: int,
    pretrain_epochs: int,
    n_per_class: int,
    seed: int,
    quiet: bool,
) -> None:
    """Pretrain on digits 0-4, fine-tune on 5-9, and write the run directory OUT.

    OUT then holds the init (epoch 0) checkpoint, one checkpoint per epoch and metrics.csv,
    ready for `genmeasures score OUT`; OUT/pretrained.safetensors the source model.
    Finished steps are reused.
    """
    from genmeasures._io import check_output_dir
    from genmeasures.errors import OptionError
    from genmeasures.finetune import example_run

    check_output_dir(out, "run directory", OptionError)

    run = example_run(
        out,
        model=model,
        pretrain_epochs=pretrain_epochs,
        epochs=epochs,
        n_per_class=n_per_class,
        seed=seed,
        progress=not quiet,
    )
    click.echo(f"run directory: {run}")
