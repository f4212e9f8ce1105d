"""What the streaming recognizer tells its consumers (terminal, GUI, dictation, exporters).

Times: ``start``/``end``/``audio_time`` are seconds of audio since the stream started;
``wall_time`` is seconds of wall clock since the stream started. Committed text never changes once
emitted; tentative text may.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Union


@dataclass(frozen=True)
class PartialEvent:
    """The open segment's hypothesis: ``committed`` (stable, only grows) then ``tentative``."""

    segment: int
    committed: str
    tentative: str
    start: float
    audio_time: float
    wall_time: float

    @property
    def text(self) -> str:
        return " ".join(t for t in (self.committed, self.tentative) if t)

    def to_dict(self) -> dict:
        return {"type": "partial", **asdict(self), "text": self.text}


@dataclass(frozen=True)
class FinalEvent:
    """A finished segment. ``text`` starts with every word committed for it; ``offline_text`` is an
    unconstrained offline decode of the same audio and ``agreement`` their word agreement (1 - WER)."""

    segment: int
    text: str
    start: float
    end: float
    tokens: list[int] = field(default_factory=list)
    audio_time: float = 0.0
    wall_time: float = 0.0
    offline_text: str | None = None
    agreement: float | None = None

    def to_dict(self) -> dict:
        return {"type": "final", **asdict(self)}


@dataclass(frozen=True)
class StatusEvent:
    """Health of the stream: real-time factor, lag behind the audio, dropped input, input level, errors."""

    audio_time: float
    wall_time: float
    rtf: float = 0.0
    lag: float = 0.0
    overflows: int = 0
    skipped_partials: int = 0
    level_db: float = -120.0
    error: str | None = None
    finished: bool = False

    def to_dict(self) -> dict:
        return {"type": "status", **asdict(self)}


Event = Union[PartialEvent, FinalEvent, StatusEvent]
