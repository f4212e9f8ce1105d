"""Which words of a changing hypothesis may be shown as final: LocalAgreement on whole words.

A hypothesis is re-decoded every chunk and its tail keeps changing. ``LocalAgreement`` commits the
longest prefix on which the last ``n`` hypotheses agree, cut back to a word boundary that each of them
confirms (the token after the prefix starts a new word, so the last committed word cannot still grow).
Committed tokens only ever grow; a hypothesis that contradicts them commits nothing.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence


class LocalAgreement:
    """LocalAgreement-n over token ids; ``is_word_start(id)`` tells whether a token begins a word
    (a sentencepiece piece starting with "▁"). State: the committed tokens and the last n hypotheses."""

    def __init__(self, is_word_start: Callable[[int], bool], n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"agreement needs at least one hypothesis, got n={n}")
        self.is_word_start = is_word_start
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.committed: list[int] = []
        self._recent: deque[list[int]] = deque(maxlen=self.n)

    def _confirmed_boundary(self, length: int) -> bool:
        """Every recent hypothesis continues after ``length`` tokens with the start of a new word."""
        return all(len(h) > length and self.is_word_start(h[length]) for h in self._recent)

    def update(self, hypothesis: Sequence[int]) -> list[int]:
        """Add the newest hypothesis (content tokens, no start/eos); return the newly committed tokens."""
        self._recent.append(list(hypothesis))
        if len(self._recent) < self.n:
            return []
        first = self._recent[0]
        agreed = min(len(h) for h in self._recent)
        for i in range(agreed):
            if any(h[i] != first[i] for h in self._recent):
                agreed = i
                break
        if first[:len(self.committed)] != self.committed or agreed <= len(self.committed):
            return []
        if self.committed and not self._confirmed_boundary(len(self.committed)):
            return []  # the hypotheses extend the last committed word: they contradict it
        boundary = agreed
        while boundary > len(self.committed) and not self._confirmed_boundary(boundary):
            boundary -= 1
        new = first[len(self.committed):boundary]
        self.committed += new
        return new

    def tentative(self, hypothesis: Sequence[int]) -> list[int]:
        """The part of ``hypothesis`` after the committed tokens (all of it if it contradicts them)."""
        n = len(self.committed)
        return list(hypothesis[n:]) if list(hypothesis[:n]) == self.committed else list(hypothesis)
