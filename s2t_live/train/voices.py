"""The corpus's speakers: the English voices of espeak-ng, flite, festival and SVOX Pico.

``list_voices`` finds what is installed, ``VoiceBank`` picks a training voice at random (the voice named
first in ``HELD_OUT_VOICES`` that is installed never speaks a training utterance) and speaks a text with
it. Pico comes from PyPI's ``ttspico`` when that is installed.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

HELD_OUT_VOICES = ("flite:rms", "espeak:en-029")  # the first one available is held out
# Pico's weight comes on top, so that a build without it draws exactly as before it was added.
ENGINE_WEIGHTS = {"espeak": 0.40, "flite": 0.35, "festival": 0.25, "pico": 0.15}
FLITE_VOICES = ("kal16", "slt", "awb", "rms")  # 'kal' (8 kHz) and 'awb_time' left out
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_VOICE_DIRS = Path("/usr/share/festival/voices")
PICO_VOICES = ("en-US", "en-GB")
PICO_RATE = 16000
PICO_VOLUME = 50  # per cent: at 100 Pico saturates its 16-bit output (1,000-1,700 samples a sentence)
PICO_PITCH_OCTAVES = 0.5  # pitch -1..1 -> Pico pitch level 71..141 % (en-US: 157 Hz at 100, ~114 at 70)
ODD_VARIANTS = re.compile(r"(?i)robo|demonic|whisper|croak|announcer|^fast$|tweaky|ricishay"
                          r"|kaukovalta")
P_PLAIN_ESPEAK = 0.2  # espeak utterances spoken without a +variant
ESPEAK_WPM, ESPEAK_PITCH = 175, 50
SYNTH_TIMEOUT_S = 60
FESTIVAL_MARK = "S2T-CORPUS-DONE"


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: engine, voice name and (espeak only) a +variant."""

    engine: str
    name: str
    variant: str = ""

    @property
    def base(self) -> str:
        """Engine and voice without the variant, e.g. ``espeak:en-gb``."""
        return f"{self.engine}:{self.name}"

    @property
    def label(self) -> str:
        """Speaker label of the manifests, e.g. ``espeak:en-gb+m3``."""
        return self.base + (f"+{self.variant}" if self.variant else "")


def command_output(cmd: list[str]) -> str:
    """Stdout of a short command, or '' if it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def list_voices() -> dict[str, list[str]]:
    """English voices installed for each engine, plus the usable espeak-ng variants."""
    rows = [line.split() for line in command_output(["espeak-ng", "--voices=en"]).splitlines()]
    espeak = sorted({r[1] for r in rows[1:] if len(r) >= 5 and r[4].startswith("gmw/")
                     and r[1].startswith("en")})
    variants = re.findall(r"!v/(\S+)[ \t]*(?:\(|$)",
                          command_output(["espeak-ng", "--voices=variant"]), re.M)
    flite = command_output(["flite", "-lv"]).split()
    festival = [v for v in FESTIVAL_VOICES if shutil.which("festival")
                and any(d.is_dir() for d in FESTIVAL_VOICE_DIRS.glob(f"*/{v}"))]
    return {"espeak": espeak, "flite": [v for v in FLITE_VOICES if v in flite],
            "festival": festival, "pico": [v for v in PICO_VOICES if pico_engine(v) is not None],
            "espeak_variants": sorted({v for v in variants if not ODD_VARIANTS.search(v)})}


_PICO: dict[str, object] = {}


def pico_engine(language: str) -> object | None:
    """This process's SVOX Pico engine for ``language`` (``ttspico``), or None without it."""
    if language not in _PICO:
        try:
            import ttspico  # optional: only the corpus builder uses it

            engine = ttspico.TtsEngine(language)
            engine.volume = PICO_VOLUME
            _PICO[language] = engine
        except (ImportError, RuntimeError, OSError):
            _PICO[language] = None
    return _PICO[language]


def pico_say(language: str, text: str, speed: float, pitch: float) -> np.ndarray:
    """Pico's 16 kHz speech for ``text`` as float32, at ``speed`` and ``pitch`` (-1..1)."""
    engine = pico_engine(language)
    if engine is None:
        raise RuntimeError(f"SVOX Pico ({language}) is not available: pip install ttspico")
    engine.rate = int(round(100 * speed))  # type: ignore[attr-defined]
    engine.pitch = int(round(100 * 2 ** (PICO_PITCH_OCTAVES * pitch)))  # type: ignore[attr-defined]
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    pcm = engine.speak(escaped) or b""  # type: ignore[attr-defined]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class FestivalPipe:
    """One long-lived ``festival --pipe`` process that saves an utterance per request."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.voice = ""

    def close(self) -> None:
        """Stop the process (it is restarted on the next request)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc, self.voice = None, ""

    def say(self, voice: str, text: str, speed: float, pitch: float, path: Path) -> None:
        """Synthesise ``text`` into the RIFF file ``path``."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.voice = ""
        lines = [] if voice == self.voice else [f"(voice_{voice})"]
        self.voice = voice
        if voice.endswith("_hts"):
            lines.append(f'(set! hts_engine_params (append {voice}::hts_engine_params '
                         f'(list (list "-r" {speed:.3f}) (list "-fm" {3 * pitch:.2f}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{path}" \'riff)')
        lines.append(f'(print "{FESTIVAL_MARK}") (fflush nil)')
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(("\n".join(lines) + "\n").encode())
        self.proc.stdin.flush()
        self.wait_for_mark(self.proc.stdout.fileno())

    def wait_for_mark(self, fd: int) -> None:
        """Read festival's output until the end-of-request mark, within the time-out."""
        deadline, seen = time.monotonic() + SYNTH_TIMEOUT_S, b""
        while FESTIVAL_MARK.encode() not in seen:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                self.close()
                raise TimeoutError("festival timed out" if not ready else "festival exited")
            seen = seen[-64:] + chunk


class VoiceBank:
    """The voices of one build: which train, which is held out, and how to run each."""

    def __init__(self, found: dict[str, list[str]], tmp_dir: str) -> None:
        self.variants = found.get("espeak_variants", [])
        self.by_engine = {e: [Voice(e, n) for n in found.get(e, [])] for e in ENGINE_WEIGHTS}
        bases = {v.base: v for vs in self.by_engine.values() for v in vs}
        held = next((bases[b] for b in HELD_OUT_VOICES if b in bases), None)
        if held is None:
            raise RuntimeError(f"none of the held-out voices {HELD_OUT_VOICES} is installed")
        self.held_out = held
        for engine, voices in self.by_engine.items():
            self.by_engine[engine] = [v for v in voices if v != held]
        self.train_voices = [v for vs in self.by_engine.values() for v in vs]
        self.tmp_dir = Path(tmp_dir)
        self.festival = FestivalPipe()

    def draw(self, rng: np.random.Generator) -> Voice:
        """A random training voice: engine by ``ENGINE_WEIGHTS``, then voice and variant."""
        engines = [e for e in ENGINE_WEIGHTS if self.by_engine[e]]
        weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
        voice = self.by_engine[engine][int(rng.integers(len(self.by_engine[engine])))]
        if engine == "espeak" and self.variants and rng.random() >= P_PLAIN_ESPEAK:
            return Voice(engine, voice.name, self.variants[int(rng.integers(len(self.variants)))])
        return voice

    def synthesize(self, voice: Voice, text: str, speed: float, pitch: float
                   ) -> tuple[np.ndarray, int]:
        """Mono float32 waveform and its sample rate; ``speed`` > 1 talks faster."""
        path = self.tmp_dir / "utterance.wav"
        if voice.engine == "espeak":
            name = voice.name + (f"+{voice.variant}" if voice.variant else "")
            cmd = ["espeak-ng", "-v", name, "-s", str(round(ESPEAK_WPM * speed)),
                   "-p", str(round(ESPEAK_PITCH + 25 * pitch)), "-w", str(path), "--stdin"]
            subprocess.run(cmd, input=text.encode(), check=True, capture_output=True,
                           timeout=SYNTH_TIMEOUT_S)
        elif voice.engine == "pico":
            return pico_say(voice.name, text, speed, pitch), PICO_RATE
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / speed:.3f}",
                   "-t", text, "-o", str(path)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=SYNTH_TIMEOUT_S)
        else:
            self.festival.say(voice.name, text, speed, pitch, path)
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
        path.unlink()
        return wave.mean(axis=1), int(rate)

    def close(self) -> None:
        """Stop the festival process."""
        self.festival.close()
