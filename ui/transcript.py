"""The transcript view: finalised segments with their start times, then the live line.

It appends one block per finalised segment and rewrites only the last block, the live line, on each
partial: committed words in the text colour, tentative words greyed. It keeps the reader's scroll
position unless they are at the bottom.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QTextBlockFormat, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit, QWidget

from s2t_live.export import Segment


def clock(seconds: float) -> str:
    """``MM:SS`` (or ``H:MM:SS``) of a non-negative time, for the transcript margin."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class TranscriptView(QTextEdit):
    """Read-only transcript with timestamps; only the live (last) block changes while speech goes on."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setAccessibleName("Transcript")
        self.setAccessibleDescription("Finalised captions with their start times, then the line being heard now")
        self.setPlaceholderText("Press Start (Ctrl+R) and speak, or open a recording with "
                                "File > Caption a recording… (Ctrl+O)")
        self.document().setDocumentMargin(18)
        font = self.font()
        font.setPointSizeF(max(12.0, font.pointSizeF() * 1.25))
        self.setFont(font)
        self._live: tuple[str, str] | None = None
        self._live_start = 0  # document position where the live block begins
        self._finals = 0

    # formats -------------------------------------------------------------------------------------
    def _fmt(self, role: str) -> QTextCharFormat:
        fmt = QTextCharFormat()
        palette = self.palette()
        text = palette.text().color()
        if role == "time":
            muted = QColor(text)
            muted.setAlphaF(0.45)
            fmt.setForeground(muted)
            fmt.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.8))
            fmt.setFontFamilies(["monospace"])
        elif role == "tentative":
            muted = QColor(text)
            muted.setAlphaF(0.45)
            fmt.setForeground(muted)
            fmt.setFontItalic(True)
        else:
            fmt.setForeground(text)
            fmt.setFontWeight(QFont.Weight.Normal)
        return fmt

    # updates ---------------------------------------------------------------------------------------
    def clear_all(self) -> None:
        self.clear()
        self._live, self._live_start, self._finals = None, 0, 0

    def add_segment(self, segment: Segment) -> None:
        """Replace the live line with a finalised segment and open a new, empty live line."""
        self._rewrite_live([(f"{clock(segment.start)}   ", "time"), (segment.text, "text")])
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        block = QTextBlockFormat()
        block.setBottomMargin(6)
        cursor.setBlockFormat(block)
        cursor.insertBlock(block)
        self._live_start = cursor.position()
        self._live = None
        self._finals += 1

    def set_live(self, committed: str, tentative: str, start: float) -> None:
        """Show the open segment: committed words, then tentative ones greyed."""
        if self._live == (committed, tentative):
            return
        self._live = (committed, tentative)
        parts = [(f"{clock(start)}   ", "time")] if committed or tentative else []
        if committed:
            parts.append((committed, "text"))
        if tentative:
            parts.append(((" " if committed else "") + tentative, "tentative"))
        self._rewrite_live(parts)

    def clear_live(self) -> None:
        self._live = None
        self._rewrite_live([])

    def _rewrite_live(self, parts: list[tuple[str, str]]) -> None:
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        before = bar.value()
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.setPosition(self._live_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        for text, role in parts:
            cursor.insertText(text, self._fmt(role))
        cursor.endEditBlock()
        bar.setValue(bar.maximum() if at_bottom else before)

    # for tests and accessibility -------------------------------------------------------------------
    def live_text(self) -> str:
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._live_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText()

    def final_count(self) -> int:
        return self._finals

