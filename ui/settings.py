"""Persistent preferences, read and written through one ``QSettings`` that callers may inject (tests use an
INI file in a temporary folder). Values are typed here, once, so the rest of the GUI never sees strings."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from .overlay import OverlayStyle

ORGANIZATION = "s2t-live"
APPLICATION = "s2t-live"


def default_qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def default_export_folder() -> str:
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or "."


def default_journal_folder() -> str:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return f"{base}/journal" if base else "journal"


class Settings:
    """Typed accessors over ``QSettings``; every setter writes through at once."""

    def __init__(self, store: QSettings | None = None):
        self.store = store if store is not None else default_qsettings()

    def _get(self, key: str, default: Any, kind: type) -> Any:
        value = self.store.value(key, default)
        if value is None or value == "":
            return default
        try:
            if kind is bool:
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            return kind(value)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)

    # recognition -----------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Input device name; "" means the system default."""
        return self._get("input/device", "", str)

    @device.setter
    def device(self, value: str) -> None:
        self._set("input/device", value or "")

    @property
    def model(self) -> str:
        """Hub id or local folder; "" means the embedded default."""
        return self._get("model/name", "", str)

    @model.setter
    def model(self, value: str) -> None:
        self._set("model/name", value or "")

    @property
    def chunk_seconds(self) -> float:
        return max(0.2, min(5.0, self._get("model/chunk_seconds", 0.5, float)))

    @chunk_seconds.setter
    def chunk_seconds(self, value: float) -> None:
        self._set("model/chunk_seconds", float(value))

    @property
    def tgt_lang(self) -> str:
        return self._get("model/tgt_lang", "", str)

    @tgt_lang.setter
    def tgt_lang(self, value: str) -> None:
        self._set("model/tgt_lang", value or "")

    # captions --------------------------------------------------------------------------------------
    @property
    def overlay_style(self) -> OverlayStyle:
        defaults = OverlayStyle()
        values = {f.name: self._get(f"overlay/{f.name}", getattr(defaults, f.name), type(getattr(defaults, f.name)))
                  for f in fields(OverlayStyle)}
        return OverlayStyle(**values).clamped()

    @overlay_style.setter
    def overlay_style(self, style: OverlayStyle) -> None:
        for key, value in asdict(style).items():
            self._set(f"overlay/{key}", value)

    @property
    def overlay_visible(self) -> bool:
        """Whether the captions were showing when the app last closed."""
        return self._get("overlay/visible", False, bool)

    @overlay_visible.setter
    def overlay_visible(self, value: bool) -> None:
        self._set("overlay/visible", bool(value))

    @property
    def overlay_geometry(self) -> QByteArray | None:
        value = self.store.value("overlay/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @overlay_geometry.setter
    def overlay_geometry(self, value: QByteArray) -> None:
        self._set("overlay/geometry", value)

    # dictation -------------------------------------------------------------------------------------
    @property
    def dictation_backend(self) -> str:
        return self._get("dictation/backend", "auto", str)

    @dictation_backend.setter
    def dictation_backend(self, value: str) -> None:
        self._set("dictation/backend", value)

    @property
    def dictation_partials(self) -> bool:
        """Type committed words as they come, not only whole finalised segments."""
        return self._get("dictation/partials", False, bool)

    @dictation_partials.setter
    def dictation_partials(self, value: bool) -> None:
        self._set("dictation/partials", bool(value))

    # files -----------------------------------------------------------------------------------------
    @property
    def export_folder(self) -> str:
        return self._get("export/folder", "", str) or default_export_folder()

    @export_folder.setter
    def export_folder(self, value: str) -> None:
        self._set("export/folder", value)

    @property
    def window_geometry(self) -> QByteArray | None:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @window_geometry.setter
    def window_geometry(self, value: QByteArray) -> None:
        self._set("window/geometry", value)

    def sync(self) -> None:
        self.store.sync()
