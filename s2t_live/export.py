"""Transcript segments and their file formats: SRT, WebVTT, plain text and JSON.

Times are handled as integer milliseconds, never through ``timedelta`` strings, so ``HH:MM:SS,mmm``
comes out exact. Writers go through a temporary file and a rename, so a full disk or a crash never
leaves half a subtitle file in place of a good one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from .errors import OutputError

FORMATS = ("txt", "srt", "vtt", "json")


@dataclass
class Segment:
    """One finalised stretch of speech: times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def timestamp(seconds: float, separator: str = ",", always_hours: bool = True) -> str:
    """``HH:MM:SS,mmm`` (SRT) or ``HH:MM:SS.mmm`` (VTT) for a non-negative time, rounded to the ms."""
    ms = max(0, math.floor(seconds * 1000 + 0.5))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(segments: Iterable[Segment]) -> str:
    blocks = [f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{s.text.strip()}\n"
              for i, s in enumerate((s for s in segments if s.text.strip()), start=1)]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[Segment]) -> str:
    blocks = [f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text.strip()}\n"
              for s in segments if s.text.strip()]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(segments: Iterable[Segment]) -> str:
    lines = [s.text.strip() for s in segments if s.text.strip()]
    return "\n".join(lines) + ("\n" if lines else "")


def to_json(segments: Sequence[Segment], file: str | None = None, duration: float | None = None) -> str:
    """One JSON object: ``{"file", "duration", "segments": [{"start", "end", "text", "tokens"}]}``."""
    payload = {"file": file, "duration": duration, "segments": [s.to_dict() for s in segments]}
    return json.dumps(payload, ensure_ascii=False)


def render(segments: Sequence[Segment], fmt: str, file: str | None = None, duration: float | None = None) -> str:
    """The text of ``segments`` in format ``fmt`` (one of ``FORMATS``)."""
    if fmt == "srt":
        return to_srt(segments)
    if fmt == "vtt":
        return to_vtt(segments)
    if fmt == "txt":
        return to_txt(segments)
    if fmt == "json":
        return to_json(segments, file, duration) + "\n"
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", sync: bool = True) -> Iterator[IO]:
    """A file to write ``path`` through (``mode`` "w" for UTF-8 text, "wb" for bytes): a temporary file in
    the same folder, renamed over ``path`` when the block ends without an error, so that ``path`` is never
    half written; removed otherwise. ``sync``: flushed to the disk before the rename (a cache that can be
    rebuilt skips that cost). ``OutputError`` when the disk refuses."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(mode, encoding=None if "b" in mode else "utf-8", dir=path.parent,
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            yield tmp
            if sync:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, sync: bool = True) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` in one step (``atomic_open``)."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", sync) as f:
        f.write(data)
    return Path(path)
