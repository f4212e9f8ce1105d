"""The top of the main window (Start/Pause/Stop, captions and dictation toggles; input, level, model and
language pickers) and the figures of its status bar."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStatusBar, QStyle, QVBoxLayout, QWidget

from s2t_live.streaming.events import StatusEvent

from .dialogs import SHORTCUTS
from .models import Downloader
from .pickers import DevicePicker, LanguagePicker, ModelPicker
from .widgets import LevelMeter

RUNNING = ("loading", "running", "paused", "stopping")


class ControlPanel(QWidget):
    """Two rows: what to do (left) and what to show (right); then where audio and text come from."""

    def __init__(self, list_devices: Callable[[], list[str]], downloader: Downloader,
                 cached_model: Callable[[str], Path | None], parent: QWidget | None = None):
        super().__init__(parent)
        keys = {name: keys for name, (keys, _) in SHORTCUTS.items()}
        sp = QStyle.StandardPixmap
        self.start_button = self._button("Start", sp.SP_MediaPlay, f"Start recognition ({keys['start']})")
        self.start_button.setObjectName("primary")
        self.pause_button = self._button("Pause", sp.SP_MediaPause, f"Pause or resume ({keys['pause']})")
        self.pause_button.setCheckable(True)
        self.stop_button = self._button("Stop", sp.SP_MediaStop, f"Stop recognition ({keys['start']})")
        self.overlay_button = self._button("Captions", None, f"Show live captions over other windows "
                                           f"({keys['overlay']})", "Caption overlay")
        self.overlay_button.setCheckable(True)
        self.dictation_button = self._button("Dictation", None, "Type recognised text into the focused "
                                             f"application ({keys['dictation']})")
        self.dictation_button.setCheckable(True)
        self.device_picker = DevicePicker(list_devices)
        self.level_meter = LevelMeter()
        self.model_picker = ModelPicker(downloader, cached_model)
        self.language_picker = LanguagePicker()

        actions = QHBoxLayout()
        actions.setSpacing(8)
        for widget in (self.start_button, self.pause_button, self.stop_button):
            actions.addWidget(widget)
        actions.addStretch(1)
        actions.addWidget(self.overlay_button)
        actions.addWidget(self.dictation_button)
        sources = QHBoxLayout()
        sources.setSpacing(8)
        for label, widget, stretch in (("Input", self.device_picker, 3), ("", self.level_meter, 1),
                                       ("Model", self.model_picker, 3), ("Translate to", self.language_picker, 2)):
            if label:
                caption = QLabel(label)
                caption.setBuddy(widget.combo if isinstance(widget, DevicePicker) else widget)
                caption.setObjectName("caption")
                if sources.count():
                    sources.addSpacing(10)
                sources.addWidget(caption)
            sources.addWidget(widget, stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addLayout(actions)
        layout.addLayout(sources)

    def _button(self, text: str, icon: QStyle.StandardPixmap | None, tip: str, name: str = "") -> QPushButton:
        button = QPushButton(self.style().standardIcon(icon), text) if icon is not None else QPushButton(text)
        button.setAccessibleName(name or text)
        button.setToolTip(tip)
        return button

    def set_state(self, state: str) -> None:
        """Enable what makes sense in ``state`` (idle, loading, running, paused, stopping)."""
        running = state in RUNNING
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.model_picker.setEnabled(not running)
        self.language_picker.setEnabled(not running and self.language_picker.count() > 1)
        self.device_picker.setEnabled(not running)
        if state == "idle":
            self.pause_button.setChecked(False)
            self.level_meter.reset()


class StatusLine:
    """The status bar's state text and its audio time, lag and real-time factor figures."""

    def __init__(self, bar: QStatusBar):
        self.state = QLabel()
        self.time = QLabel()
        self.lag = QLabel()
        self.rtf = QLabel()
        self.lag.setToolTip("How far recognition is behind the audio")
        self.rtf.setToolTip("Processing time per second of audio (below 1 keeps up)")
        for widget, name in ((self.state, "State"), (self.time, "Audio time"), (self.lag, "Lag"),
                             (self.rtf, "Real-time factor")):
            widget.setAccessibleName(name)
        bar.addWidget(self.state, 1)
        for widget in (self.time, self.lag, self.rtf):
            widget.setMinimumWidth(110)
            bar.addPermanentWidget(widget)

    def show(self, event: StatusEvent, duration: float) -> None:
        minutes, seconds = divmod(duration, 60)
        self.time.setText(f"Audio {int(minutes):02d}:{seconds:04.1f}")
        if not event.finished:  # the last measured figures stay on screen afterwards
            self.lag.setText(f"Lag {event.lag:.1f} s")
            self.rtf.setText(f"RTF {event.rtf:.2f}")
