"""Frequency warping of filterbank features: vocal tract length perturbation in training, and test-time
vocal tract length normalisation (VTLN) for a voice unlike the training voices.

``warp_frequency`` scales the spectrum's frequency axis of log-mel frames. ``choose_warp`` is maximum-
likelihood VTLN with the model's CTC head as the judge: each candidate factor warps the same audio, the
encoder and CTC head score it (the mean log-probability of the best CTC path per frame), and the factor
whose audio the model finds most familiar wins. One factor serves a whole file, as classic VTLN picks one
per speaker: per utterance this choice is noisier (model card). A model can instead ask offline
transcription to decode each piece of speech at the few warps whose audio the CTC head is surest of
(``warp_decodes``; ``s2t_live.transcribe.decode_best_warp``) and keep the hypothesis that scores highest,
by the decoder, the CTC head and the word LM together: a choice per piece that short pieces make more
reliably than the CTC head's frames alone. Live recognition keeps the CTC head's choice (decoding every
final at several warps would delay it).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .features import fbank, utterance_cmvn

JUDGE_SECONDS = 60.0  # the speech one speaker's warp is judged on (the longest pieces, or a stream's first)
MIN_JUDGE_SECONDS = 0.1  # a piece shorter than this has too few frames to judge by


def _mel(hz: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def _hz(mel: Tensor) -> Tensor:
    return 700.0 * torch.expm1(mel / 1127.0)


def warp_frequency(features: Tensor, alpha: float, sample_rate: int = 16000, low_hz: float = 20.0,
                   boundary_hz: float = 4800.0) -> Tensor:
    """(num_frames, num_bins) log-mel ``features`` with the spectrum's frequency axis scaled by ``alpha``
    (Jaitly & Hinton, 2013): formants move as for a vocal tract ``1 / alpha`` times as long. The warp is
    alpha * f up to a boundary and then linear to the Nyquist frequency, which stays; each mel bin (centres
    as Kaldi's fbank spaces them from ``low_hz``) takes the value at its source frequency, interpolated
    between neighbouring bins."""
    if alpha == 1.0:
        return features
    bins = features.size(1)
    nyquist = sample_rate / 2.0
    low, high = _mel(torch.tensor(low_hz)), _mel(torch.tensor(nyquist))
    step = (high - low) / (bins + 1)
    centres = _hz(low + step * torch.arange(1, bins + 1, dtype=torch.float32))
    edge = boundary_hz * min(alpha, 1.0) / alpha  # the warp is alpha * f up to here
    source = torch.where(centres <= alpha * edge, centres / alpha,
                         nyquist - (nyquist - centres) * (nyquist - edge) / (nyquist - alpha * edge))
    position = ((_mel(source) - low) / step - 1.0).clamp(0, bins - 1)
    below = position.floor().long().clamp(max=bins - 2)
    frac = (position - below).to(features.dtype)
    return features[:, below] * (1 - frac) + features[:, below + 1] * frac


def warped_inputs(extractor: Any, frames: Tensor, alpha: float) -> Tensor:
    """(1, T, bins) model inputs from one utterance's (T, bins) filterbank ``frames``: warped by ``alpha``,
    then normalised over the utterance as ``extractor`` normalises."""
    frames = warp_frequency(frames, alpha, extractor.sampling_rate)
    if extractor.do_ceptral_normalize:
        frames = utterance_cmvn(frames, frames.size(0), extractor.normalize_means, extractor.normalize_vars,
                                extractor.padding_value)
    return torch.as_tensor(frames, dtype=torch.float32)[None]


def warped_features(extractor: Any, wave: np.ndarray, alpha: float) -> Tensor:
    """(1, T, bins) model inputs of one 16 kHz utterance, as ``extractor`` makes them but with the
    filterbank warped by ``alpha`` before the utterance's mean and variance are normalised."""
    return warped_inputs(extractor, fbank(wave, extractor.num_mel_bins, extractor.sampling_rate, extractor.dither),
                         alpha)


def ctc_reading(model: Any, features: Tensor) -> tuple[Tensor, Tensor]:
    """The encoder states (1, S, d) of ``features`` (1, T, bins) and the CTC head's log-probabilities
    (1, S, V) of them, in float32."""
    hidden = model.model.encoder(features.to(model.device, model.dtype)).last_hidden_state
    return hidden, torch.log_softmax(model.ctc_head(hidden).float(), dim=-1)


@torch.inference_mode()
def ctc_fit(model: Any, features: Tensor) -> tuple[float, int]:
    """Summed best-path log-probability of the model's CTC head over ``features`` (1, T, bins), and the
    number of encoder frames it sums."""
    best = ctc_reading(model, features)[1].max(dim=-1).values
    return float(best.sum()), best.numel()


def model_warp_factors(model: Any) -> list[float]:
    """The warps a model asks to be judged among (``generation_config.warp_factors``); none without a
    CTC head to judge with."""
    factors = getattr(getattr(model, "generation_config", None), "warp_factors", None)
    return [float(a) for a in factors or ()] if getattr(model, "ctc_head", None) is not None else []


def warp_decodes(model: Any) -> int:
    """How many warps offline transcription decodes each piece at (``generation_config.warp_decodes``,
    only with ``warp_factors``); 0: one warp per file, the CTC head's choice."""
    k = getattr(getattr(model, "generation_config", None), "warp_decodes", None)
    return min(int(k), len(model_warp_factors(model))) if k and int(k) > 0 else 0


def ctc_sureness(model: Any, features: Tensor) -> tuple[float, Tensor]:
    """How sure the model's CTC head is of ``features`` (1, T, bins): the mean negative entropy of its
    per-frame distributions; and the encoder states (1, S, d) it judged, to decode from."""
    hidden, log_probs = ctc_reading(model, features)
    return float((log_probs.exp() * log_probs).sum(-1).mean()), hidden


def longest_pieces(seconds: Sequence[float], max_seconds: float = JUDGE_SECONDS) -> list[int]:
    """Indices of the pieces (of the given durations) a warp is judged on: the longest first, none under
    MIN_JUDGE_SECONDS, until ``max_seconds`` are taken."""
    chosen, total = [], 0.0
    for i in sorted(range(len(seconds)), key=lambda i: -seconds[i]):
        if total >= max_seconds or seconds[i] < MIN_JUDGE_SECONDS:
            break
        chosen.append(i)
        total += seconds[i]
    return chosen


def warp_fits(model: Any, extractor: Any, frames: Tensor, factors: Sequence[float]) -> list[tuple[float, int]]:
    """``ctc_fit`` of one utterance's filterbank ``frames`` warped by each of ``factors``."""
    return [ctc_fit(model, warped_inputs(extractor, frames, float(alpha))) for alpha in factors]


class WarpJudge:
    """The running choice of a warp factor for one speaker: ``add`` the fits of each piece of their audio
    (``warp_fits``), ``best`` is the factor with the highest total per frame (1.0 before any)."""

    def __init__(self, factors: Sequence[float]) -> None:
        self.factors = [float(a) for a in factors]
        self.totals = [0.0] * len(self.factors)
        self.frames = 0

    def add(self, fits: Sequence[tuple[float, int]]) -> None:
        for i, (fit, n) in enumerate(fits):
            self.totals[i] += fit
        self.frames += fits[0][1] if fits else 0

    @property
    def best(self) -> float:
        if not self.frames:
            return 1.0
        return self.factors[max(range(len(self.factors)), key=self.totals.__getitem__)]


def choose_warp(model: Any, extractor: Any, waves: Sequence[np.ndarray], factors: Sequence[float],
                max_seconds: float = JUDGE_SECONDS) -> float:
    """The factor of ``factors`` whose warped ``waves`` (one speaker; ``longest_pieces`` of them) the
    CTC head scores highest per frame; 1.0 when there is nothing to judge by (no CTC head, no factors,
    no audio)."""
    if getattr(model, "ctc_head", None) is None or not factors:
        return 1.0
    judge = WarpJudge(factors)
    for i in longest_pieces([w.size / extractor.sampling_rate for w in waves], max_seconds):
        frames = fbank(waves[i], extractor.num_mel_bins, extractor.sampling_rate, extractor.dither)
        judge.add(warp_fits(model, extractor, frames, factors))
    return judge.best
