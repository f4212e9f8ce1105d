"""The source pickers of the main window: input device, model (with download) and target language."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QStyle, QToolButton, QWidget

from s2t_live.errors import DeviceError, S2TError
from s2t_live.hub import embedded_model_dir, looks_like_hub_id

from .download import DownloadDialog
from .models import HUB_MODELS, LANGUAGE_NAMES, Downloader, translation_languages

BROWSE = "\0browse"
RECORDING = "\0recording"


class DevicePicker(QWidget):
    """The microphone list with a refresh button; an empty list disables it and says why."""

    message = Signal(str)  # "" when devices are available again

    def __init__(self, list_devices: Callable[[], list[str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.list_devices = list_devices
        self.combo = QComboBox()
        self.combo.setAccessibleName("Input device")
        self.combo.setToolTip("Microphone to listen to")
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        refresh = QToolButton()
        refresh.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        refresh.setAccessibleName("Refresh input devices")
        refresh.setToolTip("Look for input devices again")
        refresh.clicked.connect(lambda: self.refresh())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.combo, 1)
        layout.addWidget(refresh)
        self.available = False
        self._saved_index = 0

    def refresh(self, select: str | None = None) -> bool:
        """Reload the device list, keeping ``select`` (or the current choice) when it still exists."""
        keep = select if select is not None else self.current() or ""
        try:
            names = list(self.list_devices())
            problem = "" if names else "No microphone was found."
        except DeviceError as exc:
            names, problem = [], str(exc)
        self.combo.clear()
        self.available = bool(names)
        if not names:
            self.combo.addItem("No microphone found", None)
            self.combo.setEnabled(False)
            self.message.emit(f"{problem} Connect one and press Refresh, or caption a recording with "
                              "File > Caption a recording… (Ctrl+O).")
            return False
        self.combo.setEnabled(True)
        self.combo.addItem("System default microphone", "")
        for name in names:
            self.combo.addItem(name, name)
        self.combo.setCurrentIndex(max(0, self.combo.findData(keep)))
        self.message.emit("")
        return True

    def show_recording(self, name: str | None) -> None:
        """While a recording is captioned the box names it; ``None`` puts the device choice back."""
        if self.combo.itemData(0) == RECORDING:
            self.combo.removeItem(0)
            self.combo.setCurrentIndex(self._saved_index)
        if name is not None:
            self._saved_index = self.combo.currentIndex()
            self.combo.insertItem(0, f"Recording: {name}", RECORDING)
            self.combo.setCurrentIndex(0)

    def select(self, wanted: str) -> bool:
        """Choose the device named ``wanted``, or else the first whose name contains it (any case)."""
        names = [self.combo.itemData(i) for i in range(self.combo.count())]
        exact = [i for i, name in enumerate(names) if name and name == wanted]
        partial = [i for i, name in enumerate(names) if name and wanted.lower() in name.lower()]
        if not (exact or partial):
            return False
        self.combo.setCurrentIndex((exact or partial)[0])
        return True

    def current(self) -> str | None:
        """The chosen device name, "" for the system default, None when there is none."""
        return self.combo.currentData() if self.available else None


class ModelPicker(QComboBox):
    """Embedded model, the hub's Speech2Text checkpoints and local folders; downloads on demand."""

    changed = Signal(str)  # the new model ("" = embedded default)
    message = Signal(str)  # a failed download

    def __init__(self, downloader: Downloader, cached: Callable[[str], Path | None], parent: QWidget | None = None):
        super().__init__(parent)
        self.downloader = downloader
        self.cached = cached
        self.setAccessibleName("Model")
        self.setToolTip("Speech2Text model: the built-in one, a hub checkpoint (downloaded once) or a local folder")
        self.setMinimumContentsLength(26)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        if embedded_model_dir() is not None:
            self.addItem("Built-in model", "")
        for repo in HUB_MODELS:
            self.addItem(repo.split("/", 1)[1], repo)
        self.insertSeparator(self.count())
        self.addItem("Local folder…", BROWSE)
        self._current = self.itemData(0)
        self.activated.connect(self._on_activated)

    def current(self) -> str:
        return self._current

    def set_model(self, model: str) -> None:
        """Select ``model`` (a hub id, a folder, or "" for the embedded one), adding a folder entry if new."""
        index = self.findData(model)
        if index < 0:
            hub = looks_like_hub_id(model) and not Path(model).exists()
            label = model if hub else f"{Path(model).name or model} (folder)"
            index = self.findData(BROWSE) - 1  # the separator: other models go just above it
            self.insertItem(index, label, model)
            self.setItemData(index, model, Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(index)
        self._current = model

    def local_path(self, model: str) -> str:
        """What the session loads for ``model``: hub ids become their cached folder when there is one."""
        if looks_like_hub_id(model) and not Path(model).exists():
            folder = self.cached(model)
            return str(folder) if folder is not None else model
        return model

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        choice = self.itemData(index)
        if choice == BROWSE:
            folder = QFileDialog.getExistingDirectory(self, "Choose a Speech2Text model folder")
            choice = folder or None
        elif choice and looks_like_hub_id(choice) and self.cached(choice) is None:
            if not self.download(choice):
                choice = None
        if choice is None:
            self.set_model(self._current)  # cancelled: back to what was selected
            return
        self.set_model(choice)
        self.changed.emit(choice)

    def download(self, repo_id: str) -> bool:
        dialog = DownloadDialog(repo_id, self.downloader, self)
        accepted = dialog.exec() == DownloadDialog.DialogCode.Accepted
        if dialog.error:
            self.message.emit(dialog.error)
        return accepted


class LanguagePicker(QComboBox):
    """The target language of a multilingual speech-translation model; disabled for other models."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Target language")
        self.setToolTip("Language to translate into (multilingual speech-translation models only)")
        self.set_model("")

    def set_model(self, model: str, preferred: str = "") -> None:
        languages = self._languages(model)
        keep = preferred or self.current() or ""
        self.blockSignals(True)
        self.clear()
        if not languages:
            self.addItem("Model's language", "")
        for code in languages:
            self.addItem(f"{LANGUAGE_NAMES.get(code, code)} ({code})", code)
        self.setCurrentIndex(max(0, self.findData(keep)))
        self.setEnabled(bool(languages))
        self.blockSignals(False)

    @staticmethod
    def _languages(model: str) -> list[str]:
        try:
            return translation_languages(model)
        except S2TError:
            return []

    def current(self) -> str | None:
        return self.currentData() or None
