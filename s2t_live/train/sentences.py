"""The corpus's sentences: English text from Debian packages, and its spoken and written forms.

Sources are Jane Austen's novels (``r-cran-janeaustenr``), the Harvard sentences (``r-cran-stringr``),
``fortunes``/``fortunes-min`` and WordNet's usage examples (``wordnet-base``); a package that is not
installed is fetched with ``apt-get download`` into a cache folder and unpacked there. Each sentence
gets a spoken form (numbers, titles and abbreviations written out, what a voice is asked to read) and a
transcript (lower-case words, the model's target).
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path
from typing import Iterable, Iterator

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
