"""Greedy decoding that first checks a guessed continuation (a draft) in one batched decoder pass.

Consecutive partial hypotheses of a growing segment mostly agree, and a segment's final mostly repeats its
last partial. Feeding such a draft through the decoder at once costs about as much as one incremental step,
and the logits at every draft position say what greedy decoding would have chosen there. The longest draft
prefix that greedy decoding would itself produce is kept; decoding then goes on one token at a time from
the first disagreement. The ids are those of plain greedy search (up to float rounding between batched and
incremental attention); only the number of incremental steps changes.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from s2t_live.ctc import JointScorer
from s2t_live.generation import GenerationConfig, Stepper
from s2t_live.logits import LogitProcessor, apply_processors


def _choose(processors: list[LogitProcessor], ids: list[int], logits: Tensor,
            scorer: JointScorer | None = None) -> int:
    """The greedy token after ``ids`` for last-position ``logits`` (1, V); with a ``scorer`` (its state at
    ``ids``) by its joint score, and the scorer moves on past the chosen token."""
    context = torch.tensor([ids], dtype=torch.long, device=logits.device)
    scores = apply_processors(processors, context, logits)
    if scorer is None:
        return int(scores.argmax(-1))
    token = scorer(context, torch.log_softmax(scores, dim=-1)).argmax(-1)
    scorer.advance(torch.zeros(1, dtype=torch.long, device=token.device), token)
    return int(token)


@torch.inference_mode()
def greedy_with_draft(model: Any, encoded: Tensor, prompt: Sequence[int], draft: Sequence[int],
                      gc: GenerationConfig, processors: list[LogitProcessor],
                      scorer: JointScorer | None = None) -> list[int]:
    """Greedy ids continuing ``prompt`` (starting with the decoder start token) over ``encoded`` (1, S, d),
    checking ``draft`` first; returns prompt + generated ids, ending with eos unless ``max_length`` cut it.
    ``scorer``: joint CTC/attention (and lexicon) scoring, already at ``prompt``."""
    eos = set(gc.eos_ids())
    out = list(prompt)
    if len(out) >= gc.max_length:
        return out
    draft = list(draft)[: gc.max_length - len(out) - 1]
    step = Stepper(model, encoded, None, gc.max_length)
    fed = torch.tensor([out + draft], dtype=torch.long, device=encoded.device)
    hidden = model.model.decoder(fed, None, None, None, step.cache)
    logits = model.lm_head(hidden[0, len(out) - 1:]).float()  # row i predicts the token after draft[:i]
    for i in range(logits.size(0)):
        token = _choose(processors, out, logits[i:i + 1], scorer)
        out.append(token)
        if token in eos or len(out) >= gc.max_length:
            return out
        if i >= len(draft) or token != draft[i]:
            break
    step.cache.length = len(out) - 1  # keys/values of the kept tokens; the newest is fed next
    while True:
        token = _choose(processors, out, step(torch.tensor([[out[-1]]], device=encoded.device)), scorer)
        out.append(token)
        if token in eos or len(out) >= gc.max_length:
            return out
