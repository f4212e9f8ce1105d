"""Dictation: recognised text typed into whichever window has the keyboard focus.

``DictationFeed`` decides what to type (each finalised segment, or only newly committed words as they
arrive: committed text never changes, so nothing typed ever needs erasing). An ``Injector`` types it:
``xdotool`` on X11, ``wtype`` or ``ydotool`` on Wayland, else the clipboard plus a paste keystroke. The
backend is picked from the environment unless the settings name one. Commands run through ``QProcess``,
one after another, so the GUI thread never waits on them.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from typing import Callable, Mapping

from PySide6.QtCore import QObject, QProcess, Signal, Slot
from PySide6.QtWidgets import QApplication

from s2t_live.streaming.events import FinalEvent, PartialEvent

BACKENDS = ("auto", "xdotool", "wtype", "ydotool", "clipboard")
BACKEND_LABELS = {
    "auto": "Automatic", "xdotool": "xdotool (X11)", "wtype": "wtype (Wayland)",
    "ydotool": "ydotool (Wayland, needs ydotoold)", "clipboard": "Clipboard and paste",
}
Which = Callable[[str], "str | None"]


def display_kind(env: Mapping[str, str]) -> str | None:
    """"wayland", "x11" or None (no graphical session to type into)."""
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" or env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if env.get("XDG_SESSION_TYPE", "").lower() == "x11" or env.get("DISPLAY"):
        return "x11"
    return None


def choose_backend(env: Mapping[str, str] = os.environ, which: Which = shutil.which) -> str | None:
    """The backend that should work in this session, or None when there is no display at all."""
    kind = display_kind(env)
    if kind == "wayland":
        return next((tool for tool in ("wtype", "ydotool") if which(tool)), "clipboard")
    if kind == "x11":
        return "xdotool" if which("xdotool") else "clipboard"
    return None


class Injector(QObject):
    """Types text into the focused window of another application; ``type_text`` never blocks."""

    name = "none"
    failed = Signal(str)
    notice = Signal(str)

    def type_text(self, text: str) -> None:
        raise NotImplementedError


class CommandInjector(Injector):
    """Runs a key-typing tool per piece of text, one process at a time, queued."""

    tool = ""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._queue: deque[list[str] | Callable[[], None]] = deque()
        self._process: QProcess | None = None

    def commands(self, text: str) -> list[list[str] | Callable[[], None]]:
        """The steps that type ``text``: command lines, or callables run when their turn comes."""
        raise NotImplementedError

    def type_text(self, text: str) -> None:
        self._queue.extend(self.commands(text))
        if self._process is None:
            self._next()

    def _next(self) -> None:
        while self._queue and callable(self._queue[0]):
            self._queue.popleft()()
        if not self._queue:
            self._process = None
            return
        argv = self._queue.popleft()
        process = QProcess(self)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start(argv[0], argv[1:])

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        process = self._process
        if process is not None and code != 0:
            detail = bytes(process.readAllStandardError().data()).decode(errors="replace").strip()
            self.failed.emit(f"{process.program()} failed (exit {code}){': ' + detail if detail else ''}")
        self._finish_current()

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self.failed.emit(f"{self._process.program()} could not be started; is it installed?")
            self._queue.clear()
            self._finish_current()

    def _finish_current(self) -> None:
        if self._process is not None:
            self._process.deleteLater()
        self._next()


class XdotoolInjector(CommandInjector):
    name = tool = "xdotool"

    def commands(self, text: str) -> list[list[str]]:
        return [["xdotool", "type", "--clearmodifiers", "--delay", "4", "--", text]]


class WtypeInjector(CommandInjector):
    name = tool = "wtype"

    def commands(self, text: str) -> list[list[str]]:
        return [["wtype", "--", text]]


class YdotoolInjector(CommandInjector):
    name = tool = "ydotool"

    def commands(self, text: str) -> list[list[str]]:
        return [["ydotool", "type", "--", text]]


class ClipboardInjector(CommandInjector):
    """Puts the text on the clipboard, then presses Ctrl+V with whichever key tool exists."""

    name = "clipboard"

    def __init__(self, env: Mapping[str, str] = os.environ, which: Which = shutil.which,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._paste = self._paste_command(display_kind(env), which)

    @staticmethod
    def _paste_command(kind: str | None, which: Which) -> list[str] | None:
        if kind == "x11" and which("xdotool"):
            return ["xdotool", "key", "--clearmodifiers", "ctrl+v"]
        if kind == "wayland" and which("wtype"):
            return ["wtype", "-M", "ctrl", "v", "-m", "ctrl"]
        if kind == "wayland" and which("ydotool"):
            return ["ydotool", "key", "29:1", "47:1", "47:0", "29:0"]  # evdev codes of Ctrl and V
        return None

    def commands(self, text: str) -> list[list[str] | Callable[[], None]]:
        # The clipboard is set when this piece's turn comes, so a queued paste never pastes a later piece.
        return [lambda: QApplication.clipboard().setText(text)] + ([self._paste] if self._paste else [])

    def type_text(self, text: str) -> None:
        if self._paste is None:
            self.notice.emit("Dictated text copied to the clipboard: paste it with Ctrl+V")
        super().type_text(text)


def make_injector(backend: str, env: Mapping[str, str] = os.environ, which: Which = shutil.which) -> Injector:
    """The injector for a backend name ("auto" resolves from the environment).

    Raises ``LookupError`` with a message for the user when no backend can work here."""
    name = choose_backend(env, which) if backend == "auto" else backend
    if name is None:
        raise LookupError("Dictation needs a graphical session (X11 or Wayland); none was found")
    if name == "clipboard":
        return ClipboardInjector(env, which)
    classes = {"xdotool": XdotoolInjector, "wtype": WtypeInjector, "ydotool": YdotoolInjector}
    if name not in classes:
        raise LookupError(f"Unknown dictation backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if not which(name):
        raise LookupError(f"Dictation backend {name} is not installed; install it or choose another in Preferences")
    return classes[name]()


class DictationFeed:
    """Turns events into the pieces of text to type, each with the space that separates it."""

    def __init__(self, include_partials: bool = False):
        self.include_partials = include_partials
        self._segment: int | None = None
        self._typed_words = 0
        self._anything_typed = False

    def partial(self, event: PartialEvent) -> str:
        """The words committed since the last piece (only when ``include_partials``)."""
        if not self.include_partials:
            return ""
        self._enter(event.segment)
        words = event.committed.split()
        new = words[self._typed_words:]
        self._typed_words = max(self._typed_words, len(words))
        return self._piece(new)

    def final(self, event: FinalEvent) -> str:
        """The rest of a finalised segment: all of it, or what its partials did not type yet."""
        self._enter(event.segment)
        new = event.text.split()[self._typed_words:]
        self._segment, self._typed_words = None, 0
        return self._piece(new)

    def _enter(self, segment: int) -> None:
        if segment != self._segment:
            self._segment, self._typed_words = segment, 0

    def _piece(self, words: list[str]) -> str:
        if not words:
            return ""
        text = ("" if not self._anything_typed else " ") + " ".join(words)
        self._anything_typed = True
        return text


class DictationController(QObject):
    """Routes recognised text to the editor pane (``text_ready``) and, while another application has the
    focus, to the injector. ``message`` carries anything the user should know (a backend that failed)."""

    text_ready = Signal(str)
    message = Signal(str)
    toggled = Signal(bool)

    def __init__(self, injector_factory: Callable[[], Injector], include_partials: bool = False,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._factory = injector_factory
        self.injector: Injector | None = None
        self.feed = DictationFeed(include_partials)
        self.enabled = False
        # When this app has the focus the editor pane is the target; typing too would double the text.
        self.app_has_focus: Callable[[], bool] = lambda: QApplication.activeWindow() is not None

    def set_enabled(self, on: bool) -> bool:
        """Switch dictation; returns whether it is on (off when no backend works, with a ``message``)."""
        if on and self.injector is None:
            try:
                self.injector = self._factory()
            except LookupError as exc:
                self.message.emit(str(exc))
                on = False
            else:
                self.injector.setParent(self)
                self.injector.failed.connect(self._on_failed)
                self.injector.notice.connect(self.message)
        if on and not self.enabled:
            self.feed = DictationFeed(self.feed.include_partials)
        self.enabled = on
        self.toggled.emit(on)
        return on

    def reset_backend(self) -> None:
        """Forget the injector so the next ``set_enabled(True)`` builds one from the current settings."""
        if self.injector is not None:
            self.injector.deleteLater()
        self.injector = None
        if self.enabled:
            self.set_enabled(True)

    def on_partial(self, event: PartialEvent) -> None:
        if self.enabled:
            self._send(self.feed.partial(event))

    def on_final(self, event: FinalEvent) -> None:
        if self.enabled:
            self._send(self.feed.final(event))

    def _send(self, text: str) -> None:
        if not text:
            return
        self.text_ready.emit(text)
        if self.injector is not None and not self.app_has_focus():
            self.injector.type_text(text)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.message.emit(f"Dictation: {message}")
