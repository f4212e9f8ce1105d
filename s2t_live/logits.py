"""Logit processors: the reference ``generate``'s bans and forcings, applied to each step's scores.

A processor is a function ``(sequences so far (N, L), scores (N, V)) -> scores``; ``build_processors``
makes those a ``GenerationConfig`` asks for, in the reference's order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .generation import GenerationConfig

LogitProcessor = Callable[[Tensor, Tensor], Tensor]


def repetition_penalty(penalty: float) -> LogitProcessor:
    def apply(ids: Tensor, scores: Tensor) -> Tensor:
        seen = scores.gather(1, ids)
        return scores.scatter(1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))
    return apply


def no_repeat_ngram(n: int) -> LogitProcessor:
    """Ban any token that would repeat an n-gram already present in the hypothesis."""
    def apply(ids: Tensor, scores: Tensor) -> Tensor:
        length = ids.size(1)
        if length + 1 < n:
            return scores
        scores = scores.clone()
        for row, seq in enumerate(ids.tolist()):
            prefix = tuple(seq[length - n + 1:])
            banned = [seq[i + n - 1] for i in range(length - n + 1) if tuple(seq[i:i + n - 1]) == prefix]
            if banned:
                scores[row, banned] = -math.inf
        return scores
    return apply


def bad_words(bad_ids: list[list[int]], eos: list[int]) -> LogitProcessor:
    """Ban single-token words always and multi-token words when their prefix was just produced."""
    words = [w for w in bad_ids if w != eos[:1] or len(w) != 1]
    def apply(ids: Tensor, scores: Tensor) -> Tensor:
        scores = scores.clone()
        for row, seq in enumerate(ids.tolist()):
            for w in words:
                if len(w) == 1 or seq[len(seq) - len(w) + 1:] == w[:-1]:
                    scores[row, w[-1]] = -math.inf
        return scores
    return apply


def min_length(limit: int, eos: list[int]) -> LogitProcessor:
    def apply(ids: Tensor, scores: Tensor) -> Tensor:
        if ids.size(1) < limit:
            scores = scores.clone()
            scores[:, eos] = -math.inf
        return scores
    return apply


def force_token_at(position: int, token: int) -> LogitProcessor:
    """Force ``token`` when the hypothesis has ``position`` tokens (forced BOS: 1, forced EOS: max_length-1)."""
    def apply(ids: Tensor, scores: Tensor) -> Tensor:
        if ids.size(1) != position:
            return scores
        forced = torch.full_like(scores, -math.inf)
        forced[:, token] = 0
        return forced
    return apply


def build_processors(gc: GenerationConfig) -> list[LogitProcessor]:
    """The processors the settings ask for, in the reference's order."""
    eos = gc.eos_ids()
    procs: list[LogitProcessor] = []
    if gc.repetition_penalty not in (None, 1.0):
        procs.append(repetition_penalty(gc.repetition_penalty))
    if gc.no_repeat_ngram_size:
        procs.append(no_repeat_ngram(gc.no_repeat_ngram_size))
    if gc.bad_words_ids:
        procs.append(bad_words(gc.bad_words_ids, eos))
    if gc.min_length and eos:
        procs.append(min_length(gc.min_length, eos))
    if gc.forced_bos_token_id is not None:
        procs.append(force_token_at(1, gc.forced_bos_token_id))
    if gc.forced_eos_token_id is not None:
        procs.append(force_token_at(gc.max_length - 1, gc.forced_eos_token_id))
    return procs


def apply_processors(procs: list[LogitProcessor], ids: Tensor, scores: Tensor) -> Tensor:
    for proc in procs:
        scores = proc(ids, scores)
    return scores
