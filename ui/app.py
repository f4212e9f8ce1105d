"""``s2t-live-gui`` (also ``s2t-live gui``): parse the command line, check it, build and show the window.

Bad input (a missing model folder or recording) ends with one line on stderr and exit status 2, before
any window appears.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Sequence

from s2t_live.errors import AudioError, ModelError, S2TError
from s2t_live.hub import is_fairseq_checkpoint, looks_like_hub_id

PROG = "s2t-live-gui"
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Live captions, dictation and subtitles from speech, "
                                     "with Speech2Text models running on this computer.")
    parser.add_argument("--input", metavar="FILE", help="caption a recording, played at real time, instead of "
                        "the microphone")
    parser.add_argument("--model", metavar="DIR", help="model folder, fairseq checkpoint or hub id "
                        "(default: the last one used, else the built-in model)")
    parser.add_argument("--device", help="input device: its name or part of it")
    parser.add_argument("--speed", type=float, default=1.0, help="playback speed of --input (default: 1, real time)")
    parser.add_argument("--settings", metavar="INI", help="keep preferences in this file instead of the user's")
    parser.add_argument("--journal-dir", metavar="DIR", help="folder of the crash-safe session journals")
    return parser


def check_model(model: str) -> str:
    """A usable model argument (a folder made absolute), or ``ModelError``."""
    path = Path(model).expanduser()
    if path.exists():
        if is_fairseq_checkpoint(path) or (path / "config.json").is_file():
            return str(path.resolve())
        raise ModelError(f"{model}: not a model folder (no config.json) nor a fairseq .pt checkpoint")
    if looks_like_hub_id(model):
        return model
    raise ModelError(f"{model}: no such model folder or file")


def check_input(file: str) -> str:
    path = Path(file).expanduser()
    if not path.is_file():
        raise AudioError(f"{file}: no such audio file")
    return str(path.resolve())


def open_window(args: argparse.Namespace, settings, services):
    """Build and show the main window for checked ``args``; the recovery offer and ``--input`` run as soon
    as the event loop starts."""
    from PySide6.QtCore import QTimer

    from .window import MainWindow

    window = MainWindow(settings, services)
    window.file_speed = args.speed
    if args.model:
        window.use_model(args.model, remember=False)
    if args.device is not None and not window.controls.device_picker.select(args.device):
        window.show_notice(f"No input device matches {args.device!r}; using the one selected below.", "warning")
    window.show()
    if settings.overlay_visible:
        window.controls.overlay_button.setChecked(True)
    QTimer.singleShot(0, window.check_recovery)
    if args.input:
        QTimer.singleShot(0, lambda: window.start(args.input))
    return window


def main(argv: Sequence[str] | None = None) -> int:
    """Run the desktop app; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.model = check_model(args.model) if args.model else None
        args.input = check_input(args.input) if args.input else None
        if args.speed < 0:
            raise S2TError(f"--speed must be 0 or more, got {args.speed}")
    except S2TError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from .engine import StreamingSessionFactory, input_device_names
    from .settings import APPLICATION, ORGANIZATION, Settings
    from .theme import apply_theme
    from .window import Services

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("s2t-live")
    app.setDesktopFileName("s2t-live")
    apply_theme(app)
    settings = Settings(QSettings(args.settings, QSettings.Format.IniFormat) if args.settings else None)
    services = Services(session_factory=StreamingSessionFactory(), list_devices=input_device_names)
    if args.journal_dir:
        services.journal_dir = Path(args.journal_dir)
    window = open_window(args, settings, services)

    # Ctrl-C in the terminal closes the window properly (journal closed, settings saved); the timer lets
    # Python's signal handler run while Qt's event loop has control.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer(window)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(250)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
