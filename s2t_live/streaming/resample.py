"""Sample-rate conversion for audio that arrives in blocks (a microphone at 44.1 or 48 kHz).

``StreamingResampler`` applies the windowed-sinc filter of ``torchaudio.functional.resample`` (Hann
window, ``lowpass_filter_width`` 6, ``rolloff`` 0.99) one block at a time, keeping only the input the
filter still needs, so the blocks it returns join up to what the whole-signal function gives.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def sinc_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """The ``(new, 1, 2 * width + orig)`` filter bank of reduced rates ``orig -> new`` and its half-width
    ``width`` in input samples: output phase ``p`` of conv step ``j`` sits at input time
    ``j * orig + p * orig / new``."""
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new + taps) * base
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)
    return kernel.to(torch.float32)[:, None, :], width


class StreamingResampler:
    """Resample mono float32 blocks from ``orig_sr`` to ``new_sr`` Hz; ``flush`` returns the tail.

    State: the input not yet consumed by a full filter step (at most ``2 * width + orig`` samples) and
    the number of input samples seen, which fixes the output length at ``flush``.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        if orig_sr <= 0 or new_sr <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_sr} Hz -> {new_sr} Hz")
        g = math.gcd(int(orig_sr), int(new_sr))
        self.orig, self.new = int(orig_sr) // g, int(new_sr) // g
        self.identity = self.orig == self.new
        self.kernel, self.width = sinc_kernel(self.orig, self.new)
        self.reset()

    def reset(self) -> None:
        """Start a new signal: the filter sees ``width`` zeros before it, as the whole-signal version does."""
        self._buffer = np.zeros(self.width, dtype=np.float32)
        self._seen = 0
        self._emitted = 0

    def _run(self, buffer: np.ndarray) -> np.ndarray:
        """Every complete filter step over ``buffer``; keeps the unconsumed rest."""
        span = self.kernel.size(-1)
        steps = (buffer.size - span) // self.orig + 1 if buffer.size >= span else 0
        if steps <= 0:
            self._buffer = buffer
            return np.zeros(0, dtype=np.float32)
        used = (steps - 1) * self.orig + span
        x = torch.from_numpy(np.ascontiguousarray(buffer[:used]))[None, None]
        out = F.conv1d(x, self.kernel, stride=self.orig)  # (1, new, steps)
        self._buffer = buffer[steps * self.orig:].copy()
        return out[0].transpose(0, 1).reshape(-1).numpy()

    def accept(self, block: np.ndarray) -> np.ndarray:
        """Add ``(n,)`` input samples; return the output samples they complete (float32)."""
        block = np.asarray(block, dtype=np.float32)
        if self.identity:
            return block
        self._seen += block.size
        out = self._run(np.concatenate([self._buffer, block]))
        self._emitted += out.size
        return out

    def flush(self) -> np.ndarray:
        """The last output samples (the filter runs into zeros past the end); then ``reset``."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        total = math.ceil(self.new * self._seen / self.orig)
        out = self._run(np.concatenate([self._buffer, np.zeros(self.width + self.orig, dtype=np.float32)]))
        out = out[: max(0, total - self._emitted)]
        self.reset()
        return out
