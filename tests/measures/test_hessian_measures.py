"""The Hessian measures against direct computations from exact (torch.func) Hessians."""

from __future__ import annotations

import math

import pytest
import torch

import genmeasures
from genmeasures.data import EvaluationSet
from genmeasures.errors import MeasureError, OptionError
from tests.curvature.oracle import Oracle, data_for, positive_part, small_cnn, tanh_mlp

N_TRAIN = 100


def fine_tuned(make=tanh_mlp):
    """(model, init): a model moved away from its init by a fixed perturbation."""
    init = make(0)
    model = make(0)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model, init


def run(model, init, measures, batch_size: int = 10, n: int = 23):
    inputs, targets = data_for(model, n=n)
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=batch_size)
    return genmeasures.score(model, init, data, measures, n_train=N_TRAIN)


def whole(table, measure: str) -> float:
    rows = table[(table.measure == measure) & (table.layer == "")]
    assert len(rows) == 1
    return float(rows.value.iloc[0])


def per_layer(table, measure: str) -> dict[str, float]:
    rows = table[(table.measure == measure) & (table.layer != "")]
    return dict(zip(rows.layer, rows.value, strict=True))


def weight_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if n.endswith("weight") and p.ndim >= 2]


@pytest.mark.parametrize("make", [tanh_mlp, small_cnn])
def test_exact_trace_and_per_layer_traces(make) -> None:
    model, init = fine_tuned(make)
    names = weight_names(model)
    oracle = Oracle(model, names, *data_for(model))
    exact = oracle.hessian()
    table = run(model, init, ["hessian_trace:estimator=exact"])
    assert whole(table, "hessian_trace") == pytest.approx(float(exact.trace()), abs=1e-8)
    layers = per_layer(table, "hessian_trace")
    for i, name in enumerate(names):
        assert layers[name] == pytest.approx(float(oracle.block(exact, i).trace()), abs=1e-8)


def test_hutchinson_trace_within_three_standard_errors_and_seeded() -> None:
    model, init = fine_tuned()
    exact = Oracle(model, weight_names(model), *data_for(model)).hessian()
    table = run(model, init, ["hessian_trace:rtol=0.05,max_matvecs=300"])
    row = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
    assert abs(row.value - float(exact.trace())) <= 3 * row.stderr
    assert row.score_seed == 0 and row.n_matvecs > 0
    again = run(model, init, ["hessian_trace:rtol=0.05,max_matvecs=300"])
    assert again.value.tolist() == table.value.tolist()


def test_trace_max_batch_is_the_largest_mini_batch_trace() -> None:
    model, init = fine_tuned()
    inputs, targets = data_for(model)
    names = weight_names(model)
    traces = [
        float(Oracle(model, names, inputs[i : i + 8], targets[i : i + 8]).hessian().trace())
        for i in range(0, 23, 8)
    ]
    table = run(model, init, ["hessian_trace:estimator=exact,reduce=max_batch,batch_size=8"])
    assert whole(table, "hessian_trace") == pytest.approx(max(traces), abs=1e-8)
    table = run(model, init, ["hessian_trace:estimator=exact,reduce=mean_batch,batch_size=8"])
    assert whole(table, "hessian_trace") == pytest.approx(sum(traces) / 3, abs=1e-8)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_eigenvalues_and_per_layer_top_eigenvalues(which: str) -> None:
    model, init = fine_tuned(small_cnn)
    names = weight_names(model)
    oracle = Oracle(model, names, *data_for(model))
    exact = oracle.hessian()
    spectrum = torch.linalg.eigvalsh(exact)
    expected = spectrum.flip(0)[:3] if which == "largest" else spectrum[:3]
    table = run(
        model,
        init,
        [f"hessian_eigenvalue:k=3,which={which},per_layer=true,rtol=1e-10,max_matvecs=500"],
    )
    assert whole(table, "hessian_eigenvalue") == pytest.approx(float(expected[0]), abs=1e-8)
    assert whole(table, "hessian_eigenvalue.eigenvalue_2") == pytest.approx(
        float(expected[1]), abs=1e-8
    )
    assert whole(table, "hessian_eigenvalue.eigenvalue_3") == pytest.approx(
        float(expected[2]), abs=1e-8
    )
    layers = per_layer(table, "hessian_eigenvalue")
    for i, name in enumerate(names):
        block = torch.linalg.eigvalsh(oracle.block(exact, i))
        target = block.max() if which == "largest" else block.min()
        assert layers[name] == pytest.approx(float(target), abs=1e-8)


def direct_hessian_distance(
    model,
    init,
    *,
    curvature="psd",
    joint=False,
    reduce="max_sample",
    batch_size=4,
    head_zero=False,
    names=None,
):
    """calH_i computed from exact per-sample (or per-mini-batch) Hessians."""
    inputs, targets = data_for(model)
    names = names or weight_names(model)
    oracle = Oracle(model, names, inputs, targets)
    state, start = init.state_dict(), model.state_dict()
    v = torch.cat(
        [
            (start[n] - (0 if head_zero and n.startswith("head.") else state[n])).reshape(-1)
            for n in names
        ]
    )
    sizes = oracle.sizes
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]

    def forms(matrix):
        out = []
        for i, (o, s) in enumerate(zip(offsets, sizes, strict=True)):
            vi = v[o : o + s]
            if curvature == "psd":
                out.append(float(vi @ positive_part(oracle.block(matrix, i)) @ vi))
            elif joint:
                out.append(float(vi @ (matrix @ v)[o : o + s]))
            else:
                out.append(float(vi @ oracle.block(matrix, i) @ vi))
        return out

    if reduce == "max_batch":
        per_batch = []
        for b in range(0, len(targets), batch_size):
            sub = Oracle(model, names, inputs[b : b + batch_size], targets[b : b + batch_size])
            per_batch.append(forms(sub.hessian()))
        return [max(col) for col in zip(*per_batch, strict=True)]
    per_sample = [forms(oracle.sample_hessian(j)) for j in range(len(targets))]
    reducer = max if reduce == "max_sample" else (lambda col: sum(col) / len(col))
    return [reducer(col) for col in zip(*per_sample, strict=True)]


@pytest.mark.parametrize(
    ("options", "direct"),
    [
        ("", {}),
        ("curvature=hessian", {"curvature": "hessian"}),
        ("reduce=mean", {"reduce": "mean"}),
        ("curvature=hessian,blocks=joint", {"curvature": "hessian", "joint": True}),
        (
            "preset=published",
            {
                "curvature": "hessian",
                "joint": True,
                "reduce": "max_batch",
                "batch_size": 4,
                "head_zero": True,
            },
        ),
        (
            "curvature=hessian,reduce=max_batch,batch_size=5",
            {"curvature": "hessian", "reduce": "max_batch", "batch_size": 5},
        ),
    ],
)
@pytest.mark.parametrize("make", [tanh_mlp, small_cnn])
def test_hessian_distance_matches_direct_computation(make, options: str, direct: dict) -> None:
    from genmeasures.measures.layers import published_layer_names

    model, init = fine_tuned(make)
    table = run(model, init, [f"hessian_distance:{options}" if options else "hessian_distance"])
    # The authors' layer rule: Conv2d modules named conv* and the head (an MLP: the head).
    names = published_layer_names(model) if "preset" in options else weight_names(model)
    expected = direct_hessian_distance(model, init, names=names, **direct)
    layers = per_layer(table, "hessian_distance")
    assert list(layers) == names
    assert list(layers.values()) == pytest.approx(expected, abs=1e-8)
    total = sum(math.sqrt(max(c, 0.0)) for c in expected)
    assert whole(table, "hessian_distance") == pytest.approx(total, abs=1e-8)


def test_psd_quadrature_route_matches_the_exact_route() -> None:
    model, init = fine_tuned()
    exact = run(model, init, ["hessian_distance"])
    quadrature = run(model, init, ["hessian_distance:exact_max_dim=1,quadrature_steps=24"])
    assert quadrature.value.tolist() == pytest.approx(exact.value.tolist(), abs=1e-8)


def test_ggn_distance_is_below_the_psd_one_for_relu_nets() -> None:
    """For a ReLU net one layer's per-sample Hessian block is its Gauss-Newton block."""
    model, init = fine_tuned(small_cnn)
    ggn = run(model, init, ["hessian_distance:curvature=ggn"])
    psd = run(model, init, ["hessian_distance"])
    assert whole(ggn, "hessian_distance") == pytest.approx(whole(psd, "hessian_distance"), abs=1e-8)


def test_hessian_bound_scales_the_distance() -> None:
    model, init = fine_tuned()
    inputs, targets = data_for(model)
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(inputs), targets, reduction="none")
    table = run(model, init, ["hessian_distance", "hessian_bound"])
    distance = whole(table, "hessian_distance")
    expected = math.sqrt(float(losses.max())) * distance / math.sqrt(N_TRAIN)
    assert whole(table, "hessian_bound") == pytest.approx(expected, rel=1e-12)
    assert whole(table, "hessian_bound.max_loss") == pytest.approx(float(losses.max()))


def test_pacbayes_trace_bound_with_exact_traces() -> None:
    model, init = fine_tuned()
    inputs, targets = data_for(model)
    names = weight_names(model)
    per_batch = []
    for b in range(0, 23, 8):
        oracle = Oracle(model, names, inputs[b : b + 8], targets[b : b + 8])
        h = oracle.hessian()
        per_batch.append([float(oracle.block(h, i).trace()) for i in range(len(names))])
    worst = [max(col) for col in zip(*per_batch, strict=True)]
    squared = sum(float(((model.state_dict()[n] - init.state_dict()[n]) ** 2).sum()) for n in names)
    with torch.no_grad():
        c = float(torch.nn.functional.cross_entropy(model(inputs), targets, reduction="none").max())
    expected = c * math.sqrt(max(sum(worst), 0) * squared / N_TRAIN)
    table = run(model, init, ["pacbayes_trace_bound:estimator=exact,batch_size=8"])
    assert whole(table, "pacbayes_trace_bound") == pytest.approx(expected, rel=1e-10)


def test_pyhessian_backend_agrees_within_its_tolerance() -> None:
    model, init = fine_tuned(small_cnn)
    ours = run(model, init, ["hessian_eigenvalue:rtol=1e-10,max_matvecs=300,layers=all"])
    theirs = run(model, init, ["hessian_eigenvalue:algorithm=pyhessian,max_matvecs=300,rtol=1e-4"])
    top, approx = whole(ours, "hessian_eigenvalue"), whole(theirs, "hessian_eigenvalue")
    assert approx <= top + 1e-9 and approx == pytest.approx(top, rel=1e-2)
    # The head's block is PSD under cross-entropy: PyHessian's stopping rule divides by the
    # signed running mean and stops after two probes whenever that mean is negative.
    head = "layers=head.weight"
    exact = whole(run(model, init, [f"hessian_trace:estimator=exact,{head}"]), "hessian_trace")
    table = run(
        model, init, [f"hessian_trace:estimator=pyhessian,max_matvecs=1500,rtol=1e-5,{head}"]
    )
    row = table[table.measure == "hessian_trace"].iloc[0]
    assert row.n_matvecs > 100 and abs(row.value - exact) <= 4 * row.stderr


def test_bad_inputs_give_clear_messages() -> None:
    model, init = fine_tuned()
    with pytest.raises(OptionError, match="psd is defined per layer block; use blocks=layer"):
        run(model, init, ["hessian_distance:blocks=joint"])
    with pytest.raises(OptionError, match="reduce=max_batch is the reference code's quantity"):
        run(model, init, ["hessian_distance:reduce=max_batch"])
    with pytest.raises(OptionError, match=r"preset=published fixes .*do not also set curvature"):
        run(model, init, ["hessian_distance:preset=published,curvature=ggn"])
    with pytest.raises(OptionError, match=r"layer glob 'conv\*' matches no parameter"):
        run(model, init, ["hessian_trace:layers=conv*"])
    with pytest.raises(OptionError, match="max_matvecs must be > 0, got 0"):
        run(model, init, ["hessian_trace:max_matvecs=0"])
    with pytest.warns(RuntimeWarning, match="budget of 3 matrix-vector products ran out"):
        table = run(model, init, ["hessian_trace:max_matvecs=3,rtol=1e-6"])
    assert whole(table, "hessian_trace.converged") == 0.0
    inputs, targets = data_for(model)
    inputs[3] = float("inf")  # finite weights, but this sample's loss is NaN
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=10)
    with pytest.raises(MeasureError, match="the loss is nan at the checkpoint"):
        genmeasures.score(model, init, data, ["hessian_eigenvalue"])


def test_models_without_forward_mode_fall_back_to_double_backward() -> None:
    from tests.curvature.test_operators import CustomActivationNet

    model, init = CustomActivationNet(), CustomActivationNet()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2)
    inputs, targets = data_for(tanh_mlp())
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=10)
    names = ["fc1.weight", "fc2.weight"]
    for options in ("", "curvature=hessian"):
        spec = f"hessian_distance:{options}" if options else "hessian_distance"
        with pytest.warns(RuntimeWarning, match="forward-mode AD is not supported"):
            table = genmeasures.score(model, init, data, [spec])
        layers = per_layer(table, "hessian_distance")
        # The custom activation's backward is not differentiable twice, so the Hessian
        # blocks are the Gauss-Newton-like part of double backward; check against it.
        oracle_values = []
        for name in names:
            v = (model.state_dict()[name] - init.state_dict()[name]).reshape(-1)
            values = []
            for j in range(len(targets)):
                w = dict(model.named_parameters())[name].detach().clone().requires_grad_(True)

                def loss_of(weight, j=j, name=name):
                    params = {**dict(model.named_parameters()), name: weight}
                    out = torch.func.functional_call(model, params, (inputs[j : j + 1],))
                    return torch.nn.functional.cross_entropy(out, targets[j : j + 1])

                (g,) = torch.autograd.grad(loss_of(w), w, create_graph=True)
                (hv,) = torch.autograd.grad((g.reshape(-1) * v).sum(), w)
                values.append(float(hv.reshape(-1) @ v))
            oracle_values.append(max(values))
        if options:  # the raw quadratic form is directly comparable
            assert list(layers.values()) == pytest.approx(oracle_values, abs=1e-10)
        else:  # H+ - H = -H_neg is PSD, so the positive part's form is never smaller
            for value, raw in zip(layers.values(), oracle_values, strict=True):
                assert value >= raw - 1e-10


def _authors_hessian_measures(model, init_state, inputs, targets, batch_size, n_train):
    """A direct re-implementation of the published computation (VirtuosoResearch/
    Robust-Fine-Tuning, exps_on_image_datasets/compute_hessian_measures.py with
    utils/hessian.py): layers are the Conv2d modules named "conv*" and the head; per
    mini-batch, the Hessian of the batch's mean loss over those layers' weights is applied to
    v (the head's weight from zero, the others from the init), each layer's <(H v)_i, v_i>
    is kept at its largest over the batches, and so is the batch mean loss."""
    import numpy as np
    import torch.nn.functional as F

    layers = {
        name: module
        for name, module in model.named_modules()
        if (type(module) is torch.nn.Conv2d and "conv" in name)
        or (type(module) is torch.nn.Linear and name == "fc")
    }
    weights = [module.weight for module in layers.values()]
    norms, max_loss = None, 0.0
    model.eval()
    for start in range(0, len(targets), batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
        gradients = torch.autograd.grad(loss, weights, create_graph=True)
        vs = [
            module.weight.detach().clone()
            if name == "fc"
            else module.weight.detach().clone() - init_state[f"{name}.weight"]
            for name, module in layers.items()
        ]
        hvs = torch.autograd.grad(gradients, weights, grad_outputs=vs)
        quantities = np.array([float((hv * v).sum()) for hv, v in zip(hvs, vs, strict=True)])
        norms = quantities if norms is None else np.maximum(norms, quantities)
        max_loss = max(max_loss, float(loss.detach()))
    distance = sum(math.sqrt(max(q, 0.0)) for q in norms)
    return list(layers), list(norms), distance, math.sqrt(max_loss / n_train) * distance


def test_published_preset_is_the_authors_computation_on_a_resnet() -> None:
    """preset=published on a ResNet: the authors' layers (no downsample convolutions), their
    joint quadratic forms, max over mini-batches of 4, head from zero, C = the largest
    mini-batch mean loss; the options column shows the resolved options."""
    from genmeasures.models import build_model

    kwargs = {"num_classes": 3, "width_multiplier": 0.0625, "small_input": True}
    torch.manual_seed(0)
    init = build_model("resnet18", kwargs).double().eval()
    model = build_model("resnet18", kwargs).double().eval()
    model.load_state_dict(init.state_dict())
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    inputs = torch.randn(10, 3, 8, 8, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (10,), generator=generator)
    names, norms, distance, bound = _authors_hessian_measures(
        model, init.state_dict(), inputs, targets, batch_size=4, n_train=N_TRAIN
    )
    assert not any("downsample" in n for n in names) and len(names) == 18

    data = EvaluationSet.from_tensors(inputs, targets, batch_size=10)
    measures = ["hessian_distance:preset=published", "hessian_bound:preset=published"]
    table = genmeasures.score(model, init, data, measures, n_train=N_TRAIN)
    layers = per_layer(table, "hessian_distance")
    assert list(layers) == [f"{n}.weight" for n in names]
    assert list(layers.values()) == pytest.approx(norms, rel=1e-9, abs=1e-12)
    assert whole(table, "hessian_distance") == pytest.approx(distance, rel=1e-9)
    assert whole(table, "hessian_bound") == pytest.approx(bound, rel=1e-9)
    options = table[table.measure == "hessian_bound"].options.iloc[0]
    assert "max_loss=batch" in options and "reduce=max_batch" in options
    assert "layers=published" in options  # the rule, not a list that differs by model


def test_rtol_zero_spends_the_budget_without_a_warning() -> None:
    """rtol=0 means 'until the budget' (PyHessian's tol=0), not an error."""
    import warnings

    model, init = fine_tuned(small_cnn)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "budget ran out" warning
        table = run(model, init, ["hessian_trace:estimator=hutchinson,rtol=0,max_matvecs=12"])
    row = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
    assert row.n_matvecs == 12
    with pytest.raises(OptionError, match="rtol must be >= 0, got -1"):
        run(model, init, ["hessian_trace:rtol=-1"])


def test_the_layer_set_is_in_the_table_and_pyhessian_is_the_whole_model() -> None:
    model, init = fine_tuned(small_cnn)
    n_all = sum(p.numel() for p in model.parameters())
    n_default = sum(model.state_dict()[n].numel() for n in weight_names(model))
    table = run(
        model,
        init,
        [
            "hessian_trace:max_matvecs=4,rtol=0",
            "hessian_eigenvalue:layers=all,max_matvecs=4",
            "hessian_eigenvalue:algorithm=pyhessian,max_matvecs=4",
        ],
    )
    sizes = table[table.measure.str.endswith(".n_parameters")]
    assert list(sizes.value) == [n_default, n_all, n_all] and n_default < n_all
    head = run(model, init, ["hessian_trace:estimator=pyhessian,layers=head.weight,max_matvecs=4"])
    assert whole(head, "hessian_trace.n_parameters") == model.head.weight.numel()
