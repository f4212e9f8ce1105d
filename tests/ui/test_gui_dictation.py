"""Dictation: backend choice from the environment, what gets typed, and the window's wiring."""

from __future__ import annotations

import pytest

from s2t_live.streaming.events import FinalEvent, PartialEvent
from s2t_live.ui.dictation import ClipboardInjector, DictationFeed, XdotoolInjector, choose_backend, make_injector


def which_of(*tools):
    return lambda name: f"/usr/bin/{name}" if name in tools else None


@pytest.mark.parametrize("env, tools, expected", [
    ({"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}, ("xdotool",), "xdotool"),
    ({"DISPLAY": ":0"}, (), "clipboard"),
    ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, ("wtype", "ydotool", "xdotool"), "wtype"),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, ("ydotool", "xdotool"), "ydotool"),
    ({"XDG_SESSION_TYPE": "wayland"}, ("xdotool",), "clipboard"),
    ({}, ("xdotool",), None),
])
def test_backend_is_chosen_from_the_session_type_and_installed_tools(env, tools, expected):
    assert choose_backend(env, which_of(*tools)) == expected


def test_no_display_or_missing_tool_gives_a_clear_message(qapp):
    with pytest.raises(LookupError, match="graphical session"):
        make_injector("auto", {}, which_of())
    with pytest.raises(LookupError, match="wtype is not installed"):
        make_injector("wtype", {"WAYLAND_DISPLAY": "w"}, which_of())
    assert isinstance(make_injector("auto", {"DISPLAY": ":0"}, which_of("xdotool")), XdotoolInjector)
    assert isinstance(make_injector("auto", {"DISPLAY": ":0"}, which_of()), ClipboardInjector)
    assert XdotoolInjector().commands("hi there")[0][-2:] == ["--", "hi there"]


def partial(segment, committed, tentative=""):
    return PartialEvent(segment, committed, tentative, 0.0, 1.0, 1.0)


def test_feed_types_whole_finals_separated_by_spaces():
    feed = DictationFeed(include_partials=False)
    assert feed.partial(partial(0, "and so")) == ""
    assert feed.final(FinalEvent(0, "and so my fellow americans", 0.0, 2.0)) == "and so my fellow americans"
    assert feed.final(FinalEvent(1, "ask not", 3.0, 4.0)) == " ask not"


def test_feed_with_partials_types_only_newly_committed_words():
    feed = DictationFeed(include_partials=True)
    pieces = [feed.partial(partial(0, "", "and so")), feed.partial(partial(0, "and so", "my fellow")),
              feed.partial(partial(0, "and so", "my")), feed.partial(partial(0, "and so my fellow", "americans")),
              feed.final(FinalEvent(0, "and so my fellow americans", 0.0, 2.0)),
              feed.partial(partial(1, "ask")), feed.final(FinalEvent(1, "ask not", 3.0, 4.0))]
    assert pieces == ["", "and so", "", " my fellow", " americans", " ask", " not"]
    assert "".join(pieces) == "and so my fellow americans ask not"


def test_window_dictation_sends_finals_to_injector_and_editor(qtbot, make_window, injector):
    window = make_window()
    window.dictation.app_has_focus = lambda: False  # another application has the keyboard focus
    window.controls.dictation_button.click()
    assert window.dictation.enabled and window.controls.dictation_button.isChecked()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    assert injector.typed == ["and so my fellow americans", " ask not what your country can do for you"]
    assert window.editor.toPlainText() == "and so my fellow americans ask not what your country can do for you"


def test_dictation_is_not_typed_into_this_app_itself(qtbot, make_window, injector):
    window = make_window()
    window.dictation.app_has_focus = lambda: True
    window.controls.dictation_button.click()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    assert injector.typed == [] and window.editor.toPlainText().endswith("can do for you")


def test_dictation_without_backend_says_why_and_stays_off(qtbot, make_window):
    def no_backend(name):
        raise LookupError("Dictation needs a graphical session (X11 or Wayland); none was found")

    window = make_window(injector_factory=no_backend)
    window.controls.dictation_button.click()
    assert not window.dictation.enabled and not window.controls.dictation_button.isChecked()
    assert "graphical session" in window.notice.text()


def test_clipboard_backend_sets_each_piece_in_turn(qapp):
    from PySide6.QtWidgets import QApplication

    injector = ClipboardInjector({"WAYLAND_DISPLAY": "w"}, which_of())  # no key tool: clipboard only
    notices = []
    injector.notice.connect(notices.append)
    injector.type_text("and so")
    assert QApplication.clipboard().text() == "and so" and "Ctrl+V" in notices[0]
    paste = ClipboardInjector({"DISPLAY": ":0"}, which_of("xdotool")).commands("x")
    assert callable(paste[0]) and paste[1] == ["xdotool", "key", "--clearmodifiers", "ctrl+v"]
