"""A word list for decoding: hypotheses pay for spelling words the model's lexicon does not hold.

A subword decoder can spell anything, and a small one trained on little speech often spells a word the
way it sounds ("dectionary", "saterdy"). A model folder may carry ``lexicon.txt``, one word per line (the
words of its training text); with ``lexicon_penalty`` P > 0 in the generation config, beam search and
greedy decoding subtract P from a hypothesis' score once for every word it spells that is not in the list.
The cost is paid as early as it is certain: on the token after which the word being spelled is no longer
the beginning of any listed word, or, for a word that is a proper prefix of listed ones ("th"), on the
token that ends it. Out-of-list words stay possible (names, rare words), only dearer.

With a word language model as well (``s2t_live.ngram``, the folder's ``lm.npz`` or ``lm.arpa``) and
``lm_weight`` W > 0, each word adds W * ln p(word | the words before it) + ``word_bonus``, and the end
token W * ln p(</s> | ...): shallow fusion. The word's share is paid piece by piece as it is spelled (a unigram look-ahead, which the
token that ends the word completes to the n-gram score), and a word outside every listed and LM word pays
``<unk>`` and -ln(vocabulary) for each of its pieces. The LM's words serve as the list when the
folder has no ``lexicon.txt``.

Word boundaries come from the sentencepiece convention: a piece starting with "▁" begins a word, and any
special token (the end token included) ends one.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor

from .errors import ModelError
from .ngram import BOS, EOS, LM_FILES, NGramLM
from .tokenizer import VOCAB_FILES_NAMES, load_vocab

LEXICON_FILE = "lexicon.txt"
WORD_START = "▁"


def write_words(folder: str | Path, words: Iterable[str]) -> None:
    """``folder/lexicon.txt``: each distinct word once, sorted (``OSError`` when it cannot be written)."""
    (Path(folder) / LEXICON_FILE).write_text("".join(w + "\n" for w in sorted(set(words))), encoding="utf-8")


class Lexicon:
    """Listed ``words`` over a vocabulary of sentencepiece ``pieces`` (index = token id); ``special``
    ids (start, end, padding, language tags) neither spell nor cost anything, they end a word."""

    def __init__(self, words: Iterable[str], pieces: Sequence[str], special: Iterable[int],
                 lm: NGramLM | None = None):
        self.words = {w for w in words if w}
        self.lm = lm
        special = set(special)
        self.vocab = len(pieces)
        self.starts = [p.startswith(WORD_START) and i not in special for i, p in enumerate(pieces)]
        self.text = [p[1:] if s else p for p, s in zip(pieces, self.starts)]
        self.special = torch.tensor([i in special for i in range(self.vocab)])
        self._start_ids = torch.tensor([i for i, s in enumerate(self.starts) if s], dtype=torch.long)
        self._continue_ids = [i for i in range(self.vocab) if not self.starts[i] and i not in special]
        self._ends = self.special | torch.tensor(self.starts)  # tokens after which a word is over
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
        """The lexicon of a model folder (``lexicon.txt`` and/or its LM, ``lm.npz`` or ``lm.arpa``, with the
        tokenizer's ``vocab.json``), or None when it has neither; ``ModelError`` when the files are unreadable."""
        folder = Path(folder)
        path = folder / LEXICON_FILE
        lm = NGramLM.from_folder(folder)
        if not path.is_file() and lm is None:
            return None
        if path.is_file():
            try:
                words = path.read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelError(f"{path} is unreadable: {exc}") from None
        else:
            words = [w for w in lm.vocab if not (w.startswith("<") and w.endswith(">"))]
        vocab = load_vocab(folder / VOCAB_FILES_NAMES["vocab_file"])
        pieces = [""] * (max(vocab.values(), default=-1) + 1)
        for piece, index in vocab.items():
            pieces[index] = piece
        # Control symbols (<s>, </s>, <pad>, <unk>, language tags) are no spelling.
        special = set(special) | {i for i, p in enumerate(pieces) if p.startswith("<") and p.endswith(">")}
        return cls(words, pieces, special, lm)

    def save(self, folder: str | Path) -> None:
        write_words(folder, self.words)
        if self.lm is not None:
            self.lm.write_npz(Path(folder) / LM_FILES[0])

    def split(self, ids: Sequence[int]) -> tuple[list[str], str]:
        """The finished words of ``ids`` since the last special token, and the word being spelled."""
        words: list[str] = []
        current: list[str] = []
        for token in ids:
            if not 0 <= token < self.vocab or self.special[token]:
                if current:
                    words.append("".join(current))
                words, current = [], []
                continue
            if self.starts[token] and current:
                words.append("".join(current))
                current = []
            current.append(self.text[token])
        return words, "".join(current)

    def partial_word(self, ids: Sequence[int]) -> str:
        """The word being spelled at the end of ``ids`` ("" right after a boundary): ``split(ids)[1]``,
        found by scanning back from the end only, for the decoding steps that need no earlier words."""
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

    def costs(self, ids: Tensor, penalty: float, skip: int = 1, lm_weight: float = 0.0,
              word_bonus: float = 0.0, eos: Sequence[int] = ()) -> Tensor:
        """(N, V) costs of each next token for the rows of ``ids`` (N, L); the first ``skip`` positions
        (the decoder start token) are not text. With ``lm_weight`` (and an LM), the tokens that end the
        word being spelled also carry its LM score and ``word_bonus``, and the ``eos`` tokens the LM's
        score of the text's end."""
        if not lm_weight or self.lm is None:
            rows = [self._row(self.partial_word(seq[skip:]), penalty) for seq in ids.tolist()]
            return torch.stack(rows).to(ids.device)
        rows = []
        for seq in ids.tolist():
            words, word = self.split(seq[skip:])
            row = self._row(word, penalty) + lm_weight * self._lookahead_row(word)
            history = [BOS, *words]
            if word:
                ahead = self.lookahead.get(word, 0.0)
                row += self._ends * (lm_weight * (self.lm.logprob(history, word) - ahead) + word_bonus)
                history.append(word)
            if eos:
                row[list(eos)] += lm_weight * self.lm.logprob(history, EOS)
            rows.append(row)
        return torch.stack(rows).to(ids.device)

    @cached_property
    def lookahead(self) -> dict[str, float]:
        """Per beginning of a listed or LM word: the best unigram ln p among the words it begins."""
        best: dict[str, float] = {}
        for w in self.words | self.lm.vocab:
            if w.startswith("<") and w.endswith(">"):
                continue
            lp = self.lm.logprob((), w)  # a listed word the LM lacks: its <unk>
            for i in range(1, len(w) + 1):
                if lp > best.get(w[:i], -1e30):
                    best[w[:i]] = lp
        return best

    @cached_property
    def _start_lookahead(self) -> Tensor:
        spell = -math.log(self.vocab)
        return torch.tensor([self.lookahead.get(self.text[i], spell) for i in self._start_ids.tolist()])

    def _lookahead_row(self, word: str) -> Tensor:
        """(V,) LM look-ahead of every next token after the partial ``word`` (unweighted): how the best
        unigram of the words it can still become changes, so that a word's LM score is paid as it is
        spelled (and completed to its n-gram score when it ends). A word that leaves every listed and LM
        word pays -ln(vocabulary) for each piece it spells from then on, as a uniform spelling model would."""
        key = ("\0lm", word)
        row = self._rows.get(key)
        if row is not None:
            return row
        la = self.lookahead
        spell = -math.log(self.vocab)  # each piece of a word the LM lacks: uniform over the pieces
        row = torch.zeros(self.vocab)
        row[self._start_ids] = self._start_lookahead
        if word == "" or word in la:
            base = la.get(word, 0.0)
            row[self._continue_ids] = torch.tensor([la[word + self.text[i]] - base
                                                    if word + self.text[i] in la else spell - base
                                                    for i in self._continue_ids])
        else:
            row[self._continue_ids] = spell
        self._rows[key] = row
        return row
