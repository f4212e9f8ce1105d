"""Live captions over any other window: frameless, always on top, translucent, draggable, resizable.

The overlay paints the latest text itself (no child labels), wraps it to its width and keeps the last
``lines`` lines, so a new partial only repaints one widget and never reflows a layout. Click-through mode
lets the mouse reach the window underneath; the overlay is then moved with the main window's controls.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import (QColor, QFont, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QTextCharFormat, QTextLayout,
                           QTextOption)
from PySide6.QtWidgets import QSizeGrip, QWidget

MARGIN = 16


@dataclass(frozen=True)
class OverlayStyle:
    """How captions look; colours are ``#rrggbb`` strings so they round-trip through QSettings."""

    font_size: int = 26
    text_color: str = "#ffffff"
    background_color: str = "#101418"
    opacity: float = 0.78
    lines: int = 2
    click_through: bool = False

    def clamped(self) -> "OverlayStyle":
        return OverlayStyle(max(8, min(96, int(self.font_size))), self.text_color, self.background_color,
                            max(0.0, min(1.0, float(self.opacity))), max(1, min(3, int(self.lines))),
                            bool(self.click_through))


class CaptionOverlay(QWidget):
    """A caption strip: committed words in the text colour, tentative words dimmed."""

    def __init__(self, style: OverlayStyle = OverlayStyle(), parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setWindowTitle("s2t-live captions")
        self.setAccessibleName("Live captions")
        self.setMinimumSize(240, 60)
        self._committed = ""
        self._tentative = ""
        self._drag_from: QPoint | None = None
        self._grip = QSizeGrip(self)
        self._grip.setAccessibleName("Resize captions")
        self._style = OverlayStyle()
        self._sized = False
        self.set_style(style)
        self.resize(900, self.height())

    # content ---------------------------------------------------------------------------------------
    def set_text(self, committed: str, tentative: str = "") -> None:
        """Show the latest text; repaints only when it changed."""
        committed, tentative = committed.strip(), tentative.strip()
        if (committed, tentative) == (self._committed, self._tentative):
            return
        self._committed, self._tentative = committed, tentative
        self.setAccessibleDescription(self.text())
        self.update()

    def text(self) -> str:
        return " ".join(t for t in (self._committed, self._tentative) if t)

    def caption_style(self) -> OverlayStyle:
        return self._style

    def set_style(self, style: OverlayStyle) -> None:
        old, self._style = self._style, style.clamped()
        font = QFont(self.font())
        font.setPointSize(self._style.font_size)
        font.setWeight(QFont.Weight.DemiBold)
        self.setFont(font)
        self.setMinimumHeight(self.fontMetrics().lineSpacing() + 2 * MARGIN)
        if (old.lines, old.font_size) != (self._style.lines, self._style.font_size) or not self._sized:
            self.resize(self.width(), self.fit_height())
            self._sized = True
        if old.click_through != self._style.click_through:
            self._apply_click_through(self._style.click_through)
        self.update()

    def fit_height(self) -> int:
        """The height that shows exactly ``lines`` lines."""
        return self.fontMetrics().lineSpacing() * self._style.lines + 2 * MARGIN

    def _apply_click_through(self, on: bool) -> None:
        visible = self.isVisible()
        self.setWindowFlag(Qt.WindowType.WindowTransparentForInput, on)
        self._grip.setVisible(not on)
        if visible:  # changing window flags hides the window
            self.show()

    # layout ----------------------------------------------------------------------------------------
    def _layout(self) -> tuple[QTextLayout, list[float]]:
        """The wrapped text and the top y of each line (content coordinates)."""
        text = self.text()
        layout = QTextLayout(text, self.font())
        option = QTextOption(Qt.AlignmentFlag.AlignHCenter)
        option.setWrapMode(QTextOption.WrapMode.WordWrap)
        layout.setTextOption(option)
        if self._tentative:
            dim = QTextCharFormat()
            colour = QColor(self._style.text_color)
            colour.setAlphaF(0.55)
            dim.setForeground(colour)
            span = QTextLayout.FormatRange()
            span.start = len(text) - len(self._tentative)
            span.length = len(self._tentative)
            span.format = dim
            layout.setFormats([span])
        width = max(10.0, self.width() - 2.0 * MARGIN)
        tops: list[float] = []
        y = 0.0
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            line.setPosition(QPointF(0.0, y))
            tops.append(y)
            y += line.height()
        layout.endLayout()
        return layout, tops

    def visible_lines(self) -> list[str]:
        """The lines on screen now, oldest first (the last ``lines`` of the wrapped text)."""
        layout, tops = self._layout()
        text = self.text()
        shown = range(max(0, len(tops) - self._style.lines), len(tops))
        return [text[layout.lineAt(i).textStart(): layout.lineAt(i).textStart() + layout.lineAt(i).textLength()].strip()
                for i in shown]

    # painting and mouse --------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        background = QColor(self._style.background_color)
        background.setAlphaF(self._style.opacity)
        path = QPainterPath()
        path.addRoundedRect(QRectF(self.rect()), 14, 14)
        painter.fillPath(path, background)
        layout, tops = self._layout()
        if not tops:
            return
        first = max(0, len(tops) - self._style.lines)
        shown_height = sum(layout.lineAt(i).height() for i in range(first, len(tops)))
        content = QRectF(self.rect()).adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        # Bottom-align the text, like subtitles: the newest line sits just above the lower edge, and
        # older lines beyond ``lines`` are clipped away even when the strip is taller.
        top = content.bottom() - shown_height - tops[first]
        painter.setClipRect(QRectF(content.left(), content.bottom() - shown_height, content.width(), shown_height)
                            & content)
        painter.setPen(QColor(self._style.text_color))
        layout.draw(painter, QPointF(content.left(), top))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        grip = self._grip.sizeHint()
        self._grip.move(self.width() - grip.width(), self.height() - grip.height())
        super().resizeEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.globalPosition().toPoint() - self.frameGeometry().topLeft()
            event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self.move(event.globalPosition().toPoint() - self._drag_from)
            event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag_from = None

    def place_default(self, screen_rect) -> None:
        """Centre the strip near the bottom of ``screen_rect`` (first show, no saved geometry)."""
        width = min(self.width(), int(screen_rect.width() * 0.8))
        self.resize(width, self.height())
        self.move(screen_rect.center().x() - width // 2, screen_rect.bottom() - self.height() - 60)
