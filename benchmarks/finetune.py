"""Fine-tuner speed: ERM against a bare PyTorch loop, and algorithms against pass counts.

    .venv/bin/python benchmarks/finetune.py [--device cpu|cuda] [--rounds N] [--out FILE.json]

1. ERM throughput (samples/s of the training steps, evaluation excluded) of genmeasures'
   loop against a hand-written loop on the same model, data, batch order and optimizer.
   Target: at least 0.9x.
2. Cost per epoch of nso, sam and constraint relative to erm, against what their pass counts
   say (nso: 1 + 2k forward/backward passes, or 2k with lambda = 0; sam: 2; constraint: 1 plus
   a projection). Target: within 15%.
Every runner (the bare loop, erm and each algorithm, each on its own copy of the model)
trains one epoch per round, round-robin, so all see the same background load; a ratio is the
median over rounds of the per-round ratio, with its quartiles. Prints a markdown table and
writes JSON with every epoch time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from genmeasures.data import TensorDataset, load_dataset
from genmeasures.finetune.algorithm import TrainState, build_options, get_algorithm
from genmeasures.finetune.blocks import stage_function
from genmeasures.finetune.trainer import TrainingData, train_one_epoch
from genmeasures.models import build_model, head_name


def make_model(name: str, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    if name == "cnn":
        return build_model("cnn", {"num_classes": 5, "width": 32, "depth": 3}).to(device)
    return build_model(
        "resnet18",
        {"num_classes": 5, "in_channels": 1, "small_input": True, "width_multiplier": 0.25},
    ).to(device)


def digits(resolution: int) -> TensorDataset:
    """All 896 digits of classes 5-9, at ``resolution`` x ``resolution``."""
    dataset = load_dataset("digits-target:split=all")
    if resolution == dataset.inputs.shape[-1]:
        return dataset
    inputs = nn.functional.interpolate(
        dataset.inputs, size=(resolution, resolution), mode="bilinear", align_corners=False
    )
    return TensorDataset(inputs, dataset.targets, dataset.num_classes)


def bare_epoch(model, inputs, labels, batch_size, optimizer, seed) -> None:
    model.train()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        x, y = inputs[index], labels[index]
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()


def ours_epoch(algorithm_name, options, model, dataset, labels, batch_size, device, seed=0):
    head = head_name(model)
    state = TrainState(
        model=model,
        init={n: p.detach().clone() for n, p in model.named_parameters()},
        labels=labels,
        clean_labels=labels,
        num_classes=5,
        device=device,
        head_prefix=head,
        stage_of=stage_function(model, head),
        seed=seed,
        train_dataset=dataset,
    )
    cls = get_algorithm(algorithm_name)
    algorithm = cls(build_options(cls, options), state)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = TrainingData(dataset, batch_size, device)

    def run() -> None:
        state.generator = torch.Generator().manual_seed(seed)
        train_one_epoch(algorithm, optimizer, data, [], amp=False)

    return run, algorithm


ALGORITHMS = [
    ("nso (k=1, two-sided, lambda=0)", "nso", {"k": 1, "lam": 0.0, "two_sided": True}, 2),
    ("nso (k=2, two-sided, lambda=0)", "nso", {"k": 2, "lam": 0.0, "two_sided": True}, 4),
    ("nso (k=1, two-sided, lambda=0.5)", "nso", {"k": 1, "lam": 0.5, "two_sided": True}, 3),
    ("sam", "sam", {}, 2),
    ("constraint", "constraint", {}, 1),
]


def timed(fn: Callable[[], None], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def round_robin(
    runners: dict[str, Callable[[], None]], rounds: int, device: torch.device
) -> dict[str, list[float]]:
    """Epoch seconds of every runner, one epoch each per round after a warm-up round.

    Interleaving puts every runner under the same background load within a round, so the
    per-round ratios to ERM are far steadier than ratios of separately taken best times.
    """
    for fn in runners.values():
        fn()
    times: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, fn in runners.items():
            times[key].append(timed(fn, device))
    return times


def spread(values: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{q1:.2f}-{q3:.2f}"


def bench_model(
    model_name: str, dataset, batch_size: int, rounds: int, device: torch.device
) -> tuple[list[dict], list[str]]:
    inputs, labels = dataset.inputs.to(device), dataset.targets.to(device)
    runners: dict[str, Callable[[], None]] = {}
    declared: dict[str, int] = {}
    bare_model = make_model(model_name, device)
    bare_optimizer = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9)
    runners["bare"] = partial(bare_epoch, bare_model, inputs, labels, batch_size, bare_optimizer, 0)
    runners["erm"], _ = ours_epoch(
        "erm", {}, make_model(model_name, device), dataset, labels, batch_size, device
    )
    for label, name, options, _ in ALGORITHMS:
        runners[label], algorithm = ours_epoch(
            name, options, make_model(model_name, device), dataset, labels, batch_size, device
        )
        declared[label] = algorithm.passes_per_step()
    times = round_robin(runners, rounds, device)
    per_round = {
        key: [t / erm for t, erm in zip(values, times["erm"], strict=True)]
        for key, values in times.items()
    }
    # ours / bare throughput per round = bare seconds / ours seconds
    throughput = per_round["bare"]
    ratio = statistics.median(throughput)
    ok = ratio >= 0.9
    rows = [
        {
            "model": model_name,
            "what": "erm throughput vs bare loop",
            "bare_s": times["bare"],
            "ours_s": times["erm"],
            "ratio": ratio,
            "target": ">= 0.9",
            "pass": ok,
        }
    ]
    lines = [
        f"| {model_name} | erm throughput / bare loop |"
        f" {len(labels) / statistics.median(times['erm']):.0f} vs"
        f" {len(labels) / statistics.median(times['bare']):.0f} samples/s |"
        f" {ratio:.2f}x ({spread(throughput)}) | >= 0.9x | {'PASS' if ok else 'FAIL'} |"
    ]
    for label, name, _, passes in ALGORITHMS:
        measured = statistics.median(per_round[label])
        expected = float(passes)
        ok = (
            measured <= 1.15
            if name == "constraint"
            else abs(measured - expected) / expected <= 0.15
        )
        rows.append(
            {
                "model": model_name,
                "what": label,
                "epoch_s": times[label],
                "relative_to_erm": measured,
                "relative_to_erm_per_round": per_round[label],
                "passes": passes,
                "declared_passes": declared[label],
                "pass": ok,
            }
        )
        lines.append(
            f"| {model_name} | {label} | {statistics.median(times[label]):.3f} s/epoch |"
            f" {measured:.2f}x erm ({spread(per_round[label])}) |"
            f" {expected:g}x (+-15%) | {'PASS' if ok else 'FAIL'} |"
        )
        print(f"{model_name}: {label} {measured:.2f}x erm", flush=True)
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--rounds", type=int, default=15, help="timed epochs of each runner (after a warm-up)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 keeps timings stable on a shared 2-core box)",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=8,
        help="input size: the 8x8 digits, or upsampled (bilinear) to make passes cost more",
    )
    parser.add_argument("--models", default="cnn,resnet18", help="comma-separated: cnn,resnet18")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune-cpu.json"))
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (quartiles need two rounds)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = digits(args.resolution)
    batch_size = 64
    started = time.perf_counter()
    rows, lines = [], []
    for model_name in args.models.split(","):
        model_rows, model_lines = bench_model(model_name, dataset, batch_size, args.rounds, device)
        rows += model_rows
        lines += model_lines
    header = [
        "| model | what | measured (median) | ratio: median (quartiles) over rounds | target | |",
        "|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + lines)
    print(
        f"Device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}; batch {batch_size}, "
        f"{len(dataset)} digits images at {args.resolution}x{args.resolution}; "
        f"{args.rounds} round-robin rounds "
        f"({time.perf_counter() - started:.0f} s)"
    )
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "device": str(device),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rounds": args.rounds,
                "resolution": args.resolution,
                "rows": rows,
            },
            indent=2,
        )
    )
    args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
