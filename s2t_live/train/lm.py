"""Train a word n-gram language model (interpolated modified Kneser-Ney, Chen & Goodman 1998) on text and
write it, for ``lm_weight`` decoding (``s2t_live.ngram``), as ``lm.npz`` (the compact form a model folder
carries) or as ARPA text for other tools (``.arpa``, ``.arpa.gz``).

    python -m s2t_live.train.lm --order 3 --min-count 2 --out model/lm.npz corpus/train_text.txt ...

Lower orders count continuations (how many different words precede an n-gram) rather than occurrences,
except after ``<s>``; each order has three discounts, from its counts of counts. n-grams of two words and
more seen fewer than ``min_count`` times are left out of the file (their probability then backs off), which
keeps it small; each listed context's back-off weight is then set so that its probabilities sum to one.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import S2TError
from ..ngram import BOS, EOS, LN10, UNK, NGramLM
from .evaluate import normalize_text

Gram = tuple[str, ...]


def discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """D1, D2, D3+ of one order from its counts of counts (Chen & Goodman's estimates), kept in range."""
    t = Counter(c for c in counts if c <= 4)
    t1, t2, t3, t4 = (max(t[k], 1) for k in (1, 2, 3, 4))
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    return tuple(min(max(x, 0.05), k) for x, k in zip(d, (1.0, 2.0, 3.0)))  # type: ignore[return-value]


def kneser_ney(sentences: Iterable[Sequence[str]], order: int = 3, min_count: int = 1,
               vocab_size: int = 0) -> NGramLM:
    """An ``order``-gram model of ``sentences`` (lists of words); ``vocab_size`` > 0 keeps that many of
    the most frequent words and counts the others as ``<unk>``."""
    if order < 1:
        raise ValueError("order must be >= 1")
    if vocab_size > 0:
        sentences = [list(s) for s in sentences]
        freq = Counter(w for s in sentences for w in s)
        keep = {w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size]}
        sentences = [[w if w in keep else UNK for w in s] for s in sentences]
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[n][gram] for n = 1..order
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(1 if n == 1 else 0, len(padded) - n + 1):  # <s> is no unigram
                raw[n][tuple(padded[i:i + n])] += 1
    # Adjusted counts: the highest order and n-grams starting with <s> keep their counts, the others
    # count the distinct words before them.
    adjusted: list[Counter] = [Counter() for _ in range(order + 1)]
    adjusted[order] = Counter(raw[order])
    for n in range(order, 1, -1):
        for gram in raw[n]:
            adjusted[n - 1][gram[1:]] += 1
        for gram, c in raw[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = c
    adjusted[1].pop((BOS,), None)
    vocab = {g[0] for g in adjusted[1]} | {UNK}
    probs: dict[Gram, float] = {}
    backoffs: dict[Gram, float] = {}
    for n in range(1, order + 1):
        d = discounts(adjusted[n].values())
        totals: dict[Gram, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])  # sum, N1, N2, N3+
        for gram, c in adjusted[n].items():
            row = totals[gram[:-1]]
            row[0] += c
            row[min(c, 3)] += 1
        gamma = {h: (d[0] * r[1] + d[1] * r[2] + d[2] * r[3]) / r[0] for h, r in totals.items()}
        for gram, c in adjusted[n].items():
            if n > 1 and raw[n][gram] < min_count:
                continue
            h = gram[:-1]
            p = (c - d[min(c, 3) - 1]) / totals[h][0]
            # A kept n-gram's suffix is kept too: it was seen at least as often.
            lower = probs[gram[1:]] if n > 1 else 1.0 / len(vocab)
            probs[gram] = p + gamma[h] * lower
        for h, g in gamma.items():
            if h:
                backoffs[h] = g
        if n == 1:
            probs.setdefault((UNK,), gamma[()] / len(vocab))  # an <unk> of the text has its share already
            probs[(BOS,)] = 0.0
    # Back-off weights that make each listed context's probabilities sum to one again (with nothing
    # left out they equal the interpolation weights); lower orders first, which the higher ones use.
    children: dict[Gram, list[str]] = defaultdict(list)
    for gram in probs:
        if len(gram) > 1:
            children[gram[:-1]].append(gram[-1])
    for h in sorted(children, key=len):
        if h not in probs or h not in backoffs:
            continue
        words = children[h]
        listed = sum(probs[h + (w,)] for w in words)
        lower = sum(backoff_prob(probs, backoffs, h[1:] + (w,), len(vocab)) for w in words)
        if listed < 1.0 and lower < 1.0:
            backoffs[h] = (1.0 - listed) / (1.0 - lower)
    table = {}
    for gram, p in probs.items():
        b = backoffs.get(gram, 1.0) if len(gram) < order and gram in children else 1.0
        table[gram] = (math.log(p) if p > 0 else -99.0 * LN10, math.log(b))
    return NGramLM.from_probs(table)


def backoff_prob(probs: dict[Gram, float], backoffs: dict[Gram, float], gram: Gram, vocab: int) -> float:
    """p(gram[-1] | gram[:-1]) from what is listed, backing off."""
    weight = 1.0
    while gram:
        if gram in probs:
            return weight * probs[gram]
        weight *= backoffs.get(gram[:-1], 1.0)
        gram = gram[1:]
    return weight / vocab


def to_sentences(texts: Iterable[str]) -> list[list[str]]:
    """The words of each non-empty text, normalised as WER scoring normalises them."""
    return [words for words in (normalize_text(t).split() for t in texts) if words]


def read_sentences(paths: Sequence[Path]) -> list[list[str]]:
    return to_sentences(line for path in paths for line in Path(path).read_text(encoding="utf-8").splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2t_live.train.lm", description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="+", type=Path, help="text files, one sentence per line")
    parser.add_argument("--out", type=Path, required=True,
                        help="file to write: .npz the compact form that loads fastest, otherwise ARPA (.gz: compressed)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=0,
                        help="keep the N most frequent words, the others are <unk> (default: all)")
    parser.add_argument("--min-count", type=int, default=1,
                        help="leave out n-grams (n >= 2) seen fewer times (default: keep all)")
    args = parser.parse_args(argv)
    try:
        lm = kneser_ney(read_sentences(args.text), args.order, args.min_count, args.vocab_size)
        lm.write(args.out)
    except (OSError, UnicodeDecodeError, S2TError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(lm)} n-grams, order {lm.order}, {lm.size()} numbers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
