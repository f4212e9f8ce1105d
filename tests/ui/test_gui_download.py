"""The model download dialog against a fake hub: progress, success, cancel, failure."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog

from s2t_live.errors import ModelError
from s2t_live.ui.download import DownloadDialog, human_bytes

from ui_fakes import fake_hub

REPO = "facebook/s2t-small-librispeech-asr"


def test_download_reports_progress_and_returns_the_folder(qtbot, tmp_path):
    dialog = DownloadDialog(REPO, fake_hub(tmp_path))
    qtbot.addWidget(dialog)
    seen = []
    dialog.worker.progress.connect(lambda done, total: seen.append((done, total)))
    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.open()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.folder == tmp_path / "facebook--s2t-small-librispeech-asr"
    assert seen[-1] == (4_000_000, 4_000_000) and dialog.bar.value() == 1000
    assert dialog.detail.text() == "4.0 MB of 4.0 MB"


def test_cancel_stops_the_download(qtbot, tmp_path):
    dialog = DownloadDialog(REPO, fake_hub(tmp_path, block=True))
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.bar.value() > 0, timeout=5000)
    assert dialog.bar.value() == 250 and dialog.detail.text() == "1.0 MB of 4.0 MB"
    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.cancel_button.click()
    assert dialog.result() == QDialog.DialogCode.Rejected and dialog.was_cancelled and dialog.folder is None
    assert not (tmp_path / "facebook--s2t-small-librispeech-asr").exists()


def test_failure_is_shown_in_the_dialog(qtbot):
    def offline(repo, progress, cancelled):
        raise ModelError(f"{repo}: not in the Hugging Face cache and the hub cannot be reached")

    dialog = DownloadDialog(REPO, offline)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: "cannot be reached" in dialog.detail.text(), timeout=5000)
    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.reject()
    assert dialog.result() == QDialog.DialogCode.Rejected and dialog.error


def test_choosing_an_uncached_hub_model_downloads_it(qtbot, make_window, monkeypatch):
    window = make_window()
    monkeypatch.setattr(DownloadDialog, "exec", lambda self: (self.open(), qtbot.waitUntil(
        lambda: self.folder is not None, timeout=5000), self.result())[-1])
    index = window.controls.model_picker.findData(REPO)
    window.controls.model_picker.activated.emit(index)
    assert window.controls.model_picker.current() == REPO and window.settings.model == REPO


def test_human_bytes():
    assert [human_bytes(n) for n in (999, 1500, 2_500_000, 3_100_000_000)] == ["999 B", "1.5 kB", "2.5 MB", "3.1 GB"]
