"""Data-parallel curvature: two gloo ranks, each computing half the evaluation batches, give
bit for bit what one process gives (H v, G v, traces, eigenvalues, the paper-exact Hessian
distance and bound); ranks given other data are refused in one line.

The ranks are spawned processes on 127.0.0.1 (a free port); the reference is computed in
this process. Tiny float64 models, 32 samples in batches of 5 (a short last batch), one
torch thread everywhere (CPU reductions depend on the thread count).
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genmeasures.curvature import GGNOperator, HessianOperator, ggn
from genmeasures.curvature import distributed as shard_mod
from genmeasures.curvature.distributed import DistributedError, Shard, owned_range
from genmeasures.curvature.vectors import flatten, unflatten
from genmeasures.data import EvaluationSet
from genmeasures.losses import cross_entropy_per_sample as ce
from genmeasures.measures import MeasureContext, get_measure
from genmeasures.models import build_model
from tests.cases import MODELS

WORLD = 2
N_SAMPLES = 32
BATCH = 5  # 32 = 6 x 5 + 2: seven batches, ranks own 4 and 3
CPU = torch.device("cpu")
DEADLINE_S = 300

MEASURES: list[tuple[str, str, dict[str, Any]]] = [
    # estimator=auto: the probe, exact Gauss-Newton traces, the pilot and its choice
    ("tanh", "hessian_trace", {"max_matvecs": 40}),
    ("tanh", "hessian_trace", {"estimator": "hutchinson", "rtol": 0.0, "max_matvecs": 12}),
    ("tanh", "hessian_trace", {"estimator": "hutchpp", "max_matvecs": 30}),
    ("tanh", "hessian_trace", {"estimator": "exact"}),
    ("tanh", "hessian_trace", {"curvature": "ggn", "estimator": "hutchinson", "max_matvecs": 8}),
    ("tanh", "hessian_trace", {"reduce": "max_batch", "batch_size": 8, "max_matvecs": 20}),
    ("tanh", "hessian_eigenvalue", {"k": 2, "per_layer": True}),
    ("tanh", "hessian_density", {"runs": 2, "steps": 8}),
    ("tanh", "hessian_distance", {}),  # the paper's: psd blocks, max over samples
    ("tanh", "hessian_bound", {}),
    ("tanh", "hessian_distance", {"quadrature_steps": 6, "exact_max_dim": 4}),
    (
        "tanh",
        "hessian_distance",
        {"curvature": "hessian", "blocks": "joint", "reduce": "max_batch", "max_loss": "batch"},
    ),
    ("relu", "hessian_distance", {}),  # affine blocks: the probe decides on rank 0
    ("relu", "hessian_trace", {}),
    ("relu", "pacbayes_trace_bound", {"batch_size": 8, "max_matvecs": 20}),
    ("vit", "hessian_trace", {"max_matvecs": 12}),
    ("cnn", "hessian_trace", {}),
    ("cnn", "hessian_distance", {}),
]


def _model(kind: str) -> torch.nn.Module:
    """tanh/relu: an MLP on 4 features; vit, cnn: the case table's (attention's packed
    projection takes the vmapped Gauss-Newton route; BatchNorm with running statistics)."""
    if kind in MODELS:
        model = MODELS[kind].build(0).double()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(0))
                module.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(1))
        return model
    torch.manual_seed(0)
    spec = {"in_features": 4, "hidden": [6], "num_classes": 3, "activation": kind}
    return build_model("mlp", spec).double()


def _problem(kind: str = "tanh", data_seed: int = 1):
    """(fine-tuned model, init state, inputs, targets): deterministic."""
    init = _model(kind)
    model = _model(kind)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    model.train()  # as handed over from training: the measures put it in eval mode
    data = torch.Generator().manual_seed(data_seed)
    shape = MODELS[kind].input_shape if kind in MODELS else (4,)
    inputs = torch.randn(N_SAMPLES, *shape, generator=data, dtype=torch.float64)
    targets = torch.randint(0, 3, (N_SAMPLES,), generator=data)
    return model, {k: v.detach().clone() for k, v in init.state_dict().items()}, inputs, targets


def _context(kind: str, data_seed: int = 1) -> MeasureContext:
    model, init, inputs, targets = _problem(kind, data_seed)
    return MeasureContext(
        weights={k: v.detach() for k, v in model.state_dict().items()},
        init=init,
        model_factory=lambda: model,
        data=EvaluationSet.from_tensors(inputs, targets, batch_size=BATCH),
        n_train=100,
        seed=3,
    )


def _products() -> dict[str, Any]:
    """H v and G v for three vectors over the seven batches, and over two batches (a rank's
    single batch keeps its graph) and one (rank 1 holds nothing)."""
    model, _, inputs, targets = _problem()
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    batches = [(inputs[i : i + BATCH], targets[i : i + BATCH]) for i in range(0, N_SAMPLES, BATCH)]
    out: dict[str, Any] = {}
    for label, part in (("all", batches), ("two", batches[:2]), ("one", batches[:1])):
        hessian = HessianOperator(model, names, part, ce)
        like = hessian.params
        generator = torch.Generator().manual_seed(0)
        dim = sum(p.numel() for p in like)
        vectors = [
            unflatten(torch.randn(dim, generator=generator, dtype=torch.float64), like)
            for _ in range(3)
        ]
        out[f"hv_{label}"] = torch.stack([flatten(p) for p in hessian.matmat(vectors)])
        out[f"hv1_{label}"] = flatten(hessian.matvec(vectors[0]))  # again: a reused graph
        ggn = GGNOperator(model, names, part, ce)
        out[f"gv_{label}"] = torch.stack([flatten(p) for p in ggn.matmat(vectors)])
    return out


def _measures() -> list[dict[str, Any]]:
    contexts = {kind: _context(kind) for kind in dict.fromkeys(k for k, _, _ in MEASURES)}
    results = []
    for kind, name, options in MEASURES:
        result = get_measure(name)(contexts[kind], **options).to_json()
        result.pop("seconds")
        results.append(result)
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    """One rank: products and measures under a 2-rank gloo shard, then the refused case."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    calls = {"n": 0}
    original = HessianOperator._batch_matmat

    def counted(self, inputs, targets, vectors):
        calls["n"] += 1
        return original(self, inputs, targets, vectors)

    HessianOperator._batch_matmat = counted  # type: ignore[method-assign]
    shared_sums = ggn._shared_block_sums
    unshared = {"n": 0, "shared": 0}

    def sums(*args):
        found = shared_sums(*args)
        unshared["n" if found is None else "shared"] += 1
        return found

    ggn._shared_block_sums = sums
    result: dict[str, Any] = {}
    try:
        with shard_mod.sharding(Shard(rank, WORLD)):
            result["products"] = _products()
            result["product_calls"] = calls["n"]
            result["measures"] = _measures()
            result["ggn_sums"] = dict(unshared)
            # Rank 1 holds other evaluation data: refused on both ranks before computing.
            ctx = _context("tanh", data_seed=1 if rank == 0 else 2)
            try:
                get_measure("hessian_trace")(ctx)
            except DistributedError as exc:
                result["refused"] = str(exc)
    finally:
        HessianOperator._batch_matmat = original  # type: ignore[method-assign]
        ggn._shared_block_sums = shared_sums
        dist.destroy_process_group()
    torch.save(result, Path(out) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ranks' results, and the single-process reference computed here meanwhile."""
    out = tmp_path_factory.mktemp("ranks")
    context = mp.start_processes(
        _worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn"
    )
    try:
        reference = {"products": _products(), "measures": _measures()}
    finally:
        deadline = time.monotonic() + DEADLINE_S
        while not context.join(timeout=1):
            if time.monotonic() > deadline:  # a rank waits for one that never comes: a bug
                for process in context.processes:
                    process.kill()
                pytest.fail(f"the ranks did not finish within {DEADLINE_S} s")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"ranks": ranks, **reference}


def test_ownership_is_contiguous_and_covers_every_batch() -> None:
    for count in range(0, 12):
        for world in (1, 2, 3, 5):
            ranges = [owned_range(count, r, world) for r in range(world)]
            assert [i for r in ranges for i in r] == list(range(count))
            assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
            if count:
                assert 0 in ranges[0]  # rank 0 always starts the sum


def test_products_are_bit_identical_to_one_process(outcomes) -> None:
    reference, ranks = outcomes["products"], outcomes["ranks"]
    for rank in ranks:
        for key, value in reference.items():
            assert torch.equal(rank["products"][key], value), key
    # Each rank computed part of the batches, not all of them: 3 H-operators x 2 calls each,
    # over 7 + 2 + 1 batches, shared 4/3, 1/1 and 1/0.
    assert [rank["product_calls"] for rank in ranks] == [2 * (4 + 1 + 1), 2 * (3 + 1 + 0)]


def test_measures_are_bit_identical_to_one_process(outcomes) -> None:
    reference, ranks = outcomes["measures"], outcomes["ranks"]
    for rank in ranks:
        for (kind, name, options), mine, expected in zip(
            MEASURES, rank["measures"], reference, strict=True
        ):
            assert mine == expected, (kind, name, options)
    # The exact Gauss-Newton traces were shared (not recomputed whole on every rank).
    for rank in ranks:
        assert rank["ggn_sums"]["n"] == 0 and rank["ggn_sums"]["shared"] >= 4
    hessian_distance = reference[MEASURES.index(("tanh", "hessian_distance", {}))]
    assert math.isfinite(hessian_distance["value"]) and hessian_distance["value"] > 0


def test_ranks_with_other_data_are_refused_in_one_line(outcomes) -> None:
    messages = [rank.get("refused") for rank in outcomes["ranks"]]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "\n" not in messages[0]
    assert messages[0].startswith("distributed run refused: the evaluation sample")
    assert "differs between rank 0 and rank 1" in messages[0]


def test_without_a_shard_nothing_is_communicated() -> None:
    assert shard_mod.active() is None
    assert shard_mod.map_batches(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
    assert shard_mod.on_rank_zero(lambda: "decided") == "decided"
    shard_mod.agree({"data": "anything"})  # one process agrees with itself


def test_torchrun_environment_is_required_and_checked(monkeypatch) -> None:
    for name in shard_mod.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert not shard_mod.launched()
    with pytest.raises(DistributedError, match="torchrun"), shard_mod.from_environment(CPU):
        pass
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    assert shard_mod.launched()
    refused = pytest.raises(DistributedError, match="RANK=2 is not a rank of WORLD_SIZE=2")
    with refused, shard_mod.from_environment(CPU):
        pass
