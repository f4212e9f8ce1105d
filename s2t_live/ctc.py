"""CTC prefix scores for joint CTC/attention decoding (Watanabe et al., 2017, "Hybrid CTC/Attention").

A model trained with an auxiliary CTC loss can keep that encoder-side head (``ctc_head`` in
``config.json``). The attention decoder alone may lose its place in the audio, repeating a phrase or
skipping one; the CTC head cannot, since its probability of a prefix sums over monotonic alignments of
that prefix to the frames. Decoding then ranks each candidate token by

    (1 - ctc_weight) * log p_att(token | prefix) + ctc_weight * (log p_ctc(prefix + token) - log p_ctc(prefix))

where ``p_ctc(g)`` is the probability that the frames' CTC labelling starts with ``g`` (for the end token:
that it is exactly ``g``). Hypotheses hold, per frame, the log-probability that the prefix has been emitted
by that frame ending in a label (``n``) or in a blank (``b``); a step extends them for a few candidate
tokens per hypothesis (all the vocabulary would cost frames x vocabulary work per hypothesis and step): the
attention decoder's best ones, and the tokens the CTC head itself is sure of just ahead of the hypothesis,
so that a word the decoder ranks low but the head hears can still be chosen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

NEG = -1.0e10  # log of "impossible", finite so that sums and differences never give NaN
# Candidates rescored per hypothesis and step: the attention decoder's CANDIDATES best tokens, every token
# whose CTC log-posterior exceeds CONFIDENT (a probability of 0.37) on a frame near where the hypothesis
# has got to (the NEAR frames from where its next label most likely starts), and the end token. Embedded
# model (session 21), 20 beams, dev WER unwarped (300 utterances): 32 attention candidates alone 15.65 %
# (52 s); 16 plus the tokens sure anywhere in the utterance 15.13 % (55 s), but a long live segment then
# carries many (final lag p95 of bench/stream_latency.py 0.91 against 0.75 s); 16 plus the tokens sure near
# the hypothesis 15.19 % (49 s; final lag p95 0.65 s); sure meaning above 0.2: 15.07 % (59 s), above 0.6:
# 15.31 %. Test and held-out voice with session 20's warp per speaker: 32 alone 16.94 / 28.29 %, 64 alone
# 16.55 / 27.64 % (1.4x the time), 16 plus the tokens sure anywhere 16.32 / 27.99 %.
CANDIDATES = 16
CONFIDENT = -1.0
NEAR = 16  # encoder frames: 1.28 s at the embedded model's 80 ms


def ctc_weight(model: Any, gc: Any) -> float:
    """The CTC weight decoding uses: the generation config's, when the model has a CTC head."""
    weight = float(getattr(gc, "ctc_weight", None) or 0.0)
    if weight and getattr(model, "ctc_head", None) is None:
        return 0.0
    return min(max(weight, 0.0), 1.0)


def joint_scorer(model: Any, gc: Any, encoder_hidden: Tensor, encoder_mask: Tensor | None,
                 prompt: Tensor) -> "JointScorer | None":
    """The scorer for decoding ``prompt`` (B * beams, L) onwards over ``encoder_hidden`` (B, S, d), past the
    prompt's tokens after the start token: CTC prefix scores when ``gc`` asks for a CTC weight and the
    model has a head, lexicon costs when it asks for a ``lexicon_penalty`` and the model has a lexicon;
    None when neither applies (plain attention decoding)."""
    weight = ctc_weight(model, gc)
    penalty = float(getattr(gc, "lexicon_penalty", None) or 0.0)
    lexicon = getattr(model, "lexicon", None)
    lm_weight = float(getattr(gc, "lm_weight", None) or 0.0)
    if lexicon is None or lexicon.lm is None:
        lm_weight = 0.0
    if not (penalty > 0 or lm_weight):
        lexicon = None
    if not weight and lexicon is None:
        return None
    ctc = None
    if weight:
        ctc = CTCPrefixScorer.for_model(model, encoder_hidden, encoder_mask, weight,
                                        prompt.size(0) // encoder_hidden.size(0))
        if prompt.size(1) > 1:
            ctc.feed(prompt[:, 1:])
    bonus = float(getattr(gc, "word_bonus", None) or 0.0)
    return JointScorer(ctc, lexicon, penalty, lm_weight, bonus, gc.eos_ids())


class JointScorer:
    """What decoding adds to the attention decoder's log-probabilities: the CTC prefix scores (``ctc``,
    which also restricts each row to its candidates), then the lexicon's costs and the word LM's scores.
    Greedy and beam search call it with the rows so far and their log-probabilities, then tell it which
    rows go on with which token (``advance``) and which rows are kept (``select``); only the CTC part has
    state."""

    def __init__(self, ctc: "CTCPrefixScorer | None", lexicon: Any = None, penalty: float = 0.0,
                 lm_weight: float = 0.0, word_bonus: float = 0.0, eos: Any = ()):
        self.ctc, self.lexicon, self.penalty = ctc, lexicon, penalty
        self.lm_weight, self.word_bonus, self.eos = lm_weight, word_bonus, list(eos)

    def __call__(self, ids: Tensor, log_probs: Tensor) -> Tensor:
        out = self.ctc(ids, log_probs) if self.ctc is not None else log_probs
        if self.lexicon is not None:
            costs = self.lexicon.costs(ids, self.penalty, lm_weight=self.lm_weight,
                                       word_bonus=self.word_bonus, eos=self.eos)
            width = min(costs.size(-1), out.size(-1))
            out = out.clone()
            out[:, :width] += costs[:, :width].to(out.dtype)
        return out

    def advance(self, source: Tensor, tokens: Tensor) -> None:
        if self.ctc is not None:
            self.ctc.advance(source, tokens)

    def select(self, keep: Tensor) -> None:
        if self.ctc is not None:
            self.ctc.select(keep)


def shift(t: Tensor) -> Tensor:
    """``t`` one frame later along dim 0: out[0] is impossible, out[i] = t[i - 1]."""
    return torch.cat([torch.full_like(t[:1], NEG), t[:-1]])


class CTCPrefixScorer:
    """Prefix scores of decoder rows (hypotheses) over one utterance's CTC log-probabilities each.

    ``log_probs``: (B, S, V) CTC log-probabilities of B utterances, ``lengths``: (B,) valid frames, and
    ``rows``: (N,) the utterance of each hypothesis row (beams of an utterance share its frames).
    ``candidates`` and ``confident`` choose the tokens a joint step scores (``CANDIDATES``, ``CONFIDENT``).
    """

    def __init__(self, log_probs: Tensor, lengths: Tensor | None, rows: Tensor, blank: int, eos: int,
                 weight: float, candidates: int = CANDIDATES, confident: float = CONFIDENT):
        lp = log_probs.double()
        batch, frames, _ = lp.shape
        if lengths is not None:
            past = torch.arange(frames, device=lp.device)[None, :] >= lengths.to(lp.device)[:, None]
            # After an utterance's last frame only blanks: the states then carry the final value along.
            lp = lp.masked_fill(past[:, :, None], NEG)
            lp[:, :, blank] = lp[:, :, blank].masked_fill(past, 0.0)
        self.x = lp.transpose(0, 1).contiguous()  # (S, B, V)
        self.sure = self.x > confident  # (S, B, V): the labels the head is sure of on each frame
        self.sure[:, :, blank] = False
        self.blank_p = self.x[:, :, blank].exp()  # (S, B), for where the next label starts (sure_near)
        self.blank, self.eos, self.weight, self.candidates = blank, eos, weight, candidates
        self.rows = rows.to(lp.device)
        n = self.rows.numel()
        # The empty prefix: nothing emitted, every frame so far a blank.
        self.r_n = torch.full((frames, n), NEG, dtype=lp.dtype, device=lp.device)
        self.r_b = torch.cumsum(self.x[:, self.rows, blank], dim=0)
        self.score = torch.zeros(n, dtype=lp.dtype, device=lp.device)
        self.last = torch.full((n,), -1, dtype=torch.long, device=lp.device)
        self._pending: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @classmethod
    def for_model(cls, model: Any, encoder_hidden: Tensor, encoder_mask: Tensor | None, weight: float,
                  beams: int = 1) -> "CTCPrefixScorer":
        """A scorer over ``model.ctc_head(encoder_hidden)`` with ``beams`` rows per utterance."""
        log_probs = torch.log_softmax(model.ctc_head(encoder_hidden).float(), dim=-1)
        lengths = encoder_mask.long().sum(-1) if encoder_mask is not None else None
        rows = torch.arange(encoder_hidden.size(0), device=encoder_hidden.device).repeat_interleave(beams)
        config = model.config
        return cls(log_probs, lengths, rows, config.pad_token_id, config.eos_token_id, weight)

    def extend(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Prefix scores (N, C) of every row's prefix followed by each of its ``tokens`` (N, C), and the
        new per-frame states (S, N, C) in ``n`` and ``b``."""
        x = self.x[:, self.rows[:, None], tokens]  # (S, N, C)
        xb = self.x[:, self.rows, self.blank][:, :, None]
        r_n, r_b = self.r_n[:, :, None], self.r_b[:, :, None]
        # A repeated label needs a blank between: after a prefix ending in it, only blank-ending paths.
        phi = torch.logaddexp(r_b, torch.where((tokens == self.last[:, None])[None], NEG, r_n))
        # The recursions n[t] = (n[t-1] + phi[t-1]) * x[t] and b[t] = (b[t-1] + n[t-1]) * blank[t] (in
        # probabilities) are linear, so they are solved for all frames at once: divided by the running
        # product of x (of the blank), each becomes a cumulative sum. float64 keeps the log-space
        # differences exact enough over thousands of frames.
        n0 = torch.where((self.last == -1)[:, None], x[0], NEG)  # only the empty prefix starts at frame 0
        cx = torch.cumsum(x, dim=0) - x[0]
        new_n = cx + torch.logaddexp(n0[None], shift(torch.logcumsumexp(phi - cx, dim=0)))
        cb = torch.cumsum(xb, dim=0) - xb[0]
        new_b = cb + shift(torch.logcumsumexp(new_n - cb, dim=0))
        score = torch.logsumexp(torch.cat([new_n[:1], phi[:-1] + x[1:]]), dim=0)
        # The end token: the prefix is the whole labelling.
        end = torch.logaddexp(self.r_n[-1], self.r_b[-1])[:, None].expand_as(score)
        score = torch.where(tokens == self.eos, end, score)
        score = torch.where(tokens == self.blank, NEG, score)  # the blank is no label (it is the pad token)
        return score, new_n, new_b

    def __call__(self, ids: Tensor, log_probs: Tensor) -> Tensor:
        """Joint scores (N, V) from the attention decoder's ``log_probs`` (N, V) after processors; tokens
        outside each row's candidates (its best attention tokens, the tokens the CTC head is sure of near
        where it has got to, and the end token) are ruled out."""
        vocab = log_probs.size(-1)
        c = min(self.candidates, vocab)
        cand = torch.topk(log_probs, c, dim=-1)[1]
        cand = torch.cat([cand, self.sure_near().to(cand.device), torch.full_like(cand[:, :1], self.eos)], dim=1)
        score, new_n, new_b = self.extend(cand)
        att = log_probs.gather(1, cand)
        joint = (1.0 - self.weight) * att + self.weight * (score - self.score[:, None]).to(att.dtype)
        # A token may be a candidate twice (the end token, an attention candidate that is also confident):
        # its copies score the same.
        out = torch.full_like(log_probs, NEG).scatter(1, cand, joint)
        out = torch.where(log_probs <= NEG / 2, log_probs, out)  # keep what processors forbade forbidden
        self._pending = (cand, score, new_n, new_b)
        return out

    def sure_near(self) -> Tensor:
        """(N, K) per row: the labels the head is sure of on the NEAR frames from the one where the row's
        next label most likely starts (its prefix complete by the frame before, that frame saying neither the
        blank nor the prefix's last label again: a pause between words does not hide the next word), padded
        with the end token (a candidate anyway)."""
        done = torch.logaddexp(self.r_n, self.r_b)  # (S, N): the prefix complete by frame t
        # log P(frame t says a new label: neither the blank nor a repeat of the prefix's last), (S, N)
        same = self.blank_p[:, self.rows] + torch.where(self.last >= 0, self.x[:, self.rows, self.last.clamp(min=0)].exp(), 0.0)
        new = torch.log1p(-same.clamp(max=1.0 - 1e-12))
        first = torch.where(self.last == -1, new[0], NEG)  # only the empty prefix starts at frame 0
        starts = torch.cat([first[None], done[:-1] + new[1:]])
        window = starts.argmax(dim=0)[None, :] + torch.arange(NEAR, device=done.device)[:, None]
        window = window.clamp(max=done.size(0) - 1)
        near = self.sure[window, self.rows[None, :]].any(dim=0)  # (N, V)
        k = int(near.sum(-1).max()) if near.numel() else 0
        order = torch.argsort(near.to(torch.int8), dim=-1, descending=True, stable=True)[:, :k]
        return torch.where(near.gather(1, order), order, self.eos)

    def advance(self, source: Tensor, tokens: Tensor) -> None:
        """Rows now continue row ``source[i]`` of the last call with ``tokens[i]`` (N',)."""
        cand, score, new_n, new_b = self._pending
        source, tokens = source.to(cand.device), tokens.to(cand.device)
        slot = (cand[source] == tokens[:, None]).int().argmax(-1)
        self.r_n, self.r_b = new_n[:, source, slot], new_b[:, source, slot]
        self.score = score[source, slot]
        self.last = tokens.clone()
        self.rows = self.rows[source]
        self._pending = None

    def select(self, keep: Tensor) -> None:
        """Go on with rows ``keep`` only (after ``advance``)."""
        keep = keep.to(self.rows.device)
        self.r_n, self.r_b = self.r_n[:, keep], self.r_b[:, keep]
        self.score, self.last, self.rows = self.score[keep], self.last[keep], self.rows[keep]

    def feed(self, tokens: Tensor) -> None:
        """Advance every row through forced ``tokens`` (N, L): a decoder prefix to continue."""
        for i in range(tokens.size(1)):
            token = tokens[:, i:i + 1]
            score, new_n, new_b = self.extend(token)
            self._pending = (token, score, new_n, new_b)
            self.advance(torch.arange(token.size(0), device=token.device), token[:, 0])
