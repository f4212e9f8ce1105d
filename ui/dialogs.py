"""The secondary dialogs: preferences, keyboard shortcuts and about, and the offer of an unfinished session."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
                               QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)
from PySide6.QtCore import Qt

from s2t_live import __version__

from .dictation import BACKEND_LABELS, BACKENDS
from .journal import JournalContents
from .overlay import OverlayStyle
from .settings import Settings

EXPORT_FILTERS = {"srt": "SubRip subtitles (*.srt)", "vtt": "WebVTT subtitles (*.vtt)",
                  "txt": "Plain text (*.txt)", "json": "JSON (*.json)"}

# Action -> (key sequence, what it does). The window binds these; the help dialog lists them.
SHORTCUTS: dict[str, tuple[str, str]] = {
    "start": ("Ctrl+R", "Start or stop recognition"),
    "pause": ("Ctrl+P", "Pause or resume"),
    "overlay": ("Ctrl+T", "Show or hide the caption overlay"),
    "click_through": ("Ctrl+Shift+T", "Let clicks pass through the overlay"),
    "dictation": ("Ctrl+D", "Turn dictation into other applications on or off"),
    "open": ("Ctrl+O", "Caption a recording"),
    "export": ("Ctrl+E", "Export the transcript (SRT, VTT, TXT, JSON)"),
    "new": ("Ctrl+N", "Start a new, empty session"),
    "preferences": ("Ctrl+,", "Preferences"),
    "help": ("F1", "This help"),
    "quit": ("Ctrl+Q", "Quit"),
}


class ColorButton(QPushButton):
    """A button showing a colour swatch; clicking opens a colour chooser."""

    def __init__(self, colour: str, accessible_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName(accessible_name)
        self.clicked.connect(self._choose)
        self.set_colour(colour)

    def set_colour(self, colour: str) -> None:
        self.colour = QColor(colour).name()
        swatch = QPixmap(28, 16)
        swatch.fill(QColor(self.colour))
        painter = QPainter(swatch)
        painter.setPen(QColor("#8b919b"))
        painter.drawRect(0, 0, swatch.width() - 1, swatch.height() - 1)
        painter.end()
        self.setIcon(QIcon(swatch))
        self.setIconSize(swatch.size())
        self.setText(self.colour)

    def _choose(self) -> None:
        chosen = QColorDialog.getColor(QColor(self.colour), self, self.accessibleName())
        if chosen.isValid():
            self.set_colour(chosen.name())


class PreferencesDialog(QDialog):
    """Edits the settings not on the main window; ``apply()`` writes them back."""

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setAccessibleName("Preferences")
        self.settings = settings
        style = settings.overlay_style

        self.chunk = QDoubleSpinBox(suffix=" s", minimum=0.2, maximum=5.0, singleStep=0.1, decimals=1)
        self.chunk.setValue(settings.chunk_seconds)
        self.chunk.setAccessibleName("Chunk length in seconds")
        self.chunk.setToolTip("Audio decoded per step: shorter is more responsive, longer is more accurate")

        self.font_size = QSpinBox(suffix=" pt", minimum=8, maximum=96)
        self.font_size.setValue(style.font_size)
        self.font_size.setAccessibleName("Caption font size")
        self.text_colour = ColorButton(style.text_color, "Caption text colour")
        self.background_colour = ColorButton(style.background_color, "Caption background colour")
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.opacity.setValue(round(style.opacity * 100))
        self.opacity.setAccessibleName("Caption background opacity")
        self.lines = QSpinBox(minimum=1, maximum=3)
        self.lines.setValue(style.lines)
        self.lines.setAccessibleName("Caption lines")
        self.click_through = QCheckBox("Clicks pass through the captions")
        self.click_through.setChecked(style.click_through)
        self.click_through.setAccessibleName("Click-through captions")

        self.backend = QComboBox()
        self.backend.setAccessibleName("Dictation backend")
        for name in BACKENDS:
            self.backend.addItem(BACKEND_LABELS[name], name)
        self.backend.setCurrentIndex(max(0, self.backend.findData(settings.dictation_backend)))
        self.partials = QCheckBox("Type words as soon as they are committed")
        self.partials.setChecked(settings.dictation_partials)
        self.partials.setAccessibleName("Dictate committed words early")

        self.folder = QLineEdit(settings.export_folder)
        self.folder.setAccessibleName("Export folder")
        browse = QPushButton("Browse…")
        browse.setAccessibleName("Choose export folder")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)

        layout = QVBoxLayout(self)
        for title, rows in (
            ("Recognition", [("Chunk length", self.chunk)]),
            ("Captions", [("Font size", self.font_size), ("Text", self.text_colour),
                          ("Background", self.background_colour), ("Opacity", self.opacity),
                          ("Lines", self.lines), ("", self.click_through)]),
            ("Dictation", [("Backend", self.backend), ("", self.partials)]),
            ("Export", [("Folder", folder_row)]),
        ):
            box = QGroupBox(title)
            form = QFormLayout(box)
            for label, field in rows:
                form.addRow(label, field)
            layout.addWidget(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def overlay_style(self) -> OverlayStyle:
        return replace(self.settings.overlay_style, font_size=self.font_size.value(),
                       text_color=self.text_colour.colour, background_color=self.background_colour.colour,
                       opacity=self.opacity.value() / 100, lines=self.lines.value(),
                       click_through=self.click_through.isChecked())

    def apply(self) -> None:
        self.settings.chunk_seconds = self.chunk.value()
        self.settings.overlay_style = self.overlay_style()
        self.settings.dictation_backend = self.backend.currentData()
        self.settings.dictation_partials = self.partials.isChecked()
        self.settings.export_folder = self.folder.text().strip()


class HelpDialog(QDialog):
    """Keyboard shortcuts and a few words about the app."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Help — s2t-live")
        self.setAccessibleName("Help")
        rows = "".join(f"<tr><td style='padding:3px 18px 3px 0'><b>{keys}</b></td><td>{what}</td></tr>"
                       for keys, what in SHORTCUTS.values())
        text = QLabel(
            f"<h3>s2t-live {__version__}</h3>"
            "<p>Real-time speech recognition and translation with Speech2Text models, running on this computer.</p>"
            f"<h4>Keyboard shortcuts</h4><table>{rows}</table>"
            "<p>Shortcuts work while this window has the focus. Dictation types into the window that has "
            "the focus, so switch to the target application after turning it on.</p>"
            "<p>Every finalised line is saved as it is recognised; after a crash the session is offered "
            "back on the next start.</p>")
        text.setWordWrap(True)
        text.setAccessibleName("Help text")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)


def ask_export_path(parent: QWidget, folder: Path) -> tuple[Path, str] | None:
    """Ask for an export file; returns it with its format (from the chosen filter), or None."""
    path, chosen = QFileDialog.getSaveFileName(parent, "Export transcript", str(folder / "transcript.srt"),
                                               ";;".join(EXPORT_FILTERS.values()))
    if not path:
        return None
    fmt = next((f for f, label in EXPORT_FILTERS.items() if label == chosen), "srt")
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix in EXPORT_FILTERS:
        fmt = suffix
    elif not suffix:
        path += f".{fmt}"
    return Path(path), fmt


def ask_recovery(contents: JournalContents, parent: QWidget | None = None) -> str:
    """Ask what to do with an unfinished session: "restore", "export", "discard" or "later"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Unfinished session")
    count = len(contents.segments)
    box.setText(f"The session started {contents.started or 'earlier'} was not closed properly.")
    box.setInformativeText(f"It holds {count} finalised line{'s' if count != 1 else ''}. Restore it, export it "
                           "to a file, or discard it?")
    preview = "\n".join(s.text for s in contents.segments[-5:])
    box.setDetailedText(preview)
    buttons = {
        box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole): "restore",
        box.addButton("Export…", QMessageBox.ButtonRole.ActionRole): "export",
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole): "discard",
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole): "later",
    }
    box.exec()
    return buttons.get(box.clickedButton(), "later")
