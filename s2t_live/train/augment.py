"""Waveform augmentation for the synthetic training corpus.

Every transform is a pure function of ``(wave, sample_rate, rng, ...)``: it reads the
float32 mono ``wave`` (range [-1, 1]), draws its random choices only from the numpy
``rng`` it is handed, and returns a new array. Only speed perturbation changes the
length; every other transform keeps it. Everything is numpy (FFT based), except the
FFTs are padded to fast sizes, so each transform costs a few milliseconds. There is no
pitch shift here: the corpus varies pitch through the voices' own pitch settings and
through speed perturbation (a phase-vocoder shift costs seconds per utterance).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

FRAME_SECONDS = 0.01  # analysis frame for silence trimming
SILENCE_DB = -40.0  # frames this far below the loudest frame count as silence
PAD_SECONDS = (0.1, 0.3)  # silence kept before and after speech when trimming
TELEPHONE_BAND_HZ = (300.0, 3400.0)
EDGE_HZ = 150.0  # width of the cosine ramp at the edges of a band-limiting mask
MIN_PEAK = 1e-4  # waves quieter than this are treated as silent
NOISE_KINDS = ("white", "pink", "brown", "babble")
SPEED_STEP = 0.02


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the random augmentation chain."""

    p_augment: float = 0.7  # chance an utterance is augmented at all
    p_speed: float = 0.5
    speed_range: tuple[float, float] = (0.88, 1.12)
    p_reverb: float = 0.3
    rt60_range: tuple[float, float] = (0.15, 0.7)
    p_band: float = 0.2
    lowpass_range_hz: tuple[float, float] = (2500.0, 7000.0)
    p_noise: float = 0.5
    snr_range_db: tuple[float, float] = (3.0, 30.0)
    p_gain: float = 0.8
    gain_range_db: tuple[float, float] = (-20.0, 4.0)
    p_clip: float = 0.04
    clip_range: tuple[float, float] = (0.3, 0.8)


def peak_normalize(wave: np.ndarray, peak: float = 0.8) -> np.ndarray:
    """Scale ``wave`` so its largest absolute sample is ``peak`` (silence is left as is)."""
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    if top < MIN_PEAK:
        return wave.astype(np.float32)
    return (wave * (peak / top)).astype(np.float32)


def fast_size(n: int) -> int:
    """The smallest power of two that is at least ``n``."""
    return 1 << max(0, int(n - 1).bit_length())


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling by FFT truncation / zero padding.

    The input is zero-padded to ``down * 2**k`` samples so that both transforms have
    sizes with small factors, where ``new_sr / orig_sr = up / down`` in lowest terms.
    """
    if orig_sr == new_sr or wave.size == 0:
        return wave.astype(np.float32)
    common = gcd(orig_sr, new_sr)
    up, down = new_sr // common, orig_sr // common
    blocks = fast_size(-(-wave.size // down))
    spectrum = np.fft.rfft(wave.astype(np.float64), down * blocks)
    out = np.fft.irfft(spectrum, up * blocks) * (up / down)
    return out[: max(1, int(round(wave.size * up / down)))].astype(np.float32)


def trim_silence(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
                 pad_range: tuple[float, float] = PAD_SECONDS) -> np.ndarray:
    """Cut leading/trailing silence, keeping a random 0.1-0.3 s margin on each side."""
    hop = int(sample_rate * FRAME_SECONDS)
    n_frames = wave.size // hop
    if n_frames < 2:
        return wave.astype(np.float32)
    frames = wave[: n_frames * hop].reshape(n_frames, hop).astype(np.float64)
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy_db > energy_db.max() + SILENCE_DB)
    pad_before, pad_after = (int(rng.uniform(*pad_range) * sample_rate) for _ in range(2))
    start = max(0, loud[0] * hop - pad_before)
    end = min(wave.size, (loud[-1] + 1) * hop + pad_after)
    return wave[start:end].astype(np.float32)


def speed_perturb(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
                  speed_range: tuple[float, float] = (0.9, 1.1)) -> np.ndarray:
    """Play faster or slower (tempo and pitch together), as Kaldi-style speed perturbation.

    The factor is rounded to a multiple of ``SPEED_STEP`` to keep the FFT sizes fast.
    """
    factor = round(float(rng.uniform(*speed_range)) / SPEED_STEP) * SPEED_STEP
    return resample(wave, int(round(sample_rate * factor)), sample_rate)


def synthetic_rir(sample_rate: int, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """An exponentially decaying noise tail behind a unit direct path (RT60 in seconds)."""
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    decay = np.exp(-6.9078 * t / rt60)  # -60 dB at t = rt60
    rir = rng.standard_normal(length) * decay
    pre_delay = int(rng.uniform(0.002, 0.02) * sample_rate)
    rir[:pre_delay] = 0.0
    rir *= float(rng.uniform(0.2, 0.6)) / (np.sqrt(np.sum(rir**2)) + 1e-12)
    rir[0] = 1.0
    return rir


def add_reverb(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
               rt60_range: tuple[float, float] = (0.15, 0.7)) -> np.ndarray:
    """Convolve with a synthetic room response; same length and peak as the input."""
    if wave.size == 0:
        return wave.astype(np.float32)
    rir = synthetic_rir(sample_rate, rng, float(rng.uniform(*rt60_range)))
    size = fast_size(wave.size + rir.size - 1)
    wet = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(rir, size), size)[: wave.size]
    return peak_normalize(wet, float(np.max(np.abs(wave))))


def colored_noise(n: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise of ``n`` samples."""
    white = rng.standard_normal(n)
    if kind != "white" and n > 1:
        size = fast_size(n)
        spectrum = np.fft.rfft(white, size)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        freqs[0] = 1.0
        exponent = 0.5 if kind == "pink" else 1.0
        white = np.fft.irfft(spectrum / freqs**exponent, size)[:n]
    return white / (np.sqrt(np.mean(white**2)) + 1e-12)


def make_babble(bank: list[np.ndarray], n: int, rng: np.random.Generator,
                talkers: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Unit-RMS babble: a sum of several other utterances at random offsets, length ``n``."""
    out = np.zeros(n, dtype=np.float64)
    for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
        clip = bank[int(rng.integers(len(bank)))]
        if clip.size == 0:
            continue
        reps = int(np.ceil((n + clip.size) / clip.size))
        looped = np.tile(clip, reps)
        start = int(rng.integers(clip.size))
        out += looped[start:start + n] * rng.uniform(0.5, 1.0)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def add_noise(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
              snr_range_db: tuple[float, float] = (5.0, 30.0),
              babble_bank: list[np.ndarray] | None = None) -> np.ndarray:
    """Add white, pink, brown or babble noise at a random signal-to-noise ratio."""
    kinds = NOISE_KINDS if babble_bank else NOISE_KINDS[:-1]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "babble":
        noise = make_babble(babble_bank or [], wave.size, rng)
    else:
        noise = colored_noise(wave.size, rng, kind)
    speech_rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) if wave.size else 0.0
    snr_db = float(rng.uniform(*snr_range_db))
    noisy = wave + noise * speech_rms * 10.0 ** (-snr_db / 20.0)
    return noisy.astype(np.float32)


def band_limit(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
               lowpass_range_hz: tuple[float, float] = (2500.0, 7000.0)) -> np.ndarray:
    """Telephone band-pass (300-3400 Hz) or a random low-pass, by a smooth FFT mask."""
    if rng.random() < 0.5:
        low, high = TELEPHONE_BAND_HZ
    else:
        low, high = 0.0, float(rng.uniform(*lowpass_range_hz))
    size = fast_size(wave.size)
    spectrum = np.fft.rfft(wave.astype(np.float64), size)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    rise = np.clip((freqs - low + EDGE_HZ) / EDGE_HZ, 0.0, 1.0) if low > 0 else 1.0
    fall = np.clip((high + EDGE_HZ - freqs) / EDGE_HZ, 0.0, 1.0)
    mask = np.sin(0.5 * np.pi * rise * fall) ** 2
    return np.fft.irfft(spectrum * mask, size)[: wave.size].astype(np.float32)


def random_gain(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
                gain_range_db: tuple[float, float] = (-20.0, 4.0)) -> np.ndarray:
    """Scale by a random gain in dB, then pull the peak back under 1.0 if it went over."""
    out = wave * 10.0 ** (float(rng.uniform(*gain_range_db)) / 20.0)
    top = float(np.max(np.abs(out))) if out.size else 0.0
    return (out / top if top > 1.0 else out).astype(np.float32)


def clip_wave(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
              clip_range: tuple[float, float] = (0.3, 0.8)) -> np.ndarray:
    """Mild hard clipping: cut the wave at a random fraction of its peak."""
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    level = top * float(rng.uniform(*clip_range))
    return np.clip(wave, -level, level).astype(np.float32)


def augment_chain(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
                  cfg: AugmentConfig, babble_bank: list[np.ndarray] | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Apply a random subset of the transforms; return the wave and the names applied.

    With probability ``1 - cfg.p_augment`` the wave comes back untouched. The result is
    always finite and within [-1, 1].
    """
    applied: list[str] = []
    if rng.random() >= cfg.p_augment:
        return wave.astype(np.float32), applied
    steps = (
        ("speed", cfg.p_speed, lambda w: speed_perturb(w, sample_rate, rng, cfg.speed_range)),
        ("reverb", cfg.p_reverb, lambda w: add_reverb(w, sample_rate, rng, cfg.rt60_range)),
        ("band", cfg.p_band, lambda w: band_limit(w, sample_rate, rng, cfg.lowpass_range_hz)),
        ("noise", cfg.p_noise,
         lambda w: add_noise(w, sample_rate, rng, cfg.snr_range_db, babble_bank)),
        ("gain", cfg.p_gain, lambda w: random_gain(w, sample_rate, rng, cfg.gain_range_db)),
        ("clip", cfg.p_clip, lambda w: clip_wave(w, sample_rate, rng, cfg.clip_range)),
    )
    out = wave.astype(np.float32)
    for name, prob, transform in steps:
        if rng.random() < prob:
            out = transform(out)
            applied.append(name)
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.max(np.abs(out))) if out.size else 0.0
    if top > 1.0:
        out = out / top
    return out.astype(np.float32), applied
