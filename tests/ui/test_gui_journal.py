"""The session journal: fsynced lines, a crash leaves it unfinished, the next start offers it back."""

from __future__ import annotations

import gc

from s2t_live.export import Segment
from s2t_live.ui.journal import Journal, read_journal, unfinished_journals

from ui_fakes import TIMELINE, FakeSessionFactory


def test_journal_round_trip_ignores_a_torn_last_line(tmp_path):
    journal = Journal.create(tmp_path, {"model": "m"})
    journal.append(Segment(0.32, 2.5, "and so", [1, 2]))
    with open(journal.path, "a") as f:
        f.write('{"type": "segment", "start": 3.1, "te')  # the crash hit mid-write
    contents = read_journal(journal.path)
    assert contents.segments == [Segment(0.32, 2.5, "and so", [1, 2])] and not contents.closed
    assert contents.meta["model"] == "m"
    reopened = Journal.reopen(journal.path)
    reopened.append(Segment(3.1, 4.0, "ask not"))
    reopened.close()
    contents = read_journal(journal.path)
    assert [s.text for s in contents.segments] == ["and so", "ask not"] and contents.closed
    assert unfinished_journals(tmp_path) == []


def test_empty_unfinished_journals_are_cleaned_up(tmp_path):
    Journal.create(tmp_path)
    assert unfinished_journals(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_crashed_session_is_offered_back_with_the_same_segments(qtbot, make_window, settings, services):
    from s2t_live.ui.window import MainWindow

    window = MainWindow(settings, services)  # not handed to qtbot, which would close it properly
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    written = list(window.record.segments)
    journal_path = window.record.journal.path
    # The crash: the window disappears without close(), so the journal never gets its "closed" line.
    del window
    gc.collect()
    assert not read_journal(journal_path).closed

    offered = []

    def restore(contents, parent):
        offered.append(contents)
        return "restore"

    again = make_window(ask_recovery=restore)
    again.check_recovery()
    assert [c.path for c in offered] == [journal_path]
    assert offered[0].segments == written
    assert again.record.segments == written and again.view.final_count() == 2
    # Recording continues the restored session on the same time line and in the same journal.
    with qtbot.waitSignal(again.session.finished, timeout=5000):
        again.start()
    assert len(again.record.segments) == 4 and again.record.segments[2].start > written[-1].end
    again.close()
    contents = read_journal(journal_path)
    assert contents.closed and len(contents.segments) == 4


def test_discarded_or_cleanly_closed_sessions_are_not_offered(qtbot, make_window):
    window = make_window()
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.start()
    window.close()
    asked = []
    make_window(ask_recovery=lambda c, p: asked.append(c) or "discard").check_recovery()
    assert asked == []


def test_closing_while_recording_journals_the_flushed_segment(qtbot, make_window):
    sessions = FakeSessionFactory(TIMELINE, hold_after=9)  # hold at "ask not what | your country"
    window = make_window(session_factory=sessions)
    window.start()
    qtbot.waitUntil(lambda: window.view.live_text().endswith("your country"), timeout=5000)
    path = window.record.journal.path
    window.close()  # stops the session, waits for its last events, then closes the journal
    contents = read_journal(path)
    assert contents.closed
    assert [s.text for s in contents.segments] == ["and so my fellow americans", "ask not what your country"]
    assert not window.session.running
