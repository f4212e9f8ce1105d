"""Settings persist through QSettings and come back in a new window."""
# Offline: the hub id is only a stored setting here (tests/conftest.py also sets HF_HUB_OFFLINE=1).

from __future__ import annotations

from PySide6.QtCore import QSettings

from s2t_live.ui.overlay import OverlayStyle
from s2t_live.ui.settings import Settings


def test_settings_round_trip_through_the_ini_file(tmp_path):
    path = str(tmp_path / "s.ini")
    settings = Settings(QSettings(path, QSettings.Format.IniFormat))
    settings.device = "USB headset"
    settings.model = "facebook/s2t-small-librispeech-asr"
    settings.chunk_seconds = 1.5
    settings.tgt_lang = "fr"
    settings.overlay_style = OverlayStyle(font_size=30, text_color="#ffee00", background_color="#000000",
                                          opacity=0.5, lines=3, click_through=True)
    settings.dictation_backend = "wtype"
    settings.dictation_partials = True
    settings.export_folder = str(tmp_path / "exports")
    settings.sync()
    again = Settings(QSettings(path, QSettings.Format.IniFormat))
    assert (again.device, again.model, again.chunk_seconds, again.tgt_lang) == (
        "USB headset", "facebook/s2t-small-librispeech-asr", 1.5, "fr")
    assert again.overlay_style == OverlayStyle(30, "#ffee00", "#000000", 0.5, 3, True)
    assert (again.dictation_backend, again.dictation_partials) == ("wtype", True)
    assert again.export_folder == str(tmp_path / "exports")


def test_window_restores_and_saves_its_choices(qtbot, make_window, settings, model_dir):
    settings.device = "Laptop microphone"
    window = make_window()
    assert window.controls.device_picker.current() == "Laptop microphone"
    assert window.controls.model_picker.current() == str(model_dir)
    window.controls.device_picker.combo.setCurrentIndex(window.controls.device_picker.combo.findData("USB headset"))
    window.controls.device_picker.combo.activated.emit(window.controls.device_picker.combo.currentIndex())
    window.controls.overlay_button.click()
    window.close()
    assert settings.device == "USB headset" and settings.overlay_geometry is not None


def test_preferences_dialog_applies_its_fields(qtbot, settings):
    from s2t_live.ui.dialogs import PreferencesDialog

    dialog = PreferencesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.chunk.setValue(2.0)
    dialog.lines.setValue(1)
    dialog.backend.setCurrentIndex(dialog.backend.findData("clipboard"))
    dialog.apply()
    assert settings.chunk_seconds == 2.0 and settings.overlay_style.lines == 1
    assert settings.dictation_backend == "clipboard"
