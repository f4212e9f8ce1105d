"""The decoder's key/value cache for incremental decoding, held outside the modules."""

from __future__ import annotations

import torch
from torch import Tensor


class DecoderCache:
    """Decoder state for incremental decoding, held outside the modules.

    ``self_k[i]``/``self_v[i]``: preallocated (B * beams, H, max_len, D) buffers of layer ``i``'s
    self-attention, filled up to ``length``; ``cross_kv[i]``: layer ``i``'s encoder keys/values (B, H, S, D),
    computed once and shared by the ``beams`` consecutive decoder rows of each utterance (never copied).
    """

    def __init__(self, cross_kv: list[tuple[Tensor, Tensor]], max_length: int, beams: int = 1):
        self.cross_kv, self.beams = cross_kv, beams
        k0 = cross_kv[0][0]
        shape = (k0.size(0) * beams, k0.size(1), max_length, k0.size(3))
        self.self_k = [k0.new_zeros(shape) for _ in cross_kv]
        self.self_v = [k0.new_zeros(shape) for _ in cross_kv]
        self.length = 0
        self._pending = 0

    def get_seq_length(self) -> int:
        return self.length

    def append(self, index: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store this step's (B, H, T, D) keys/values for layer ``index``; return all keys/values so far."""
        start, end = self.length, self.length + k.size(2)
        if end > self.self_k[index].size(2):
            self._grow(end)
        self.self_k[index][:, :, start:end] = k
        self.self_v[index][:, :, start:end] = v
        self._pending = k.size(2)
        return self.self_k[index][:, :, :end], self.self_v[index][:, :, :end]

    def commit(self) -> None:
        """Advance ``length`` once every layer has appended the current step."""
        self.length += self._pending
        self._pending = 0

    def _grow(self, needed: int) -> None:
        extra = max(needed, 2 * self.self_k[0].size(2)) - self.self_k[0].size(2)
        pad = lambda t: torch.cat([t, t.new_zeros(*t.shape[:2], extra, t.size(3))], dim=2)
        self.self_k = [pad(t) for t in self.self_k]
        self.self_v = [pad(t) for t in self.self_v]

    def select(self, keep: Tensor) -> None:
        """Keep only the utterances ``keep`` (indices into the batch), with all their beams: decoding
        drops utterances whose result is final, so later steps do no work for them."""
        rows = (keep[:, None] * self.beams + torch.arange(self.beams, device=keep.device)).view(-1)
        self.self_k = [t[rows] for t in self.self_k]
        self.self_v = [t[rows] for t in self.self_v]
        self.cross_kv = [(k[keep], v[keep]) for k, v in self.cross_kv]

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of the batch (beam search); cross keys/values are shared within a beam group."""
        n = self.length
        for buf in (*self.self_k, *self.self_v):
            buf[:, :, :n] = buf[index, :, :n]
