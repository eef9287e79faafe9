"""The course's networks, as plain ``torch.nn.Module`` s."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = []


# --------------------------------------------------------------------------------------
# A small causal transformer language model (notebook 12)
# --------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    r"""Multi-head causal self-attention: softmax(Q Kᵀ/√d_h + mask) V per head, then an output projection.

    Position i attends to positions j ≤ i only (``scaled_dot_product_attention`` with ``is_causal=True``), so the
    output at i depends on tokens 0 … i and never on later ones.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        shape = (*batch, length, self.heads, width // self.heads)
        q, k, v = (t.reshape(shape).transpose(-3, -2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(-3, -2).reshape(*batch, length, width))


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)) (GELU, 4× wide)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformerLM(nn.Module):
    r"""A GPT-style causal language model small enough to train by the hundred on a CPU.

    tokens (…, T) → token embedding + learned position embedding (width d) → ``depth`` pre-norm blocks
    (:class:`Block`) → LayerNorm → head → logits (…, T, V). The head is the token embedding's transpose when
    ``tied`` (GPT-2's choice; it saves V·d parameters), else its own ``Linear(d, V, bias=False)``.

    Initialization follows GPT-2: weights N(0, 0.02²), biases 0, and the projections that write into the
    residual stream scaled by 1/√(2·depth). At initialization the logits are nearly 0, so the next-token
    loss is ≈ ln V (the loss of the uniform guess).
    """

    def __init__(self, vocab_size: int, context: int = 64, width: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: int = 4, tied: bool = True):
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = None if tied else nn.Linear(width, vocab_size, bias=False)
        for name, parameter in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif parameter.dim() >= 2:
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(parameter, 0.0, std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[-1]
        if length > self.context:
            raise ValueError(f"sequence of {length} tokens is longer than the model's context ({self.context})")
        x = self.token_embedding(tokens) + self.position_embedding.weight[:length]
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        weight = self.token_embedding.weight if self.head is None else self.head.weight
        return x @ weight.T


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits`` (…, T, V) against the next tokens ``targets`` (…, T), in nats."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           reduction=reduction).reshape(targets.shape) if reduction == "none" else \
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


__all__ += ["CausalSelfAttention", "Block", "TinyTransformerLM", "next_token_loss"]
