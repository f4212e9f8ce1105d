"""The building blocks of the Speech2Text encoder and decoder: the convolutional subsampler, sinusoidal
positions, multi-head attention, the pre-norm transformer layers and their masks (``s2t_live.model``
puts them together)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import DecoderCache
from .configuration import Speech2TextConfig

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "linear": lambda x: x,
}


def subsampled_lengths(lengths: Tensor, num_conv_layers: int) -> Tensor:
    """Frame counts after the stride-2 convolutions: ``(n - 1) // 2 + 1`` per layer."""
    for _ in range(num_conv_layers):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


def sinusoidal_table(num_embeddings: int, dim: int, padding_idx: int | None) -> Tensor:
    """fairseq's sinusoidal position table (sin half, then cos half); row ``padding_idx`` is zero."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    angles = torch.arange(num_embeddings, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(num_embeddings, 1)], dim=1)
    if padding_idx is not None:
        table[padding_idx] = 0
    return table


def make_positions(tokens: Tensor, padding_idx: int, past_length: int = 0) -> Tensor:
    """fairseq position ids: non-pad tokens count up from ``padding_idx + 1 + past_length``; pads stay ``padding_idx``."""
    mask = tokens.ne(padding_idx).long()
    return (torch.cumsum(mask, dim=1) + past_length) * mask + padding_idx


def building_on_meta() -> bool:
    """Whether modules are being built on the meta device (by the loader, before it assigns the weights).
    Initialising a tensor there (arange, indexing) goes through torch's reference implementations and
    imports ``torch._dynamo`` and sympy, seconds of start-up, so the modules skip that work."""
    return torch.get_default_device().type == "meta"


class SinusoidalPositionalEmbedding(nn.Module):
    """Position embeddings looked up by fairseq position id; the table grows if a longer input arrives."""

    def __init__(self, num_positions: int, dim: int, padding_idx: int):
        super().__init__()
        self.dim, self.padding_idx = dim, padding_idx
        if building_on_meta():  # the loader fills the table in afterwards
            table = torch.empty(num_positions + 2, dim)
        else:
            table = sinusoidal_table(num_positions + 2, dim, padding_idx)
        self.register_buffer("weights", table, persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """positions: (batch, time) ids -> (batch, time, dim)."""
        needed = int(positions.max()) + 1 if positions.numel() else 0
        if needed > self.weights.size(0):
            table = sinusoidal_table(needed, self.dim, self.padding_idx)
            self.weights = table.to(self.weights.device, self.weights.dtype)
        return self.weights[positions]


class Conv1dSubsampler(nn.Module):
    """Stride-2 1-D convolutions over time, each followed by a GLU; (B, T, 80) -> (B, ~T/4, d_model)."""

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        n = config.num_conv_layers
        in_ch = config.input_feat_per_channel * config.input_channels
        mid = config.conv_channels
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(in_ch if i == 0 else mid // 2, mid if i < n - 1 else config.d_model * 2,
                      kernel_size=k, stride=2, padding=k // 2)
            for i, k in enumerate(config.conv_kernel_sizes))

    def forward(self, features: Tensor) -> Tensor:
        x = features.transpose(1, 2)
        for conv in self.conv_layers:
            x = F.glu(conv(x), dim=1)
        return x.transpose(1, 2)


class Speech2TextAttention(nn.Module):
    """Multi-head attention; with ``key_value_states`` it attends to the encoder (cross-attention)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"d_model {embed_dim} is not divisible by {num_heads} attention heads")
        self.num_heads, self.head_dim, self.dropout = num_heads, embed_dim // num_heads, dropout
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, H, T, C/H)."""
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, groups: int = 1) -> Tensor:
        """q: (B * groups, H, Tq, D); k, v: (B, H, Tk, D); mask: additive, broadcastable to (B, H, Tq, Tk).

        With ``groups`` > 1, each run of ``groups`` consecutive query rows (the beams of one utterance)
        attends to one row of keys/values: the beams become extra query positions, so the encoder keys
        and values are read once per utterance instead of once per beam."""
        p = self.dropout if self.training else 0.0
        n, h, t, d = q.shape
        if groups > 1:
            q = q.view(n // groups, groups, h, t, d).transpose(1, 2).reshape(n // groups, h, groups * t, d)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu":
            # Under CPU bfloat16 autocast, attention as two bfloat16 matrix products around a float32
            # softmax. The CPU's fused attention is slow at these small shapes, in bfloat16 most of all:
            # forward and backward of a 22 x 4 x 45 x 40 call took 7.4 ms through float32 flash attention
            # (what this path did before) and 1.5 ms this way (session 27).
            scores = torch.matmul(q, k.transpose(-1, -2)) * d ** -0.5
            if mask is not None:
                scores = scores + mask
            weights = F.dropout(scores.float().softmax(-1), p, self.training)
            out = torch.matmul(weights.to(v.dtype), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        if groups > 1:
            out = out.view(n // groups, h, groups, t, d).transpose(1, 2).reshape(n, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(n, t, -1))

    def forward(self, hidden_states: Tensor, key_value_states: Tensor | None = None,
                attention_mask: Tensor | None = None) -> Tensor:
        """Uncached attention over (B, T, C) inputs; used by the encoder and for teacher forcing."""
        q = self.split_heads(self.q_proj(hidden_states))
        k, v = self.project_kv(hidden_states if key_value_states is None else key_value_states)
        return self.attend(q, k, v, attention_mask)


class Speech2TextEncoderLayer(nn.Module):
    """Pre-norm transformer layer: self-attention then feed-forward, each with a residual."""

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        d = config.d_model
        self.self_attn = Speech2TextAttention(d, config.encoder_attention_heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = ACTIVATIONS[config.activation_function]
        self.dropout, self.activation_dropout = config.dropout, config.activation_dropout

    def feed_forward(self, x: Tensor) -> Tensor:
        x = F.dropout(self.act(self.fc1(self.final_layer_norm(x))), self.activation_dropout, self.training)
        return F.dropout(self.fc2(x), self.dropout, self.training)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + F.dropout(self.self_attn(self.self_attn_layer_norm(x), attention_mask=mask), self.dropout,
                          self.training)
        x = x + self.feed_forward(x)
        if x.dtype == torch.float16:
            bound = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-bound, bound)
        return x


class Speech2TextDecoderLayer(Speech2TextEncoderLayer):
    """Pre-norm decoder layer: causal self-attention, cross-attention to the encoder, feed-forward."""

    def __init__(self, config: Speech2TextConfig):
        super().__init__(config)
        d, heads = config.d_model, config.decoder_attention_heads
        self.self_attn = Speech2TextAttention(d, heads, config.attention_dropout)
        self.encoder_attn = Speech2TextAttention(d, heads, config.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, d)

    def forward(self, x: Tensor, self_mask: Tensor | None, cross_kv: tuple[Tensor, Tensor],
                cross_mask: Tensor | None, cache: DecoderCache | None = None, index: int = 0) -> Tensor:
        """x: (B, T, C); ``cross_kv``: encoder keys/values (B, H, S, D). With a cache, this step's
        self-attention keys/values are appended to layer ``index`` of it and attention covers all of them."""
        h = self.self_attn_layer_norm(x)
        attn = self.self_attn
        q = attn.split_heads(attn.q_proj(h))
        k, v = attn.project_kv(h)
        if cache is not None:
            k, v = cache.append(index, k, v)
        x = x + F.dropout(attn.attend(q, k, v, self_mask), self.dropout, self.training)
        h = self.encoder_attn_layer_norm(x)
        q = self.encoder_attn.split_heads(self.encoder_attn.q_proj(h))
        beams = cache.beams if cache is not None else 1
        x = x + F.dropout(self.encoder_attn.attend(q, *cross_kv, cross_mask, beams), self.dropout, self.training)
        return x + self.feed_forward(x)


def padding_to_additive(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, S) 1/True for real keys -> additive (B, 1, 1, S) mask: 0 where kept, dtype min where padded."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(
        ~keep.bool(), torch.finfo(dtype).min)[:, None, None, :]


def causal_mask(q_len: int, past: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Additive (1, 1, q_len, past + q_len) mask letting query ``i`` see keys ``<= past + i``."""
    k_pos = torch.arange(past + q_len, device=device)
    q_pos = torch.arange(q_len, device=device)[:, None] + past
    return torch.zeros(q_len, past + q_len, dtype=dtype, device=device).masked_fill(
        k_pos[None, :] > q_pos, torch.finfo(dtype).min)[None, None]
