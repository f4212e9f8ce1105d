"""Greedy and beam-search decoding for Speech2Text, with the reference ``generate``'s options and results.

The decoding loop runs on tensors: the encoder once, cross-attention keys/values once, then one decoder
step per token over a preallocated cache. Beam search keeps ``num_beams`` running hypotheses per
utterance and ``num_beams`` finished ones, scored exactly as the reference scores them (log-probabilities
summed, finished hypotheses divided by ``length ** length_penalty``), so the same ids come out.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .cache import DecoderCache
from .ctc import JointScorer, joint_scorer
from .logits import LogitProcessor, apply_processors, build_processors

GENERATION_CONFIG_NAME = "generation_config.json"

# Used for a setting left unset by the call, the checkpoint's generation config and its config.json.
GLOBAL_DEFAULTS = {
    "max_length": 20, "min_length": 0, "num_beams": 1, "early_stopping": False, "length_penalty": 1.0,
    "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "num_return_sequences": 1, "ctc_weight": 0.0,
    "lexicon_penalty": 0.0, "lm_weight": 0.0, "word_bonus": 0.0,
}
NEG = -1.0e9  # the reference's "impossible" score for beams


@dataclass
class GenerationConfig:
    """Decoding options; ``None`` means "take it from the checkpoint, else the global default"."""

    max_length: int | None = None
    max_new_tokens: int | None = None
    min_length: int | None = None
    min_new_tokens: int | None = None
    num_beams: int | None = None
    early_stopping: bool | str | None = None
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    bad_words_ids: list[list[int]] | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None
    num_return_sequences: int | None = None
    decoder_start_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    # s2t-live: weight of the CTC prefix score in joint CTC/attention decoding (models with a CTC head).
    ctc_weight: float | None = None
    lexicon_penalty: float | None = None  # score cost of each word outside the model's lexicon.txt
    lm_weight: float | None = None  # weight of the model's word LM (lm.npz / lm.arpa) in shallow fusion
    word_bonus: float | None = None  # score added per finished word when the word LM is on
    # s2t-live: the beam sizes the live recognizer uses with this model, for partials and for finals, when
    # the stream's own settings leave them open (None: greedy partials, finals like the partials).
    stream_num_beams: int | None = None
    stream_final_beams: int | None = None
    # s2t-live: frequency warps tried before decoding, the one the model finds most familiar used (test-time
    # vocal tract length normalisation, s2t_live.warp); None: no warping.
    warp_factors: list[float] | None = None
    # s2t-live: how offline transcription uses them: with k, each piece of speech is decoded at the k warps
    # whose audio the CTC head is surest of and the best-scoring hypothesis is kept; None: one warp per file
    # (or speaker), the CTC head's choice. Live recognition always makes the CTC head's choice.
    warp_decodes: int | None = None
    use_cache: bool = True
    return_dict_in_generate: bool = False
    output_scores: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationConfig":
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def from_model_config(cls, config: Any) -> "GenerationConfig":
        """Legacy defaults: generation keys and special-token ids stored in ``config.json``."""
        tokens = {k: getattr(config, k) for k in ("decoder_start_token_id", "bos_token_id", "eos_token_id",
                                                  "pad_token_id")}
        return cls.from_dict({**config.generation_defaults(), **tokens})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "GenerationConfig":
        return cls.from_dict(json.loads((Path(folder) / GENERATION_CONFIG_NAME).read_text()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **{k: v for k, v in data.items() if v is not None and k not in
                            ("use_cache", "return_dict_in_generate", "output_scores")}}

    def save_pretrained(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / GENERATION_CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def eos_ids(self) -> list[int]:
        eos = self.eos_token_id
        return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@dataclass
class GenerateOutput:
    """``generate(..., return_dict_in_generate=True)``: ids and, for beam search, their final scores."""

    sequences: Tensor
    sequences_scores: Tensor | None = None

    def __getitem__(self, key: int | str) -> Any:
        return getattr(self, key) if isinstance(key, str) else (self.sequences, self.sequences_scores)[key]


# ---------------------------------------------------------------------------------------------------
# Settings


def resolve_config(model: Any, generation_config: GenerationConfig | None, kwargs: dict[str, Any],
                   prompt_len: int) -> tuple[GenerationConfig, dict[str, Any]]:
    """Merge call kwargs > ``generation_config`` > the checkpoint's > global defaults, as the reference
    does; return the config and the kwargs that are model inputs. Lengths are made absolute."""
    base = model.generation_config or GenerationConfig.from_model_config(model.config)
    for name in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(base, name) is None:  # a generation_config.json without token ids: take the model's
            base = copy.copy(base)
            setattr(base, name, getattr(model.config, name))
    gc = copy.deepcopy(generation_config) if generation_config is not None else GenerationConfig()
    names = {f.name for f in fields(GenerationConfig)} - {"extra"}
    model_kwargs = {k: v for k, v in kwargs.items() if k not in names}
    default_max = kwargs.get("max_length") is None and gc.max_length is None and base.max_length is None
    for name in names:
        if getattr(gc, name) is None:
            setattr(gc, name, getattr(base, name))
        if getattr(gc, name) is None and name in GLOBAL_DEFAULTS:
            setattr(gc, name, GLOBAL_DEFAULTS[name])
    for name, value in kwargs.items():
        if name in names and value is not None:
            setattr(gc, name, value)
    if gc.max_new_tokens is not None:
        gc.max_length = gc.max_new_tokens + prompt_len
    elif default_max:
        gc.max_length = gc.max_length + prompt_len
    if gc.min_new_tokens is not None:
        gc.min_length = gc.min_new_tokens + prompt_len
    if gc.pad_token_id is None and gc.eos_ids():
        gc.pad_token_id = gc.eos_ids()[0]
    if gc.num_return_sequences > gc.num_beams:
        raise ValueError("num_return_sequences cannot be larger than num_beams")
    return gc, model_kwargs


def decoder_prompt(batch: int, start: int, prefix: Tensor | None, device: torch.device) -> Tensor:
    """Decoder input ids to continue from: the start token, then ``prefix`` (if it lacks the start token)."""
    starts = torch.full((batch, 1), start, dtype=torch.long, device=device)
    if prefix is None:
        return starts
    prefix = torch.as_tensor(prefix, dtype=torch.long, device=device)
    if prefix.dim() == 1:
        prefix = prefix[None].expand(batch, -1)
    if prefix.size(1) == 0 or bool((prefix[:, 0] != start).all()):
        prefix = torch.cat([starts, prefix], dim=1)
    return prefix


# ---------------------------------------------------------------------------------------------------
# Decoding


class Stepper:
    """One decoder step at a time over an explicit cache: feeds tokens, returns last-position logits."""

    def __init__(self, model: Any, encoder_hidden: Tensor, encoder_mask: Tensor | None, max_length: int,
                 expand: int = 1):
        self.model = model
        self.decoder = model.model.decoder
        # Cross-attention keys/values are computed once per utterance and shared by its beams.
        self.cache = DecoderCache(self.decoder.cross_kv(encoder_hidden), max_length, beams=expand)
        self.encoder_mask = encoder_mask

    def select(self, keep: Tensor) -> None:
        """Go on with the utterances ``keep`` only (see ``DecoderCache.select``)."""
        self.cache.select(keep)
        if self.encoder_mask is not None:
            self.encoder_mask = self.encoder_mask[keep]

    def __call__(self, tokens: Tensor) -> Tensor:
        """tokens: (N, T) new tokens -> float32 logits (N, V) at the last of them."""
        hidden = self.decoder(tokens, None, None, self.encoder_mask, self.cache)
        return self.model.lm_head(hidden[:, -1]).float()


def greedy_search(step: Stepper, prompt: Tensor, gc: GenerationConfig, procs: list[LogitProcessor],
                  scorer: JointScorer | None = None) -> Tensor:
    """Argmax decoding; finished rows are padded with ``pad_token_id``. Returns (B, L) ids. With a
    ``scorer`` (``ctc.joint_scorer``) the argmax is over its joint scores (CTC, lexicon).

    A row that has produced an end token is dropped from the decoder's batch: the later steps cost
    nothing for it, and its result is the same as if it had been padded along."""
    eos = torch.tensor(gc.eos_ids(), dtype=torch.long, device=prompt.device)
    batch, plen = prompt.shape
    out = torch.full((batch, max(gc.max_length, plen + 1)), gc.pad_token_id, dtype=torch.long, device=prompt.device)
    out[:, :plen] = prompt
    alive = torch.arange(batch, device=prompt.device)
    new, cur = prompt, plen
    while True:
        scores = apply_processors(procs, out[alive, :cur], step(new))
        if scorer is not None:
            scores = scorer(out[alive, :cur], torch.log_softmax(scores, dim=-1))
        token = scores.argmax(-1)
        if scorer is not None:
            scorer.advance(torch.arange(token.numel(), device=token.device), token)
        out[alive, cur] = token
        cur += 1
        finished = torch.isin(token, eos)
        if bool(finished.all()) or cur >= gc.max_length:
            return out[:, :cur]
        if bool(finished.any()):
            keep = (~finished).nonzero().squeeze(1)
            alive, token = alive[keep], token[keep]
            step.select(keep)
            if scorer is not None:
                scorer.select(keep)
        new = token[:, None]


def gather_beams(t: Tensor, index: Tensor) -> Tensor:
    """t: (B, K, ...) and index (B, K') -> (B, K', ...)."""
    shape = index.shape + t.shape[2:]
    return t.gather(1, index.reshape(index.shape + (1,) * (t.dim() - 2)).expand(shape))


def beam_search(step: Stepper, prompt: Tensor, gc: GenerationConfig, procs: list[LogitProcessor],
                batch: int, scorer: JointScorer | None = None) -> tuple[Tensor, Tensor]:
    """Vectorised beam search over (batch * num_beams) rows; returns (ids, scores) of the best
    ``num_return_sequences`` finished hypotheses per utterance, best first. With a ``scorer`` the beams are
    ranked by its joint scores (CTC, lexicon)."""
    k, max_len, lp, early = gc.num_beams, gc.max_length, gc.length_penalty, gc.early_stopping
    dev = prompt.device
    eos = torch.tensor(gc.eos_ids(), dtype=torch.long, device=dev)
    keep = max(2, 1 + eos.numel()) * k
    top_k_mask = torch.arange(keep, device=dev) < k
    plen = cur = prompt.size(1)
    fill = gc.pad_token_id if gc.pad_token_id else gc.eos_ids()[0]

    running = torch.full((batch, k, max_len), fill, dtype=torch.long, device=dev)
    running[:, :, :plen] = prompt.view(batch, k, plen)
    done = running.clone()
    run_scores = torch.zeros(batch, k, device=dev)
    run_scores[:, 1:] = NEG
    done_scores = torch.full((batch, k), NEG, device=dev)
    done_len = torch.zeros(batch, k, dtype=torch.long, device=dev)
    is_done = torch.zeros(batch, k, dtype=torch.bool, device=dev)
    improvable = torch.ones(batch, 1, dtype=torch.bool, device=dev)
    offsets = torch.arange(batch, device=dev)[:, None] * k
    # Results of utterances whose finished set can no longer change; they leave the batch.
    alive = torch.arange(batch, device=dev)
    final_done, final_scores, final_len = done.clone(), done_scores.clone(), done_len.clone()
    new = prompt
    while True:
        flat = running[:, :, :cur].reshape(batch * k, cur)
        logp = apply_processors(procs, flat, torch.log_softmax(step(new), dim=-1))
        if scorer is not None:
            logp = scorer(flat, logp)
        vocab = logp.size(-1)
        acc = (logp.view(batch, k, vocab) + run_scores[:, :, None]).view(batch, k * vocab)
        cand_scores, cand = torch.topk(acc, keep)
        src = torch.div(cand, vocab, rounding_mode="floor")
        cand_seqs = gather_beams(running, src)
        cand_seqs[:, :, cur] = cand % vocab
        hits = torch.isin(cand_seqs[:, :, cur], eos) | (cur + 1 >= max_len)

        # Running beams for the next step: the best candidates that did not just stop.
        masked = cand_scores + hits.to(torch.float32) * NEG
        sel = torch.topk(masked, k)[1]
        running, run_scores, run_src = gather_beams(cand_seqs, sel), gather_beams(masked, sel), gather_beams(src, sel)

        # Finished beams: merge the top-k candidates that stopped, length-normalised.
        just_done = hits & top_k_mask[None, :]
        normed = cand_scores / ((cur + 1 - plen) ** lp)
        normed += (is_done.all(dim=-1, keepdim=True) & (early is True)).to(torch.float32) * NEG
        normed += (~improvable).to(torch.float32) * NEG
        normed += (~just_done) * NEG
        merged_scores = torch.cat([done_scores, normed], dim=1)
        best = torch.topk(merged_scores, k)[1]
        done = gather_beams(torch.cat([done, cand_seqs], dim=1), best)
        done_scores = gather_beams(merged_scores, best)
        cand_len = torch.full_like(cand_scores, cur + 1 - plen, dtype=torch.long)
        done_len = gather_beams(torch.cat([done_len, cand_len], dim=1), best)
        is_done = gather_beams(torch.cat([is_done, just_done], dim=1), best)

        step.cache.reorder((run_src + offsets).view(-1))
        if scorer is not None:
            scorer.advance((run_src + offsets).view(-1), running[:, :, cur].reshape(-1))
        cur += 1
        best_len = max_len - plen if early == "never" and lp > 0.0 else cur - plen
        best_running = run_scores[:, :1] / (best_len ** lp)
        worst_done = torch.where(is_done, done_scores.min(dim=1, keepdim=True)[0], NEG)
        improvable = improvable & (best_running > worst_done).any(dim=-1, keepdim=True)
        # An utterance is final once it cannot improve, or (early stopping) all its beams are done.
        final = ~improvable[:, 0] | (is_done.all(dim=-1) & (early is True)) | hits.all(dim=-1)
        if bool(final.any()):
            final_done[alive[final]], final_scores[alive[final]] = done[final], done_scores[final]
            final_len[alive[final]] = done_len[final]
            stay = (~final).nonzero().squeeze(1)
            if stay.numel() == 0:
                break
            alive = alive[stay]
            running, run_scores, done, done_scores = running[stay], run_scores[stay], done[stay], done_scores[stay]
            done_len, is_done, improvable = done_len[stay], is_done[stay], improvable[stay]
            batch = stay.numel()
            offsets = torch.arange(batch, device=dev)[:, None] * k
            step.select(stay)
            if scorer is not None:
                scorer.select((stay[:, None] * k + torch.arange(k, device=dev)).view(-1))
        new = running[:, :, cur - 1].reshape(batch * k, 1)

    n = gc.num_return_sequences
    out_len = plen + int(final_len[:, :n].max())
    return final_done[:, :n, :out_len].reshape(-1, out_len), final_scores[:, :n].reshape(-1)


def generate(model: Any, inputs: Tensor | None = None, generation_config: GenerationConfig | None = None,
             **kwargs: Any) -> Tensor | GenerateOutput:
    """Token ids for a batch of (B, T, 80) features: ``attention_mask`` (B, T), ``decoder_input_ids``
    (a prefix to continue), ``num_beams``, ``max_length``/``max_new_tokens``, ``min_length``,
    ``length_penalty``, ``early_stopping``, ``no_repeat_ngram_size``, ``repetition_penalty``,
    ``forced_bos_token_id``, ``forced_eos_token_id``, ``num_return_sequences``, and ``ctc_weight``
    (joint CTC/attention decoding, for a model with a CTC head; 0 ignores the head), ``lexicon_penalty``
    (the cost of each word outside the model's ``lexicon.txt``; 0 ignores it), ``lm_weight`` and
    ``word_bonus`` (shallow fusion with the model's word n-gram LM ``lm.npz``/``lm.arpa``; 0 ignores it).
    Returns (B * n, L) ids starting with the decoder start token, or a ``GenerateOutput`` with ``return_dict_in_generate``."""
    features = inputs if inputs is not None else kwargs.pop("input_features", None)
    encoder_outputs = kwargs.pop("encoder_outputs", None)
    if features is None and encoder_outputs is None:
        raise ValueError("generate needs input features (B, T, 80) or encoder_outputs")
    batch = features.size(0) if features is not None else encoder_outputs[0].size(0)
    dev = model.device
    start = kwargs.get("decoder_start_token_id") or model.config.decoder_start_token_id
    prompt = decoder_prompt(batch, start, kwargs.pop("decoder_input_ids", None), dev)
    gc, model_kwargs = resolve_config(model, generation_config, kwargs, prompt.size(1))
    attention_mask = model_kwargs.pop("attention_mask", None)
    if encoder_outputs is None:
        features = features.to(dev, model.dtype)
        attention_mask = attention_mask.to(dev) if attention_mask is not None else None
        encoder_hidden = model.model.encoder(features, attention_mask).last_hidden_state
    else:
        encoder_hidden = encoder_outputs[0]
    encoder_mask = model.model.encoder_mask(attention_mask, encoder_hidden.size(1))
    procs = build_processors(gc)
    k = gc.num_beams
    if k > 1:
        prompt = prompt.repeat_interleave(k, dim=0)
    step = Stepper(model, encoder_hidden, encoder_mask, gc.max_length, expand=k)
    scorer = joint_scorer(model, gc, encoder_hidden, encoder_mask, prompt)
    if k > 1:
        ids, scores = beam_search(step, prompt, gc, procs, batch, scorer)
    else:
        ids, scores = greedy_search(step, prompt, gc, procs, scorer), None
    if gc.return_dict_in_generate:
        return GenerateOutput(sequences=ids, sequences_scores=scores if gc.output_scores else None)
    return ids
