"""The main window driven by a scripted session: live text, finals, export, controls, devices, models."""

from __future__ import annotations

from PySide6.QtCore import Qt

from ui_fakes import TIMELINE, FakeSessionFactory

EXPECTED_SRT = (
    "1\n00:00:00,320 --> 00:00:02,500\nand so my fellow americans\n\n"
    "2\n00:00:03,100 --> 00:00:06,040\nask not what your country can do for you\n"
)


def run_to_end(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        assert window.start()


def test_start_shows_partials_then_finals_and_exports_exact_srt(qtbot, make_window, tmp_path):
    sessions = FakeSessionFactory(TIMELINE, hold_after=4)  # hold after "and so | my fellow"
    window = make_window(session_factory=sessions)
    with qtbot.waitSignal(window.session.partial, timeout=5000):
        window.start()
    qtbot.waitUntil(lambda: window.view.live_text().endswith("and so my fellow"), timeout=5000)
    assert window.view.final_count() == 0
    assert window.state == "running" and not window.controls.start_button.isEnabled() and window.controls.stop_button.isEnabled()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        sessions.sessions[0].release.set()
    assert window.view.final_count() == 2
    assert [s.text for s in window.record.segments] == ["and so my fellow americans",
                                                           "ask not what your country can do for you"]
    assert window.state == "idle" and window.controls.start_button.isEnabled()
    out = window.export_to(tmp_path / "out.srt")
    assert out.read_text(encoding="utf-8") == EXPECTED_SRT
    vtt = window.export_to(tmp_path / "out.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n\n00:00:00.320 --> 00:00:02.500\nand so my fellow americans\n")
    txt = window.export_to(tmp_path / "out.txt").read_text(encoding="utf-8")
    assert txt == "and so my fellow americans\nask not what your country can do for you\n"


def test_live_line_shows_committed_then_tentative_and_keeps_finals_above(qtbot, make_window):
    window = make_window()
    run_to_end(qtbot, window)
    text = window.view.toPlainText().splitlines()
    assert text[0].endswith("and so my fellow americans") and text[0].startswith("00:00")
    assert text[1].startswith("00:03") and text[1].endswith("can do for you")
    window.view.set_live("ask not", "what your", 7.0)
    assert window.view.live_text().endswith("ask not what your")
    assert window.view.toPlainText().splitlines()[:2] == text[:2]  # only the live line changed


def test_second_run_continues_the_session_time_line(qtbot, make_window, tmp_path):
    window = make_window()
    run_to_end(qtbot, window)
    run_to_end(qtbot, window)
    starts = [s.start for s in window.record.segments]
    assert starts[:2] == [0.32, 3.1] and starts[2] > 6.0 and len(starts) == 4


def test_session_gets_device_model_chunk_and_target_language(qtbot, make_window, settings, sessions):
    settings.chunk_seconds = 1.5
    window = make_window()
    window.controls.device_picker.combo.setCurrentIndex(window.controls.device_picker.combo.findData("USB headset"))
    run_to_end(qtbot, window)
    config = sessions.configs[-1]
    assert config.device == "USB headset" and config.input_file is None and config.chunk_seconds == 1.5
    assert config.tgt_lang is None  # an ASR model translates into nothing


def test_pause_and_stop_reach_the_session(qtbot, make_window):
    sessions = FakeSessionFactory(TIMELINE, hold_after=2)
    window = make_window(session_factory=sessions)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    with qtbot.waitSignal(window.session.partial, timeout=5000):
        window.start()
    window.controls.pause_button.click()
    assert window.state == "paused" and window.controls.pause_button.text() == "Resume"
    window.controls.pause_button.click()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        qtbot.keyClick(window.view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # Ctrl+R stops
    assert sessions.sessions[0].calls == ["start", "pause", "resume", "stop"]
    assert window.state == "idle"


def test_status_events_update_level_lag_and_rtf(qtbot, make_window):
    window = make_window()
    levels = []
    window.session.level.connect(levels.append)
    run_to_end(qtbot, window)
    assert -21.0 in levels
    assert window.status_line.lag.text() == "Lag 0.4 s" and window.status_line.rtf.text() == "RTF 0.31"


def test_no_input_device_shows_a_message_and_start_does_not_crash(qtbot, make_window, sessions):
    window = make_window(list_devices=lambda: [])
    assert not window.controls.device_picker.combo.isEnabled()
    assert "No microphone" in window.notice.text() and not window.notice.isHidden()
    assert window.start() is False and not sessions.configs
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        assert window.start("/recordings/talk.flac")  # a recording still works
    assert sessions.configs[-1].input_file == "/recordings/talk.flac"


def test_device_error_message_is_shown(qtbot, make_window):
    from s2t_live.errors import DeviceError

    def broken():
        raise DeviceError("PortAudio library not found")

    window = make_window(list_devices=broken)
    assert "PortAudio library not found" in window.notice.text()


def test_session_error_is_shown_and_window_returns_to_idle(qtbot, make_window):
    from s2t_live.errors import ModelError

    def failing(config, on_event):
        raise ModelError("/models/x: no such model folder or file")

    window = make_window(session_factory=failing)
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    assert "no such model folder" in window.notice.text() and window.state == "idle"


def test_multilingual_model_enables_target_language(qtbot, make_window, sessions, tmp_path):
    import json

    folder = tmp_path / "multi"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps({"lang_codes": "mustc"}))
    window = make_window()
    assert not window.controls.language_picker.isEnabled()
    window.controls.model_picker.set_model(str(folder))
    window._on_model_changed(str(folder))
    assert window.controls.language_picker.isEnabled()
    window.controls.language_picker.setCurrentIndex(window.controls.language_picker.findData("fr"))
    run_to_end(qtbot, window)
    assert sessions.configs[-1].tgt_lang == "fr" and sessions.configs[-1].model == str(folder)


def test_every_control_has_an_accessible_name(make_window):
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QPlainTextEdit, QTextEdit

    window = make_window()
    controls = [w for kind in (QAbstractButton, QComboBox, QTextEdit, QPlainTextEdit)
                for w in window.findChildren(kind) if w.isVisibleTo(window)]
    assert len(controls) >= 10
    assert [w for w in controls if not w.accessibleName()] == []
