"""GUI test fixtures: an offscreen Qt platform, settings in a temporary INI file, and a window whose
outside world (recognition, devices, hub, dictation, journal folder) is fake unless a test says otherwise."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import pytest  # noqa: E402

from ui_fakes import TIMELINE, FakeInjector, FakeSessionFactory, fake_hub  # noqa: E402


@pytest.fixture
def qsettings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def model_dir(tmp_path):
    """A stand-in model folder (the fake sessions never load it)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def settings(qsettings, model_dir):
    from s2t_live.ui.settings import Settings

    settings = Settings(qsettings)
    settings.model = str(model_dir)
    return settings


@pytest.fixture
def sessions():
    """The fake recognition: every session replays ``data/timeline.jsonl``."""
    return FakeSessionFactory(TIMELINE)


@pytest.fixture
def injector():
    return FakeInjector()


@pytest.fixture
def services(tmp_path, sessions, injector):
    from s2t_live.ui.window import Services

    return Services(session_factory=sessions, list_devices=lambda: ["USB headset", "Laptop microphone"],
                    downloader=fake_hub(tmp_path / "hub"), cached_model=lambda repo: None,
                    injector_factory=lambda backend: injector, journal_dir=tmp_path / "journal",
                    ask_recovery=lambda contents, parent: "later")


@pytest.fixture
def make_window(qtbot, settings, services):
    """``make_window(**service_overrides)``: a main window registered with qtbot (closed at teardown)."""
    from dataclasses import replace

    from s2t_live.ui.window import MainWindow

    def make(**overrides):
        window = MainWindow(settings, replace(services, **overrides))
        qtbot.addWidget(window)
        return window

    return make
