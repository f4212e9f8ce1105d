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
from .layers import (Conv1dSubsampler, SinusoidalPositionalEmbedding, Speech2TextDecoderLayer,
                     Speech2TextEncoderLayer, building_on_meta, causal_mask, make_positions,
                     padding_to_additive, subsampled_lengths)
from .outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput


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


