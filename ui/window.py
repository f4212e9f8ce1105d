"""The main window: controls, transcript, dictation pane, status; it wires events to views and files.

Everything slow or blocking lives elsewhere: recognition in ``SessionController``'s thread, downloads in
``DownloadDialog``'s, dictation in ``QProcess``. The collaborators that touch the outside world come in
through ``Services`` so tests replace them with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QPlainTextEdit, QTabWidget,
                               QVBoxLayout, QWidget)

from s2t_live.errors import S2TError
from s2t_live.hub import looks_like_hub_id
from s2t_live.streaming.events import FinalEvent, PartialEvent, StatusEvent

from . import dialogs
from .dictation import DictationController, Injector, make_injector
from .journal import JournalContents, discard, unfinished_journals
from .models import Downloader, cached_folder, hub_downloader
from .overlay import CaptionOverlay
from .panel import ControlPanel, StatusLine
from .session import SessionConfig, SessionController, SessionFactory
from .settings import Settings, default_journal_folder
from .record import SessionRecord, export_segments
from .transcript import TranscriptView

AUDIO_FILTER = "Audio (*.wav *.flac *.mp3 *.ogg *.opus *.m4a *.webm);;All files (*)"


@dataclass
class Services:
    """The window's links to the outside world; the defaults are the real ones."""

    session_factory: SessionFactory
    list_devices: Callable[[], list[str]]
    downloader: Downloader = hub_downloader
    cached_model: Callable[[str], Path | None] = cached_folder
    injector_factory: Callable[[str], Injector] = make_injector
    journal_dir: Path = field(default_factory=lambda: Path(default_journal_folder()))
    ask_recovery: Callable[[JournalContents, QWidget], str] = dialogs.ask_recovery


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, services: Services, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.services = services
        self.record = SessionRecord(services.journal_dir)
        self.source_label = "microphone"
        self.file_speed = 1.0  # playback speed of recordings (1: real time)
        self.session = SessionController(services.session_factory, self)
        self.overlay = CaptionOverlay(settings.overlay_style)
        self.dictation = DictationController(lambda: services.injector_factory(settings.dictation_backend),
                                             settings.dictation_partials, self)
        self.setWindowTitle("s2t-live")
        self.setAccessibleName("s2t-live")
        self._build()
        self._build_menus()
        self._connect()
        models = self.controls.model_picker
        self.controls.device_picker.refresh(settings.device)
        models.set_model(settings.model or models.current())
        self.controls.language_picker.set_model(models.current(), settings.tgt_lang)
        self._set_state("idle")
        if settings.window_geometry is None or not self.restoreGeometry(settings.window_geometry):
            self._default_geometry()

    def _default_geometry(self) -> None:
        """A comfortable size on the current screen, centred."""
        screen = self.screen().availableGeometry()
        width, height = min(1180, int(screen.width() * 0.92)), min(760, int(screen.height() * 0.9))
        self.resize(width, height)
        self.move(screen.center().x() - width // 2, screen.center().y() - height // 2)

    # construction ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = ControlPanel(self.services.list_devices, self.services.downloader,
                                     self.services.cached_model)
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Message")
        self.notice.hide()
        self.view = TranscriptView()
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName("Dictation editor")
        self.editor.setPlaceholderText("Turn on Dictation (Ctrl+D): recognised text is written here and typed "
                                       "into the application that has the keyboard focus.")
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Views")
        self.tabs.addTab(self.view, "Transcript")
        self.tabs.addTab(self.editor, "Dictation")
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(14, 12, 14, 6)
        layout.setSpacing(10)
        layout.addWidget(self.controls)
        layout.addWidget(self.notice)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_line = StatusLine(self.statusBar())

    def _action(self, menu, text: str, key: str, slot, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        shortcut = dialogs.SHORTCUTS[key][0]
        action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "Caption a &recording…", "open", self.open_recording)
        self._action(file, "&Export…", "export", self.export_dialog)
        self._action(file, "&New session", "new", self.new_session)
        file.addSeparator()
        self._action(file, "&Quit", "quit", self.close)
        session = bar.addMenu("&Session")
        self.start_action = self._action(session, "&Start / Stop", "start", self.toggle_running)
        self.pause_action = self._action(session, "&Pause / Resume", "pause", self.controls.pause_button.click)
        view = bar.addMenu("&View")
        self.overlay_action = self._action(view, "&Caption overlay", "overlay", self.controls.overlay_button.click)
        self.click_through_action = self._action(view, "Clicks &pass through captions", "click_through",
                                                 self.toggle_click_through, checkable=True)
        self.click_through_action.setChecked(self.settings.overlay_style.click_through)
        tools = bar.addMenu("&Tools")
        self._action(tools, "&Dictation", "dictation", self.controls.dictation_button.click)
        self._action(tools, "&Preferences…", "preferences", self.open_preferences)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts and about", "help", lambda: dialogs.HelpDialog(self).exec())

    def _connect(self) -> None:
        self.controls.start_button.clicked.connect(self.start)
        self.controls.stop_button.clicked.connect(self.stop)
        self.controls.pause_button.toggled.connect(self.set_paused)
        self.controls.overlay_button.toggled.connect(self.set_overlay_visible)
        self.controls.dictation_button.toggled.connect(self.set_dictation)
        self.controls.device_picker.message.connect(self.show_notice)
        self.controls.device_picker.combo.activated.connect(
            lambda _: setattr(self.settings, "device", self.controls.device_picker.current() or ""))
        self.controls.model_picker.changed.connect(self._on_model_changed)
        self.controls.model_picker.message.connect(lambda text: self.show_notice(text, "error"))
        self.controls.language_picker.activated.connect(
            lambda _: setattr(self.settings, "tgt_lang", self.controls.language_picker.current() or ""))
        self.session.started.connect(self._on_started)
        self.session.partial.connect(self._on_partial)
        self.session.final.connect(self._on_final)
        self.session.status.connect(self._on_status)
        self.session.level.connect(self.controls.level_meter.set_level)
        self.session.error.connect(lambda text: self.show_notice(text, "error"))
        self.session.finished.connect(self._on_finished)
        self.dictation.text_ready.connect(self._append_to_editor)
        self.dictation.message.connect(lambda text: self.show_notice(text, "warning"))
        self.dictation.toggled.connect(self._on_dictation_toggled)

    # messages and state ------------------------------------------------------------------------------
    def show_notice(self, text: str, kind: str = "warning") -> None:
        """A message above the transcript ("" hides it)."""
        self.notice.setProperty("kind", kind)
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.controls.set_state(state)
        self.status_line.state.setText({"idle": "Ready", "loading": "Loading the model…",
                                        "running": f"Listening to {self.source_label}", "paused": "Paused",
                                        "stopping": "Finishing…"}[state])

    # session control ---------------------------------------------------------------------------------
    @Slot()
    def toggle_running(self) -> None:
        self.stop() if self.session.running else self.start()

    def _config(self, input_file: str | None) -> SessionConfig | None:
        controls = self.controls
        model = controls.model_picker.current()
        if looks_like_hub_id(model) and not Path(model).exists() and self.services.cached_model(model) is None:
            if not controls.model_picker.download(model):
                return None
        if input_file is None and controls.device_picker.current() is None:
            self.show_notice("No microphone is available. Connect one and press Refresh, or caption a recording "
                             "with File > Caption a recording… (Ctrl+O).", "error")
            return None
        return SessionConfig(model=controls.model_picker.local_path(model),
                             device=controls.device_picker.current() or None, input_file=input_file,
                             speed=self.file_speed, chunk_seconds=self.settings.chunk_seconds,
                             tgt_lang=controls.language_picker.current())

    @Slot()
    def start(self, input_file: str | None = None) -> bool:
        """Start recognising the microphone, or ``input_file`` at real-time speed."""
        if self.session.running:
            return False
        config = self._config(input_file if isinstance(input_file, str) else None)
        if config is None:
            return False
        self.show_notice("")
        self.source_label = Path(config.input_file).name if config.input_file else "the microphone"
        self.controls.device_picker.show_recording(self.source_label if config.input_file else None)
        self.record.next_run(self.source_label)
        self._set_state("loading")
        self.session.start(config)
        return True

    @Slot()
    def stop(self) -> None:
        if self.session.running:
            self._set_state("stopping")
            self.session.stop()

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        if not self.session.running:
            return
        self.session.pause() if paused else self.session.resume()
        self._set_state("paused" if paused else "running")

    @Slot()
    def open_recording(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Caption a recording", "", AUDIO_FILTER)
        if path:
            self.start(path)

    @Slot()
    def new_session(self) -> None:
        if self.session.running:
            self.show_notice("Stop recognition before starting a new session.", "warning")
            return
        self._close_record()
        self.record = SessionRecord(self.services.journal_dir)
        self.view.clear_all()
        self.overlay.set_text("")

    # events ------------------------------------------------------------------------------------------
    @Slot()
    def _on_started(self) -> None:
        if self.state == "stopping":  # stopped while the model was loading
            return
        self._set_state("paused" if self.controls.pause_button.isChecked() else "running")

    @Slot(object)
    def _on_partial(self, event: PartialEvent) -> None:
        self.view.set_live(event.committed, event.tentative, event.start + self.record.offset)
        self.overlay.set_text(event.committed, event.tentative)
        self.dictation.on_partial(event)

    @Slot(object)
    def _on_final(self, event: FinalEvent) -> None:
        try:
            self.record.add_final(event, {"model": self.controls.model_picker.current()})
        except S2TError as exc:
            self.show_notice(f"The session is not being saved: {exc}", "error")
        segment = self.record.segments[-1]
        self.view.add_segment(segment)
        self.overlay.set_text(segment.text)
        self.dictation.on_final(event)

    @Slot(object)
    def _on_status(self, event: StatusEvent) -> None:
        self.record.note_time(event.audio_time)
        self.status_line.show(event, self.record.duration)

    @Slot()
    def _on_finished(self) -> None:
        self.view.clear_live()
        self.controls.device_picker.show_recording(None)
        self._set_state("idle")

    # overlay and dictation ---------------------------------------------------------------------------
    @Slot(bool)
    def set_overlay_visible(self, visible: bool) -> None:
        self.settings.overlay_visible = visible
        if visible:
            geometry = self.settings.overlay_geometry
            if geometry is None or not self.overlay.restoreGeometry(geometry):
                self.overlay.place_default(self.screen().availableGeometry())
            self.overlay.show()
        else:
            self.settings.overlay_geometry = self.overlay.saveGeometry()
            self.overlay.hide()

    @Slot(bool)
    def toggle_click_through(self, on: bool) -> None:
        style = replace(self.settings.overlay_style, click_through=on)
        self.settings.overlay_style = style
        self.overlay.set_style(style)

    @Slot(bool)
    def set_dictation(self, on: bool) -> None:
        if self.dictation.enabled != on:
            self.dictation.set_enabled(on)

    @Slot(bool)
    def _on_dictation_toggled(self, on: bool) -> None:
        self.controls.dictation_button.blockSignals(True)
        self.controls.dictation_button.setChecked(on)
        self.controls.dictation_button.blockSignals(False)
        if on and self.dictation.injector is not None:
            self.statusBar().showMessage(f"Dictation on ({self.dictation.injector.name}): switch to the "
                                         "application to type into", 8000)

    @Slot(str)
    def _append_to_editor(self, text: str) -> None:
        cursor = self.editor.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)

    # models and preferences --------------------------------------------------------------------------
    def use_model(self, model: str, remember: bool = True) -> None:
        """Select ``model`` (hub id, folder, "" for the built-in one); ``remember`` saves it."""
        self.controls.model_picker.set_model(model)
        self._on_model_changed(model, remember)

    @Slot(str)
    def _on_model_changed(self, model: str, remember: bool = True) -> None:
        if remember:
            self.settings.model = model
        self.controls.language_picker.set_model(model, self.settings.tgt_lang)
        self._set_state(self.state)

    @Slot()
    def open_preferences(self) -> None:
        dialog = dialogs.PreferencesDialog(self.settings, self)
        if dialog.exec() != dialogs.PreferencesDialog.DialogCode.Accepted:
            return
        dialog.apply()
        self.overlay.set_style(self.settings.overlay_style)
        self.click_through_action.setChecked(self.settings.overlay_style.click_through)
        self.dictation.feed.include_partials = self.settings.dictation_partials
        self.dictation.reset_backend()

    # export, journal, recovery -----------------------------------------------------------------------
    def export_to(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the session's finalised segments to ``path`` (format from ``fmt`` or the suffix)."""
        return self.record.export(path, fmt)

    @Slot()
    def export_dialog(self, contents: JournalContents | None = None) -> bool:
        """Ask where to export this session (or an unfinished one) and write it; False if not written."""
        chosen = dialogs.ask_export_path(self, Path(self.settings.export_folder))
        if chosen is None:
            return False
        path, fmt = chosen
        try:
            if contents is not None:
                export_segments(contents.segments, path, fmt, str(contents.meta.get("source", "")))
            else:
                self.record.export(path, fmt)
        except S2TError as exc:
            QMessageBox.warning(self, "Export failed", str(exc))
            return False
        self.settings.export_folder = str(path.parent)
        self.statusBar().showMessage(f"Exported {path}", 8000)
        return True

    def check_recovery(self) -> None:
        """Offer back each session that was cut short by a crash."""
        for contents in unfinished_journals(self.services.journal_dir):
            choice = self.services.ask_recovery(contents, self)
            if choice == "restore" and not self.record.segments and self.record.journal is None:
                self.restore(contents)
            elif choice == "export" and self.export_dialog(contents) or choice == "discard":
                discard(contents.path)

    def restore(self, contents: JournalContents) -> None:
        """Continue an unfinished session: its segments come back and new ones go to the same journal."""
        try:
            self.record = SessionRecord.restored(contents, self.services.journal_dir)
        except S2TError as exc:
            self.show_notice(str(exc), "error")
            return
        self.view.clear_all()
        for segment in self.record.segments:
            self.view.add_segment(segment)
        self.statusBar().showMessage(f"Restored {len(contents.segments)} lines from {contents.started}", 8000)

    def _close_record(self) -> None:
        try:
            self.record.close()
        except S2TError as exc:
            self.show_notice(str(exc), "error")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.session.shutdown()
        self._close_record()
        if self.overlay.isVisible():
            self.settings.overlay_geometry = self.overlay.saveGeometry()
        self.overlay.close()
        self.settings.window_geometry = self.saveGeometry()
        self.settings.sync()
        super().closeEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        QTimer.singleShot(0, self.view.setFocus)
