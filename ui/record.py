"""The lasting part of a session: its finalised segments on one time line, their journal, and exports.

No Qt here: the window hands in ``FinalEvent``s and asks for files; this keeps the segments, shifts the
times of later recordings so the session has one time line, and writes each segment to the journal as
it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s2t_live.errors import OutputError
from s2t_live.export import FORMATS, Segment, render, write_atomic
from s2t_live.streaming.events import FinalEvent

from .journal import Journal, JournalContents


@dataclass
class SessionRecord:
    """Segments of the whole session; recordings after the first are shifted by ``offset``."""

    journal_dir: Path
    segments: list[Segment] = field(default_factory=list)
    offset: float = 0.0
    duration: float = 0.0
    source: str = "microphone"
    journal: Journal | None = None

    @classmethod
    def restored(cls, contents: JournalContents, journal_dir: Path) -> "SessionRecord":
        """An unfinished session brought back; new segments go on into the same journal."""
        record = cls(journal_dir, list(contents.segments), source=str(contents.meta.get("source", "microphone")))
        record.duration = max((s.end for s in contents.segments), default=0.0)
        record.journal = Journal.reopen(contents.path)
        return record

    def next_run(self, source: str) -> None:
        """A new recording continues this session's time line."""
        self.offset = self.duration
        self.source = source

    def note_time(self, audio_time: float) -> None:
        self.duration = max(self.duration, audio_time + self.offset)

    def add_final(self, event: FinalEvent, meta: dict | None = None) -> Segment:
        """Keep a finalised segment and journal it. The segment is kept even when the journal cannot be
        written; the ``OutputError`` then tells the caller the session is no longer safe on disk."""
        segment = Segment(event.start + self.offset, event.end + self.offset, event.text.strip(), list(event.tokens))
        self.segments.append(segment)
        self.duration = max(self.duration, segment.end)
        if self.journal is None:
            self.journal = Journal.create(self.journal_dir, {"source": self.source, **(meta or {})})
        self.journal.append(segment)
        return segment

    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the segments to ``path`` in ``fmt`` (default: from the suffix, else plain text)."""
        return export_segments(self.segments, path, fmt, self.source, self.duration)

    def close(self) -> None:
        """Mark the journal as cleanly ended (the app is closing or a new session starts)."""
        journal, self.journal = self.journal, None
        if journal is not None:
            journal.close()


def export_segments(segments: list[Segment], path: str | Path, fmt: str | None = None, source: str | None = None,
                    duration: float | None = None) -> Path:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        fmt = "txt"
    try:
        text = render(segments, fmt, file=source, duration=duration)
    except ValueError as exc:
        raise OutputError(str(exc)) from None
    return write_atomic(path, text)
