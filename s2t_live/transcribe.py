"""Offline transcription of files: load, split at pauses, decode each piece, collect timed segments."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_audio
from .errors import ModelError, S2TError
from .export import Segment
from .features import fbank
from .hub import default_model
from .loading import quantize_int8
from .model import Speech2TextForConditionalGeneration
from .processor import Speech2TextProcessor
from .segment import Span, split_at_pauses
from .warp import (MIN_JUDGE_SECONDS, choose_warp, ctc_sureness, model_warp_factors, warp_decodes,
                   warped_features, warped_inputs)


@dataclass
class Transcript:
    """The result for one file: its duration and timed segments."""

    file: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


@torch.inference_mode()
def encode_each(model: Any, processor: Any, waves: list[np.ndarray],
                warps: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder states of 16 kHz ``waves``, each encoded on its own (unpadded: padding would reach an
    utterance's last frames through the convolutions, which read padded frames as the reference does),
    padded together afterwards: ``(B, S, d)`` states and the ``(B, T)`` feature-frame mask that
    ``generate(encoder_outputs=...)`` takes. ``warps``: a frequency warp per wave (1.0: none)."""
    frames, hidden = [], []
    for wave, warp in zip(waves, warps or [1.0] * len(waves)):
        if warp == 1.0:
            features = processor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"]
        else:
            features = warped_features(processor.feature_extractor, wave, warp)
        frames.append(features.size(1))
        hidden.append(model.model.encoder(features.to(model.device, model.dtype)).last_hidden_state[0])
    return pad_states(hidden, frames, model.device)


def pad_states(hidden: list[torch.Tensor], frames: list[int], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(S_i, d) encoder states padded into (B, S, d), and the (B, T) mask of their ``frames`` feature frames."""
    padded = torch.nn.utils.rnn.pad_sequence(hidden, batch_first=True)
    mask = (torch.arange(max(frames))[None, :] < torch.tensor(frames)[:, None]).long().to(device)
    return padded, mask


@torch.inference_mode()
def decode_best_warp(model: Any, processor: Any, waves: Sequence[np.ndarray], factors: Sequence[float], keep: int,
                     batch_size: int = 8, **options: Any) -> list[tuple[float, list[int]]]:
    """Per wave (a piece of speech), ``(factor, ids)``: its audio is warped by each of ``factors``, the
    ``keep`` warps the CTC head is surest of (``ctc_sureness``) are decoded (``options`` as for
    ``generate``), and the hypothesis with the highest score wins, the length-normalised joint score by
    which beam search ranks its finished hypotheses. So the decoder, the CTC head and the word LM judge the
    warp together, per piece; a piece too short to judge, or greedy decoding (no scores to compare),
    decodes only the surest warp. The ids are padded as ``generate`` pads a batch."""
    extractor = processor.feature_extractor
    beams = options.get("num_beams") or getattr(model.generation_config, "num_beams", 1) or 1
    jobs = []  # (piece, factor, encoder states, feature frames) to decode
    for i, wave in enumerate(waves):
        if wave.size < MIN_JUDGE_SECONDS * SAMPLE_RATE or not factors:
            hidden, mask = encode_each(model, processor, [wave])
            jobs.append((i, 1.0, hidden[0], int(mask.sum())))
            continue
        frames = fbank(wave, extractor.num_mel_bins, extractor.sampling_rate, extractor.dither)
        judged = []
        for alpha in factors:
            features = warped_inputs(extractor, frames, float(alpha))
            sure, hidden = ctc_sureness(model, features)
            judged.append((sure, float(alpha), hidden[0], features.size(1)))
        judged.sort(key=lambda job: -job[0])  # stable: ties keep the order of ``factors``
        jobs += [(i, alpha, hidden, n) for _, alpha, hidden, n in judged[:keep if beams > 1 else 1]]
    options = {**options, "return_dict_in_generate": True, "output_scores": True, "num_return_sequences": 1}
    best: list[tuple[float, float, list[int]] | None] = [None] * len(waves)
    jobs.sort(key=lambda job: -job[3])
    for first in range(0, len(jobs), batch_size):
        batch = jobs[first:first + batch_size]
        hidden, mask = pad_states([job[2] for job in batch], [job[3] for job in batch], model.device)
        out = model.generate(encoder_outputs=(hidden,), attention_mask=mask, **options)
        scores = out.sequences_scores.tolist() if out.sequences_scores is not None else [0.0] * len(batch)
        for (i, alpha, _, _), ids, score in zip(batch, out.sequences.tolist(), scores):
            if best[i] is None or score > best[i][0]:
                best[i] = (score, alpha, ids)
    return [(alpha, ids) for _, alpha, ids in best]  # type: ignore[misc]


class Transcriber:
    """A loaded model and processor that turns audio into timed segments.

    ``generate_kwargs`` (``num_beams``, ``max_new_tokens``, ``forced_bos_token_id``...) override the
    checkpoint's generation defaults. Pieces are decoded ``batch_size`` at a time: decoding one token
    reads every decoder weight from memory, so a batch costs little more than a single piece. ``warp``:
    the frequency warp of every file (1.0: none); None: per file, the one of the model's ``warp_factors``
    that its CTC head prefers (``s2t_live.warp``; no warping for models that list none)."""

    def __init__(self, model_name: str | None = None, device: str = "cpu", tgt_lang: str | None = None,
                 quantize: bool = False, batch_size: int = 8, warp: float | None = None, **generate_kwargs: Any):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        self.warp = warp
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

    def piece_warps(self, pieces: Sequence[np.ndarray]) -> list[float] | None:
        """The frequency warp of each of one file's (one speaker's) ``pieces``: the one asked for, else the
        model's choice, one per file by its CTC head; None when the model asks for the choice per piece by
        decoding (``warp_decodes``), which ``decode_pieces`` makes."""
        if self.warp is not None:
            return [self.warp] * len(pieces)
        if warp_decodes(self.model):
            return None
        factors = model_warp_factors(self.model)
        return [choose_warp(self.model, self.processor.feature_extractor, pieces, factors)] * len(pieces)

    def decode(self, wave: np.ndarray) -> tuple[str, list[int]]:
        """Text and generated ids (start and end tokens included) for one utterance, at the fixed
        ``warp`` if one was given, else as ``decode_batch`` chooses."""
        return self.decode_batch([wave], None if self.warp is None else [self.warp])[0]

    def decode_batch(self, waves: list[np.ndarray], warps: Sequence[float] | None = None
                     ) -> list[tuple[str, list[int]]]:
        """``decode`` for several utterances at once. Each is encoded on its own (no padding, so the
        encoder does the same work as for one utterance); then the decoder runs on all of them as one
        padded batch, so each decoding step reads the decoder weights from memory once for them all.
        ``warps``: one per wave; None: none, or for a model that asks for it (``warp_decodes``) and no
        fixed ``warp``, each wave's best of its decodes at several warps (``decode_best_warp``)."""
        model = self.model
        keep = warp_decodes(model) if warps is None and self.warp is None else 0
        if keep:
            rows = [ids for _, ids in decode_best_warp(model, self.processor, waves, model_warp_factors(model),
                                                       keep, self.batch_size, **self.generate_kwargs)]
        else:
            padded, mask = encode_each(model, self.processor, waves, warps)
            rows = model.generate(encoder_outputs=(padded,), attention_mask=mask, **self.generate_kwargs).tolist()
        out = []
        for ids in rows:
            ids = trim_finished(ids, model.generation_config.eos_token_id)
            out.append((self.processor.decode(ids, skip_special_tokens=True).strip(), ids))
        return out

    def decode_pieces(self, pieces: list[np.ndarray], progress: Callable[[int, int], None] | None = None,
                      warps: Sequence[float] | None = None) -> list[tuple[str, list[int]]]:
        """``decode`` of every piece (warped by ``warps``, one per piece; None as for ``decode_batch``),
        ``batch_size`` at a time in order of length (little padding); results in the order of ``pieces``."""
        order = sorted(range(len(pieces)), key=lambda i: -pieces[i].size)
        results: list[tuple[str, list[int]] | None] = [None] * len(pieces)
        for first in range(0, len(order), self.batch_size):
            chosen = order[first:first + self.batch_size]
            batch = self.decode_batch([pieces[i] for i in chosen],
                                      None if warps is None else [warps[i] for i in chosen])
            for index, result in zip(chosen, batch):
                results[index] = result
            if progress:
                progress(min(first + self.batch_size, len(order)), len(order))
        return results  # type: ignore[return-value]

    def transcribe(self, wave: np.ndarray, split: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> list[Segment]:
        """Segments for a whole recording; ``split=False`` decodes it as one utterance."""
        spans = split_at_pauses(wave) if split else [Span(0, wave.size)]
        pieces = [wave[span.start:span.end] for span in spans]
        decoded = self.decode_pieces(pieces, progress, self.piece_warps(pieces))
        return [make_segment(span, text, tokens) for span, (text, tokens) in zip(spans, decoded)]

    def transcribe_file(self, path: str, split: bool = True, show_progress: bool = False) -> Transcript:
        """``transcribe`` of one audio file; raises ``S2TError`` when it cannot be read."""
        ((_, result),) = self.transcribe_files([path], split, show_progress)
        if isinstance(result, S2TError):
            raise result
        return result

    def transcribe_files(self, paths: list[str], split: bool = True, show_progress: bool = False,
                         group_pieces: int = 32, group_seconds: float = 600.0
                         ) -> Iterator[tuple[str, Transcript | S2TError]]:
        """``(path, Transcript)`` for each file in order, or ``(path, error)`` for one that cannot be read.

        Consecutive files are decoded together, their pieces batched across files, until a group holds
        ``group_pieces`` pieces or ``group_seconds`` of audio; each group's results come out as soon as
        it is done, so memory stays bounded and nothing waits for the last file."""
        group: list[tuple[str, Transcript | S2TError, list[Span], np.ndarray | None]] = []
        pieces = seconds = 0

        def flush() -> Iterator[tuple[str, Transcript | S2TError]]:
            waves: list[np.ndarray] = []
            warps: list[float] | None = []
            for _, _, spans, w in group:
                if w is not None:
                    pieces = [w[s.start:s.end] for s in spans]
                    waves += pieces
                    chosen = self.piece_warps(pieces)  # None: chosen per piece as they are decoded
                    warps = None if chosen is None or warps is None else warps + chosen
            label = group[0][0] if len(group) == 1 else f"{len(group)} files"
            bar = ProgressLine(label) if show_progress and seconds > 60 else None
            decoded = iter(self.decode_pieces(waves, bar.update if bar else None, warps))
            if bar:
                bar.close()
            for path, result, spans, _ in group:
                if isinstance(result, Transcript):
                    result.segments = [make_segment(span, *next(decoded)) for span in spans]
                yield path, result

        for path in paths:
            try:
                wave = load_audio(path, SAMPLE_RATE)
            except S2TError as exc:
                group.append((path, exc, [], None))
                continue
            spans = split_at_pauses(wave) if split else [Span(0, wave.size)]
            group.append((path, Transcript(path, round(wave.size / SAMPLE_RATE, 3)), spans, wave))
            pieces, seconds = pieces + len(spans), seconds + wave.size / SAMPLE_RATE
            if pieces >= group_pieces or seconds >= group_seconds:
                yield from flush()
                group, pieces, seconds = [], 0, 0
        if group:
            yield from flush()


def trim_finished(ids: list[int], eos: int | list[int] | None) -> list[int]:
    """A generated row cut after its end token: batched decoding pads rows that finished early. The
    first position (the decoder start, which may be the end token's id) is never an end."""
    ends = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    for i in range(1, len(ids)):
        if ids[i] in ends:
            return ids[:i + 1]
    return ids


def make_segment(span: Span, text: str, tokens: list[int]) -> Segment:
    start, end = span.seconds(SAMPLE_RATE)
    return Segment(round(start, 3), round(end, 3), text, tokens)


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
