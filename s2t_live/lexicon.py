"""A word list for decoding: hypotheses pay for spelling words the model's lexicon does not hold.

A subword decoder can spell anything, and a small one trained on little speech often spells a word the
way it sounds ("dectionary", "saterdy"). A model folder may carry ``lexicon.txt``, one word per line (the
words of its training text); with ``lexicon_penalty`` P > 0 in the generation config, beam search and
greedy decoding subtract P from a hypothesis' score once for every word it spells that is not in the list.
The cost is paid as early as it is certain: on the token after which the word being spelled is no longer
the beginning of any listed word, or, for a word that is a proper prefix of listed ones ("th"), on the
token that ends it. Out-of-list words stay possible (names, rare words), only dearer.

Word boundaries come from the sentencepiece convention: a piece starting with "▁" begins a word, and any
special token (the end token included) ends one.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor

from .errors import ModelError
from .tokenizer import VOCAB_FILES_NAMES, load_vocab

LEXICON_FILE = "lexicon.txt"
WORD_START = "▁"


def write_words(folder: str | Path, words: Iterable[str]) -> None:
    """``folder/lexicon.txt``: each distinct word once, sorted (``OSError`` when it cannot be written)."""
    (Path(folder) / LEXICON_FILE).write_text("".join(w + "\n" for w in sorted(set(words))), encoding="utf-8")


class Lexicon:
    """Listed ``words`` over a vocabulary of sentencepiece ``pieces`` (index = token id); ``special``
    ids (start, end, padding, language tags) neither spell nor cost anything, they end a word."""

    def __init__(self, words: Iterable[str], pieces: Sequence[str], special: Iterable[int]):
        self.words = {w for w in words if w}
        special = set(special)
        self.vocab = len(pieces)
        self.starts = [p.startswith(WORD_START) and i not in special for i, p in enumerate(pieces)]
        self.text = [p[1:] if s else p for p, s in zip(pieces, self.starts)]
        self.special = torch.tensor([i in special for i in range(self.vocab)])
        self._start_ids = torch.tensor([i for i, s in enumerate(self.starts) if s], dtype=torch.long)
        self._continue_ids = [i for i in range(self.vocab) if not self.starts[i] and i not in special]
        self._rows: dict[tuple[str, float], Tensor] = {}

    def __len__(self) -> int:
        return len(self.words)

    # Built on the first decode that uses the lexicon (0.08 s for 35,000 words), not at load.
    @cached_property
    def prefixes(self) -> set[str]:
        """Every non-empty beginning of a listed word, the words included."""
        return {w[:i] for w in self.words for i in range(1, len(w) + 1)}

    @cached_property
    def _start_miss(self) -> Tensor:
        """Per word-starting piece: it begins no listed word, so it is out of the list at once."""
        return torch.tensor([self.text[i] not in self.prefixes for i in self._start_ids.tolist()])

    @classmethod
    def from_folder(cls, folder: str | Path, special: Iterable[int]) -> "Lexicon | None":
        """The lexicon of a model folder (``lexicon.txt`` with the tokenizer's ``vocab.json``), or None
        when it has none; ``ModelError`` when the files are unreadable."""
        folder = Path(folder)
        path = folder / LEXICON_FILE
        if not path.is_file():
            return None
        try:
            words = path.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path} is unreadable: {exc}") from None
        vocab = load_vocab(folder / VOCAB_FILES_NAMES["vocab_file"])
        pieces = [""] * (max(vocab.values(), default=-1) + 1)
        for piece, index in vocab.items():
            pieces[index] = piece
        # Control symbols (<s>, </s>, <pad>, <unk>, language tags) are no spelling.
        special = set(special) | {i for i, p in enumerate(pieces) if p.startswith("<") and p.endswith(">")}
        return cls(words, pieces, special)

    def save(self, folder: str | Path) -> None:
        write_words(folder, self.words)

    def partial_word(self, ids: Sequence[int]) -> str:
        """The word being spelled at the end of ``ids`` ("" right after a boundary)."""
        parts: list[str] = []
        for token in reversed(ids):
            if not 0 <= token < self.vocab or self.special[token]:
                break
            parts.append(self.text[token])
            if self.starts[token]:
                break
        return "".join(reversed(parts))

    def _row(self, word: str, penalty: float) -> Tensor:
        """(V,) costs (0 or -penalty) of every next token after the partial ``word``."""
        key = (word, penalty)
        row = self._rows.get(key)
        if row is not None:
            return row
        listed_so_far = word == "" or word in self.prefixes  # else it has paid already
        ends_unlisted = word != "" and listed_so_far and word not in self.words
        row = torch.zeros(self.vocab)
        # Ending the word here: a special token, or a new word's first piece (which may miss on its own).
        row[self.special] = -penalty if ends_unlisted else 0.0
        row[self._start_ids] = -penalty * (self._start_miss.float() + float(ends_unlisted))
        if listed_so_far:
            missing = [i for i in self._continue_ids if word + self.text[i] not in self.prefixes]
            row[missing] = -penalty
        if len(self._rows) > 50_000:
            self._rows.clear()
        self._rows[key] = row
        return row

    def costs(self, ids: Tensor, penalty: float, skip: int = 1) -> Tensor:
        """(N, V) costs of each next token for the rows of ``ids`` (N, L); the first ``skip`` positions
        (the decoder start token) are not text."""
        rows = [self._row(self.partial_word(seq[skip:]), penalty) for seq in ids.tolist()]
        return torch.stack(rows).to(ids.device)
