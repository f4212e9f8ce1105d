"""A crash-safe record of the session: one JSON line per finalised segment, fsynced as it is written.

A journal starts with a header line and ends with a ``closed`` line when the app shuts down cleanly.
One without that line was cut short (a crash, a kill, a power cut) and is offered back on the next start;
a torn last line from a crash mid-write is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from s2t_live.errors import OutputError
from s2t_live.export import Segment

SUFFIX = ".jsonl"


@dataclass
class JournalContents:
    """What a journal file holds."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    closed: bool = False

    @property
    def started(self) -> str:
        return str(self.meta.get("started", ""))


class Journal:
    """Appends segments to ``path``; ``closed`` marks a clean end."""

    def __init__(self, path: Path, file: IO[str]):
        self.path = path
        self._file: IO[str] | None = file

    @classmethod
    def create(cls, folder: str | Path, meta: dict[str, Any] | None = None) -> "Journal":
        """A new journal in ``folder`` named after the local start time."""
        folder = Path(folder)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(1000):
                path = folder / f"session-{stamp}{f'-{n}' if n else ''}{SUFFIX}"
                try:
                    file = open(path, "x", encoding="utf-8")
                    break
                except FileExistsError:
                    continue
            else:
                raise OutputError(f"{folder}: too many journals started this second")
        except OSError as exc:
            raise OutputError(f"{folder}: cannot write the session journal ({exc.strerror or exc})") from None
        journal = cls(path, file)
        journal._write({"type": "header", "version": 1, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                        **(meta or {})})
        return journal

    @classmethod
    def reopen(cls, path: str | Path) -> "Journal":
        """Continue writing an unfinished journal (after a restore)."""
        path = Path(path)
        _truncate_torn_tail(path)
        try:
            return cls(path, open(path, "a", encoding="utf-8"))
        except OSError as exc:
            raise OutputError(f"{path}: cannot reopen the session journal ({exc.strerror or exc})") from None

    def append(self, segment: Segment) -> None:
        """Record one finalised segment; it is on disk when this returns."""
        self._write({"type": "segment", **segment.to_dict()})

    def close(self) -> None:
        """Mark the journal as cleanly ended."""
        if self._file is None:
            return
        self._write({"type": "closed", "ended": time.strftime("%Y-%m-%d %H:%M:%S")})
        self._file.close()
        self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise OutputError(f"{self.path}: the journal is already closed")
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the session journal ({exc.strerror or exc})") from None


def read_journal(path: str | Path) -> JournalContents:
    """Parse a journal, skipping a torn final line."""
    path = Path(path)
    contents = JournalContents(path)
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = record.pop("type", None)
            if kind == "header":
                contents.meta = record
            elif kind == "segment":
                contents.segments.append(Segment(float(record["start"]), float(record["end"]), str(record["text"]),
                                                 [int(t) for t in record.get("tokens", [])]))
            elif kind == "closed":
                contents.closed = True
    return contents


def unfinished_journals(folder: str | Path) -> list[JournalContents]:
    """Journals in ``folder`` that were never closed and hold at least one segment, newest first.
    Unfinished journals with no segments are removed: there is nothing in them to recover."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"session-*{SUFFIX}"), reverse=True):
        try:
            contents = read_journal(path)
        except (OSError, UnicodeDecodeError):
            continue
        if contents.closed:
            continue
        if contents.segments:
            found.append(contents)
        else:
            path.unlink(missing_ok=True)
    return found


def discard(path: str | Path) -> None:
    """Delete a journal the user chose not to keep."""
    Path(path).unlink(missing_ok=True)


def _truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line (no newline) so appended records start on a line of their own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
