"""The window on the real streaming path: a tiny fitted model captions a recording end to end."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from s2t_live.errors import ModelError
from s2t_live.ui.engine import StreamingSessionFactory, force_target_language
from s2t_live.ui.session import SessionConfig

SRT_BLOCK = re.compile(r"^\d+\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n.+\n$")


@pytest.fixture(scope="session")
def streaming_model(memorising_model):
    return memorising_model


def seconds(stamp: str) -> float:
    h, m, rest = stamp.split(":")
    s, ms = rest.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_recording_is_captioned_through_the_real_streaming_worker(qtbot, make_window, streaming_model, tmp_path,
                                                                 realspeech_dir):
    window = make_window(session_factory=StreamingSessionFactory())
    window.use_model(str(streaming_model))
    window.file_speed = 0  # as fast as the model goes
    finals, partials = [], []
    window.session.final.connect(finals.append)
    window.session.partial.connect(partials.append)
    with qtbot.waitSignal(window.session.finished, timeout=90_000):
        assert window.start(str(realspeech_dir / "jfk.flac"))
    assert not window.notice.isVisible() or not window.notice.text(), window.notice.text()
    assert finals and window.view.final_count() == len(finals) == len(window.record.segments)
    assert all(f.text for f in finals)
    srt = window.export_to(tmp_path / "jfk.srt").read_text(encoding="utf-8")
    blocks = srt.split("\n\n")
    assert len(blocks) == len([f for f in finals if f.text.strip()])
    for block, final in zip(blocks, finals):
        match = SRT_BLOCK.match(block if block.endswith("\n") else block + "\n")
        assert match, block
        assert abs(seconds(match[1]) - final.start) < 0.0015 and abs(seconds(match[2]) - final.end) < 0.0015
        assert 0 <= final.start < final.end <= 11.5
    assert window.record.journal is not None and window.state == "idle"


def test_factory_reuses_the_loaded_model_and_forces_the_target_language():
    loads = []
    tokenizer = SimpleNamespace(lang_code_to_id={"de": 7, "fr": 9})

    def load(model, config, device=None):
        loads.append((model, config.chunk_seconds, config.num_beams, config.final_beams))
        return SimpleNamespace(processor=SimpleNamespace(tokenizer=tokenizer),
                               model=SimpleNamespace(generation_config=SimpleNamespace(forced_bos_token_id=None)))

    factory = StreamingSessionFactory(load=load)
    first = factory.recognizer(SessionConfig(model="/m", chunk_seconds=0.5, tgt_lang="fr"))
    assert factory.recognizer(SessionConfig(model="/m", chunk_seconds=0.5, tgt_lang="fr")) is first
    assert first.model.generation_config.forced_bos_token_id == 9
    factory.recognizer(SessionConfig(model="/m", chunk_seconds=1.0))
    assert loads == [("/m", 0.5, None, None), ("/m", 1.0, None, None)]  # the model's streaming beams
    with pytest.raises(ModelError, match="no target language 'ja'"):
        force_target_language(first, "ja")
