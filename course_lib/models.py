"""The course's networks: the seed article's classifier and the MNIST-1D convolutional network.

Each is a plain ``torch.nn.Module`` that returns logits, trained with :func:`course_lib.training.fit`:

* :func:`seed_classifier` — the seed article's d → 32 → 1 network (notebook 08), binary logits;
* :class:`ConvNet1d` — the MNIST-1D authors' small CNN (their ``ConvBase``), 10 class logits;
* :class:`TinyTransformerLM` — a small GPT-style causal language model (notebook 12), next-token logits.

>>> from course_lib import data, models, optim, training
>>> mnist = data.mnist1d()
>>> training.seed_everything(0)
>>> model = models.ConvNet1d()
>>> models.parameter_count(model)
5210
>>> history = training.fit(model, optim.Adam(model.parameters(), lr=1e-2), mnist.train, mnist.val,
...                        loss="cross_entropy", batch_size=100, max_steps=4000, progress=False)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["seed_classifier", "ConvNet1d", "parameter_count"]


def parameter_count(model: torch.nn.Module) -> int:
    """The number of trainable weights of ``model`` (parameters with ``requires_grad``), counted once each."""
    return sum(param.numel() for param in model.parameters() if param.requires_grad)


def seed_classifier(in_features: int, hidden: int = 32) -> torch.nn.Sequential:
    """The seed article's network with ``in_features`` inputs: Linear(d, 32) + ReLU → Linear(32, 1).

    The last layer returns one logit z per sample; sigmoid(z) is the probability of
    class 1, applied inside the loss (``BCEWithLogitsLoss``) and by
    ``torch.sigmoid`` when a probability is wanted. With d = 8 this is exactly the
    seed's Keras model (8·32 + 32 + 32 + 1 = 321 parameters).
    """
    if int(in_features) < 1 or int(hidden) < 1:
        raise ValueError(f"in_features and hidden must be positive; got {in_features} and {hidden}")
    return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


def _conv_length(length: int, kernel: int, stride: int = 2, padding: int = 1) -> int:
    """Output length of a 1-D convolution: ⌊(L + 2p − k) / s⌋ + 1."""
    return (length + 2 * padding - kernel) // stride + 1


class ConvNet1d(torch.nn.Module):
    r"""The MNIST-1D authors' convolutional network (``ConvBase`` in the mnist1d repository's
    ``notebooks/models.py``): three 1-D convolutions with ReLU, then a linear classifier.

    .. math::  x \in \mathbb{R}^{L} \xrightarrow{\text{conv } 5/2} \mathbb{R}^{c \times L_1}
               \xrightarrow{\text{conv } 3/2} \mathbb{R}^{c \times L_2}
               \xrightarrow{\text{conv } 3/2} \mathbb{R}^{c \times L_3}
               \xrightarrow{\text{flatten, linear}} \mathbb{R}^{10}

    Kernels 5, 3, 3, stride 2 and padding 1 each, ReLU after each convolution, c = ``channels`` (their
    default 25) and L_{i+1} = ⌊(L_i + 2 − k)/2⌋ + 1: for L = 40 samples, L₁ = 19, L₂ = 10, L₃ = 5, so the
    head sees 25 · 5 = 125 features (their ``linear_in=125``). Parameters: 25·5 + 25 = 150, then
    2 · (25·25·3 + 25) = 3,800, then 125·10 + 10 = 1,260: **5,210** in all. The input is a batch of signals
    of shape (N, L) (or (N, 1, L)); the output, N × ``classes`` logits. The authors report 94 % test
    accuracy for their CNN on the default dataset (README and paper, Greydanus & Kobak 2020).
    """

    def __init__(self, length: int = 40, channels: int = 25, classes: int = 10):
        super().__init__()
        for name, value in (("length", length), ("channels", channels), ("classes", classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        final = _conv_length(_conv_length(_conv_length(length, 5), 3), 3)
        if final < 1:
            raise ValueError(f"length={length} is too short for three stride-2 convolutions")
        self.length = length
        self.conv1 = torch.nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = torch.nn.Linear(channels * final, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, x.shape[-1])
        h = self.conv1(x).relu()
        h = self.conv2(h).relu()
        h = self.conv3(h).relu()
        return self.linear(h.flatten(1))


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
    """Cross-entropy of ``logits`` (…, T, V) against the next tokens ``targets`` (…, T), in nats.

    ``reduction="none"`` returns one loss per token, shaped like ``targets``."""
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)
    return losses.reshape(targets.shape) if reduction == "none" else losses


__all__ += ["CausalSelfAttention", "Block", "TinyTransformerLM", "next_token_loss"]
