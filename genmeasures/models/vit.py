"""Vision Transformers (``vit_b_16``, ``vit_tiny``) with torchvision's module tree and names.

Names match ``torchvision.models.vision_transformer.VisionTransformer`` without a representation
layer: ``class_token``, ``conv_proj``, ``encoder.pos_embedding``,
``encoder.layers.encoder_layer_{i}.{ln_1, self_attention, ln_2, mlp.0, mlp.3}`` (the attention is
an ``nn.MultiheadAttention`` with ``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``,
``out_proj.bias``; the MLP is Linear, GELU, Dropout, Linear, Dropout), ``encoder.ln`` and
``heads.head``. Initialization follows torchvision (truncated-normal patch projection, BERT-style
position embedding, Xavier MLP weights, zero head).

The attention is computed explicitly (``F.linear`` + softmax) instead of through PyTorch's fused
fast path / ``scaled_dot_product_attention``, because those kernels have no forward-mode AD on
CPU; the result is the same function, and ``torch.func.jvp`` / ``hessian`` work through it.
Its dropout is :func:`genmeasures._rng.dropout`: ``F.dropout``, except that during fine-tuning
the mask comes from the run's own generator (the ``nn.Dropout`` modules are routed there by the
fine-tuner), so runs sharing a process do not race on torch's global one.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from genmeasures._rng import dropout
from genmeasures.errors import ModelError
from genmeasures.models.architecture import Architecture

#: Head ``heads.head``; blocks: the class token, ``conv_proj``, then ``encoder`` as one block.
VIT_ARCHITECTURE = Architecture(head="heads.head")


class SelfAttention(nn.MultiheadAttention):
    """Batch-first multi-head self-attention with ``nn.MultiheadAttention``'s parameters.

    ``forward(x)`` computes the same function as ``nn.MultiheadAttention(x, x, x,
    need_weights=False)[0]`` with plain differentiable ops (no fused kernels), so it supports
    float64 and forward-mode AD.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(embed_dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, s, e = x.shape
        h = self.num_heads
        d = e // h
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(n, s, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax((q / math.sqrt(d)) @ k.transpose(-2, -1), dim=-1)
        attn = dropout(attn, p=self.dropout, training=self.training)
        out = (attn @ v).transpose(1, 2).reshape(n, s, e)
        return self.out_proj(out)


class MLPBlock(nn.Sequential):
    """Linear (``0``), GELU, Dropout, Linear (``3``), Dropout, as torchvision's ``MLPBlock``."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(in_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, in_dim),
            nn.Dropout(dropout),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``+ mlp(ln_2(.))``."""

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = SelfAttention(hidden_dim, num_heads, dropout=attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attention(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Adds ``pos_embedding``, runs ``layers.encoder_layer_{i}``, applies the final ``ln``."""

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(num_layers):
            layers[f"encoder_layer_{i}"] = EncoderBlock(
                num_heads, hidden_dim, mlp_dim, dropout, attention_dropout
            )
        self.layers = nn.Sequential(layers)
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al., 2020) as torchvision builds it; the head is ``heads.head``."""

    architecture = VIT_ARCHITECTURE
    head_name = VIT_ARCHITECTURE.head

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if min(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim) < 1:
            raise ModelError("vit: sizes, layer and head counts must all be >= 1")
        if image_size % patch_size:
            raise ModelError(
                f"vit: image_size {image_size} is not divisible by patch_size {patch_size}"
            )
        if hidden_dim % num_heads:
            raise ModelError(
                f"vit: hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}"
            )
        if int(num_classes) < 1 or int(in_channels) < 1:
            raise ModelError(
                f"vit: num_classes and in_channels must be >= 1, got "
                f"num_classes={num_classes}, in_channels={in_channels}"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.num_classes = int(num_classes)
        self.conv_proj = nn.Conv2d(
            in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size
        )
        seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.encoder = Encoder(
            seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout
        )
        self.seq_length = seq_length
        head = nn.Linear(hidden_dim, self.num_classes)
        self.heads = nn.Sequential(OrderedDict(head=head))

        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        assert self.conv_proj.bias is not None  # nn.Conv2d's default bias=True
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"expected {self.image_size}x{self.image_size} images, got {h}x{w}")
        p = self.patch_size
        x = self.conv_proj(x).reshape(n, self.hidden_dim, (h // p) * (w // p))
        return x.permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x)
        return self.heads(x[:, 0])


def vit_b_16(
    *,
    num_classes: int = 1000,
    image_size: int = 224,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    in_channels: int = 3,
) -> VisionTransformer:
    """ViT-B/16 (patch 16, 12 layers, 12 heads, hidden 768, MLP 3072): 86,567,656 parameters."""
    return VisionTransformer(
        image_size=image_size,
        patch_size=16,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        mlp_dim=3072,
        num_classes=num_classes,
        in_channels=in_channels,
        dropout=dropout,
        attention_dropout=attention_dropout,
    )


def vit_tiny(
    *,
    num_classes: int = 10,
    image_size: int = 8,
    patch_size: int = 2,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 32,
    mlp_dim: int = 64,
    in_channels: int = 1,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
) -> VisionTransformer:
    """A tiny ViT for CPU tests on 8x8 single-channel images (same class as ``vit_b_16``)."""
    return VisionTransformer(
        image_size=image_size,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
        num_classes=num_classes,
        in_channels=in_channels,
        dropout=dropout,
        attention_dropout=attention_dropout,
    )
