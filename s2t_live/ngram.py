"""A word n-gram language model in the ARPA format, for shallow fusion in decoding.

The attention decoder of a small model trained on a few tens of hours learns little about which words
follow which, and spells what it hears ("store in a cole plays"). A model folder may carry ``lm.arpa``
(or ``lm.arpa.gz``), a back-off word n-gram model as KenLM, SRILM and ``s2t_live.train.lm`` write it, or
``lm.npz``, the same model in this module's compact form; with ``lm_weight`` W > 0 in the generation
config, every word a hypothesis finishes adds W * ln p(word | the words before it) to its score (and the
end of the text W * ln p(</s> | ...)), plus ``word_bonus`` per word, which balances the LM's preference
for short texts.

The model is held as sorted arrays, a trie flattened by order: the n-gram (w1..wn) is row ``i`` of order
n's table, whose key is ``parent * V + wn`` with ``parent`` its prefix's row in order n-1 (a unigram's row
is its word id). A lookup is one binary search per word; a trigram of a million n-grams takes ~16 MB
instead of the ~200 MB of a dict of word tuples, and ``lm.npz`` loads in a fraction of a second where
parsing the ARPA text takes seconds. Only ARPA text and plain arrays are read (no code, no pickles).
Probabilities are stored as natural logs.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from array import array
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ModelError
from .export import atomic_open, write_atomic

LM_FILES = ("lm.npz", "lm.arpa", "lm.arpa.gz")
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
UNLISTED = float("nan")  # ln p of a row kept only as the prefix of longer n-grams (absent from the file)


class NGramLM:
    """Back-off n-gram probabilities over ``words`` (index = word id). ``logp[n - 1]`` and
    ``backoff[n - 1]`` are order n's ln probabilities and ln back-off weights, row by row; ``keys[n - 1]``
    (n >= 2) its sorted uint64 keys, ``parent row * len(words) + last word id``."""

    def __init__(self, words: Sequence[str], keys: list[np.ndarray], logp: list[np.ndarray],
                 backoff: list[np.ndarray]):
        self.words = list(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.keys, self.logp, self.backoff = keys, logp, backoff
        self.order = len(logp)
        self._v = np.uint64(len(self.words))
        self.unk_id = self.ids.get(UNK, -1)
        unk = float(logp[0][self.unk_id]) if self.unk_id >= 0 else math.nan
        self.unk = -100.0 * LN10 if math.isnan(unk) else unk

    @classmethod
    def from_probs(cls, probs: dict[tuple[str, ...], tuple[float, float]]) -> "NGramLM":
        """The model of ``{words: (ln p, ln back-off)}`` (n-gram tuples, context first)."""
        return build(*tables_of(probs))

    # -- queries ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(int(np.count_nonzero(~np.isnan(p))) for p in self.logp)

    def size(self) -> int:
        """The model's numbers: a probability per n-gram and a back-off weight per context."""
        return len(self) + sum(int(np.count_nonzero(b)) for b in self.backoff)

    @property
    def vocab(self) -> set[str]:
        return set(self.ids)

    def __contains__(self, word: str) -> bool:
        return word in self.ids

    def _row(self, ids: Sequence[int]) -> int:
        """Row of the n-gram ``ids`` in its order's table, or -1 when it is not there."""
        row = ids[0]
        for n in range(1, len(ids)):
            if row < 0 or ids[n] < 0:
                return -1
            keys = self.keys[n]
            key = np.uint64(row) * self._v + np.uint64(ids[n])
            row = int(keys.searchsorted(key))
            if row == len(keys) or keys[row] != key:
                return -1
        return row

    def logprob(self, context: Sequence[str], word: str) -> float:
        """ln p(``word`` | ``context``) (the last ``order - 1`` words count; start with ``<s>`` for the
        beginning of a text), backing off to shorter contexts; unknown words are ``<unk>``."""
        unk = self.unk_id
        w = self.ids.get(word, unk)
        ctx = [self.ids.get(c, unk) for c in context[max(len(context) - self.order + 1, 0):]] \
            if self.order > 1 else []
        total = 0.0
        while True:
            row = self._row([*ctx, w]) if w >= 0 else -1
            if row >= 0:
                p = float(self.logp[len(ctx)][row])
                if not math.isnan(p):
                    return total + p
            if not ctx:
                return total + self.unk
            row = self._row(ctx)
            if row >= 0:
                total += float(self.backoff[len(ctx) - 1][row])
            ctx = ctx[1:]

    def sentence_logprob(self, words: Iterable[str]) -> float:
        """ln p of a whole text, ``</s>`` included."""
        history, total = [BOS], 0.0
        for w in [*words, EOS]:
            total += self.logprob(history, w)
            history.append(w)
        return total

    def ngrams(self) -> Iterable[tuple[tuple[str, ...], float, float]]:
        """Every listed n-gram as (words, ln p, ln back-off), order by order."""
        v = int(self._v)
        grams: list[tuple[str, ...]] = [(w,) for w in self.words]
        for n in range(self.order):
            if n:
                keys = self.keys[n]
                grams = [grams[int(k) // v] + (self.words[int(k) % v],) for k in keys]
            for gram, p, b in zip(grams, self.logp[n].tolist(), self.backoff[n].tolist()):
                if not math.isnan(p):
                    yield gram, p, b

    @property
    def probs(self) -> dict[tuple[str, ...], tuple[float, float]]:
        """``{words: (ln p, ln back-off)}`` of every listed n-gram (built on each call)."""
        return {gram: (p, b) for gram, p, b in self.ngrams()}

    # -- files ------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path) -> "NGramLM | None":
        """The folder's ``lm.npz``, ``lm.arpa`` or ``lm.arpa.gz`` (the first there), or None when it has
        none; ``ModelError`` when it is unreadable or malformed."""
        for name in LM_FILES:
            path = Path(folder) / name
            if path.is_file():
                return cls.read_npz(path) if path.suffix == ".npz" else cls.read_arpa(path)
        return None

    @classmethod
    def read(cls, path: str | Path) -> "NGramLM":
        """An LM file, by its name: ``.npz`` the compact form, otherwise ARPA text (``.gz``: compressed)."""
        return cls.read_npz(path) if Path(path).suffix == ".npz" else cls.read_arpa(path)

    @classmethod
    def read_arpa(cls, path: str | Path) -> "NGramLM":
        path = Path(path)
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                return build(*parse_arpa(f))
        except (OSError, UnicodeDecodeError, EOFError, ValueError) as exc:
            raise ModelError(f"{path} is not a readable ARPA language model: {exc}") from None

    @classmethod
    def read_npz(cls, path: str | Path) -> "NGramLM":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            words = arrays.pop("words").tobytes().decode("utf-8").split("\n")
            order = int(arrays.pop("order"))
            logp = [arrays[f"logp{n}"].astype(np.float32) for n in range(1, order + 1)]
            backoff = [arrays[f"backoff{n}"].astype(np.float32) for n in range(1, order + 1)]
            keys = [np.zeros(0, np.uint64)] + [arrays[f"keys{n}"].astype(np.uint64) for n in range(2, order + 1)]
            check_tables(len(words), keys, logp, backoff)
        except (OSError, EOFError, KeyError, ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{path} is not a readable n-gram LM (lm.npz): {exc}") from None
        return cls(words, keys, logp, backoff)

    def write(self, path: str | Path) -> None:
        """Write the model, by the name: ``.npz`` the compact form, otherwise ARPA (``.gz``: compressed)."""
        path = Path(path)
        if path.suffix == ".npz":
            self.write_npz(path)
        else:
            self.write_arpa(path)

    def write_npz(self, path: str | Path) -> None:
        """Write the compact form (a compressed ``.npz`` of plain arrays)."""
        path = Path(path)
        arrays = {"words": np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8),
                  "order": np.array(self.order)}
        for n in range(1, self.order + 1):
            arrays[f"logp{n}"] = self.logp[n - 1]
            arrays[f"backoff{n}"] = self.backoff[n - 1]
            if n > 1:
                arrays[f"keys{n}"] = self.keys[n - 1]
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    def write_arpa(self, path: str | Path) -> None:
        """Write the model as ARPA text (gzip-compressed when ``path`` ends in ``.gz``)."""
        path = Path(path)
        by_order: dict[int, list[str]] = {}
        for gram, p, b in self.ngrams():
            text = f"{p / LN10:.5f}\t{' '.join(gram)}"
            if len(gram) < self.order and b != 0.0:
                text += f"\t{b / LN10:.5f}"
            by_order.setdefault(len(gram), []).append(text)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in sorted(by_order)]
        for n in sorted(by_order):
            lines += ["", f"\\{n}-grams:", *sorted(by_order[n], key=lambda t: t.split("\t")[1])]
        lines += ["", "\\end\\", ""]
        data = "\n".join(lines)
        if path.suffix == ".gz":
            with atomic_open(path, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", compresslevel=9) as f:
                f.write(data)
        else:
            write_atomic(path, data)


def check_tables(vocab: int, keys: list[np.ndarray], logp: list[np.ndarray], backoff: list[np.ndarray]) -> None:
    """``ValueError`` unless the tables fit together: one row per word in order 1, keys strictly
    increasing and pointing at rows of the order below."""
    if not logp or len(logp[0]) != vocab or len(backoff[0]) != vocab:
        raise ValueError("the unigram table does not match the word list")
    for n in range(1, len(logp)):
        k = keys[n]
        if not len(k) == len(logp[n]) == len(backoff[n]):
            raise ValueError(f"order {n + 1}'s tables differ in length")
        if len(k) and (np.any(k[1:] <= k[:-1]) or int(k[-1]) // vocab >= len(logp[n - 1])):
            raise ValueError(f"order {n + 1}'s keys are not sorted or point outside order {n}")


Tables = dict[int, tuple[np.ndarray, np.ndarray]]  # order n -> ((N, n) word ids, (N, 2) ln p and back-off)


def tables_of(probs: dict[tuple[str, ...], tuple[float, float]]) -> tuple[list[str], Tables]:
    """The word list and tables of ``{words: (ln p, ln back-off)}``, unigrams' words first."""
    ids: dict[str, int] = {}
    for gram in sorted(probs, key=len):
        for w in gram:
            ids.setdefault(w, len(ids))
    by_order: dict[int, list[tuple[str, ...]]] = {}
    for gram in probs:
        by_order.setdefault(len(gram), []).append(gram)
    tables = {n: (np.array([[ids[w] for w in g] for g in grams], dtype=np.uint64).reshape(-1, n),
                  np.array([probs[g] for g in grams], dtype=np.float32).reshape(-1, 2))
              for n, grams in by_order.items()}
    return list(ids), tables


def build(words: list[str], tables: Tables) -> NGramLM:
    """The model of ``tables`` over ``words``. An n-gram whose prefix is not listed gets its prefix as an
    unlisted row (no probability, back-off 0), as the ARPA definition implies."""
    if 1 not in tables or not len(tables[1][0]):
        raise ValueError("the model has no unigrams")
    order = max(tables)
    v = np.uint64(len(words))
    keys = [np.zeros(0, np.uint64)]
    logp = [np.full(len(words), UNLISTED, np.float32)]
    backoff = [np.zeros(len(words), np.float32)]
    unigrams, values = tables[1]
    logp[0][unigrams[:, 0].astype(np.int64)] = values[:, 0]
    backoff[0][unigrams[:, 0].astype(np.int64)] = values[:, 1]
    for n in range(2, order + 1):
        id_rows, values = tables.get(n, (np.zeros((0, n), np.uint64), np.zeros((0, 2), np.float32)))
        parents = rows_of(keys, logp, backoff, id_rows[:, :-1], v)
        key = parents * v + id_rows[:, -1]
        sort = np.argsort(key, kind="stable")
        key = key[sort]
        if len(key) > 1 and np.any(key[1:] == key[:-1]):
            raise ValueError(f"an {n}-gram is listed twice")
        keys.append(key)
        logp.append(values[sort, 0].copy())
        backoff.append(values[sort, 1].copy())
    return NGramLM(words, keys, logp, backoff)


def rows_of(keys: list[np.ndarray], logp: list[np.ndarray], backoff: list[np.ndarray], grams: np.ndarray,
            v: np.uint64) -> np.ndarray:
    """Rows of the n-grams ``grams`` (an (N, n) array of word ids) in order n's table, adding the ones
    that are missing as unlisted rows (which renumbers that table, so it is rebuilt in place)."""
    n = grams.shape[1]
    if n == 1:
        return grams[:, 0].copy()
    parents = rows_of(keys, logp, backoff, grams[:, :-1], v)
    want = parents * v + grams[:, -1]
    table = keys[n - 1]
    pos = table.searchsorted(want)
    found = (pos < len(table)) & (table[np.minimum(pos, len(table) - 1)] == want) if len(table) else \
        np.zeros(len(want), bool)
    if not found.all():
        extra = np.unique(want[~found])
        merged = np.concatenate([table, extra])
        sort = np.argsort(merged, kind="stable")
        keys[n - 1] = merged[sort]
        logp[n - 1] = np.concatenate([logp[n - 1], np.full(len(extra), UNLISTED, np.float32)])[sort]
        backoff[n - 1] = np.concatenate([backoff[n - 1], np.zeros(len(extra), np.float32)])[sort]
        if len(keys) > n:  # the order above points at these rows: renumber its parents (order is kept)
            new_row = np.empty(len(merged), np.uint64)
            new_row[sort] = np.arange(len(merged), dtype=np.uint64)
            above = keys[n]
            keys[n] = new_row[above // v] * v + above % v
        pos = keys[n - 1].searchsorted(want)
    return pos.astype(np.uint64)


def parse_arpa(lines: Iterable[str]) -> tuple[list[str], Tables]:
    """The words and n-gram tables of ARPA text (``ValueError`` when malformed)."""
    ids: dict[str, int] = {}
    grams: dict[int, array] = {}  # order -> word ids, n per n-gram
    values: dict[int, array] = {}  # order -> ln p, ln back-off per n-gram
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
            gram_ids = grams.setdefault(section, array("Q"))
            numbers = values.setdefault(section, array("d"))
        elif section == 0 and line.startswith("ngram "):
            n, count = line[len("ngram "):].split("=")
            declared[int(n)] = int(count)
        elif section:
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise ValueError(f"line {number}: expected a {section}-gram, got {line[:60]!r}")
            for w in parts[1:section + 1]:
                gram_ids.append(ids.setdefault(w, len(ids)))
            numbers.append(float(parts[0]) * LN10)
            numbers.append(float(parts[section + 1]) * LN10 if len(parts) == section + 2 else 0.0)
        elif section is None:
            continue  # text before \data\ is a comment
        else:
            raise ValueError(f"line {number}: unexpected {line[:60]!r}")
    if not declared or not any(grams.values()):
        raise ValueError("no \\data\\ section or no n-grams")
    for n, count in declared.items():
        found = len(grams.get(n, ())) // n
        if found != count:
            raise ValueError(f"\\data\\ declares {count} {n}-grams, the file has {found}")
    tables = {n: (np.frombuffer(grams[n], dtype=np.uint64).reshape(-1, n),
                  np.frombuffer(values[n], dtype=np.float64).astype(np.float32).reshape(-1, 2)) for n in grams}
    return list(ids), tables
