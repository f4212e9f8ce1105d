"""``s2t-live stream FILE``: every JSON line parses and carries the documented fields; srt/txt output;
``devices`` on a machine without PortAudio fails with a DeviceError message."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from s2t_live import cli_stream
from s2t_live.errors import DeviceError
from s2t_live.streaming import microphone


REALSPEECH = Path(os.environ.get("S2T_REALSPEECH", Path(__file__).resolve().parent / "data" / "realspeech"))


pytestmark = pytest.mark.usefixtures("single_thread")


def parse(argv):
    parser = argparse.ArgumentParser(prog="s2t-live")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_stream.add_listen_parser(sub)
    cli_stream.add_stream_parser(sub)
    cli_stream.add_devices_parser(sub)
    return parser.parse_args(argv)


def test_stream_jsonl_prints_one_parseable_event_per_line(model_dir, capsys):
    clip = REALSPEECH / "jfk.flac"
    args = parse(["stream", str(clip), "--model", str(model_dir), "--speed", "0"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["type"] for e in events} == {"partial", "final"}
    for e in events:
        assert {"type", "text", "committed", "start", "end", "audio_time", "wall_time"} <= e.keys()
        assert e["start"] <= e["end"]
        if e["type"] == "partial":
            assert e["text"].startswith(e["committed"])
        else:
            assert {"tokens", "offline_text", "agreement"} <= e.keys() and e["offline_text"] is not None
    audio_times = [e["audio_time"] for e in events]
    assert audio_times == sorted(audio_times) and audio_times[-1] == pytest.approx(11.0, abs=0.01)
    finals = [e for e in events if e["type"] == "final"]
    assert all(a["end"] <= b["start"] for a, b in zip(finals, finals[1:]))


@pytest.mark.parametrize("fmt", ["srt", "txt"])
def test_stream_writes_subtitles_or_text(model_dir, capsys, fmt):
    clip = REALSPEECH / "LJ002-0035.wav"
    args = parse(["stream", str(clip), "--model", str(model_dir), "--speed", "0", "--format", fmt,
                  "--no-offline-check"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if fmt == "srt":
        assert out.startswith("1\n00:00:0") and " --> " in out


def test_devices_without_portaudio_is_a_device_error(monkeypatch):
    def missing():
        raise DeviceError("no audio input available: PortAudio library not found (install the PortAudio library)")

    monkeypatch.setattr(microphone, "load_sounddevice", missing)
    args = parse(["devices"])
    with pytest.raises(DeviceError, match="PortAudio"):
        args.func(args)


def test_listen_defaults():
    args = parse(["listen"])
    assert args.model is None and args.device is None and args.srt is None and not args.offline_check
    assert (args.beams, args.final_beams) == (None, None)  # the model's streaming setting, else greedy
    assert args.warp is None and parse(["listen", "--warp", "1.1"]).warp == 1.1  # None: the model's choice


# The fitted test model declares no streaming beams: greedy unless asked.
@pytest.mark.parametrize("extra, searches", [([], (1, 1)), (["--final-beams", "3"], (1, 3)),
                                             (["--beams", "2"], (2, 2)), (["--beams", "2", "--final-beams", "1"], (2, 1))])
def test_stream_beam_options_reach_the_decoder(model_dir, extra, searches):
    args = parse(["stream", str(REALSPEECH / "jfk.flac"), "--model", str(model_dir), *extra])
    decoder = cli_stream.load_recognizer(args, offline_check=True).decoder
    assert (decoder.num_beams, decoder.final_beams) == searches


class ClipThenGone:
    """A fake PortAudio input stream: plays a clip into the callback, then its device disappears."""

    def __init__(self, wave, callback, finished_callback, **_):
        self.wave, self.callback, self.finished, self.active = wave, callback, finished_callback, False

    def start(self):
        for i in range(0, self.wave.size, 1600):
            self.callback(self.wave[i:i + 1600, None], 1600, None, None)
        self.finished()

    def stop(self):
        pass

    def close(self):
        pass


def test_listen_writes_the_srt_and_reports_a_lost_microphone(model_dir, monkeypatch, tmp_path, capsys):
    import types

    from s2t_live.audio import load_audio

    wave = load_audio(REALSPEECH / "LJ002-0035.wav")
    fake = types.SimpleNamespace(
        PortAudioError=RuntimeError, default=types.SimpleNamespace(device=[0, 0]),
        query_devices=lambda: [{"name": "Fake Mic", "max_input_channels": 1, "default_samplerate": 16000.0}],
        check_input_settings=lambda **kw: None, InputStream=lambda **kw: ClipThenGone(wave, **kw))
    monkeypatch.setattr(microphone, "load_sounddevice", lambda: fake)
    srt = tmp_path / "live.srt"
    args = parse(["listen", "--model", str(model_dir), "--device", "fake", "--srt", str(srt)])
    with pytest.raises(DeviceError, match="'Fake Mic' disappeared"):
        args.func(args)
    assert srt.read_text().startswith("1\n00:00:00,")
    assert capsys.readouterr().out.strip()  # the final was printed


def test_stream_warp_option_reaches_the_stream(model_dir):
    args = parse(["stream", str(REALSPEECH / "jfk.flac"), "--model", str(model_dir), "--warp", "1.2"])
    assert cli_stream.load_recognizer(args, offline_check=False).create_stream().warp == 1.2
