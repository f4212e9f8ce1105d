"""Where segments start and end: an energy detector on 10 ms blocks and a trailing-silence endpointer.

Blocks are 160 samples, the filterbank's frame shift, so every boundary the endpointer picks is a
multiple of the shift: a segment's features computed on the fly equal the features of its audio cut out
and processed offline. Speech is a block louder than ``speech_db`` and ``snr_db`` above the noise floor
(a low percentile of recent blocks); a segment starts after ``min_speech`` of consecutive speech (with
``preroll`` before it) and ends ``tail`` after the last speech once ``min_silence`` has passed. Until a
segment starts, its start follows the present, so silence keeps no audio and costs no decoding.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

BLOCK = 160  # samples per level block: 10 ms at 16 kHz, the fbank frame shift
BLOCKS_PER_SECOND = 100
SILENCE_DB = -120.0


@dataclass(frozen=True)
class EndpointConfig:
    """Thresholds of speech detection and segmentation (seconds and dB full scale)."""

    speech_db: float = -50.0  # blocks quieter than this are never speech
    snr_db: float = 10.0  # ... nor blocks less than this above the noise floor
    floor_seconds: float = 5.0  # the noise floor is the 10th percentile of this much recent audio
    min_speech: float = 0.05  # consecutive speech that opens a segment
    min_silence: float = 0.5  # trailing silence that closes it
    tail: float = 0.2  # silence kept at the end of a closed segment
    preroll: float = 0.3  # audio kept before the speech that opened a segment
    max_segment: float = 16.0  # a longer segment is cut (by the recognizer, at a committed word boundary)


def blocks(seconds: float) -> int:
    return max(1, int(round(seconds * BLOCKS_PER_SECOND)))


class BlockLevels:
    """dBFS level (RMS) of each complete 160-sample block of a signal fed in pieces."""

    def __init__(self) -> None:
        self._leftover = np.zeros(0, dtype=np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Add ``(n,)`` samples; return the levels ``(num_new_blocks,)`` of the blocks they complete."""
        buffer = np.concatenate([self._leftover, np.asarray(samples, dtype=np.float32)])
        n = buffer.size // BLOCK
        self._leftover = buffer[n * BLOCK:].copy()  # not a view that would pin the whole buffer
        power = np.square(buffer[:n * BLOCK].reshape(n, BLOCK), dtype=np.float64).mean(axis=1)
        return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_DB).astype(np.float32)


class Endpointer:
    """Segment boundaries, in blocks, from block levels; keeps the open segment's levels.

    State: ``start`` (first block of the open segment), ``now`` (blocks seen), ``speaking`` (the open
    segment has speech), the current speech run, the end of the last speech block, the recent levels of
    the noise floor and the levels of the open segment (for picking a forced cut).
    """

    def __init__(self, config: EndpointConfig = EndpointConfig()) -> None:
        self.config = config
        self.min_speech, self.min_silence = blocks(config.min_speech), blocks(config.min_silence)
        self.tail, self.preroll = min(blocks(config.tail), self.min_silence), blocks(config.preroll)
        self._history: deque[np.ndarray] = deque()
        self._history_len = 0
        self._floor = SILENCE_DB
        self.reset(0)

    def reset(self, at: int) -> None:
        """Open a segment with no speech yet at block ``at`` (the present)."""
        self.start = self.now = at
        self.speaking = False
        self.run = 0
        self.speech_end = at
        self.levels = np.zeros(0, dtype=np.float32)

    @property
    def threshold(self) -> float:
        return max(self.config.speech_db, self._floor + self.config.snr_db)

    def _remember(self, levels: np.ndarray) -> None:
        """Add levels to the noise-floor window; re-estimate the floor on each whole second."""
        self._history.append(levels)
        self._history_len += levels.size
        keep = blocks(self.config.floor_seconds)
        while self._history_len - self._history[0].size >= keep:
            self._history_len -= self._history.popleft().size
        if self.now % BLOCKS_PER_SECOND == 0:
            self._floor = float(np.percentile(np.concatenate(self._history)[-keep:], 10))

    def accept(self, levels: np.ndarray) -> list[int]:
        """Process new block levels; return the blocks at which segments closed (in order).

        The floor moves only at whole seconds of blocks, so the result does not depend on how the
        audio was split into pieces.
        """
        cuts: list[int] = []
        i = 0
        while i < levels.size:
            piece = levels[i:i + BLOCKS_PER_SECOND - self.now % BLOCKS_PER_SECOND]
            cuts += self._accept_piece(piece)
            self._remember(piece)
            i += piece.size
        return cuts

    def _accept_piece(self, levels: np.ndarray) -> list[int]:
        speech = levels > self.threshold
        if not self.speaking and not speech.any():  # fast path: silence, nothing kept
            self.now += levels.size
            self.run = 0
            self.start = max(self.start, self.now - self.preroll)
            self.levels = np.concatenate([self.levels, levels])[-(self.now - self.start):] \
                if self.now > self.start else np.zeros(0, dtype=np.float32)
            return []
        cuts = []
        self.levels = np.concatenate([self.levels, levels])
        for is_speech in speech:
            cut = self._step(bool(is_speech))
            if cut is not None:
                cuts.append(cut)
        return cuts

    def _step(self, is_speech: bool) -> int | None:
        """Advance one block; return a cut position when the open segment closes here."""
        self.now += 1
        self.run = self.run + 1 if is_speech else 0
        if is_speech:
            self.speech_end = self.now
        if not self.speaking:
            if self.run >= self.min_speech:
                self.speaking = True
            else:
                self._trim(max(self.start, self.now - self.run - self.preroll))
            return None
        if self.now - self.speech_end >= self.min_silence:
            cut = self.speech_end + self.tail
            self._trim(cut)
            self.speaking = False
            return cut
        return None

    def _trim(self, new_start: int) -> None:
        if new_start > self.start:
            self.levels = self.levels[new_start - self.start:]
            self.start = new_start

    def force_cut(self, at: int) -> list[int]:
        """Close the open segment at block ``at`` (start < at <= now) and re-read the blocks after it;
        returns any further cuts among them (none unless the caller let the segment run long)."""
        rest = self.levels[at - self.start:]
        self.reset(at)
        return self._accept_piece(rest)

    def quietest(self, lo: int, hi: int) -> int:
        """The block in ``[lo, hi)`` (clamped to the open segment) with the lowest level."""
        lo, hi = max(lo, self.start + 1), min(hi, self.now)
        if hi <= lo:
            return max(self.start + 1, min(hi, self.now))
        return lo + int(np.argmin(self.levels[lo - self.start:hi - self.start]))
