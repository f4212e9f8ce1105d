"""Splitting long recordings at pauses into pieces a Speech2Text model transcribes well.

Speech2Text checkpoints were trained on utterances of up to ~20 s; much longer inputs decode badly (and
cost quadratic attention). ``split_at_pauses`` finds speech by frame energy relative to the recording's
own noise floor, cuts at pauses, and never returns a piece longer than ``max_seconds``: an unbroken
stretch of speech is cut at its quietest moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE

FRAME = 160  # 10 ms hop
WINDOW = 400  # 25 ms window


@dataclass(frozen=True)
class Span:
    """Samples ``[start, end)`` of the recording."""

    start: int
    end: int

    def seconds(self, rate: int = SAMPLE_RATE) -> tuple[float, float]:
        return self.start / rate, self.end / rate


def frame_energy_db(wave: np.ndarray) -> np.ndarray:
    """Energy in dB of 25 ms frames every 10 ms; shape (max(1, 1 + (n - 400) // 160),)."""
    if wave.size < WINDOW:
        wave = np.pad(wave, (0, WINDOW - wave.size))
    n = 1 + (wave.size - WINDOW) // FRAME
    idx = np.arange(WINDOW)[None, :] + FRAME * np.arange(n)[:, None]
    frames = wave[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)


def speech_mask(energy_db: np.ndarray, min_silence_frames: int, min_speech_frames: int,
                floor_margin_db: float = 8.0, peak_range_db: float = 40.0) -> np.ndarray:
    """Frames that belong to speech: above a threshold set between the noise floor and the peaks,
    with gaps shorter than ``min_silence_frames`` filled and blips shorter than ``min_speech_frames``
    removed."""
    if energy_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor, peak = np.percentile(energy_db, 10), np.percentile(energy_db, 99)
    threshold = max(floor + floor_margin_db, peak - peak_range_db)
    voiced = energy_db > threshold
    runs = _runs(voiced)
    for value, start, end in runs:  # fill short pauses inside speech
        if not value and end - start < min_silence_frames and start > 0 and end < voiced.size:
            voiced[start:end] = True
    for value, start, end in _runs(voiced):
        if value and end - start < min_speech_frames:
            voiced[start:end] = False
    return voiced


def _runs(mask: np.ndarray) -> list[tuple[bool, int, int]]:
    """(value, start, end) for each run of equal values."""
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [mask.size]])
    return [(bool(mask[a]), int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _cut_long(start: int, end: int, energy_db: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Cut frames [start, end) into pieces of at most ``max_frames``, each cut at the quietest frame of
    the last third of the allowed length."""
    pieces = []
    while end - start > max_frames:
        lo = start + (2 * max_frames) // 3
        hi = start + max_frames
        cut = lo + int(np.argmin(energy_db[lo:hi]))
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def split_at_pauses(wave: np.ndarray, max_seconds: float = 20.0, min_silence: float = 0.5,
                    padding: float = 0.2, join_seconds: float = 12.0, join_gap: float = 1.0,
                    rate: int = SAMPLE_RATE) -> list[Span]:
    """Spans of speech in ``wave`` (mono, ``rate`` Hz), each at most ``max_seconds`` long, in order.

    Pauses of at least ``min_silence`` s end a stretch of speech; neighbouring stretches less than
    ``join_gap`` s apart are joined while the result stays under ``join_seconds`` (more context for the
    model, subtitles of readable length). Spans keep ``padding`` s of audio on each side and never
    overlap. Silence-only audio gives no spans."""
    hop = rate // 100
    energy = frame_energy_db(wave)
    voiced = speech_mask(energy, int(min_silence * 100), 10)
    pad = int(padding * 100)
    max_frames = int(max_seconds * 100) - 2 * pad
    stretches: list[tuple[int, int]] = []
    for value, start, end in _runs(voiced):
        if not value:
            continue
        if stretches and start - stretches[-1][1] < join_gap * 100 and end - stretches[-1][0] <= join_seconds * 100:
            stretches[-1] = (stretches[-1][0], end)
        else:
            stretches.append((start, end))
    spans = []
    for start, end in stretches:
        for a, b in _cut_long(start, end, energy, max(1, max_frames)):
            first = max(0, a - pad) * hop
            last = min(wave.size, (b + pad) * hop + (WINDOW - hop))
            spans.append(Span(first, last))
    # Neighbouring paddings may overlap; split the overlap in the middle so spans stay disjoint.
    for i in range(1, len(spans)):
        if spans[i].start < spans[i - 1].end:
            mid = (spans[i].start + spans[i - 1].end) // 2
            spans[i - 1] = Span(spans[i - 1].start, mid)
            spans[i] = Span(mid, spans[i].end)
    return spans
