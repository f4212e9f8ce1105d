"""Loading audio files: formats, rates, channels and the failures a person can fix."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s2t_live.audio import SAMPLE_RATE, check_finite, load_audio, resample, to_mono
from s2t_live.errors import AudioError

REALSPEECH = Path(os.environ.get("S2T_REALSPEECH", Path(__file__).resolve().parent / "data" / "realspeech"))


def clip_names() -> list[str]:
    table = REALSPEECH / "transcripts.tsv"
    if not table.is_file():
        return []
    return [line.split("\t")[0] for line in table.read_text().splitlines()[1:] if line]


needs_clips = pytest.mark.skipif(
    not clip_names(), reason=f"real speech clips not found at {REALSPEECH} (set S2T_REALSPEECH)"
)


@needs_clips
@pytest.mark.parametrize("name", clip_names() or ["none"])
def test_each_clip_loads_as_16khz_mono_float32_of_the_right_duration(name):
    info = sf.info(str(REALSPEECH / name))
    wave = load_audio(REALSPEECH / name)
    assert wave.dtype == np.float32 and wave.ndim == 1
    expected = math.ceil(info.frames * SAMPLE_RATE / info.samplerate)
    # libsndfile estimates an MP3's length from its header; decoding drops encoder padding.
    slack = int(0.02 * SAMPLE_RATE) if name.endswith(".mp3") else 0
    assert abs(len(wave) - expected) <= slack
    assert np.isfinite(wave).all() and 0.01 < np.abs(wave).max() <= 1.5


@needs_clips
def test_stereo_44k_flac_is_averaged_then_resampled():
    path = REALSPEECH / "jfk.flac"
    raw, sr = sf.read(str(path), dtype="float32")
    assert raw.shape[1] == 2 and sr == 44100
    expected = resample(raw.mean(axis=1), 44100, SAMPLE_RATE)
    assert np.abs(load_audio(path) - expected).max() < 1e-6
    assert abs(len(load_audio(path)) / SAMPLE_RATE - 11.0) < 1e-3


@needs_clips
def test_mp3_and_22khz_wav_decode_with_expected_durations():
    assert abs(len(load_audio(REALSPEECH / "cv_en_651325.mp3")) / SAMPLE_RATE - 2.38) < 0.01
    assert abs(len(load_audio(REALSPEECH / "LJ002-0020.wav")) / SAMPLE_RATE - 1.5396) < 1e-3
    assert len(load_audio(REALSPEECH / "ls_2412-153948-0000.flac", sampling_rate=8000)) == 186560 // 2


def test_16khz_mono_wav_round_trips_within_16bit_quantisation(tmp_path):
    wave = (np.sin(np.arange(16000) * 0.05) * 0.5).astype(np.float32)
    sf.write(tmp_path / "tone.wav", wave, 16000, subtype="PCM_16")
    assert np.abs(load_audio(tmp_path / "tone.wav") - wave).max() < 1e-4


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")])
def test_synthetic_multichannel_files_in_several_formats_load(tmp_path, fmt, subtype):
    stereo = np.stack([np.full(44100, 0.25), np.full(44100, -0.05)], axis=1).astype(np.float32)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, stereo, 44100, format=fmt, subtype=subtype)
    wave = load_audio(path)
    assert wave.shape == (16000,)
    assert abs(float(np.median(wave)) - 0.1) < 0.01


def test_to_mono_averages_channels_and_passes_mono_through():
    assert np.array_equal(to_mono(np.array([[1.0, 0.0], [0.5, 0.5]])), np.array([0.5, 0.5], dtype=np.float32))
    mono = np.arange(5, dtype=np.float32)
    assert np.array_equal(to_mono(mono), mono) and to_mono(mono[:, None]).shape == (5,)


def test_resample_length_and_identity():
    wave = np.random.default_rng(0).standard_normal(44100).astype(np.float32)
    assert len(resample(wave, 44100, 16000)) == 16000
    assert resample(wave, 16000, 16000) is wave
    with pytest.raises(AudioError):
        resample(wave, 0, 16000)


def test_check_finite_names_the_source():
    check_finite(np.zeros(10, dtype=np.float32))
    with pytest.raises(AudioError, match="mic: 2 sample"):
        check_finite(np.array([0.0, np.nan, np.inf]), "mic")


def test_missing_file_raises_audio_error_naming_it(tmp_path):
    with pytest.raises(AudioError, match="nothing.wav: no such"):
        load_audio(tmp_path / "nothing.wav")


def test_directory_raises_audio_error_naming_it(tmp_path):
    with pytest.raises(AudioError, match=f"{tmp_path.name}: is a directory"):
        load_audio(tmp_path)


def test_empty_file_raises_audio_error_naming_it(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        load_audio(tmp_path / "empty.wav")


def test_header_without_samples_raises_audio_error_naming_it(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="silent.wav: contains no audio"):
        load_audio(tmp_path / "silent.wav")


@pytest.mark.parametrize("name", ["garbage.wav", "garbage.mp3", "notes.txt"])
def test_garbage_bytes_raise_audio_error_naming_the_file(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(AudioError, match=f"{name}: cannot decode") as caught:
        load_audio(tmp_path / name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_raise_audio_error_naming_the_file(tmp_path, bad):
    wave = np.zeros(1600, dtype=np.float32)
    wave[100] = bad
    sf.write(tmp_path / "broken.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="broken.wav: 1 sample"):
        load_audio(tmp_path / "broken.wav")
