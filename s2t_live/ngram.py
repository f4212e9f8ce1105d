"""A word n-gram language model in the ARPA format, for shallow fusion in decoding.

The attention decoder of a small model trained on a few tens of hours learns little about which words
follow which, and spells what it hears ("store in a cole plays"). A model folder may carry ``lm.arpa``
(or ``lm.arpa.gz``), a back-off word n-gram model as KenLM, SRILM and ``s2t_live.train.lm`` write it;
with ``lm_weight`` W > 0 in the generation config, every word a hypothesis finishes adds
W * ln p(word | the words before it) to its score (and the end of the text W * ln p(</s> | ...)), plus
``word_bonus`` per word, which balances the LM's preference for short texts.

Only the ARPA text is read (no code, no pickles). Probabilities are stored as natural logs.
"""

from __future__ import annotations

import gzip
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .errors import ModelError

LM_FILES = ("lm.arpa", "lm.arpa.gz")
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)


class NGramLM:
    """Back-off n-gram probabilities: ``probs[n-gram] = (ln p, ln back-off)`` for every listed n-gram
    (a tuple of words, context first)."""

    def __init__(self, probs: dict[tuple[str, ...], tuple[float, float]]):
        self.probs = probs
        self.order = max((len(g) for g in probs), default=1)
        self.unk = probs.get((UNK,), (-100.0 * LN10, 0.0))[0]
        self.vocab = {g[0] for g in probs if len(g) == 1}

    def __len__(self) -> int:
        return len(self.probs)

    def size(self) -> int:
        """The model's numbers: a probability per n-gram and a back-off weight per context."""
        return len(self.probs) + sum(1 for _, b in self.probs.values() if b != 0.0)

    def __contains__(self, word: str) -> bool:
        return word in self.vocab

    def logprob(self, context: Sequence[str], word: str) -> float:
        """ln p(``word`` | ``context``) (the last ``order - 1`` words count; start with ``<s>`` for the
        beginning of a text), backing off to shorter contexts; unknown words are ``<unk>``."""
        if word not in self.vocab:
            word = UNK
        context = tuple(w if w in self.vocab else UNK
                        for w in context[max(len(context) - self.order + 1, 0):]) if self.order > 1 else ()
        backoff = 0.0
        while True:
            entry = self.probs.get(context + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not context:
                return backoff + self.unk
            ctx = self.probs.get(context)
            if ctx is not None:
                backoff += ctx[1]
            context = context[1:]

    def sentence_logprob(self, words: Iterable[str]) -> float:
        """ln p of a whole text, ``</s>`` included."""
        history, total = [BOS], 0.0
        for w in [*words, EOS]:
            total += self.logprob(history, w)
            history.append(w)
        return total

    # -- files ------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path) -> "NGramLM | None":
        """The folder's ``lm.arpa`` / ``lm.arpa.gz``, or None when it has neither; ``ModelError`` when
        it is unreadable or not ARPA."""
        for name in LM_FILES:
            path = Path(folder) / name
            if path.is_file():
                return cls.read_arpa(path)
        return None

    @classmethod
    def read_arpa(cls, path: str | Path) -> "NGramLM":
        path = Path(path)
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                return cls(parse_arpa(f))
        except (OSError, UnicodeDecodeError, EOFError, ValueError) as exc:
            raise ModelError(f"{path} is not a readable ARPA language model: {exc}") from None

    def write_arpa(self, path: str | Path) -> None:
        """Write the model as ARPA text (gzip-compressed when ``path`` ends in ``.gz``)."""
        path = Path(path)
        by_order: dict[int, list[tuple[str, ...]]] = {}
        for g in self.probs:
            by_order.setdefault(len(g), []).append(g)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in sorted(by_order)]
        for n in sorted(by_order):
            lines += ["", f"\\{n}-grams:"]
            for g in sorted(by_order[n]):
                p, b = self.probs[g]
                text = f"{p / LN10:.5f}\t{' '.join(g)}"
                lines.append(text + (f"\t{b / LN10:.5f}" if n < self.order and b != 0.0 else ""))
        lines += ["", "\\end\\", ""]
        data = "\n".join(lines)
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".gz":
            with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
                f.write(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        tmp.replace(path)


def parse_arpa(lines: Iterable[str]) -> dict[tuple[str, ...], tuple[float, float]]:
    """The n-grams of ARPA text: ``{words: (ln p, ln back-off)}`` (``ValueError`` when malformed)."""
    probs: dict[tuple[str, ...], tuple[float, float]] = {}
    declared: dict[int, int] = {}
    section = None  # None: before \data\, 0: in \data\, n: in \n-grams:
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = 0
        elif line == "\\end\\":
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1:-len("-grams:")])
        elif section == 0 and line.startswith("ngram "):
            n, count = line[len("ngram "):].split("=")
            declared[int(n)] = int(count)
        elif section:
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise ValueError(f"line {number}: expected a {section}-gram, got {line[:60]!r}")
            words = tuple(sys.intern(w) for w in parts[1:section + 1])  # shared: ~40 % less memory
            backoff = float(parts[section + 1]) * LN10 if len(parts) == section + 2 else 0.0
            probs[words] = (float(parts[0]) * LN10, backoff)
        elif section is None:
            continue  # text before \data\ is a comment
        else:
            raise ValueError(f"line {number}: unexpected {line[:60]!r}")
    if not declared or not probs:
        raise ValueError("no \\data\\ section or no n-grams")
    found_by_order = Counter(len(g) for g in probs)
    for n, count in declared.items():
        found = found_by_order[n]
        if found != count:
            raise ValueError(f"\\data\\ declares {count} {n}-grams, the file has {found}")
    return probs
