"""Train a sentencepiece model and write it as Speech2Text tokenizer files.

fairseq S2T ids are ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, then the pieces. ``vocab.json``
carries the id of every piece; optionally the piece ids are shuffled, which real checkpoints do not do
but which proves that code maps pieces through ``vocab.json`` and never trusts sentencepiece ids.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable

import sentencepiece

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
SPM_FILE = "sentencepiece.bpe.model"


def train_tokenizer(folder: str | Path, texts: Iterable[str], vocab_size: int, model_type: str = "unigram",
                    shuffle_seed: int | None = None, user_symbols: tuple[str, ...] = (),
                    do_upper_case: bool = False) -> Path:
    """Write ``sentencepiece.bpe.model``, ``vocab.json`` and ``tokenizer_config.json`` into ``folder``.

    ``vocab_size`` counts the four specials and ``user_symbols`` (language tags such as ``<lang:fr>``);
    for tiny corpora sentencepiece may lower it (``hard_vocab_limit`` off)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "spm_train"
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type=model_type, character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2, unk_id=3,
        user_defined_symbols=list(user_symbols), hard_vocab_limit=False, minloglevel=2,
        num_threads=1, input_sentence_size=2_000_000, shuffle_input_sentence=True)
    model_file = folder / SPM_FILE
    Path(f"{prefix}.model").replace(model_file)
    Path(f"{prefix}.vocab").unlink(missing_ok=True)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    pieces = [sp.id_to_piece(i) for i in range(len(SPECIALS), sp.get_piece_size())]
    ids = list(range(len(SPECIALS), sp.get_piece_size()))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(ids)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)} | dict(zip(pieces, ids))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
    config = {"tokenizer_class": "Speech2TextTokenizer", "do_upper_case": do_upper_case, "do_lower_case": False,
              "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
              "model_max_length": 1024}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    return folder
