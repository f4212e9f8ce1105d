"""Offline transcription of files: load, split at pauses, decode each piece, collect timed segments."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_audio
from .errors import ModelError
from .export import Segment
from .hub import default_model
from .loading import quantize_int8
from .model import Speech2TextForConditionalGeneration
from .processor import Speech2TextProcessor
from .segment import Span, split_at_pauses


@dataclass
class Transcript:
    """The result for one file: its duration and timed segments."""

    file: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


class Transcriber:
    """A loaded model and processor that turns audio into timed segments.

    ``generate_kwargs`` (``num_beams``, ``max_new_tokens``, ``forced_bos_token_id``...) override the
    checkpoint's generation defaults."""

    def __init__(self, model_name: str | None = None, device: str = "cpu", tgt_lang: str | None = None,
                 quantize: bool = False, **generate_kwargs: Any):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
        name = model_name or default_model()
        self.processor = Speech2TextProcessor.from_pretrained(name)
        self.model = Speech2TextForConditionalGeneration.from_pretrained(name, device=device)
        if quantize:
            self.model = quantize_int8(self.model)
        self.generate_kwargs = {k: v for k, v in generate_kwargs.items() if v is not None}
        if tgt_lang is not None:
            codes = self.processor.tokenizer.lang_code_to_id
            if tgt_lang not in codes:
                raise ModelError(f"this model has no target language {tgt_lang!r}; it knows: "
                                 f"{', '.join(sorted(codes)) or 'none (not multilingual)'}")
            self.generate_kwargs["forced_bos_token_id"] = codes[tgt_lang]

    def decode(self, wave: np.ndarray) -> tuple[str, list[int]]:
        """Text and generated ids (start and end tokens included) for one utterance."""
        inputs = self.processor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        ids = self.model.generate(inputs["input_features"], attention_mask=inputs["attention_mask"],
                                  **self.generate_kwargs)[0]
        return self.processor.decode(ids, skip_special_tokens=True).strip(), ids.tolist()

    def transcribe(self, wave: np.ndarray, split: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> list[Segment]:
        """Segments for a whole recording; ``split=False`` decodes it as one utterance."""
        spans = split_at_pauses(wave) if split else [Span(0, wave.size)]
        segments = []
        for i, span in enumerate(spans):
            text, tokens = self.decode(wave[span.start:span.end])
            start, end = span.seconds(SAMPLE_RATE)
            segments.append(Segment(round(start, 3), round(end, 3), text, tokens))
            if progress:
                progress(i + 1, len(spans))
        return segments

    def transcribe_file(self, path: str, split: bool = True, show_progress: bool = False) -> Transcript:
        wave = load_audio(path, SAMPLE_RATE)
        duration = wave.size / SAMPLE_RATE
        bar = ProgressLine(path) if show_progress and duration > 60 else None
        segments = self.transcribe(wave, split, bar.update if bar else None)
        if bar:
            bar.close()
        return Transcript(path, round(duration, 3), segments)


class ProgressLine:
    """A one-line progress report on stderr: pieces done, percent, elapsed and remaining time."""

    def __init__(self, label: str):
        self.label, self.start = label, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last_print < 5 and done < total:
            return
        self.last_print = now
        elapsed = now - self.start
        eta = elapsed / done * (total - done) if done else 0.0
        line = f"{self.label}: {done}/{total} pieces ({100 * done // total}%), {elapsed:.0f}s elapsed, ~{eta:.0f}s left"
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)
