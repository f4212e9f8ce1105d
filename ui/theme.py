"""The app's look: Qt's Fusion style with a calm light palette and a little styling for the few widgets
that carry meaning (the primary button, the message strip, the transcript)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#2563eb"

STYLESHEET = f"""
QMainWindow, QDialog {{ background: #f4f5f7; }}
QPushButton {{
    padding: 6px 14px; border: 1px solid #c9ced6; border-radius: 6px; background: #ffffff; color: #1f2430;
}}
QPushButton:hover {{ border-color: #9aa3b0; }}
QPushButton:checked {{ background: #dbe6fd; border-color: {ACCENT}; color: #133a8a; }}
QPushButton:disabled {{ color: #a3a9b3; background: #f0f1f3; border-color: #dde0e5; }}
QPushButton#primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: 600; }}
QPushButton#primary:hover {{ background: #1d4fd0; }}
QPushButton#primary:disabled {{ background: #9db5ef; border-color: #9db5ef; color: #eef3fd; }}
QLabel#caption {{ color: #5b6270; padding-left: 4px; }}
QLabel#notice {{
    padding: 8px 12px; border-radius: 6px; border: 1px solid #f0c36d; background: #fff6e2; color: #5c4100;
}}
QLabel#notice[kind="error"] {{ border-color: #ef9a92; background: #fdecea; color: #7a1c14; }}
QLabel#notice[kind="info"] {{ border-color: #a9c1f5; background: #edf3fe; color: #163d8c; }}
QTabWidget::pane {{ border: 1px solid #d9dde3; border-radius: 8px; background: #ffffff; top: -1px; }}
QTabBar::tab {{ padding: 6px 16px; margin-right: 2px; color: #5b6270; border: none; }}
QTabBar::tab:selected {{ color: #1f2430; border-bottom: 2px solid {ACCENT}; font-weight: 600; }}
QTextEdit, QPlainTextEdit {{ border: none; background: #ffffff; selection-background-color: #cfdcfb; }}
QStatusBar {{ color: #5b6270; }}
QStatusBar QLabel {{ padding: 0 8px; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = app.palette()
    for role, colour in ((QPalette.ColorRole.Window, "#f4f5f7"), (QPalette.ColorRole.Base, "#ffffff"),
                         (QPalette.ColorRole.Text, "#1f2430"), (QPalette.ColorRole.WindowText, "#1f2430"),
                         (QPalette.ColorRole.Button, "#ffffff"), (QPalette.ColorRole.ButtonText, "#1f2430"),
                         (QPalette.ColorRole.Highlight, ACCENT), (QPalette.ColorRole.HighlightedText, "#ffffff"),
                         (QPalette.ColorRole.Mid, "#c9ced6")):
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9aa0aa"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Button, QColor("#f0f1f3"))
    app.setPalette(palette)
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)
