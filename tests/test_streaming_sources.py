"""Audio sources: paced playback on a fake clock, generated signals, NaN rejection, block resampling,
and microphones through a fake ``sounddevice`` (absent library, no device, overflow, lost device)."""

from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from s2t_live.audio import load_audio
from s2t_live.errors import AudioError, DeviceError
from s2t_live.streaming import microphone
from s2t_live.streaming.microphone import MicrophoneSource, find_device, list_input_devices
from s2t_live.streaming.resample import StreamingResampler
from s2t_live.streaming.sources import FileSource, PacedSource, SignalSource

SR = 16000


def realspeech_dir() -> Path:
    here = Path(__file__).resolve().parent / "data" / "realspeech"
    return Path(os.environ.get("S2T_REALSPEECH", here))


class FakeClock:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def read_all(source, timeout=None):
    blocks = []
    while (block := source.read(timeout)) is not None:
        blocks.append(block)
    return blocks


def test_paced_source_releases_each_block_when_it_has_been_played():
    clock = FakeClock()
    source = PacedSource(np.ones(SR, dtype=np.float32), speed=2.0, clock=clock, sleep=clock.sleep)
    source.start()
    assert not source.available()
    first = source.read()
    assert first.size == 1600 and clock.slept == pytest.approx(0.05)  # 0.1 s of audio at 2x
    blocks = [first] + read_all(source)
    assert sum(b.size for b in blocks) == SR and clock.slept == pytest.approx(0.5)


def test_paced_source_times_out_with_an_empty_block_and_loses_nothing():
    clock = FakeClock()
    source = PacedSource(np.arange(SR, dtype=np.float32) / SR, speed=1.0, clock=clock, sleep=clock.sleep)
    source.start()
    assert source.read(timeout=0.03).size == 0
    blocks = read_all(source, timeout=0.03)
    assert np.array_equal(np.concatenate(blocks), source.wave)


def test_paced_source_pause_freezes_playback():
    clock = FakeClock()
    source = PacedSource(np.zeros(SR, dtype=np.float32), speed=1.0, clock=clock, sleep=clock.sleep)
    source.start()
    source.read()
    source.pause()
    clock.now += 60.0
    assert not source.available() and source.read(0.01).size == 0
    source.resume()
    assert not source.available()  # the next block is still 0.1 s of playback away
    clock.now += 0.1
    assert source.available()
    assert sum(b.size for b in read_all(source)) == SR - 1600


def test_speed_zero_file_source_delivers_the_whole_file_at_once():
    clock = FakeClock()
    path = realspeech_dir() / "LJ002-0020.wav"
    source = FileSource(path, speed=0, clock=clock, sleep=clock.sleep)
    assert not source.live and source.available()
    assert np.array_equal(np.concatenate(read_all(source)), load_audio(path))
    assert clock.slept == 0.0


def test_missing_file_is_an_audio_error():
    with pytest.raises(AudioError, match="no such audio file"):
        FileSource("/nonexistent/file.wav")


def test_signal_source_generates_tones_silence_and_noise():
    tone = SignalSource.tone(1000.0, seconds=0.5, amplitude=0.5)
    assert tone.wave.size == 8000 and np.sqrt(np.mean(tone.wave ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    noise = SignalSource.noise(1.0, level_db=-40.0)
    assert 20 * np.log10(np.sqrt(np.mean(noise.wave.astype(np.float64) ** 2))) == pytest.approx(-40.0, abs=0.2)
    both = SignalSource.concat(tone, SignalSource.silence(0.25), speed=0)
    assert both.duration == pytest.approx(0.75) and not both.wave[8000:].any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected_at_the_source(bad):
    wave = np.zeros(SR, dtype=np.float32)
    wave[123] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        SignalSource(wave)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_streaming_resampler_matches_whole_signal_resampling(rate):
    rng = np.random.default_rng(rate)
    wave = (rng.standard_normal(rate + 777) * 0.3).astype(np.float32)
    reference = torchaudio.functional.resample(torch.from_numpy(wave), rate, SR).numpy()
    resampler, out, i = StreamingResampler(rate, SR), [], 0
    while i < wave.size:
        n = int(rng.integers(1, 3000))
        out.append(resampler.accept(wave[i:i + n]))
        i += n
    out.append(resampler.flush())
    streamed = np.concatenate(out)
    assert streamed.shape == reference.shape
    np.testing.assert_allclose(streamed, reference, atol=1e-4)


# --- microphones through a fake sounddevice -------------------------------------------------


class FakeStream:
    def __init__(self, sd, **kwargs):
        self.sd, self.kwargs = sd, kwargs
        self.active = False
        sd.streams.append(self)

    def start(self):
        self.active = True

    def stop(self):
        self.active = False

    def close(self):
        pass

    def deliver(self, block, overflow=False):
        status = types.SimpleNamespace(input_overflow=overflow)
        self.kwargs["callback"](np.asarray(block, dtype=np.float32)[:, None], len(block), None, status)

    def vanish(self):
        self.active = False
        self.kwargs["finished_callback"]()


def fake_sounddevice(devices, native_rate=48000):
    class PortAudioError(Exception):
        pass

    sd = types.SimpleNamespace(PortAudioError=PortAudioError, streams=[],
                               default=types.SimpleNamespace(device=[1, 0]))
    sd.query_devices = lambda: devices

    def check_input_settings(device=None, channels=None, samplerate=None, dtype=None):
        if samplerate != native_rate:
            raise PortAudioError("Invalid sample rate")

    sd.check_input_settings = check_input_settings
    sd.InputStream = lambda **kwargs: FakeStream(sd, **kwargs)
    return sd


DEVICES = [
    {"name": "HDMI output", "max_input_channels": 0, "default_samplerate": 48000.0},
    {"name": "USB Headset Mic", "max_input_channels": 1, "default_samplerate": 48000.0},
    {"name": "Built-in Microphone", "max_input_channels": 2, "default_samplerate": 44100.0},
]


def test_missing_portaudio_is_a_device_error_with_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(DeviceError, match="PortAudio library not found.*libportaudio2"):
        list_input_devices()
    with pytest.raises(DeviceError, match="PortAudio"):
        MicrophoneSource().start()


def test_no_input_device_is_a_device_error(monkeypatch):
    monkeypatch.setattr(microphone, "load_sounddevice", lambda: fake_sounddevice(DEVICES[:1]))
    with pytest.raises(DeviceError, match="no audio input device found: connect a microphone"):
        MicrophoneSource().start()


def test_devices_are_found_by_index_or_name():
    sd = fake_sounddevice(DEVICES)
    assert [d.index for d in list_input_devices(sd)] == [1, 2]
    assert find_device(None, sd).name == "USB Headset Mic"  # the default input
    assert find_device("built-in", sd).index == 2 and find_device("2", sd).index == 2
    with pytest.raises(DeviceError, match="no input device matches 'webcam'; available: 1: USB Headset Mic"):
        find_device("webcam", sd)


def test_microphone_resamples_counts_overflows_and_rejects_nan():
    sd = fake_sounddevice(DEVICES)
    mic = MicrophoneSource("USB", sd=sd, queue_seconds=0.3)
    mic.start()
    stream = sd.streams[0]
    assert stream.kwargs["samplerate"] == 48000 and stream.kwargs["channels"] == 1
    block = np.full(4800, 0.1, dtype=np.float32)
    block[7] = np.nan
    stream.deliver(block, overflow=True)
    for _ in range(3):
        stream.deliver(np.zeros(4800))  # the queue holds 3 blocks: the last is dropped
    assert mic.overflows == 2 and mic.available()
    out = mic.read(0)
    assert mic.rejected_samples == 1 and np.isfinite(out).all()
    assert abs(out.size - 1600) <= 20  # 0.1 s at 16 kHz, less the filter's look-ahead
    mic.stop()
    assert read_all(mic, 0)[-1].size and mic.read(0) is None


def test_a_vanished_device_raises_a_device_error_after_its_audio():
    sd = fake_sounddevice(DEVICES, native_rate=16000)
    mic = MicrophoneSource(1, sd=sd)
    mic.start()
    sd.streams[0].deliver(np.zeros(1600))
    sd.streams[0].vanish()
    assert mic.read(0.1).size == 1600
    with pytest.raises(DeviceError, match="'USB Headset Mic' disappeared"):
        mic.read(0.1)


def test_a_silent_stalled_device_raises_a_device_error():
    clock = FakeClock()
    sd = fake_sounddevice(DEVICES, native_rate=16000)
    mic = MicrophoneSource(1, sd=sd, stall_seconds=2.0, clock=clock)
    mic.start()
    assert mic.read(0).size == 0
    clock.now += 3.0
    with pytest.raises(DeviceError, match="delivered no audio for 2 s"):
        mic.read(0)
