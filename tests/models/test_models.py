"""Tests for genmeasures.models: torchvision-compatible architectures, registry, head utilities."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jvp

from genmeasures.errors import ModelError, OptionError
from genmeasures.models import (
    MODELS,
    build_model,
    conv_linear_weight_names,
    head_name,
    register_model,
    replace_head,
)
from genmeasures.models.vit import SelfAttention

# torch's forward-mode AD scripts its decompositions on first use (a torch-internal warning).
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

BUILTIN = ["cnn", "mlp", "resnet101", "resnet18", "resnet34", "resnet50", "vit_b_16", "vit_tiny"]

# Parameter counts of torchvision's models at their defaults (num_classes=1000).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "vit_b_16": 86_567_656,
}

RESNET_LAYOUT = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}

# Small, fast configurations of every registered model.
SMALL = {
    "mlp": {},
    "cnn": {},
    "resnet18": {"small_input": True, "width_multiplier": 0.125, "num_classes": 10},
    "resnet34": {"small_input": True, "width_multiplier": 0.125, "num_classes": 10},
    "resnet50": {"small_input": True, "width_multiplier": 0.125, "num_classes": 10},
    "resnet101": {"small_input": True, "width_multiplier": 0.125, "num_classes": 10},
    "vit_b_16": {"image_size": 32, "num_classes": 10},
    "vit_tiny": {},
}


# Factories used by the import-spec tests ("tests.models.test_models:<name>").
def tiny_factory(*, num_classes: int = 3, in_features: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, 8), nn.ReLU(), nn.Linear(8, num_classes))


def not_a_module_factory(*, num_classes: int = 3) -> object:
    return 42


def raising_factory(*, num_classes: int = 3) -> nn.Module:
    raise RuntimeError("boom\nsecond line")


@functools.cache
def _default(name: str) -> nn.Module:
    """One default build per model, shared by the read-only tests."""
    torch.manual_seed(0)
    return build_model(name)


def _bn(prefix: str) -> list[str]:
    return [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")] + [
        f"{prefix}.num_batches_tracked"
    ]


def torchvision_resnet_keys(block: str, layers: tuple[int, ...]) -> list[str]:
    """State-dict keys of torchvision's ResNet, derived from torchvision/models/resnet.py:
    conv1, bn1, layer{1..4}.{j}.conv{k}/bn{k} (k<=2 BasicBlock, k<=3 Bottleneck), a downsample
    (conv1x1 + BN) on block 0 when the stride or channel count changes, and fc."""
    keys = ["conv1.weight", *_bn("bn1")]
    convs = 2 if block == "basic" else 3
    for stage, blocks in enumerate(layers, start=1):
        for j in range(blocks):
            p = f"layer{stage}.{j}"
            for k in range(1, convs + 1):
                keys += [f"{p}.conv{k}.weight", *_bn(f"{p}.bn{k}")]
            if j == 0 and (stage > 1 or block == "bottleneck"):
                keys += [f"{p}.downsample.0.weight", *_bn(f"{p}.downsample.1")]
    return [*keys, "fc.weight", "fc.bias"]


def torchvision_vit_keys(num_layers: int) -> list[str]:
    """State-dict keys of torchvision's VisionTransformer (no representation layer)."""
    keys = ["class_token", "conv_proj.weight", "conv_proj.bias", "encoder.pos_embedding"]
    for i in range(num_layers):
        p = f"encoder.layers.encoder_layer_{i}"
        keys += [
            f"{p}.ln_1.weight",
            f"{p}.ln_1.bias",
            f"{p}.self_attention.in_proj_weight",
            f"{p}.self_attention.in_proj_bias",
            f"{p}.self_attention.out_proj.weight",
            f"{p}.self_attention.out_proj.bias",
            f"{p}.ln_2.weight",
            f"{p}.ln_2.bias",
            f"{p}.mlp.0.weight",
            f"{p}.mlp.0.bias",
            f"{p}.mlp.3.weight",
            f"{p}.mlp.3.bias",
        ]
    return [*keys, "encoder.ln.weight", "encoder.ln.bias", "heads.head.weight", "heads.head.bias"]


def _weight_rule(model: nn.Module) -> list[str]:
    return [k for k, v in model.state_dict().items() if k.endswith("weight") and v.ndim >= 2]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- architectures


def test_registry_lists_builtins() -> None:
    assert set(BUILTIN) <= set(MODELS.names())
    assert "resnet18" in MODELS


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_param_counts_match_torchvision(name: str) -> None:
    assert _n_params(_default(name)) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", sorted(RESNET_LAYOUT))
def test_resnet_state_dict_keys_match_torchvision(name: str) -> None:
    expected = torchvision_resnet_keys(*RESNET_LAYOUT[name])
    assert list(_default(name).state_dict()) == expected


@pytest.mark.parametrize("activation", ["gelu", "silu", "tanh"])
def test_resnet_activation_swaps_every_relu_and_keeps_the_weights(activation: str) -> None:
    """A smooth ResNet: every ReLU module replaced, the state dict's keys and shapes unchanged,
    and the forward pass equal to the ReLU network's with the activation swapped by hand."""
    from genmeasures.models.activations import ACTIVATIONS

    kwargs = {"small_input": True, "width_multiplier": 0.125, "num_classes": 10, "in_channels": 1}
    torch.manual_seed(0)
    relu = build_model("resnet18", kwargs)
    torch.manual_seed(0)
    smooth = build_model("resnet18", {**kwargs, "activation": activation})
    assert not any(isinstance(m, torch.nn.ReLU) for m in smooth.modules())
    swapped = [n for n, m in smooth.named_modules() if isinstance(m, ACTIVATIONS[activation])]
    assert swapped == [n for n, m in relu.named_modules() if isinstance(m, torch.nn.ReLU)]
    assert {k: v.shape for k, v in smooth.state_dict().items()} == {
        k: v.shape for k, v in relu.state_dict().items()
    }
    smooth.load_state_dict(relu.state_dict())  # strict: the same tensors
    for name in swapped:
        parent, _, leaf = name.rpartition(".")
        setattr(relu.get_submodule(parent) if parent else relu, leaf, ACTIVATIONS[activation]())
    x = torch.rand(3, 1, 8, 8)
    relu.eval()
    smooth.eval()
    torch.testing.assert_close(smooth(x), relu(x), rtol=0, atol=0)


def test_unknown_activation_is_a_model_error_naming_the_choices() -> None:
    for name in ("resnet18", "mlp"):
        with pytest.raises(ModelError, match="unknown activation 'swish'; valid: relu, gelu"):
            build_model(name, {"activation": "swish"})


def test_resnet18_has_122_state_dict_entries() -> None:
    assert len(torchvision_resnet_keys(*RESNET_LAYOUT["resnet18"])) == 122
    assert len(_default("resnet18").state_dict()) == 122


def test_resnet_shapes_strides_and_init_match_torchvision() -> None:
    sd18 = _default("resnet18").state_dict()
    assert sd18["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd18["fc.weight"].shape == (1000, 512)
    r50 = _default("resnet50")
    sd50 = r50.state_dict()
    assert sd50["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert sd50["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer3.0.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd50["fc.weight"].shape == (1000, 2048)
    # v1.5: the stride sits on the 3x3 convolution of a bottleneck.
    assert r50.layer2[0].conv1.stride == (1, 1)
    assert r50.layer2[0].conv2.stride == (2, 2)
    assert r50.layer2[0].downsample[0].stride == (2, 2)
    assert isinstance(r50.maxpool, nn.MaxPool2d)
    # torchvision init: BN weight 1 / bias 0 (no zero_init_residual), kaiming fan_out convs.
    assert torch.all(sd50["layer1.0.bn3.weight"] == 1)
    assert torch.all(sd50["bn1.bias"] == 0)
    w = sd50["layer4.0.conv2.weight"]
    assert w.std().item() == pytest.approx((2.0 / (512 * 9)) ** 0.5, rel=0.05)


def test_vit_b_16_keys_shapes_and_init_match_torchvision() -> None:
    vit = _default("vit_b_16")
    sd = vit.state_dict()
    assert list(sd) == torchvision_vit_keys(12)
    assert len(sd) == 152
    assert sd["class_token"].shape == (1, 1, 768)
    assert sd["conv_proj.weight"].shape == (768, 3, 16, 16)
    assert sd["encoder.pos_embedding"].shape == (1, 197, 768)
    p = "encoder.layers.encoder_layer_11"
    assert sd[f"{p}.self_attention.in_proj_weight"].shape == (3 * 768, 768)
    assert sd[f"{p}.self_attention.out_proj.weight"].shape == (768, 768)
    assert sd[f"{p}.mlp.0.weight"].shape == (3072, 768)
    assert sd[f"{p}.mlp.3.weight"].shape == (768, 3072)
    assert sd["heads.head.weight"].shape == (1000, 768)
    assert torch.all(sd["heads.head.weight"] == 0)
    assert isinstance(vit.encoder.layers.encoder_layer_0.self_attention, nn.MultiheadAttention)
    assert vit.encoder.layers.encoder_layer_0.ln_1.eps == 1e-6


def test_vit_tiny_keys_and_forward() -> None:
    vit = build_model("vit_tiny")
    assert list(vit.state_dict()) == torchvision_vit_keys(2)
    assert vit(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="8x8"):
        vit(torch.randn(1, 1, 16, 16))


def test_self_attention_equals_nn_multihead_attention() -> None:
    torch.manual_seed(0)
    ours = SelfAttention(16, 4).double().eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    expected, _ = ref(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected)


def test_width_multiplier() -> None:
    default = _default("resnet18")
    same = build_model("resnet18", {"width_multiplier": 1.0})
    assert {k: v.shape for k, v in same.state_dict().items()} == {
        k: v.shape for k, v in default.state_dict().items()
    }
    half = build_model("resnet50", {"width_multiplier": 0.5, "num_classes": 7})
    sd = half.state_dict()
    assert sd["conv1.weight"].shape == (32, 3, 7, 7)
    assert sd["layer1.0.conv3.weight"].shape == (128, 32, 1, 1)
    assert sd["layer4.0.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd["fc.weight"].shape == (7, 1024)
    assert list(sd) == list(_default("resnet50").state_dict())


def test_small_input() -> None:
    torch.manual_seed(0)
    m = build_model("resnet18", {"small_input": True, "num_classes": 10}).eval()
    assert m.conv1.weight.shape == (64, 3, 3, 3)
    assert m.conv1.stride == (1, 1)
    assert list(m.state_dict()) == list(_default("resnet18").state_dict())
    with torch.no_grad():
        assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    m1 = build_model("resnet18", {"small_input": True, "in_channels": 1, "width_multiplier": 0.25})
    assert m1.conv1.weight.shape == (16, 1, 3, 3)
    with torch.no_grad():
        assert m1.eval()(torch.randn(1, 1, 8, 8)).shape == (1, 1000)


def test_resnet18_forward_64px() -> None:
    with torch.no_grad():
        out = _default("resnet18").eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


def test_mlp_and_cnn_options() -> None:
    mlp = build_model("mlp", {"hidden": (32, 16), "activation": "tanh", "num_classes": 4})
    assert list(mlp.state_dict()) == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
        "head.weight",
        "head.bias",
    ]
    assert mlp(torch.randn(5, 1, 8, 8)).shape == (5, 4)
    assert mlp(torch.randn(5, 64)).shape == (5, 4)
    linear = build_model("mlp", {"hidden": (), "bias": False, "in_features": 3})
    assert list(linear.state_dict()) == ["head.weight"]
    cnn = build_model("cnn", {"width": 8, "depth": 3, "dropout": 0.1}).eval()
    assert cnn(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert cnn(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    rgb = build_model("cnn", {"in_channels": 3, "batchnorm": False})
    assert rgb(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any("bn" in k for k in rgb.state_dict())
    with pytest.raises(ModelError, match="activation"):
        build_model("mlp", {"activation": "swish"})


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit_tiny", "resnet18"])
def test_state_dict_round_trip_strict(name: str, tmp_path) -> None:
    kwargs = SMALL[name]
    torch.manual_seed(1)
    src = build_model(name, kwargs).eval()
    path = tmp_path / "weights.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    dst = build_model(name, kwargs).eval()
    dst.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.randn(2, 1, 8, 8) if name != "resnet18" else torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


@pytest.mark.parametrize("name", ["resnet50", "vit_b_16"])
def test_default_state_dict_loads_strict(name: str) -> None:
    dst = build_model(name, {"num_classes": 1000})
    dst.load_state_dict(_default(name).state_dict(), strict=True)


# --------------------------------------------------------------------------- head utilities

EXPECTED_HEADS = {
    "mlp": "head",
    "cnn": "head",
    "resnet18": "fc",
    "resnet34": "fc",
    "resnet50": "fc",
    "resnet101": "fc",
    "vit_b_16": "heads.head",
    "vit_tiny": "heads.head",
}


@pytest.mark.parametrize("name", BUILTIN)
def test_head_name_and_replace_head(name: str) -> None:
    model = build_model(name, SMALL[name])
    assert model.head_name == EXPECTED_HEADS[name]
    assert head_name(model) == EXPECTED_HEADS[name]
    old = model.get_submodule(head_name(model))
    keys_before = list(model.state_dict())
    model.double()
    assert replace_head(model, 5) is model
    new = model.get_submodule(EXPECTED_HEADS[name])
    assert isinstance(new, nn.Linear) and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 5)
    assert new.weight.dtype == torch.float64
    assert list(model.state_dict()) == keys_before
    assert model.num_classes == 5


def test_head_name_fallback_and_errors() -> None:
    user = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(36, 8), nn.Linear(8, 3))
    assert head_name(user) == "3"
    replace_head(user, 2)
    assert user(torch.randn(1, 1, 5, 5)).shape == (1, 2)
    user.head_name = "missing.module"
    assert head_name(user) == "3"
    with pytest.raises(ModelError, match=r"no nn\.Linear"):
        head_name(nn.Sequential(nn.Conv2d(1, 1, 3)))
    with pytest.raises(ModelError, match="num_classes"):
        replace_head(user, 0)


@pytest.mark.parametrize("name", BUILTIN)
def test_conv_linear_weight_names_match_state_dict_rule(name: str) -> None:
    for model in (_default(name), build_model(name, SMALL[name])):
        names = conv_linear_weight_names(model)
        assert names == _weight_rule(model)
        assert names


def test_conv_linear_weight_names_variants() -> None:
    for name, kwargs in [
        ("mlp", {"hidden": ()}),
        ("mlp", {"hidden": (8, 8, 8), "bias": False}),
        ("cnn", {"batchnorm": False, "depth": 1}),
    ]:
        model = build_model(name, kwargs)
        assert conv_linear_weight_names(model) == _weight_rule(model)
    vit = build_model("vit_tiny")
    names = conv_linear_weight_names(vit)
    assert names[:4] == [
        "conv_proj.weight",
        "encoder.layers.encoder_layer_0.self_attention.in_proj_weight",
        "encoder.layers.encoder_layer_0.self_attention.out_proj.weight",
        "encoder.layers.encoder_layer_0.mlp.0.weight",
    ]
    assert names[-1] == "heads.head.weight"


# --------------------------------------------------------------------------- build_model errors


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(OptionError, match="resnet18") as info:
        build_model("resnet19")
    assert "resnet19" in str(info.value)


def test_bad_kwarg_names_model_kwarg_and_accepted() -> None:
    with pytest.raises(ModelError) as info:
        build_model("resnet18", {"widht_multiplier": 0.5})
    msg = str(info.value)
    assert "\n" not in msg
    assert "'resnet18'" in msg and "'widht_multiplier'" in msg
    assert "width_multiplier" in msg.split("accepted:")[1]
    assert "small_input" in msg


def test_bad_kwarg_type_is_model_error() -> None:
    with pytest.raises(ModelError, match="'mlp'"):
        build_model("mlp", {"hidden": "wide"})
    with pytest.raises(ModelError, match="mapping"):
        build_model("mlp", [("hidden", 3)])  # type: ignore[arg-type]


def test_import_spec_requires_allow_import() -> None:
    spec = "tests.models.test_models:tiny_factory"
    with pytest.raises(ModelError) as info:
        build_model(spec)
    assert str(info.value) == (
        f"model '{spec}' is an importable factory; pass allow_import=True "
        "(CLI: --allow-import) to run user code"
    )


def test_import_spec_with_allow_import() -> None:
    model = build_model(
        "tests.models.test_models:tiny_factory", {"num_classes": 6}, allow_import=True
    )
    assert isinstance(model, nn.Sequential)
    assert head_name(model) == "2"
    assert model(torch.randn(2, 4)).shape == (2, 6)
    with pytest.raises(ModelError, match=r"'bogus'.*accepted: num_classes, in_features"):
        build_model("tests.models.test_models:tiny_factory", {"bogus": 1}, allow_import=True)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("tests.models.no_such_module:f", "cannot import module 'tests.models.no_such_module'"),
        ("tests.models.test_models:no_such_factory", "has no attribute 'no_such_factory'"),
        ("tests.models.test_models:not_a_module_factory", "not a torch.nn.Module"),
        ("tests.models.test_models:raising_factory", "failed to build.*boom second line"),
        ("not a spec:", "not a valid import spec"),
    ],
)
def test_import_spec_errors(spec: str, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        build_model(spec, allow_import=True)
    assert "\n" not in str(info.value)
    assert spec in str(info.value)


def test_register_model_decorator() -> None:
    @register_model("_test_linear")
    def _factory(*, num_classes: int = 2) -> nn.Module:
        return nn.Linear(3, num_classes)

    try:
        assert "_test_linear" in MODELS
        assert build_model("_test_linear", {"num_classes": 4}).out_features == 4
    finally:
        MODELS.remove("_test_linear")


# --------------------------------------------------------------------------- float64 + torch.func

FUNC_CASES = {
    "mlp": ({}, (4, 1, 8, 8)),
    "cnn": ({}, (4, 1, 8, 8)),
    "vit_tiny": ({}, (4, 1, 8, 8)),
    "resnet18": ({"small_input": True, "width_multiplier": 0.125, "num_classes": 10}, (2, 3, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(FUNC_CASES))
def test_float64_eval_jvp(name: str) -> None:
    kwargs, shape = FUNC_CASES[name]
    torch.manual_seed(0)
    model = build_model(name, kwargs).double().eval()
    if name == "vit_tiny":  # the head is zero-initialized, as in torchvision
        nn.init.normal_(model.heads.head.weight)
    x = torch.randn(*shape, dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    tangents = {k: torch.randn_like(v) for k, v in params.items()}

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x,))

    with torch.no_grad():
        out1, out2 = model(x), model(x)
    assert out1.dtype == torch.float64
    assert torch.equal(out1, out2)  # deterministic in eval mode
    out, tangent_out = jvp(f, (params,), (tangents,))
    torch.testing.assert_close(out, out1)
    eps = 1e-6
    plus = f({k: v + eps * tangents[k] for k, v in params.items()})
    minus = f({k: v - eps * tangents[k] for k, v in params.items()})
    torch.testing.assert_close(tangent_out, (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-6)
    # forward-mode AD also works with gradients disabled (where fused kernels would kick in)
    with torch.no_grad():
        _, tangent_ng = jvp(f, (params,), (tangents,))
    torch.testing.assert_close(tangent_ng, tangent_out)


def test_vit_tiny_hessian_wrt_parameters() -> None:
    torch.manual_seed(0)
    model = build_model("vit_tiny", {"hidden_dim": 8, "mlp_dim": 16}).double().eval()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([1, 2, 3])
    params = {k: v.detach() for k, v in model.named_parameters()}
    name = "encoder.layers.encoder_layer_0.self_attention.in_proj_bias"
    rest = {k: v for k, v in params.items() if k != name}

    def loss(b: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, {**rest, name: b}, (x,))
        return nn.functional.cross_entropy(logits, y)

    nn.init.normal_(rest["heads.head.weight"])
    h = hessian(loss)(params[name])
    assert h.shape == (24, 24)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, h.T)


def test_deepcopy_and_train_mode_forward() -> None:
    model = build_model("vit_tiny", {"dropout": 0.1, "attention_dropout": 0.1})
    clone = copy.deepcopy(model).train()
    out = clone(torch.randn(2, 1, 8, 8))
    out.sum().backward()
    assert clone.encoder.pos_embedding.grad is not None


FACTORY_FILE = """
import torch

def make(num_classes=3, width=4):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, width),
                               torch.nn.Linear(width, num_classes))
"""


def test_import_spec_from_a_file_path(tmp_path, monkeypatch) -> None:
    """--allow-import takes 'path/to/file.py:factory' and modules in the current directory."""
    (tmp_path / "my_nets.py").write_text(FACTORY_FILE)
    model = build_model(f"{tmp_path / 'my_nets.py'}:make", {"width": 5}, allow_import=True)
    assert model[1].out_features == 5
    monkeypatch.chdir(tmp_path)
    assert build_model("my_nets.py:make", allow_import=True)[2].out_features == 3
    assert build_model("my_nets:make", allow_import=True)[2].out_features == 3  # cwd module
    with pytest.raises(ModelError, match="no such file"):
        build_model("missing.py:make", allow_import=True)
    with pytest.raises(ModelError, match="is an importable factory"):
        build_model("my_nets.py:make")
