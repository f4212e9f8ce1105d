"""Where streaming audio comes from: files and generated signals, paced like a live input.

Every source hands out 16 kHz mono float32 blocks through one small interface (``AudioSource``) so the
worker cannot tell a file played at real time from a microphone. ``PacedSource`` owns no thread: ``read``
waits (on an injectable clock and sleep) until the next block would have been heard, so tests run at
``speed=0`` or on a fake clock. The microphone lives in ``microphone.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from s2t_live.audio import SAMPLE_RATE, check_finite, load_audio
from s2t_live.errors import AudioError

BLOCK_SECONDS = 0.1  # what a sound card callback typically delivers


class AudioSource(Protocol):
    """16 kHz mono float32 audio in blocks.

    ``read(timeout)`` returns the next block, an empty array when none came within ``timeout`` seconds,
    or ``None`` once the source is exhausted; it raises ``DeviceError``/``AudioError`` when the input
    fails. ``live`` sources run on the wall clock, so a late consumer must catch up rather than wait.
    """

    sample_rate: int
    live: bool
    overflows: int

    def start(self) -> None: ...
    def read(self, timeout: float | None = None) -> np.ndarray | None: ...
    def available(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...


class PacedSource:
    """An array played block by block at ``speed`` x real time (0: as fast as it is read).

    Block ``i`` becomes readable once its last sample would have been played, i.e. at
    ``start + (i + 1) * block / (16000 * speed)`` on ``clock``; time spent paused does not count.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, wave: np.ndarray, speed: float = 1.0, block_seconds: float = BLOCK_SECONDS,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 name: str = "signal") -> None:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise AudioError(f"{name}: expected mono audio of shape (samples,), got {wave.shape}")
        check_finite(wave, name)
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.wave, self.speed, self.name = wave, float(speed), name
        self.block = max(1, int(round(block_seconds * SAMPLE_RATE)))
        self.clock, self.sleep = clock, sleep
        self.live = self.speed > 0
        self.overflows = 0
        self._pos = 0
        self._origin: float | None = None
        self._paused_at: float | None = None

    @property
    def duration(self) -> float:
        return self.wave.size / SAMPLE_RATE

    def start(self) -> None:
        """Start the playback clock."""
        self._origin = self.clock()
        self._paused_at = None

    def _due(self) -> float:
        """Clock time at which the next block has been "played"."""
        end = min(self._pos + self.block, self.wave.size)
        return self._origin + end / (SAMPLE_RATE * self.speed)

    def available(self) -> bool:
        """True when a block can be read without waiting."""
        if self._pos >= self.wave.size or self._paused_at is not None:
            return False
        if not self.live:
            return True
        if self._origin is None:
            self.start()
        return self.clock() >= self._due()

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The next block (waiting for it at most ``timeout`` seconds), empty on timeout, None at the end."""
        if self._pos >= self.wave.size:
            return None
        if self._origin is None:
            self.start()
        if self._paused_at is not None:
            if timeout:
                self.sleep(timeout)
            return np.zeros(0, dtype=np.float32)
        if self.live:
            wait = self._due() - self.clock()
            if timeout is not None and wait > timeout:
                self.sleep(timeout)
                return np.zeros(0, dtype=np.float32)
            if wait > 0:
                self.sleep(wait)
        block = self.wave[self._pos:self._pos + self.block]
        self._pos += block.size
        return block

    def pause(self) -> None:
        """Freeze playback: nothing is skipped, the rest plays after ``resume``."""
        if self._paused_at is None:
            self._paused_at = self.clock()

    def resume(self) -> None:
        if self._paused_at is not None and self._origin is not None:
            self._origin += self.clock() - self._paused_at
        self._paused_at = None

    def stop(self) -> None:
        """End the source now; ``read`` returns None from here on."""
        self._pos = self.wave.size


class FileSource(PacedSource):
    """An audio file (any format ``load_audio`` reads) played at ``speed`` x real time."""

    def __init__(self, path: str | Path, speed: float = 1.0, block_seconds: float = BLOCK_SECONDS,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(load_audio(path), speed, block_seconds, clock, sleep, name=str(path))


class SignalSource(PacedSource):
    """Generated audio for tests and demos: a given array, or ``tone``/``silence``/``noise`` (and ``+``)."""

    @classmethod
    def tone(cls, frequency: float = 440.0, seconds: float = 1.0, amplitude: float = 0.3,
             **kwargs) -> "SignalSource":
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        return cls((amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32), **kwargs)

    @classmethod
    def silence(cls, seconds: float = 1.0, **kwargs) -> "SignalSource":
        return cls(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), **kwargs)

    @classmethod
    def noise(cls, seconds: float = 1.0, level_db: float = -60.0, seed: int = 0, **kwargs) -> "SignalSource":
        """White noise whose RMS is ``level_db`` dB below full scale."""
        rng = np.random.default_rng(seed)
        scale = 10 ** (level_db / 20)
        return cls((rng.standard_normal(int(seconds * SAMPLE_RATE)) * scale).astype(np.float32), **kwargs)

    @classmethod
    def concat(cls, *parts: np.ndarray | PacedSource, **kwargs) -> "SignalSource":
        """The given arrays (or sources' waves) one after the other."""
        waves = [p.wave if isinstance(p, PacedSource) else np.asarray(p, dtype=np.float32) for p in parts]
        return cls(np.concatenate(waves) if waves else np.zeros(0, dtype=np.float32), **kwargs)
