"""The caption overlay: latest text, line limit, style, click-through, toggling from the window."""

from __future__ import annotations

from PySide6.QtCore import Qt

from s2t_live.ui.overlay import CaptionOverlay, OverlayStyle


def test_overlay_shows_committed_then_tentative_text(qtbot):
    overlay = CaptionOverlay(OverlayStyle(lines=2))
    qtbot.addWidget(overlay)
    overlay.set_text("ask not what", "your country")
    assert overlay.text() == "ask not what your country"
    assert overlay.visible_lines() == ["ask not what your country"]


def test_overlay_keeps_only_the_newest_lines(qtbot):
    overlay = CaptionOverlay(OverlayStyle(lines=1, font_size=20))
    qtbot.addWidget(overlay)
    overlay.resize(300, overlay.height())
    overlay.set_text("and so my fellow americans ask not what your country can do for you", "ask what you can do")
    lines = overlay.visible_lines()
    assert len(lines) == 1 and lines[0].endswith("can do")
    overlay.set_style(OverlayStyle(lines=3, font_size=20))
    assert len(overlay.visible_lines()) == 3


def test_overlay_is_frameless_on_top_and_click_through_on_demand(qtbot):
    overlay = CaptionOverlay(OverlayStyle())
    qtbot.addWidget(overlay)
    flags = overlay.windowFlags()
    assert flags & Qt.WindowType.FramelessWindowHint and flags & Qt.WindowType.WindowStaysOnTopHint
    assert not flags & Qt.WindowType.WindowTransparentForInput
    overlay.set_style(OverlayStyle(click_through=True))
    assert overlay.windowFlags() & Qt.WindowType.WindowTransparentForInput
    assert OverlayStyle(lines=7, font_size=2, opacity=3).clamped() == OverlayStyle(lines=3, font_size=8, opacity=1.0)


def test_overlay_is_draggable(qtbot):
    overlay = CaptionOverlay(OverlayStyle())
    qtbot.addWidget(overlay)
    overlay.move(100, 100)
    with qtbot.waitExposed(overlay):
        overlay.show()
    start = overlay.pos()
    qtbot.mousePress(overlay, Qt.MouseButton.LeftButton, pos=overlay.rect().center())
    qtbot.mouseMove(overlay, overlay.rect().center() + start.__class__(40, 25))
    qtbot.mouseRelease(overlay, Qt.MouseButton.LeftButton)
    assert overlay.pos() == start + start.__class__(40, 25)


def test_window_feeds_the_overlay_and_toggles_it_with_button_and_shortcut(qtbot, make_window):
    window = make_window()
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    window.controls.overlay_button.click()
    assert window.overlay.isVisible()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    assert window.overlay.text() == "ask not what your country can do for you"
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window.view, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert not window.overlay.isVisible() and not window.controls.overlay_button.isChecked()
