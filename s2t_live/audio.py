"""Reading audio files into the 16 kHz mono float32 arrays the models expect.

Files are read with soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus and, from
libsndfile 1.1, MP3), mixed down to mono by averaging channels and resampled with
``torchaudio.functional.resample``. Every failure a person can fix (a wrong path, an
empty or corrupt file, samples that are NaN or infinite) is raised as ``AudioError``
with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .errors import AudioError

SAMPLE_RATE = 16000  # Hz: what every Speech2Text checkpoint was trained on


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Mix audio down to one channel by averaging the channels.

    ``wave`` is ``(num_samples,)`` (returned as float32, unchanged) or channels-last
    ``(num_samples, num_channels)`` as soundfile returns it; the result has shape
    ``(num_samples,)`` and dtype float32.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise AudioError(f"expected audio of shape (samples,) or (samples, channels), got {wave.shape}")
    if wave.shape[1] == 1:
        return np.ascontiguousarray(wave[:, 0])
    return wave.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample mono audio ``(num_samples,)`` from ``orig_sr`` to ``new_sr`` Hz.

    Uses ``torchaudio.functional.resample`` with its defaults (windowed-sinc, Hann
    window, width 6, rolloff 0.99). Returns a float32 array of
    ``ceil(num_samples * new_sr / orig_sr)`` samples; the input itself when the rates
    are equal.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} Hz -> {new_sr} Hz")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == new_sr:
        return wave
    out = torchaudio.functional.resample(torch.from_numpy(np.array(wave)), int(orig_sr), int(new_sr))
    return out.numpy()


def check_finite(wave: np.ndarray, name: str = "audio") -> None:
    """Raise ``AudioError`` naming ``name`` if ``wave`` (any shape) holds NaN or infinite samples."""
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise AudioError(f"{name}: {bad} sample(s) are NaN or infinite; the file is damaged")


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read ``path`` as channels-last float32 ``(num_samples, num_channels)`` and its rate."""
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return wave, int(sr)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as sf_error:
        reason = str(sf_error).split("\n")[0]
    # torchaudio's loader (TorchCodec/FFmpeg, when installed) knows formats libsndfile lacks.
    try:
        wave_t, sr = torchaudio.load(str(path))
    except (ImportError, RuntimeError, ValueError, OSError):
        raise AudioError(f"{path}: cannot decode audio ({reason}); use WAV, FLAC, OGG or MP3") from None
    return wave_t.numpy().T.astype(np.float32), int(sr)


def load_audio(path: str | Path, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 samples in [-1, 1] at ``sampling_rate`` Hz.

    Any sample rate and channel count is accepted: channels are averaged and the
    signal is resampled. Returns shape ``(num_samples,)``. Raises ``AudioError`` (one
    line naming the file) when the file is missing, a directory, empty, undecodable,
    has no samples, or holds NaN/infinite samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    wave, sr = _read(path)
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    check_finite(wave, str(path))
    return resample(to_mono(wave), sr, sampling_rate)
