"""A modal dialog that downloads a hub model in a worker thread, shows its progress and can cancel it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from s2t_live.errors import S2TError

from .models import DownloadCancelled, Downloader

log = logging.getLogger(__name__)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class DownloadWorker(QObject):
    """Runs one download in its thread; exactly one of ``done``/``failed``/``cancelled`` ends it."""

    progress = Signal(int, int)
    done = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, downloader: Downloader, repo_id: str):
        super().__init__()
        self.downloader = downloader
        self.repo_id = repo_id
        self.cancel_event = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            folder = self.downloader(self.repo_id, self.progress.emit, self.cancel_event)
        except DownloadCancelled:
            self.cancelled.emit()
        except S2TError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug in a downloader: shown in the dialog, logged with its traceback
            log.exception("download of %s failed", self.repo_id)
            self.failed.emit(f"{self.repo_id}: download failed ({type(exc).__name__}: {exc})")
        else:
            if self.cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.done.emit(str(folder))


class DownloadDialog(QDialog):
    """``exec()`` returns Accepted with ``folder`` set, or Rejected (cancelled or failed: see ``error``)."""

    def __init__(self, repo_id: str, downloader: Downloader, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Download model")
        self.setAccessibleName("Download model")
        self.setMinimumWidth(460)
        self.repo_id = repo_id
        self.folder: Path | None = None
        self.error: str | None = None
        self.was_cancelled = False

        self.label = QLabel(f"Downloading <b>{repo_id}</b> from the Hugging Face hub…")
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Download progress")
        self.bar.setRange(0, 0)  # busy until the size is known
        self.detail = QLabel("Connecting…")
        self.detail.setAccessibleName("Download size")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setAccessibleName("Cancel download")
        self.buttons.rejected.connect(self.cancel)
        layout = QVBoxLayout(self)
        for widget in (self.label, self.bar, self.detail, self.buttons):
            layout.addWidget(widget)

        self._thread = QThread(self)
        self.worker = DownloadWorker(downloader, repo_id)
        self.worker.moveToThread(self._thread)
        self._thread.started.connect(self.worker.run)
        self.worker.progress.connect(self._on_progress)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        for signal in (self.worker.done, self.worker.failed, self.worker.cancelled):
            signal.connect(self._thread.quit)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if not self._thread.isRunning() and self.folder is None and self.error is None:
            self._thread.start()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(done, total) / total))
            self.detail.setText(f"{human_bytes(done)} of {human_bytes(total)}")
        else:
            self.detail.setText(f"{human_bytes(done)}")

    @Slot()
    def cancel(self) -> None:
        """Ask the download to stop; the dialog closes once it has."""
        if self.error is not None or not self._thread.isRunning():
            self._close(accepted=False)
            return
        self.worker.cancel_event.set()
        self.cancel_button.setEnabled(False)
        self.detail.setText("Cancelling…")

    def reject(self) -> None:  # Escape or the window's close button
        self.cancel()

    @Slot(str)
    def _on_done(self, folder: str) -> None:
        self.folder = Path(folder)
        self._close(accepted=True)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.error = message
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.detail.setText(message)
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)
        close = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setAccessibleName("Close")

    @Slot()
    def _on_cancelled(self) -> None:
        self.was_cancelled = True
        self._close(accepted=False)

    def _close(self, accepted: bool) -> None:
        self._thread.quit()
        self._thread.wait()
        self.done(QDialog.DialogCode.Accepted if accepted else QDialog.DialogCode.Rejected)
