"""The recognition session as the GUI sees it, and the worker thread that owns it.

A ``Session`` is anything with ``start``/``stop``/``pause``/``resume`` that reports ``Event``s to the
callback it was built with. ``SessionWorker`` lives in its own ``QThread``: it builds the session there
(loading a model can take seconds), starts it and re-emits every event as a Qt signal, so the GUI thread
never runs the model nor waits on audio. The control methods are called straight from the GUI thread and
only set flags in the session, so they work whether the session runs its own thread (``start`` returns at
once) or runs the stream inside ``start`` (which then returns when the stream ends).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from PySide6.QtCore import QEventLoop, QObject, QThread, QTimer, Signal, Slot

from s2t_live.errors import S2TError
from s2t_live.streaming.events import Event, FinalEvent, PartialEvent, StatusEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionConfig:
    """What to recognise and how: ``input_file`` None means the microphone ``device`` (None: default)."""

    model: str
    device: str | None = None
    input_file: str | None = None
    speed: float = 1.0
    chunk_seconds: float = 0.5
    tgt_lang: str | None = None

    def with_file(self, path: str | None, speed: float = 1.0) -> "SessionConfig":
        return replace(self, input_file=path, speed=speed)


class Session(Protocol):
    """A running stream. After ``stop()`` or the end of its input it must send a final ``StatusEvent``
    with ``finished=True``; its control methods must be safe to call from another thread."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


SessionFactory = Callable[[SessionConfig, Callable[[Event], None]], Session]


class SessionWorker(QObject):
    """Owns one session inside a worker thread and turns its events into signals."""

    started = Signal()  # the model is loaded and audio is flowing
    partial = Signal(object)  # PartialEvent
    final = Signal(object)  # FinalEvent
    status = Signal(object)  # StatusEvent
    level = Signal(float)  # input level in dBFS
    error = Signal(str)
    finished = Signal()

    def __init__(self, factory: SessionFactory, config: SessionConfig):
        super().__init__()
        self._factory = factory
        self._config = config
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._stop_requested = False
        self._paused = False
        self._done = False

    @Slot()
    def run(self) -> None:
        """Build and start the session (in the worker thread)."""
        try:
            session = self._factory(self._config, self._dispatch)
        except S2TError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # a bug, reported in the window rather than killing the thread silently
            log.exception("building the session failed")
            self._fail(f"unexpected error: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._session = session
            stop_early, paused = self._stop_requested, self._paused
        if stop_early:
            self._finish()
            return
        self.started.emit()
        if paused:
            session.pause()
        try:
            session.start()
        except S2TError as exc:
            self._fail(str(exc))
        except Exception as exc:
            log.exception("the session failed")
            self._fail(f"unexpected error: {type(exc).__name__}: {exc}")

    def _dispatch(self, event: Event) -> None:
        """The session's callback: any thread; Qt queues the signals to the GUI thread."""
        if isinstance(event, PartialEvent):
            self.partial.emit(event)
        elif isinstance(event, FinalEvent):
            self.final.emit(event)
        elif isinstance(event, StatusEvent):
            self.status.emit(event)
            self.level.emit(float(event.level_db))
            if event.error:
                self.error.emit(event.error)
            if event.finished:
                self._finish()

    def _fail(self, message: str) -> None:
        self.error.emit(message)
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self.finished.emit()

    def stop(self) -> None:
        """Ask the stream to flush its open segment and end; safe from any thread."""
        with self._lock:
            self._stop_requested = True
            session = self._session
        if session is not None and not self._done:
            session.stop()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            session = self._session
        if session is not None:
            session.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            session = self._session
        if session is not None:
            session.resume()


class SessionController(QObject):
    """Starts a ``SessionWorker`` in a fresh ``QThread`` per run and forwards its signals (GUI thread)."""

    started = Signal()
    partial = Signal(object)
    final = Signal(object)
    status = Signal(object)
    level = Signal(float)
    error = Signal(str)
    finished = Signal()

    def __init__(self, factory: SessionFactory, parent: QObject | None = None):
        super().__init__(parent)
        self.factory = factory
        self._thread: QThread | None = None
        self._worker: SessionWorker | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, config: SessionConfig) -> None:
        if self.running:
            raise RuntimeError("a session is already running")
        thread = QThread(self)
        thread.setObjectName("s2t-live session")
        worker = SessionWorker(self.factory, config)
        worker.moveToThread(thread)
        for name in ("started", "partial", "final", "status", "level", "error"):
            getattr(worker, name).connect(getattr(self, name))
        worker.finished.connect(self._on_finished)
        thread.started.connect(worker.run)
        self._thread, self._worker = thread, worker
        thread.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def pause(self) -> None:
        if self._worker is not None:
            self._worker.pause()

    def resume(self) -> None:
        if self._worker is not None:
            self._worker.resume()

    @Slot()
    def _on_finished(self) -> None:
        thread, self._thread, self._worker = self._thread, None, None
        if thread is not None:
            thread.quit()
            thread.wait()
            thread.deleteLater()
        self.finished.emit()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop the stream and let it deliver its last events (window closing), for at most ``timeout_ms``.

        The open segment is finalised by the stop, so waiting here is what gets it into the journal."""
        if not self.running:
            return
        loop = QEventLoop()
        self.finished.connect(loop.quit)
        QTimer.singleShot(timeout_ms, loop.quit)
        self.stop()
        if self.running:
            loop.exec()
        self.finished.disconnect(loop.quit)
