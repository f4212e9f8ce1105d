"""Small widgets of the main window: the input level meter."""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

FLOOR_DB = -60.0


class LevelMeter(QWidget):
    """A horizontal input level bar in dBFS (-60 to 0) with a slowly falling peak mark."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Input level")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(90)
        self._db = FLOOR_DB
        self._peak = FLOOR_DB
        self._peak_at = 0.0

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(140, 10)

    @property
    def level_db(self) -> float:
        return self._db

    def set_level(self, db: float) -> None:
        db = max(FLOOR_DB, min(0.0, float(db)))
        now = time.monotonic()
        if db >= self._peak or now - self._peak_at > 1.5:
            self._peak, self._peak_at = db, now
        if abs(db - self._db) < 0.25:
            return
        self._db = db
        self.setAccessibleDescription(f"{db:.0f} dB")
        self.update()

    def reset(self) -> None:
        self._db = self._peak = FLOOR_DB
        self.update()

    def _x(self, db: float, width: float) -> float:
        return width * (db - FLOOR_DB) / -FLOOR_DB

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.palette().mid().color().lighter(130))
        painter.drawRoundedRect(rect, 3, 3)
        width = rect.width()
        fill = self._x(self._db, width)
        if fill > 0:
            colour = QColor("#2e9d5b") if self._db < -12 else QColor("#d8a025") if self._db < -3 else QColor("#d2453a")
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(rect.left(), rect.top(), fill, rect.height()), 3, 3)
        peak = self._x(self._peak, width)
        if peak > 2:
            painter.setBrush(self.palette().text().color())
            painter.drawRect(QRectF(rect.left() + peak - 2, rect.top(), 2, rect.height()))
