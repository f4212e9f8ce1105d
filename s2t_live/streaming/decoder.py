"""The model calls of streaming recognition, on one segment at a time and holding no stream state.

A segment's filterbank frames are normalised over the whole segment (as the offline feature extractor
does), encoded, and decoded either briefly (a partial: a few tokens past the committed ones) or fully (a
final: continuing from the committed tokens, plus optionally an unconstrained decode of the same encoder
output to measure how far streaming moved the result). Greedy decodes check a draft first (the previous
hypothesis, see ``draft.py``); after committed tokens the next token must start a new word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from s2t_live.ctc import joint_scorer
from s2t_live.generation import Stepper, beam_search, resolve_config
from s2t_live.logits import LogitProcessor, build_processors
from s2t_live.warp import warp_fits, warped_inputs

from .draft import greedy_with_draft


def word_agreement(reference: str, hypothesis: str) -> float:
    """1 - word error rate of ``hypothesis`` against ``reference`` (floored at 0; 1.0 when both are empty)."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 1.0 if not hyp else 0.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return max(0.0, 1.0 - row[-1] / len(ref))


@dataclass(frozen=True)
class FinalDecode:
    """A segment's final tokens and, when asked for, the unconstrained decode of the same audio."""

    tokens: list[int]
    offline_tokens: list[int] | None = None


class SegmentDecoder:
    """Encode a segment's frames and decode partial or final token ids (content only: no start/eos).

    ``num_beams`` is the partials' beam size (1: greedy), ``final_beams`` that of the finals and of the
    offline check (None: ``num_beams``); ``partial_max_new_tokens`` bounds how far a partial decodes past
    the committed tokens; finals and offline decodes share ``max_length``;
    ``ctc_weight`` (0-1) weighs the model's CTC head in every decode, ``lexicon_penalty`` prices words
    outside its lexicon and ``lm_weight`` / ``word_bonus`` weigh its word LM (None: the checkpoint's
    settings). ``warp_factors``: the frequency warps a stream chooses among (``s2t_live.warp``; empty: none;
    judging them needs the model's CTC head).
    """

    def __init__(self, model: Any, processor: Any, num_beams: int = 1, partial_max_new_tokens: int = 10,
                 max_length: int | None = None, ctc_weight: float | None = None,
                 lexicon_penalty: float | None = None, lm_weight: float | None = None,
                 word_bonus: float | None = None, final_beams: int | None = None,
                 warp_factors: Sequence[float] = ()) -> None:
        self.model = model
        self.extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.num_beams = num_beams
        self.final_beams = final_beams or num_beams
        self.warp_factors = [float(a) for a in warp_factors]
        self.partial_max_new_tokens = partial_max_new_tokens
        self.ctc_weight, self.lexicon_penalty = ctc_weight, lexicon_penalty
        self.lm_weight, self.word_bonus = lm_weight, word_bonus
        gc = model.generation_config
        self.max_length = max_length or (gc.max_length if gc is not None and gc.max_length else None) \
            or min(model.config.max_target_positions, 200)
        self.start_id = model.config.decoder_start_token_id
        eos = model.config.eos_token_id
        self.stop_ids = {eos, model.config.pad_token_id} if eos is not None else {model.config.pad_token_id}
        pieces = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        special = set(self.tokenizer.all_special_ids)
        self._word_start = [p.startswith("▁") and i not in special for i, p in enumerate(pieces)]
        # After committed words the next token must start a new word (or end): a committed word never grows.
        vocab = model.lm_head.out_features
        self._continues_word = torch.ones(vocab, dtype=torch.bool)
        self._continues_word[[i for i, w in enumerate(self._word_start[:vocab]) if w]] = False
        self._continues_word[[t for t in self.stop_ids if t is not None and t < vocab]] = False

    def is_word_start(self, token: int) -> bool:
        return 0 <= token < len(self._word_start) and self._word_start[token]

    def text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True) if tokens else ""

    def normalise(self, frames: Tensor, warp: float = 1.0) -> Tensor:
        """(T, 80) filterbank frames -> (1, T, 80) features, warped by ``warp`` and normalised as the
        feature extractor does."""
        return warped_inputs(self.extractor, frames, warp)

    @torch.inference_mode()
    def encode(self, frames: Tensor, warp: float = 1.0) -> Tensor:
        """(T, 80) frames of one segment -> encoder output (1, ~T/4, d_model)."""
        features = self.normalise(frames, warp).to(self.model.device, self.model.dtype)
        return self.model.model.encoder(features).last_hidden_state

    def warp_fits(self, frames: Tensor) -> list[tuple[float, int]]:
        """How the CTC head likes a finished segment's (T, 80) frames under each of ``warp_factors``."""
        return warp_fits(self.model, self.extractor, frames, self.warp_factors)

    def _content(self, ids: Sequence[int]) -> list[int]:
        """Tokens after the start token, up to (not including) eos/pad."""
        out = []
        for token in list(ids)[1:]:
            if token in self.stop_ids:
                break
            out.append(token)
        return out

    def _new_word_at(self, position: int) -> LogitProcessor:
        """Forbid tokens that would continue the last committed word at decoder position ``position``."""
        banned = self._continues_word.to(self.model.device)

        def apply(ids: Tensor, scores: Tensor) -> Tensor:
            return scores.masked_fill(banned, -float("inf")) if ids.size(1) == position else scores
        return apply

    @torch.inference_mode()
    def _generate(self, encoded: Tensor, prefix: Sequence[int], max_length: int,
                  draft: Sequence[int] = (), *, num_beams: int = 1) -> list[int]:
        """Greedy (checking ``draft`` first) or beam decoding of one segment continuing ``prefix``, with
        the checkpoint's settings (as ``generate`` resolves them) plus the committed-word guard."""
        prompt = [self.start_id, *prefix]
        gc, _ = resolve_config(self.model, None, {"num_beams": num_beams, "max_length": max_length,
                                                  "num_return_sequences": 1, "ctc_weight": self.ctc_weight,
                                                  "lexicon_penalty": self.lexicon_penalty,
                                                  "lm_weight": self.lm_weight, "word_bonus": self.word_bonus},
                               len(prompt))
        processors = build_processors(gc) + ([self._new_word_at(len(prompt))] if prefix else [])
        k = gc.num_beams
        start = torch.tensor([prompt], dtype=torch.long, device=encoded.device).repeat_interleave(k, dim=0)
        scorer = joint_scorer(self.model, gc, encoded, None, start)
        if k == 1:
            return self._content(greedy_with_draft(self.model, encoded, prompt, draft, gc, processors, scorer))
        step = Stepper(self.model, encoded, None, gc.max_length, expand=k)
        ids, _ = beam_search(step, start, gc, processors, 1, scorer)
        return self._content(ids[0].tolist())

    def partial(self, encoded: Tensor, committed: Sequence[int], draft: Sequence[int] = ()) -> list[int]:
        """The hypothesis for a partial: ``committed`` then at most ``partial_max_new_tokens`` more.
        ``draft``: a guess of those tokens (the previous partial's tentative ones)."""
        limit = min(self.max_length, len(committed) + 1 + self.partial_max_new_tokens)
        if limit <= len(committed) + 1:
            return list(committed)
        return self._generate(encoded, committed, limit, draft, num_beams=self.num_beams)

    def final(self, encoded: Tensor, committed: Sequence[int], offline: bool, draft: Sequence[int] = ()) -> FinalDecode:
        """The segment's final tokens, continuing from ``committed`` (``draft``: a guess of the rest);
        with ``offline`` also the unconstrained decode, which is checked against the final first."""
        committed = list(committed)
        tokens = self._generate(encoded, committed, self.max_length, draft, num_beams=self.final_beams)
        if not offline:
            return FinalDecode(tokens)
        return FinalDecode(tokens, self._generate(encoded, [], self.max_length, tokens,
                                                   num_beams=self.final_beams))
