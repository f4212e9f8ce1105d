"""The command line of the desktop app: bad input ends with one line and a non-zero status."""

from __future__ import annotations

import pytest

from s2t_live.ui.app import main


def test_missing_model_folder_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such model folder" in err and "Traceback" not in err


def test_folder_without_config_is_rejected(capsys, tmp_path):
    assert main(["--model", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_missing_recording_is_rejected(capsys, model_dir, tmp_path):
    assert main(["--model", str(model_dir), "--input", str(tmp_path / "talk.flac")]) == 2
    assert "no such audio file" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--input FILE" in out and "--model DIR" in out and "--device" in out


def test_open_window_applies_the_arguments_and_captions_the_input(qtbot, settings, services, sessions, model_dir):
    from s2t_live.ui.app import build_parser, open_window

    settings.overlay_visible = True
    args = build_parser().parse_args(["--input", "/talks/jfk.flac", "--model", str(model_dir), "--device", "usb",
                                      "--speed", "2"])
    window = open_window(args, settings, services)
    qtbot.addWidget(window)
    assert window.controls.device_picker.current() == "USB headset" and window.overlay.isVisible()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        pass  # the input starts as soon as the event loop runs
    config = sessions.configs[-1]
    assert (config.input_file, config.speed, config.model) == ("/talks/jfk.flac", 2.0, str(model_dir))
    assert window.view.final_count() == 2
