"""Build the synthetic-speech corpus that trains the embedded default model.

Text comes from Debian packages (Jane Austen's novels in ``r-cran-janeaustenr``, the
Harvard sentences in ``r-cran-stringr``, ``fortunes``/``fortunes-min`` and WordNet usage
examples in ``wordnet-base``); a package that is not installed is fetched with
``apt-get download`` into ``OUT/text_sources`` and unpacked there. Speech comes from the
English voices of espeak-ng, flite and festival, and of SVOX Pico (en-US, en-GB) when the
``ttspico`` package from PyPI is installed (``pip install ttspico``; it compiles Pico with its
voices). The voice named first in ``HELD_OUT_VOICES`` that is available (flite ``rms``) never
speaks a training utterance.

Output in ``OUT``: ``audio/<split>/<id>.flac`` (16 kHz mono, 16-bit), the fairseq S2T
manifests ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``test_unseen_voice.tsv`` whose
``audio`` column is relative to ``OUT``, ``train_text.txt`` (training transcripts),
``extra_text.txt`` (unused training-side sentences, for the tokenizer or an LM) and
``corpus_config.json``. Everything derives from ``--seed``; a rerun skips utterances
whose audio already exists, and manifests are rewritten every ``FLUSH_EVERY`` utterances.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unicodedata
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

from s2t_live.errors import S2TError
from s2t_live.export import atomic_open, write_atomic
from s2t_live.train import augment

SAMPLE_RATE = 16000
SPLITS = ("dev", "test", "test_unseen_voice", "train")
DEFAULT_SIZES = {"train": 30000, "dev": 300, "test": 300, "test_unseen_voice": 300}
MANIFEST_HEADER = "id\taudio\tn_frames\ttgt_text\tspeaker\n"
FLUSH_EVERY = 500
PROGRESS_EVERY = 50
BABBLE_CLIPS = 24
PEAK_RANGE = (0.5, 0.95)


# ---------------------------------------------------------------- text sources
R_DATA = "usr/lib/R/site-library/{}/data/Rdata.rdb"
FORTUNE_DIR = "usr/share/games/fortunes"
WORDNET_DIR = "usr/share/wordnet"
TEXT_PACKAGES = {  # source name -> (Debian package, path inside it)
    "austen": ("r-cran-janeaustenr", R_DATA.format("janeaustenr")),
    "harvard": ("r-cran-stringr", R_DATA.format("stringr")),
    "fortunes": ("fortunes", f"{FORTUNE_DIR}/miscellaneous"),
    "fortunes-min": ("fortunes-min", f"{FORTUNE_DIR}/literature"),
    "wordnet": ("wordnet-base", f"{WORDNET_DIR}/data.noun"),
}
FORTUNE_SKIP = {"art", "ascii-art", "computers", "debian", "definitions", "linux",
                "linuxcookie", "knghtbrd", "perl", "paradoxum", "zippy", "startrek",
                "fortunes", "literature", "riddles"}
R_STRING_VECTOR = 16
MIN_WORDS, MAX_WORDS = 3, 25
WORDNET_MIN_WORDS = 5  # shorter WordNet examples are mostly noun phrases, not sentences
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"),
          (100, "hundred"))
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
            "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
ABBREVIATIONS = {"Mr.": "Mister", "Mrs.": "Missus", "Dr.": "Doctor", "St.": "Saint",
                 "Jr.": "Junior", "Sr.": "Senior", "Capt.": "Captain", "Col.": "Colonel",
                 "Gen.": "General", "Lt.": "Lieutenant", "Prof.": "Professor",
                 "Rev.": "Reverend", "vs.": "versus", "etc.": "et cetera",
                 "e.g.": "for example", "i.e.": "that is", "&": " and ", "%": " percent"}
# Austen's spellings of compounds, and titles written without their full stop, as one spoken word.
# ("to day" and "no body" stay apart: "from day to day", "no body was found").
COMPOUNDS = re.compile(r"\b(?:(?:every|any|some)[ -](?:body|thing|where)|no[ -]where"
                       r"|to-(?:morrow|day|night)|to morrow)\b", re.IGNORECASE)
TITLES = re.compile(r"\b(Mr|Mrs)\b(?!\.)")
CHAR_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                          "\u2014": ", ", "\u2013": ", ", "_": "", "(": ", ", ")": ", ",
                          "[": " ", "]": " ", "`": "'"})
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]*[A-Z])")
SPOKEN_OK = re.compile(r"^[A-Za-z0-9 '.,;:!?\"-]+$")
ACRONYM = re.compile(r"\b[A-Z]{2,}\b")


def number_to_words(n: int) -> str:
    """Cardinal number in English words: 1234 -> 'one thousand two hundred thirty four'."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for value, name in SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            words = f"{number_to_words(head)} {name}"
            return words if rest == 0 else f"{words} {number_to_words(rest)}"
    raise ValueError(n)


def year_to_words(n: int) -> str:
    """A year as read aloud: 1984 -> 'nineteen eighty four', 1905 -> 'nineteen oh five'."""
    high, low = divmod(n, 100)
    if 2000 <= n < 2010 or low == 0 and high % 10 == 0:
        return number_to_words(n)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    tail = f"oh {ONES[low]}" if low < 10 else number_to_words(low)
    return f"{number_to_words(high)} {tail}"


def ordinal_to_words(n: int) -> str:
    """Ordinal in words: 21 -> 'twenty first'."""
    *head, last = number_to_words(n).split()
    last = ORDINALS.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join([*head, last])


def expand_numbers(text: str) -> str:
    """Spell out money, ordinals, decimals, years and plain numbers."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"\$(\d+)", lambda m: f"{m.group(1)} dollars", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), text)
    text = re.sub(r"\b(\d+)\.(\d+)\b", lambda m: number_to_words(int(m.group(1))) + " point "
                  + " ".join(ONES[int(d)] for d in m.group(2)), text)
    text = re.sub(r"\b(1[1-9]\d\d|20\d\d)\b", lambda m: year_to_words(int(m.group(1))), text)
    return re.sub(r"\b\d{1,12}\b", lambda m: number_to_words(int(m.group(0))), text)


def spoken_form(sentence: str) -> str | None:
    """What a voice is asked to read: expanded, plain ASCII, punctuation kept; or None."""
    text = unicodedata.normalize("NFKC", sentence).translate(CHAR_MAP).replace("--", ", ")
    text = TITLES.sub(lambda m: ABBREVIATIONS[m.group(1) + "."], text)
    for short, full in ABBREVIATIONS.items():
        text = text.replace(short, full)
    text = COMPOUNDS.sub(lambda m: re.sub("[ -]", "", m.group(0)), text)
    text = expand_numbers(text).replace('"', " ")
    if not SPOKEN_OK.match(text) or ACRONYM.search(text) or re.search(r"\d", text):
        return None
    text = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", text))
    text = re.sub(r"([,.;:!?])[,.;:]+", r"\1", text)
    return re.sub(r"^[\s,.;:'-]+|[\s,;:'-]+$", "", text) or None


def normalize_transcript(spoken: str) -> str:
    """ASR target: lowercase words, inner apostrophes kept, no punctuation."""
    text = re.sub(r"[^a-z' ]", " ", spoken.lower().replace("-", " "))
    return " ".join(w for w in (w.strip("'") for w in text.split()) if w)


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph at sentence ends; overlong sentences also at ';' and ':'."""
    for short, full in ABBREVIATIONS.items():
        paragraph = paragraph.replace(short, full)
    pieces: list[str] = []
    for sentence in SENTENCE_BREAK.split(" ".join(paragraph.split())):
        long = len(sentence.split()) > MAX_WORDS
        pieces.extend(re.split(r"[;:]\s+", sentence) if long else [sentence])
    return [p.strip() for p in pieces if p.strip()]


def r_string_vectors(path: Path) -> Iterator[list[str]]:
    """Character vectors stored in an installed R package's lazy-load data base."""
    data, pos = path.read_bytes(), 0
    while pos + 4 < len(data):
        inflater = zlib.decompressobj()
        body = inflater.decompress(data[pos + 4:])
        pos = len(data) - len(inflater.unused_data)
        if not body.startswith(b"X\n"):
            continue
        cursor = 14 + (4 + struct.unpack(">i", body[14:18])[0] if body[5] == 3 else 0)
        flags, length = struct.unpack(">ii", body[cursor:cursor + 8])
        if flags & 0xFF != R_STRING_VECTOR:
            continue
        cursor, strings = cursor + 8, []
        for _ in range(length):
            size = struct.unpack(">i", body[cursor + 4:cursor + 8])[0]
            cursor += 8
            strings.append(body[cursor:cursor + max(size, 0)].decode("utf-8", "replace"))
            cursor += max(size, 0)
        yield strings


def lines_to_paragraphs(lines: Iterable[str]) -> Iterator[str]:
    """Join wrapped lines into paragraphs at blank lines."""
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []


def source_paragraphs(name: str, path: Path) -> Iterator[str]:
    """Raw paragraphs of one text source, located by ``path``."""
    if name == "austen":
        for novel in r_string_vectors(path):
            yield from lines_to_paragraphs(novel)
    elif name == "harvard":
        for vector in r_string_vectors(path):
            if sum(s.endswith(".") for s in vector) > len(vector) // 2:
                yield from vector
    elif name.startswith("fortunes"):
        names = {"fortunes": None, "fortunes-min": {"fortunes", "literature", "riddles"}}[name]
        for file in sorted(path.parent.iterdir()):
            wanted = file.name in names if names else file.name not in FORTUNE_SKIP
            if wanted and file.is_file() and not file.suffix:
                for cookie in file.read_text("utf-8", "replace").split("\n%\n"):
                    kept = [ln for ln in cookie.splitlines() if not ln.strip().startswith("--")]
                    yield " ".join(kept)
    elif name == "wordnet":
        for part in ("noun", "verb", "adj", "adv"):
            for line in (path.parent / f"data.{part}").read_text("utf-8", "replace").splitlines():
                if not line.startswith(" ") and " | " in line:
                    examples = re.findall(r'"([^"]+)"', line.split(" | ", 1)[1])
                    yield from (e for e in examples if len(e.split()) >= WORDNET_MIN_WORDS)


def locate_package_file(package: str, rel: str, cache: Path) -> Path | None:
    """``/rel`` if installed, else the same file from ``apt-get download`` unpacked in cache."""
    for root in (Path("/"), cache / "root"):
        if (root / rel).exists():
            return root / rel
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True,
                       capture_output=True, timeout=300)
        for deb in sorted(cache.glob(f"{package}_*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "root")], check=True)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"[corpus] text source {package} unavailable: {error}", file=sys.stderr)
    return cache / "root" / rel if (cache / "root" / rel).exists() else None


def load_sentences(text_file: Path | None, cache: Path
                   ) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Deduplicated (spoken, transcript) pairs of 3..25 words, and the count per source."""
    if text_file is not None:
        sources = {"text-file": iter(text_file.read_text("utf-8").splitlines())}
    else:
        sources = {}
        for name, (package, rel) in TEXT_PACKAGES.items():
            path = locate_package_file(package, rel, cache)
            if path is not None:
                sources[name] = source_paragraphs(name, path)
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    for name, paragraphs in sources.items():
        before = len(pairs)
        for paragraph in paragraphs:
            for sentence in split_sentences(paragraph):
                spoken = spoken_form(sentence)
                transcript = normalize_transcript(spoken) if spoken else ""
                if MIN_WORDS <= len(transcript.split()) <= MAX_WORDS and transcript not in seen:
                    seen.add(transcript)
                    pairs.append((spoken, transcript))  # type: ignore[arg-type]
        counts[name] = len(pairs) - before
    if not pairs:
        raise RuntimeError("no text source is available: install wordnet-base or fortunes")
    return pairs, counts


# ---------------------------------------------------------------- voices
HELD_OUT_VOICES = ("flite:rms", "espeak:en-029")  # the first one available is held out
# Pico's weight comes on top, so that a build without it draws exactly as before it was added.
ENGINE_WEIGHTS = {"espeak": 0.40, "flite": 0.35, "festival": 0.25, "pico": 0.15}
FLITE_VOICES = ("kal16", "slt", "awb", "rms")  # 'kal' (8 kHz) and 'awb_time' left out
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_VOICE_DIRS = Path("/usr/share/festival/voices")
PICO_VOICES = ("en-US", "en-GB")
PICO_RATE = 16000
PICO_VOLUME = 50  # per cent: at 100 Pico saturates its 16-bit output (1,000-1,700 samples a sentence)
PICO_PITCH_OCTAVES = 0.5  # pitch -1..1 -> Pico pitch level 71..141 % (en-US: 157 Hz at 100, ~114 at 70)
ODD_VARIANTS = re.compile(r"(?i)robo|demonic|whisper|croak|announcer|^fast$|tweaky|ricishay"
                          r"|kaukovalta")
P_PLAIN_ESPEAK = 0.2  # espeak utterances spoken without a +variant
ESPEAK_WPM, ESPEAK_PITCH = 175, 50
SYNTH_TIMEOUT_S = 60
FESTIVAL_MARK = "S2T-CORPUS-DONE"


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: engine, voice name and (espeak only) a +variant."""

    engine: str
    name: str
    variant: str = ""

    @property
    def base(self) -> str:
        """Engine and voice without the variant, e.g. ``espeak:en-gb``."""
        return f"{self.engine}:{self.name}"

    @property
    def label(self) -> str:
        """Speaker label of the manifests, e.g. ``espeak:en-gb+m3``."""
        return self.base + (f"+{self.variant}" if self.variant else "")


def command_output(cmd: list[str]) -> str:
    """Stdout of a short command, or '' if it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def list_voices() -> dict[str, list[str]]:
    """English voices installed for each engine, plus the usable espeak-ng variants."""
    rows = [line.split() for line in command_output(["espeak-ng", "--voices=en"]).splitlines()]
    espeak = sorted({r[1] for r in rows[1:] if len(r) >= 5 and r[4].startswith("gmw/")
                     and r[1].startswith("en")})
    variants = re.findall(r"!v/(\S+)[ \t]*(?:\(|$)",
                          command_output(["espeak-ng", "--voices=variant"]), re.M)
    flite = command_output(["flite", "-lv"]).split()
    festival = [v for v in FESTIVAL_VOICES if shutil.which("festival")
                and any(d.is_dir() for d in FESTIVAL_VOICE_DIRS.glob(f"*/{v}"))]
    return {"espeak": espeak, "flite": [v for v in FLITE_VOICES if v in flite],
            "festival": festival, "pico": [v for v in PICO_VOICES if pico_engine(v) is not None],
            "espeak_variants": sorted({v for v in variants if not ODD_VARIANTS.search(v)})}


_PICO: dict[str, object] = {}


def pico_engine(language: str) -> object | None:
    """This process's SVOX Pico engine for ``language`` (``ttspico``), or None without it."""
    if language not in _PICO:
        try:
            import ttspico  # optional: only the corpus builder uses it

            engine = ttspico.TtsEngine(language)
            engine.volume = PICO_VOLUME
            _PICO[language] = engine
        except (ImportError, RuntimeError, OSError):
            _PICO[language] = None
    return _PICO[language]


def pico_say(language: str, text: str, speed: float, pitch: float) -> np.ndarray:
    """Pico's 16 kHz speech for ``text`` as float32, at ``speed`` and ``pitch`` (-1..1)."""
    engine = pico_engine(language)
    if engine is None:
        raise RuntimeError(f"SVOX Pico ({language}) is not available: pip install ttspico")
    engine.rate = int(round(100 * speed))  # type: ignore[attr-defined]
    engine.pitch = int(round(100 * 2 ** (PICO_PITCH_OCTAVES * pitch)))  # type: ignore[attr-defined]
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    pcm = engine.speak(escaped) or b""  # type: ignore[attr-defined]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class FestivalPipe:
    """One long-lived ``festival --pipe`` process that saves an utterance per request."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.voice = ""

    def close(self) -> None:
        """Stop the process (it is restarted on the next request)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc, self.voice = None, ""

    def say(self, voice: str, text: str, speed: float, pitch: float, path: Path) -> None:
        """Synthesise ``text`` into the RIFF file ``path``."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.voice = ""
        lines = [] if voice == self.voice else [f"(voice_{voice})"]
        self.voice = voice
        if voice.endswith("_hts"):
            lines.append(f'(set! hts_engine_params (append {voice}::hts_engine_params '
                         f'(list (list "-r" {speed:.3f}) (list "-fm" {3 * pitch:.2f}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{path}" \'riff)')
        lines.append(f'(print "{FESTIVAL_MARK}") (fflush nil)')
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(("\n".join(lines) + "\n").encode())
        self.proc.stdin.flush()
        self.wait_for_mark(self.proc.stdout.fileno())

    def wait_for_mark(self, fd: int) -> None:
        """Read festival's output until the end-of-request mark, within the time-out."""
        deadline, seen = time.monotonic() + SYNTH_TIMEOUT_S, b""
        while FESTIVAL_MARK.encode() not in seen:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                self.close()
                raise TimeoutError("festival timed out" if not ready else "festival exited")
            seen = seen[-64:] + chunk


class VoiceBank:
    """The voices of one build: which train, which is held out, and how to run each."""

    def __init__(self, found: dict[str, list[str]], tmp_dir: str) -> None:
        self.variants = found.get("espeak_variants", [])
        self.by_engine = {e: [Voice(e, n) for n in found.get(e, [])] for e in ENGINE_WEIGHTS}
        bases = {v.base: v for vs in self.by_engine.values() for v in vs}
        held = next((bases[b] for b in HELD_OUT_VOICES if b in bases), None)
        if held is None:
            raise RuntimeError(f"none of the held-out voices {HELD_OUT_VOICES} is installed")
        self.held_out = held
        for engine, voices in self.by_engine.items():
            self.by_engine[engine] = [v for v in voices if v != held]
        self.train_voices = [v for vs in self.by_engine.values() for v in vs]
        self.tmp_dir = Path(tmp_dir)
        self.festival = FestivalPipe()

    def draw(self, rng: np.random.Generator) -> Voice:
        """A random training voice: engine by ``ENGINE_WEIGHTS``, then voice and variant."""
        engines = [e for e in ENGINE_WEIGHTS if self.by_engine[e]]
        weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
        voice = self.by_engine[engine][int(rng.integers(len(self.by_engine[engine])))]
        if engine == "espeak" and self.variants and rng.random() >= P_PLAIN_ESPEAK:
            return Voice(engine, voice.name, self.variants[int(rng.integers(len(self.variants)))])
        return voice

    def synthesize(self, voice: Voice, text: str, speed: float, pitch: float
                   ) -> tuple[np.ndarray, int]:
        """Mono float32 waveform and its sample rate; ``speed`` > 1 talks faster."""
        path = self.tmp_dir / "utterance.wav"
        if voice.engine == "espeak":
            name = voice.name + (f"+{voice.variant}" if voice.variant else "")
            cmd = ["espeak-ng", "-v", name, "-s", str(round(ESPEAK_WPM * speed)),
                   "-p", str(round(ESPEAK_PITCH + 25 * pitch)), "-w", str(path), "--stdin"]
            subprocess.run(cmd, input=text.encode(), check=True, capture_output=True,
                           timeout=SYNTH_TIMEOUT_S)
        elif voice.engine == "pico":
            return pico_say(voice.name, text, speed, pitch), PICO_RATE
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / speed:.3f}",
                   "-t", text, "-o", str(path)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=SYNTH_TIMEOUT_S)
        else:
            self.festival.say(voice.name, text, speed, pitch, path)
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
        path.unlink()
        return wave.mean(axis=1), int(rate)

    def close(self) -> None:
        """Stop the festival process."""
        self.festival.close()


# ---------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Task:
    """One utterance to synthesise: text, voice and the seed of its random choices."""

    uid: str
    split: str
    spoken: str
    transcript: str
    voice: Voice
    speed: float
    pitch: float
    seed: int

    @property
    def rel_path(self) -> str:
        """Audio path relative to the output folder."""
        return f"audio/{self.split}/{self.uid}.flac"


@dataclass(frozen=True)
class CorpusConfig:
    """Command-line settings of one corpus build."""

    out: Path
    jobs: int = 2
    seed: int = 1
    sizes: tuple[tuple[str, int], ...] = tuple(DEFAULT_SIZES.items())
    text_file: Path | None = None
    without: tuple[str, ...] = ()  # engines left out although installed ("pico", "festival", ...)


def frames_of(num_samples: int) -> int:
    """Number of 25 ms / 10 ms fbank frames fairseq computes for ``num_samples`` at 16 kHz."""
    return 0 if num_samples < 400 else 1 + (num_samples - 400) // 160


def split_sizes(max_utts: int | None, overrides: dict[str, int | None]) -> dict[str, int]:
    """Per-split utterance counts: the defaults, overridden, then scaled under ``max_utts``."""
    sizes = {s: (overrides.get(s) if overrides.get(s) is not None else DEFAULT_SIZES[s])
             for s in DEFAULT_SIZES}
    if max_utts is None or max_utts >= sum(sizes.values()):
        return {s: int(n) for s, n in sizes.items()}
    total = sum(sizes.values())
    held = {s: max(1, sizes[s] * max_utts // total) for s in sizes if s != "train"}
    return {**held, "train": max(1, max_utts - sum(held.values()))}


def partition_sentences(pairs: list[tuple[str, str]], sizes: dict[str, int],
                        rng: np.random.Generator) -> dict[str, list[tuple[str, str]]]:
    """Shuffle (spoken, transcript) pairs into disjoint dev, test and training pools.

    ``test_unseen_voice`` reuses the test sentences, so seen and unseen voices can be
    compared on the same text; no held-out sentence is in the training pool.
    """
    order = rng.permutation(len(pairs))
    shuffled = [pairs[i] for i in order]
    n_dev, n_test = sizes["dev"], max(sizes["test"], sizes["test_unseen_voice"])
    if n_dev + n_test >= len(shuffled):
        raise ValueError(f"only {len(shuffled)} sentences for {n_dev + n_test} held out")
    test = shuffled[n_dev:n_dev + n_test]
    return {"dev": shuffled[:n_dev], "test": test[:sizes["test"]],
            "test_unseen_voice": test[:sizes["test_unseen_voice"]],
            "train_pool": shuffled[n_dev + n_test:]}


def task_id(split: str, index: int, parts: Iterable[object]) -> str:
    """A readable id whose hash suffix changes whenever text, voice or seed change."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]
    return f"{split}-{index:06d}-{digest}"


def plan_tasks(pools: dict[str, list[tuple[str, str]]], sizes: dict[str, int],
               bank: VoiceBank, rng: np.random.Generator) -> list[Task]:
    """Every utterance of the corpus in synthesis order: held-out splits first."""
    tasks: list[Task] = []
    for split in SPLITS:
        sentences = pools["train_pool"] if split == "train" else pools[split]
        for index in range(sizes[split]):
            spoken, transcript = sentences[index % len(sentences)]
            voice = bank.held_out if split == "test_unseen_voice" else bank.draw(rng)
            speed, pitch = float(rng.uniform(0.85, 1.2)), float(rng.uniform(-1.0, 1.0))
            seed = int(rng.integers(2**62))
            uid = task_id(split, index, (spoken, voice.label, f"{speed:.3f}", f"{pitch:.3f}",
                                         seed))
            tasks.append(Task(uid, split, spoken, transcript, voice, speed, pitch, seed))
    return tasks


def read_valid(path: Path) -> int | None:
    """Sample count of an existing, readable 16 kHz mono file, else None."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    ok = info.samplerate == SAMPLE_RATE and info.channels == 1 and info.frames >= 400
    return int(info.frames) if ok else None


def write_audio(path: Path, wave: np.ndarray) -> None:
    """Write 16-bit FLAC atomically (temporary file, then rename)."""
    with atomic_open(path, "wb", sync=False) as f:
        sf.write(f, wave, SAMPLE_RATE, subtype="PCM_16", format="FLAC")


def render(task: Task, bank: VoiceBank, babble: list[np.ndarray]) -> np.ndarray:
    """Synthesise, resample, trim, level and (for training) augment one utterance."""
    rng = np.random.default_rng(task.seed)
    wave, rate = bank.synthesize(task.voice, task.spoken, task.speed, task.pitch)
    wave = augment.resample(wave, rate, SAMPLE_RATE)
    wave = augment.trim_silence(wave, SAMPLE_RATE, rng)
    wave = augment.peak_normalize(wave, float(rng.uniform(*PEAK_RANGE)))
    if task.split == "train":
        wave, _ = augment.augment_chain(wave, SAMPLE_RATE, rng, augment.AugmentConfig(), babble)
    return wave


_WORKER: dict[str, object] = {}


def init_worker(out_dir: str) -> None:
    """Per-process state: the voice bank (with its festival process) and the babble clips."""
    _WORKER["out"] = Path(out_dir)
    _WORKER["bank"] = VoiceBank(list_voices(), tempfile.mkdtemp(prefix="s2t-corpus-"))
    babble_dir = Path(out_dir) / "babble"
    _WORKER["babble"] = [sf.read(str(p), dtype="float32")[0]
                         for p in sorted(babble_dir.glob("*.flac"))]


def run_task(task: Task) -> tuple[Task, int | None, bool]:
    """Make one utterance unless it exists; return (task, samples or None, synthesised)."""
    path = Path(_WORKER["out"]) / task.rel_path  # type: ignore[arg-type]
    samples = read_valid(path)
    if samples is not None:
        return task, samples, False
    try:
        wave = render(task, _WORKER["bank"], _WORKER["babble"])  # type: ignore[arg-type]
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        print(f"[corpus] failed {task.uid} ({task.voice.label}): {error}", file=sys.stderr)
        return task, None, True
    if wave.size < 400:
        return task, None, True
    write_audio(path, wave)
    return task, int(wave.size), True


def build_babble(out: Path, pool: list[tuple[str, str]], bank: VoiceBank,
                 rng: np.random.Generator, clips: int) -> None:
    """Synthesise the clean clips that babble noise is mixed from (seen voices only)."""
    fast = [v for v in bank.train_voices if v.engine != "festival"] or bank.train_voices
    for index in range(min(BABBLE_CLIPS, max(2, clips), len(pool))):
        spoken = pool[-1 - index][0]
        voice = fast[int(rng.integers(len(fast)))]
        path = out / "babble" / f"babble-{index:02d}-{hashlib.sha1(spoken.encode()).hexdigest()[:8]}.flac"
        if read_valid(path) is None:
            wave, rate = bank.synthesize(voice, spoken, 1.0, 0.0)
            write_audio(path, augment.peak_normalize(augment.resample(wave, rate, SAMPLE_RATE)))


def write_manifests(out: Path, tasks: list[Task], samples: dict[str, int]) -> None:
    """(Re)write the four manifests and ``train_text.txt`` from the finished utterances."""
    for split in SPLITS:
        lines = [f"{t.uid}\t{t.rel_path}\t{frames_of(samples[t.uid])}\t{t.transcript}\t"
                 f"{t.voice.label}\n" for t in tasks if t.split == split and t.uid in samples]
        write_atomic(out / f"{split}.tsv", MANIFEST_HEADER + "".join(lines))
    train_text = [t.transcript + "\n" for t in tasks if t.split == "train" and t.uid in samples]
    write_atomic(out / "train_text.txt", "".join(train_text))


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` for a duration in seconds."""
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def execute(cfg: CorpusConfig, tasks: list[Task]) -> Iterator[tuple[Task, int | None, bool]]:
    """Run the tasks in order, in this process (``jobs == 1``) or a process pool."""
    if cfg.jobs <= 1:
        init_worker(str(cfg.out))
        yield from map(run_task, tasks)
        _WORKER["bank"].close()  # type: ignore[attr-defined]
        return
    with ProcessPoolExecutor(cfg.jobs, initializer=init_worker,
                             initargs=(str(cfg.out),)) as pool:
        yield from pool.map(run_task, tasks, chunksize=4)


def synthesize_all(cfg: CorpusConfig, tasks: list[Task]) -> dict[str, int]:
    """Make every utterance, flushing manifests and printing progress with an ETA."""
    samples: dict[str, int] = {}
    start, made, failed = time.monotonic(), 0, 0
    for done, (task, count, synthesized) in enumerate(execute(cfg, tasks), start=1):
        made += int(synthesized)
        if count is None:
            failed += 1
        else:
            samples[task.uid] = count
        if done % FLUSH_EVERY == 0:
            write_manifests(cfg.out, tasks, samples)
        if done % PROGRESS_EVERY == 0 or done == len(tasks):
            elapsed = time.monotonic() - start
            per_minute = 60.0 * made / elapsed if elapsed > 0 else 0.0
            eta = (len(tasks) - done) * elapsed / made if made else 0.0
            print(f"[corpus] {done}/{len(tasks)} done, {made} synthesised "
                  f"({per_minute:.0f}/min), {failed} failed, elapsed {format_eta(elapsed)}, "
                  f"ETA {format_eta(eta)}", file=sys.stderr, flush=True)
    write_manifests(cfg.out, tasks, samples)
    return samples


def build(cfg: CorpusConfig) -> dict[str, int]:
    """Build (or resume) the whole corpus; return the finished utterance counts per split."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    sizes = dict(cfg.sizes)
    rng = np.random.default_rng(cfg.seed)
    sentences, source_counts = load_sentences(cfg.text_file, cfg.out / "text_sources")
    pools = partition_sentences(sentences, sizes, rng)
    found = {engine: [] if engine in cfg.without else names for engine, names in list_voices().items()}
    bank = VoiceBank(found, tempfile.mkdtemp(prefix="s2t-corpus-"))
    print(f"[corpus] {len(sentences)} sentences {source_counts}; training voices: "
          f"{[v.label for v in bank.train_voices]}; held out: {bank.held_out.label}",
          file=sys.stderr, flush=True)
    tasks = plan_tasks(pools, sizes, bank, rng)
    build_babble(cfg.out, pools["train_pool"], bank, rng, sizes["train"] // 10)
    bank.close()
    used = min(sizes["train"], len(pools["train_pool"]))
    write_atomic(cfg.out / "extra_text.txt",
                 "".join(t + "\n" for _, t in pools["train_pool"][used:]))
    summary = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
               "sources": source_counts, "sentences": len(sentences),
               "held_out_voice": bank.held_out.label,
               "train_voices": [v.label for v in bank.train_voices]}
    write_atomic(cfg.out / "corpus_config.json", json.dumps(summary, indent=1))
    samples = synthesize_all(cfg, tasks)
    return {s: sum(1 for t in tasks if t.split == s and t.uid in samples) for s in SPLITS}


def parse_args(argv: list[str] | None = None) -> CorpusConfig:
    """Command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=2, help="parallel synthesis processes")
    parser.add_argument("--max-utts", type=int, default=None,
                        help="cap on all utterances (splits scaled down, each at least 1)")
    parser.add_argument("--seed", type=int, default=1)
    for split in DEFAULT_SIZES:
        parser.add_argument(f"--{split.replace('_', '-')}-utts", type=int, default=None,
                            help=f"utterances in {split} (default {DEFAULT_SIZES[split]})")
    parser.add_argument("--text-file", type=Path, default=None,
                        help="use this text (one paragraph a line) instead of the Debian sources")
    parser.add_argument("--without", action="append", default=[], choices=sorted(ENGINE_WEIGHTS),
                        help="leave this engine's voices out although it is installed (repeatable); "
                             "--without pico rebuilds a corpus made before the Pico voices")
    args = parser.parse_args(argv)
    overrides = {s: getattr(args, f"{s}_utts") for s in DEFAULT_SIZES}
    sizes = split_sizes(args.max_utts, overrides)
    return CorpusConfig(out=args.out, jobs=args.jobs, seed=args.seed,
                        sizes=tuple(sizes.items()), text_file=args.text_file,
                        without=tuple(args.without))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m s2t_live.train.corpus``."""
    cfg = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("[corpus] espeak-ng is required (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    try:
        counts = build(cfg)
    except (OSError, S2TError) as error:  # a full disk, a folder that cannot be written
        print(f"[corpus] stopped: {error}; run the same command again to go on from what is written",
              file=sys.stderr)
        return 1
    print(f"[corpus] finished: {counts} in {cfg.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
