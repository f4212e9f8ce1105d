"""Phoneme transcripts from espeak-ng, the targets of an auxiliary CTC loss on an inner encoder layer.

Spelling English from sound is the hard part of the task; phonemes follow the sound closely. With
``optim.phoneme_ctc_layer`` set, an encoder layer below the top learns to emit the sentence's phonemes
(CTC), so the layers above it spell from a representation that is already phonetic (hierarchical
multi-task CTC, Sanabria & Metze, 2018; Krishna et al., 2018). The phonemes are espeak-ng's own (its
``-x`` mnemonics, the phonemes of a word split with ``--sep``, stress marks dropped): exactly what the
espeak-ng voices of the corpus said, and close to what the festival and flite voices said. Or, with
``data.phonemizer = "flite"``, flite's (``t2p``: the CMU lexicon's ARPAbet phones and flite's letter-to-sound
rules, stress digits and pauses dropped), which the flite and festival voices say. Training only: the head
that reads them is not part of the saved model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from ..errors import S2TError
from ..export import write_atomic

SEPARATOR = "_"
DROP = "',"  # primary and secondary stress
CHUNK = 2000  # sentences per espeak-ng call


def parse(line: str) -> list[str]:
    """The phoneme symbols of one line of ``espeak-ng -x --sep=_`` output."""
    symbols = []
    for word in line.split():
        for symbol in word.split(SEPARATOR):
            symbol = symbol.strip(DROP)
            if symbol:
                symbols.append(symbol)
    return symbols


def _espeak(texts: Sequence[str], voice: str, exe: str) -> list[str]:
    """One output line per text: each sentence ends with a full stop, so espeak-ng ends a clause there."""
    run = subprocess.run([exe, "-q", "-x", f"--sep={SEPARATOR}", "-v", voice, "--stdin"],
                         input="".join(f"{t.replace(chr(10), ' ')}.\n" for t in texts), capture_output=True,
                         text=True, check=False)
    if run.returncode != 0:
        raise S2TError(f"espeak-ng failed on voice {voice}: {run.stderr.strip() or run.returncode}")
    return run.stdout.splitlines()


def phonemize(texts: Sequence[str], voice: str = "en-us") -> list[list[str]]:
    """espeak-ng's phonemes of each text (a list of symbols per text), chunks spoken by one espeak-ng
    process per CPU core (32,000 sentences: ~2 minutes on one)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise S2TError("phoneme targets (optim.phoneme_ctc_layer) need espeak-ng: apt-get install espeak-ng")

    def chunk(start: int) -> list[list[str]]:
        part = list(texts[start:start + CHUNK])
        lines = _espeak(part, voice, exe)
        if len(lines) != len(part):  # a sentence split into several clauses: one call each
            lines = [" ".join(_espeak([t], voice, exe)) for t in part]
        return [parse(line) for line in lines]

    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
        return [p for part in pool.map(chunk, range(0, len(texts), CHUNK)) for p in part]


def parse_flite(line: str) -> list[str]:
    """The phones of one line of ``t2p`` output, without stress digits and pauses."""
    return [p for p in (s.rstrip("012") for s in line.split()) if p and p != "pau"]


def flite_phonemize(texts: Sequence[str]) -> list[list[str]]:
    """flite's phones of each text (one ``t2p`` call per text, a few milliseconds each, one call at a time
    per CPU core)."""
    exe = shutil.which("t2p")
    if exe is None:
        raise S2TError("phoneme targets from flite (data.phonemizer = \"flite\") need its t2p: apt-get install flite")

    def one(text: str) -> list[str]:
        run = subprocess.run([exe, text.replace("\n", " ")], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise S2TError(f"flite's t2p failed on {text!r}: {run.stderr.strip() or run.returncode}")
        return parse_flite(run.stdout)

    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
        return list(pool.map(one, texts))


PHONEMIZERS = ("espeak-ng", "flite")


def load_or_make(path: Path, ids: Sequence[str], texts: Sequence[str], voice: str,
                 phonemizer: str = "espeak-ng") -> list[list[str]]:
    """The phonemes of each utterance, from ``path`` (a TSV of id and space-separated phonemes, written on
    the first run so that a resumed run reads the same targets) or made and written there."""
    if path.is_file():
        table = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, phones = line.partition("\t")
            table[key] = phones.split()
        if all(i in table for i in ids):
            return [table[i] for i in ids]
    phones = flite_phonemize(texts) if phonemizer == "flite" else phonemize(texts, voice)
    write_atomic(path, "".join(f"{i}\t{' '.join(p)}\n" for i, p in zip(ids, phones)))
    return phones


def inventory(phones: Sequence[Sequence[str]]) -> dict[str, int]:
    """Symbol -> id, from 1 (0 is the CTC blank), in sorted order: the same for the same transcripts."""
    return {symbol: i + 1 for i, symbol in enumerate(sorted({s for p in phones for s in p}))}
