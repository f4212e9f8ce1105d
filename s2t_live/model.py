"""The Speech2Text encoder-decoder in plain PyTorch.

Module and parameter names follow the reference checkpoints (``model.encoder.layers.0.self_attn.q_proj``,
...), so a Hugging Face state dict loads without renaming. The decoder's key/value cache is an explicit
object (``DecoderCache``) owned by the caller: self-attention keys and values live in preallocated
buffers, cross-attention keys and values are computed once per utterance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import DecoderCache
from .configuration import Speech2TextConfig
from .outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

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


class Speech2TextEncoder(nn.Module):
    """Conv subsampler + sinusoidal positions + pre-norm transformer layers + final layer norm."""

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        self.config = config
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.padding_idx = config.pad_token_id
        self.conv = Conv1dSubsampler(config)
        self.embed_positions = SinusoidalPositionalEmbedding(config.max_source_positions, config.d_model,
                                                             config.pad_token_id)
        self.layers = nn.ModuleList(Speech2TextEncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model)

    def output_mask(self, attention_mask: Tensor, length: int) -> Tensor:
        """Frame-level (B, T) attention mask -> (B, length) mask over subsampled frames."""
        lengths = subsampled_lengths(attention_mask.sum(-1), self.config.num_conv_layers)
        return (torch.arange(length, device=attention_mask.device)[None, :] < lengths[:, None]).long()

    def forward(self, input_features: Tensor, attention_mask: Tensor | None = None, **_: Any) -> BaseModelOutput:
        """input_features: (B, T, 80); attention_mask: (B, T) -> last_hidden_state (B, ~T/4, d_model)."""
        x = self.conv(input_features) * self.embed_scale
        b, s, _ = x.shape
        if attention_mask is not None:
            keep = self.output_mask(attention_mask, s)
            mask = padding_to_additive(keep, x.dtype)
        else:
            keep, mask = torch.ones(b, s, dtype=torch.long, device=x.device), None
        # As in fairseq, the 0/1 padding marker itself is fed to the position ids: with the usual
        # pad id 1, real frames count up from 2 and padded frames get the zero row.
        x = x + self.embed_positions(make_positions(keep.eq(0).long(), self.padding_idx))
        x = F.dropout(x, self.config.dropout, self.training)
        for layer in self.layers:
            if self.training and self.config.encoder_layerdrop > 0 and torch.rand(()) < self.config.encoder_layerdrop:
                continue
            x = layer(x, mask)
        return BaseModelOutput(last_hidden_state=self.layer_norm(x))


class Speech2TextDecoder(nn.Module):
    """Token + position embeddings, pre-norm decoder layers with cross-attention, final layer norm."""

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        # On the meta device skip the initialisation (zeroing the padding row): the loader assigns the weights.
        weight = torch.empty(config.vocab_size, config.d_model) if building_on_meta() else None
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id, _weight=weight)
        self.embed_positions = SinusoidalPositionalEmbedding(config.max_target_positions, config.d_model,
                                                             config.pad_token_id)
        self.layers = nn.ModuleList(Speech2TextDecoderLayer(config) for _ in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model)

    def cross_kv(self, encoder_hidden_states: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Every layer's cross-attention keys and values, (B, H, S, D) each."""
        return [layer.encoder_attn.project_kv(encoder_hidden_states) for layer in self.layers]

    def new_cache(self, encoder_hidden_states: Tensor, max_length: int) -> DecoderCache:
        return DecoderCache(self.cross_kv(encoder_hidden_states), max_length)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                encoder_hidden_states: Tensor | None = None, encoder_attention_mask: Tensor | None = None,
                cache: DecoderCache | None = None, **_: Any) -> Tensor:
        """input_ids: (B, T) new tokens; ``encoder_attention_mask``: (B, S) over encoder frames; with a
        ``cache`` the tokens continue it (cross keys/values come from it). Returns (B, T, d_model)."""
        past = cache.length if cache is not None else 0
        t = input_ids.size(1)
        x = self.embed_tokens(input_ids) * self.embed_scale
        x = x + self.embed_positions(make_positions(input_ids, self.padding_idx, past))
        x = F.dropout(x, self.config.dropout, self.training)
        self_mask = causal_mask(t, past, x.dtype, x.device) if t > 1 else None
        if attention_mask is not None:
            pad = padding_to_additive(attention_mask[:, -(past + t):], x.dtype)
            self_mask = pad if self_mask is None else self_mask + pad
            self_mask = self_mask.clamp(min=torch.finfo(x.dtype).min)
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = padding_to_additive(encoder_attention_mask, x.dtype)
        cross = cache.cross_kv if cache is not None else self.cross_kv(encoder_hidden_states)
        for i, layer in enumerate(self.layers):
            if self.training and self.config.decoder_layerdrop > 0 and torch.rand(()) < self.config.decoder_layerdrop:
                continue
            x = layer(x, self_mask, cross[i], cross_mask, cache, i)
        if cache is not None:
            cache.commit()
        return self.layer_norm(x)


class PretrainedMixin:
    """``from_pretrained``/``save_pretrained`` and the device/dtype helpers shared by both models."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """Load a hub id, a Hugging Face model folder or a fairseq checkpoint; see ``s2t_live.loading``."""
        from .loading import load_model

        return load_model(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> None:
        """Write ``config.json``, ``generation_config.json`` and ``model.safetensors``."""
        from .loading import save_model

        save_model(self, save_directory, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in set(self.parameters()))


class Speech2TextModel(PretrainedMixin, nn.Module):
    """Encoder and decoder without the language-model head (``forward`` returns decoder states)."""

    main_input_name = "input_features"

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        self.config = config
        self.encoder = Speech2TextEncoder(config)
        self.decoder = Speech2TextDecoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def get_encoder(self) -> Speech2TextEncoder:
        return self.encoder

    def encoder_mask(self, attention_mask: Tensor | None, length: int) -> Tensor | None:
        return None if attention_mask is None else self.encoder.output_mask(attention_mask, length)

    def forward(self, input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, decoder_attention_mask: Tensor | None = None,
                encoder_outputs: BaseModelOutput | tuple | None = None, cache: DecoderCache | None = None,
                use_cache: bool | None = None, **_: Any) -> Seq2SeqModelOutput:
        """input_features: (B, T, 80) -> decoder states (B, L, d_model) for ``decoder_input_ids`` (B, L)."""
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_features, attention_mask)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        enc = encoder_outputs.last_hidden_state
        if use_cache and cache is None:
            cache = self.decoder.new_cache(enc, max(decoder_input_ids.size(1), 32))
        hidden = self.decoder(decoder_input_ids, decoder_attention_mask, enc,
                              self.encoder_mask(attention_mask, enc.size(1)), cache)
        return Seq2SeqModelOutput(last_hidden_state=hidden, cache=cache, encoder_last_hidden_state=enc)


def has_ctc_head(config: Speech2TextConfig) -> bool:
    return bool(config.extra.get("ctc_head", False))


def shift_tokens_right(labels: Tensor, pad_token_id: int, decoder_start_token_id: int) -> Tensor:
    """Teacher-forcing decoder inputs: start token, then labels without their last token; -100 -> pad."""
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


class Speech2TextForConditionalGeneration(PretrainedMixin, nn.Module):
    """Speech2TextModel plus the (tied) language-model head; ``generate`` decodes greedy or with beams."""

    main_input_name = "input_features"

    def __init__(self, config: Speech2TextConfig):
        super().__init__()
        self.config = config
        self.model = Speech2TextModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.decoder.embed_tokens.weight
        # An s2t-live extension: the encoder-side head of a model trained with an auxiliary CTC loss
        # (``"ctc_head": true`` in config.json), used by joint CTC/attention decoding (see ctc.py).
        self.ctc_head = nn.Linear(config.d_model, config.vocab_size) if has_ctc_head(config) else None
        self.lexicon = None  # s2t_live.lexicon.Lexicon of the folder's lexicon.txt, for lexicon_penalty
        self.generation_config = None  # set by from_pretrained / generation.GenerationConfig.from_model_config

    def get_encoder(self) -> Speech2TextEncoder:
        return self.model.encoder

    def get_decoder(self) -> Speech2TextDecoder:
        return self.model.decoder

    def forward(self, input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, decoder_attention_mask: Tensor | None = None,
                encoder_outputs: BaseModelOutput | tuple | None = None, cache: DecoderCache | None = None,
                labels: Tensor | None = None, use_cache: bool | None = None, **_: Any) -> Seq2SeqLMOutput:
        """Logits (B, L, vocab) for ``decoder_input_ids``; with ``labels`` (B, L) also the mean
        cross-entropy over labels that are not -100 (decoder inputs are then the shifted labels)."""
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        out = self.model(input_features, attention_mask, decoder_input_ids, decoder_attention_mask,
                         encoder_outputs, cache, use_cache)
        logits = self.lm_head(out.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1))
        return Seq2SeqLMOutput(loss=loss, logits=logits, cache=out.cache,
                               encoder_last_hidden_state=out.encoder_last_hidden_state)

    @torch.inference_mode()
    def generate(self, inputs: Tensor | None = None, generation_config: Any = None, **kwargs: Any) -> Any:
        """Decode token ids for (B, T, 80) features, as the reference ``generate`` does; see
        ``s2t_live.generation.generate`` for the options (num_beams, max_length, ...)."""
        from .generation import generate

        return generate(self, inputs, generation_config, **kwargs)


