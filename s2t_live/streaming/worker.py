"""A thread around a ``Stream``: reads a source, decodes, and hands events to one consumer.

The worker thread owns the stream and the source's read side. Other threads talk to it only through
a bounded command queue (``stop``, ``pause``, ``resume``, ``flush``), and it talks back only through
``on_event`` (a callback run on the worker thread, or an ``EventQueue`` for another thread to read).
With a live source the worker first takes every block that has already arrived and then decodes once,
so when decoding is slow it skips partial updates, never audio. Whatever ends the stream (stop, end of
input, a device that vanished) the open segment is finalised, then a ``StatusEvent(finished=True)``
(carrying the error, if any) is the last event.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

from s2t_live.errors import S2TError

from .events import Event, PartialEvent, StatusEvent
from .recognizer import Recognizer, Stream
from .sources import AudioSource


class EventQueue:
    """Bounded hand-over of events to a consumer thread. When it is full a partial is dropped (the next
    one supersedes it) and counted in ``dropped``; finals and status events wait for room."""

    def __init__(self, maxsize: int = 256) -> None:
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=maxsize)
        self.dropped = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, PartialEvent):
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self.dropped += 1
        else:
            self._queue.put(event)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when none came within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, timeout: float = 0.1) -> Iterator[Event]:
        """Every event up to and including the worker's final ``StatusEvent(finished=True)``."""
        while True:
            event = self.get(timeout)
            if event is None:
                continue
            yield event
            if isinstance(event, StatusEvent) and event.finished:
                return


class StreamingWorker:
    """Runs ``recognizer`` on ``source`` in its own thread and reports through ``on_event``.

    ``status_every`` seconds a ``StatusEvent`` reports real-time factor, lag, overflows and level.
    After the thread ends, ``stream`` holds the finished stream (its ``stats``), ``error`` the
    ``S2TError`` that ended it (if any) and ``exception`` any unexpected error (a bug), which ``join``
    re-raises.
    """

    def __init__(self, recognizer: Recognizer, source: AudioSource, on_event: Callable[[Event], None],
                 status_every: float = 1.0, poll: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.recognizer, self.source, self.on_event = recognizer, source, on_event
        self.status_every, self.poll, self.clock = status_every, poll, clock
        self.stream: Stream | None = None
        self.exception: BaseException | None = None
        self.error: S2TError | None = None
        self._commands: queue.Queue[str] = queue.Queue(maxsize=16)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s2t-stream", daemon=True)

    # --- the caller's side ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        """Finalise what was heard and stop taking audio until ``resume`` (nothing is lost)."""
        self._commands.put("pause")

    def resume(self) -> None:
        self._commands.put("resume")

    def flush(self) -> None:
        """Finalise the open segment now and keep listening."""
        self._commands.put("flush")

    def stop(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop the source, recognise what it had delivered, finalise, end the thread."""
        if not self._done.is_set():
            self._commands.put("stop")
        if wait:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        if self.exception is not None and not self._thread.is_alive():
            raise self.exception

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # --- the worker thread ----------------------------------------------------------------------

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.on_event(event)

    def _run(self) -> None:
        stream = self.stream = self.recognizer.create_stream(self.clock)
        error: str | None = None
        try:
            self.source.start()
            self._loop(stream)
        except S2TError as exc:  # the input failed (device gone, bad samples): finalise and report
            self.error, error = exc, str(exc)
        except Exception as exc:  # a bug: still finalise and tell the consumer; join() re-raises it
            self.exception, error = exc, f"internal error: {exc!r}"
        try:
            self._emit(stream.flush())
        except Exception as exc:  # same: the consumer must still get its finished status
            self.exception = self.exception or exc
            error = error or f"internal error: {exc!r}"
        try:
            self.source.stop()
        except S2TError:
            pass  # the device is already gone; its error was reported above
        self._done.set()
        self.on_event(stream.status(self.source.overflows, error, finished=True))

    def _command(self, block: bool = False) -> str | None:
        try:
            return self._commands.get(block=block)
        except queue.Empty:
            return None

    def _take(self, stream: Stream, block) -> bool:
        """Feed one block; False when the source has ended."""
        if block is None:
            return False
        if block.size:
            stream.accept_waveform(block)
        return True

    def _take_arrived(self, stream: Stream) -> None:
        while self.source.available():
            if not self._take(stream, self.source.read(0)):
                return

    def _drain(self, stream: Stream) -> None:
        """After ``stop``: what the source still holds (a microphone's queue), up to its end."""
        self.source.stop()
        while self._take(stream, self.source.read(0)):
            pass

    def _paused(self, stream: Stream) -> bool:
        """Pause until resume (True) or stop (False)."""
        self.source.pause()
        self._take_arrived(stream)
        self._emit(stream.flush())
        while True:
            command = self._command(block=True)
            if command == "resume":
                self.source.resume()
                return True
            if command == "stop":
                self._drain(stream)
                return False

    def _loop(self, stream: Stream) -> None:
        next_status = self.clock() + self.status_every
        while True:
            command = self._command()
            if command == "stop":
                self._drain(stream)
                return
            if command == "pause" and not self._paused(stream):
                return
            if command == "flush":
                self._emit(stream.flush())
            if not self._take(stream, self.source.read(self.poll)):
                return
            if self.source.live:
                self._take_arrived(stream)
            while stream.is_ready():
                self._emit(stream.decode())
            if self.clock() >= next_status:
                next_status = self.clock() + self.status_every
                self.on_event(stream.status(self.source.overflows))
