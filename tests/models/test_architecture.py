"""The architecture adapters: pinned for every registered model, and the fallback for users'."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from torch import nn

from genmeasures.errors import ModelError, OptionError
from genmeasures.finetune.blocks import freeze_first_blocks, parameter_blocks, stage_function
from genmeasures.measures.layers import default_layer_names, select_layers
from genmeasures.models import (
    MODELS,
    Architecture,
    architecture_of,
    build_model,
    conv_linear_weight_names,
    head_name,
    register_model,
    registered_architecture,
)
from genmeasures.models.architecture import (
    child_blocks,
    fallback_architecture,
    matrix_weight_names,
)
from tests.models.test_models import EXPECTED_HEADS, RESNET_LAYOUT, SMALL

BUILTIN = sorted(EXPECTED_HEADS)


def _expected_block_prefixes(name: str, model: nn.Module) -> list[tuple[str, ...]]:
    """The blocks every built-in model had before the adapters (written out per model); a
    block holding only the head's parameters is dropped by parameter_blocks."""
    if name.startswith("resnet"):
        _, counts = RESNET_LAYOUT[name]
        return [("conv1", "bn1")] + [
            (f"layer{stage}.{index}",)
            for stage, count in enumerate(counts, start=1)
            for index in range(count)
        ]
    if name.startswith("vit"):
        return [("class_token",), ("conv_proj",), ("encoder",), ("heads",)]
    if name == "cnn":
        return [("features.0",), ("features.1",), ("head",)]  # depth 2
    assert name == "mlp"
    return [("layers",), ("head",)]  # one hidden layer: the container is not opened


def _members(model: nn.Module, prefixes: tuple[str, ...], head: str) -> list[str]:
    return [
        n
        for n, _ in model.named_parameters()
        if not n.startswith(head + ".") and any(n == p or n.startswith(p + ".") for p in prefixes)
    ]


def _published_stage(name: str) -> int:
    return 1 if name.startswith("layer3.") else 2 if name.startswith("layer4.") else 0


@pytest.mark.parametrize("name", BUILTIN)
def test_every_registered_model_declares_its_architecture(name: str) -> None:
    model = build_model(name, SMALL[name])
    architecture = architecture_of(model)
    assert architecture is registered_architecture(name) is type(model).architecture
    assert architecture.head == head_name(model) == EXPECTED_HEADS[name] == model.head_name
    assert isinstance(model.get_submodule(architecture.head), nn.Linear)
    # A model built by calling the factory directly has the same adapter.
    assert architecture_of(MODELS.get(name)(**SMALL[name])) is architecture


@pytest.mark.parametrize("name", BUILTIN)
def test_blocks_of_every_registered_model_are_pinned(name: str) -> None:
    model = build_model(name, SMALL[name])
    head = EXPECTED_HEADS[name]
    prefixes = _expected_block_prefixes(name, model)
    assert architecture_of(model).blocks(model) == prefixes
    blocks = parameter_blocks(model)
    assert blocks == [m for p in prefixes if (m := _members(model, p, head))]
    assert len(blocks) == len(prefixes) - (0 if name.startswith("resnet") else 1)
    assert parameter_blocks(model, head) == blocks
    # Every parameter but the head's is in exactly one block, in network order.
    flat = [n for block in blocks for n in block]
    assert flat == [n for n, _ in model.named_parameters() if not n.startswith(head + ".")]


@pytest.mark.parametrize("name", BUILTIN)
def test_stages_of_every_registered_model_are_pinned(name: str) -> None:
    model = build_model(name, SMALL[name])
    stage = stage_function(model)
    names = [n for n, _ in model.named_parameters()]
    if name.startswith("resnet"):
        assert [stage(n) for n in names] == [_published_stage(n) for n in names]
        assert {stage(n) for n in names} == {0, 1, 2}
        return
    blocks = parameter_blocks(model)
    index = {n: i for i, block in enumerate(blocks) for n in block}
    assert [stage(n) for n in names] == [index.get(n, len(blocks) - 1) for n in names]
    assert stage(f"{EXPECTED_HEADS[name]}.weight") == len(blocks) - 1


@pytest.mark.parametrize("name", BUILTIN)
def test_default_layers_of_every_registered_model_are_pinned(name: str) -> None:
    model = build_model(name, SMALL[name])
    state = model.state_dict()
    layers = architecture_of(model).default_layers(model)
    assert layers == conv_linear_weight_names(model) == matrix_weight_names(state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert select_layers(state, model=model) == select_layers(state) == layers
    # (A ViT's position embedding and class token are noted as left out, both ways.)
    assert len(caught) == (2 if name.startswith("vit") else 0)
    assert default_layer_names(state) == default_layer_names(state, model) == layers


def test_freezing_a_resnet_freezes_its_stem_then_its_residual_blocks() -> None:
    model = build_model("resnet18", SMALL["resnet18"])
    frozen = freeze_first_blocks(model, None, 2)
    assert frozen[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert all(n.startswith(("conv1.", "bn1.", "layer1.0.")) for n in frozen)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n in frozen)


def test_a_built_model_carrying_its_architecture_pickles() -> None:
    model = build_model("resnet18", SMALL["resnet18"])
    copy = pickle.loads(pickle.dumps(model))
    assert architecture_of(copy) == architecture_of(model)


# ------------------------------------------------------------------------- users' own models


class _UserNet(nn.Module):
    """A user's model: a stem, a container of two blocks, a free parameter, two Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.stem = nn.Conv2d(1, 4, 3)
        self.body = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        self.embedding = nn.Embedding(5, 4)
        self.hidden = nn.Linear(4, 4)
        self.classifier = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x) * self.scale).mean((2, 3))
        return self.classifier(self.hidden(x))


def test_fallback_for_a_users_model() -> None:
    model = _UserNet()
    architecture = architecture_of(model)
    assert architecture == fallback_architecture(model)
    assert architecture.head == head_name(model) == "classifier"  # the last nn.Linear
    assert architecture.blocks(model) == child_blocks(model)
    assert parameter_blocks(model) == [
        ["scale"],
        ["stem.weight", "stem.bias"],
        ["body.0.weight", "body.0.bias"],
        ["body.2.weight", "body.2.bias"],
        ["embedding.weight"],
        ["hidden.weight", "hidden.bias"],
    ]
    stage = stage_function(model)
    assert [stage(n) for n in ("scale", "body.2.bias", "hidden.weight")] == [0, 3, 5]
    assert stage("classifier.weight") == 5  # the head: the last block's depth
    # Default layers: the state-dict rule, as on a bare state dict (the embedding included).
    state = model.state_dict()
    assert architecture.default_layers(model) == matrix_weight_names(state)
    assert "embedding.weight" in architecture.default_layers(model)
    assert select_layers(state, model=model) == select_layers(state)


def test_a_users_resnet_shaped_model_gets_the_resnet_blocks_and_stages() -> None:
    """A model laid out as torchvision's ResNet but not declaring an architecture (a user's
    own class, torchvision's) is split and staged as the toolkit's ResNet is."""
    own = build_model("resnet18", {"num_classes": 3, "width_multiplier": 0.125})

    class UsersResNet(type(own)):  # type: ignore[misc,valid-type]
        architecture = None  # declares nothing: the fallback decides

    users = UsersResNet.__new__(UsersResNet)
    users.__dict__.update(own.__dict__)
    assert architecture_of(users).head == "fc"
    assert parameter_blocks(users) == parameter_blocks(own)
    stage, own_stage = stage_function(users), stage_function(own)
    names = [n for n, _ in own.named_parameters()]
    assert [stage(n) for n in names] == [own_stage(n) for n in names]
    assert {own_stage(n) for n in names} == {0, 1, 2}


def test_fallback_head_follows_head_name_where_it_names_a_linear() -> None:
    model = _UserNet()
    model.head_name = "hidden"
    assert architecture_of(model).head == "hidden"
    assert parameter_blocks(model)[-1] == ["classifier.weight", "classifier.bias"]
    model.head_name = "stem"  # not a Linear: ignored
    assert architecture_of(model).head == "classifier"
    with pytest.raises(ModelError, match=r"no nn\.Linear") as info:
        architecture_of(nn.Sequential(nn.Conv2d(1, 1, 3)))
    assert "\n" not in str(info.value)


def test_a_users_model_can_declare_its_architecture() -> None:
    def two_blocks(model: nn.Module) -> list[tuple[str, ...]]:
        return [("scale", "stem"), ("body", "embedding", "hidden")]

    model = _UserNet()
    model.architecture = Architecture(
        head="classifier", blocks=two_blocks, stage=lambda name: 7, default_layers=lambda m: []
    )
    assert [len(b) for b in parameter_blocks(model)] == [3, 7]
    assert stage_function(model)("stem.weight") == 7
    with pytest.raises(OptionError, match="no Conv/Linear weight tensors"):
        select_layers(model.state_dict(), model=model)
    model.architecture = Architecture(head="stem")
    with pytest.raises(ModelError, match=r"head 'stem', which is not an nn\.Linear"):
        architecture_of(model)


def test_register_model_with_an_architecture_attaches_it() -> None:
    custom = Architecture(head="hidden")

    @register_model("_test_user_net", architecture=custom)
    def _factory(*, num_classes: int = 3) -> nn.Module:
        return _UserNet()

    @register_model("_test_user_net_plain")
    def _plain(*, num_classes: int = 3) -> nn.Module:
        return _UserNet()

    try:
        assert registered_architecture("_test_user_net") is custom
        assert architecture_of(build_model("_test_user_net")) is custom
        assert registered_architecture("_test_user_net_plain") is None
        assert architecture_of(build_model("_test_user_net_plain")).head == "classifier"
    finally:
        MODELS.remove("_test_user_net")
        MODELS.remove("_test_user_net_plain")


def test_a_model_using_the_attribute_for_something_else_keeps_it() -> None:
    class Named(_UserNet):
        def __init__(self) -> None:
            super().__init__()
            self.architecture = nn.Identity()  # a submodule of that name

    @register_model("_test_named", architecture=Architecture(head="hidden"))
    def _factory(*, num_classes: int = 3) -> nn.Module:
        return Named()

    try:
        model = build_model("_test_named")
        assert isinstance(model.architecture, nn.Identity)
        assert architecture_of(model).head == "classifier"  # the fallback
    finally:
        MODELS.remove("_test_named")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"head": ""}, "head must be a module name"),
        ({"head": "fc", "blocks": "layer1"}, "blocks must be callable"),
        ({"head": "fc", "stage": 3}, "stage must be callable or None"),
    ],
)
def test_bad_architectures_are_one_line_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        Architecture(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ModelError, match="architecture must be an Architecture"):
        register_model("_never", architecture="fc")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"expected a torch\.nn\.Module, got str"):
        architecture_of("resnet18")  # type: ignore[arg-type]
