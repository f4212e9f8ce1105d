"""Fakes of the GUI's outside world: a session replaying a scripted timeline, an injector that records,
and a hub whose downloads report progress and can be cancelled."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from s2t_live.streaming.events import Event, FinalEvent, PartialEvent, StatusEvent
from s2t_live.ui.dictation import Injector
from s2t_live.ui.models import DownloadCancelled

TIMELINE = Path(__file__).resolve().parent / "data" / "timeline.jsonl"
WAIT = 10.0  # seconds a fake waits on a test before giving up, so a broken test fails instead of hanging


def load_timeline(path: str | Path) -> list[Event]:
    """Events from a JSON-lines file in the ``to_dict()`` format of ``s2t_live.streaming.events``."""
    kinds = {"partial": PartialEvent, "final": FinalEvent, "status": StatusEvent}
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        kind = kinds[record.pop("type")]
        record.pop("text", None) if kind is PartialEvent else None
        events.append(kind(**record))
    return events


class FakeSession:
    """Replays ``events`` inside ``start()`` (the thread-free style). ``hold_after`` pauses the replay after
    that many events until ``release`` is set, so a test can look at the window mid-stream. Like the real
    worker, a stop finalises the open segment (its last partial) before the finished status."""

    def __init__(self, config, on_event, events: list[Event], hold_after: int | None = None):
        self.config = config
        self.on_event = on_event
        self.events = events
        self.hold_after = hold_after
        self.release = threading.Event()
        self.calls: list[str] = []
        self._stopped = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def start(self) -> None:
        self.calls.append("start")
        open_partial = None
        for i, event in enumerate(self.events):
            if self._stopped.is_set():
                break
            if not self._running.wait(WAIT):
                break
            self.on_event(event)
            if isinstance(event, (PartialEvent, FinalEvent)):
                open_partial = event if isinstance(event, PartialEvent) else None
            if self.hold_after is not None and i + 1 == self.hold_after:
                self.release.wait(WAIT)
        if open_partial is not None:
            p = open_partial
            self.on_event(FinalEvent(p.segment, p.text, p.start, p.audio_time, audio_time=p.audio_time,
                                     wall_time=p.wall_time))
        last = self.events[-1].audio_time if self.events else 0.0
        self.on_event(StatusEvent(audio_time=last, wall_time=last, finished=True))

    def stop(self) -> None:
        self.calls.append("stop")
        self._stopped.set()
        self.release.set()
        self._running.set()

    def pause(self) -> None:
        self.calls.append("pause")
        self._running.clear()

    def resume(self) -> None:
        self.calls.append("resume")
        self._running.set()


class FakeSessionFactory:
    """A ``SessionFactory`` that records each config and the sessions it built."""

    def __init__(self, timeline: str | Path, hold_after: int | None = None):
        self.events = load_timeline(timeline)
        self.hold_after = hold_after
        self.configs = []
        self.sessions: list[FakeSession] = []

    def __call__(self, config, on_event) -> FakeSession:
        self.configs.append(config)
        session = FakeSession(config, on_event, self.events, self.hold_after)
        self.sessions.append(session)
        return session


class FakeInjector(Injector):
    name = "fake"

    def __init__(self):
        super().__init__()
        self.typed: list[str] = []

    def type_text(self, text: str) -> None:
        self.typed.append(text)


def fake_hub(root: Path, total: int = 4_000_000, steps: int = 4, block: bool = False):
    """A downloader writing a stub model folder; ``block`` makes it wait after the first step until
    cancelled (as a slow network would)."""

    def download(repo_id: str, progress, cancelled: threading.Event) -> Path:
        for step in range(1, steps + 1):
            if cancelled.is_set():
                raise DownloadCancelled()
            progress(total * step // steps, total)
            if block and step == 1:
                cancelled.wait(WAIT)
        folder = root / repo_id.replace("/", "--")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        return folder

    return download
