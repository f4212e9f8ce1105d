"""Build tiny Speech2Text tokenizer folders for tests, without any network.

``build_tokenizer_files`` trains a sentencepiece model on a handful of lines and writes
``vocab.json`` in the fairseq layout that the real S2T checkpoints use (``<s>``=0,
``<pad>``=1, ``</s>``=2, ``<unk>``=3, then the pieces). ``english_lines`` makes
deterministic training text so every test session builds the same model.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MUSTC_LANGS = ("pt", "fr", "ru", "nl", "ro", "it", "es", "de")

_WORDS = (
    "the a an one two three four five six seven eight nine ten hello world speech text "
    "model audio sound voice listen speak talk word sentence river mountain city house "
    "green blue red yellow quick slow brown fox dog cat jumps runs walks over under near "
    "far today tomorrow yesterday morning evening night light dark open close start stop "
    "and or but because while when where what who why how is are was were be been being "
    "have has had do does did will would can could should may might must shall recognition "
    "transcript subtitle live stream microphone buffer decoder encoder attention token"
).split()


def english_lines(count: int = 400, seed: int = 0) -> list[str]:
    """Return ``count`` deterministic pseudo-English sentences drawn from a fixed word list."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice((".", "?", "!", ",", "")))
    return lines


def lang_tokens(lang_codes: str | None) -> list[str]:
    """The ``<lang:xx>`` tokens the real checkpoints carry for a ``lang_codes`` family."""
    if lang_codes is None:
        return []
    if lang_codes != "mustc":
        raise ValueError(f"unknown lang_codes {lang_codes!r}")
    return [f"<lang:{lang}>" for lang in MUSTC_LANGS]


def build_tokenizer_files(
    folder: str | Path,
    texts: Iterable[str],
    vocab_size: int,
    shuffle: bool = False,
    seed: int = 0,
    lang_codes: str | None = None,
    model_type: str = "unigram",
    tokenizer_config: dict | None = None,
) -> Path:
    """Train ``sentencepiece.bpe.model`` on ``texts`` and write a fairseq-layout ``vocab.json``.

    The sentencepiece model is trained like fairseq's ``gen_vocab`` (bos=0, pad=1, eos=2,
    unk=3, language tags as user-defined symbols), so unshuffled vocab ids equal the
    sentencepiece ids. With ``shuffle`` the ids of every piece after the four specials are
    permuted (seeded by ``seed``), which checks that code maps pieces through the vocab
    rather than trusting sentencepiece ids. ``tokenizer_config``, when given, is written as
    ``tokenizer_config.json``. Returns the folder as a ``Path``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "spm_tmp"
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        user_defined_symbols=lang_tokens(lang_codes),
        num_threads=1,
        minloglevel=2,
    )
    spm_path = folder / "sentencepiece.bpe.model"
    Path(f"{prefix}.model").replace(spm_path)
    Path(f"{prefix}.vocab").unlink()

    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
    pieces = [sp.id_to_piece(i) for i in range(len(FAIRSEQ_SPECIALS), sp.get_piece_size())]
    write_vocab(folder / "vocab.json", pieces, shuffle=shuffle, seed=seed)
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return folder


def write_vocab(path: Path, pieces: Sequence[str], shuffle: bool = False, seed: int = 0) -> dict[str, int]:
    """Write the fairseq specials at 0-3 and ``pieces`` after them, optionally in shuffled id order."""
    ids = list(range(len(FAIRSEQ_SPECIALS), len(FAIRSEQ_SPECIALS) + len(pieces)))
    if shuffle:
        random.Random(seed).shuffle(ids)
    vocab = {token: i for i, token in enumerate(FAIRSEQ_SPECIALS)}
    vocab.update(zip(pieces, ids))
    # Written in id order, as fairseq/HF do, so the file reads like a real checkpoint's.
    ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
    path.write_text(json.dumps(ordered, indent=2, ensure_ascii=False), encoding="utf-8")
    return ordered
