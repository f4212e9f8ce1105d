"""The thread-free streaming recognizer: a ``Recognizer`` (model and settings, no audio) makes ``Stream``s.

A ``Stream`` is fed 16 kHz audio with ``accept_waveform`` and asked to ``decode`` when ``is_ready``. The
endpointer splits the audio into segments; the open segment is re-encoded every ``chunk_seconds`` of new
audio (its features normalised over the segment so far, exactly as offline) and decoded a few tokens
past its committed prefix; ``LocalAgreement`` decides which words become committed. A closed segment is
decoded once more over exactly its own audio, continuing from its committed tokens, which yields the
``FinalEvent``. A stream that falls behind decodes one partial over everything that arrived, counting the
partials it skipped; audio is never skipped.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from s2t_live.audio import SAMPLE_RATE, check_finite
from s2t_live.errors import AudioError
from s2t_live.features import StreamingFbank
from s2t_live.warp import JUDGE_SECONDS, MIN_JUDGE_SECONDS, WarpJudge, model_warp_factors

from .decoder import FinalDecode, SegmentDecoder, word_agreement
from .endpoint import BLOCK, SILENCE_DB, BlockLevels, EndpointConfig, Endpointer
from .events import Event, FinalEvent, PartialEvent, StatusEvent
from .policy import LocalAgreement

WINDOW = 400  # samples in one 25 ms filterbank window


@dataclass(frozen=True)
class StreamConfig:
    """How a stream decodes: partial cadence, search, agreement, offline check and endpointing."""

    chunk_seconds: float = 0.5  # new audio between two partial decodes
    # Beam sizes of the partials and of the finals (and of the offline check); 1: greedy. None: what the
    # model's generation config asks for (stream_num_beams, stream_final_beams), else greedy partials
    # and finals like the partials.
    num_beams: int | None = None
    final_beams: int | None = None
    # Frequency warp of the audio (s2t_live.warp): None chooses among the model's warp_factors from the
    # stream's first minute of finished segments, each new segment taking the choice so far; a number
    # fixes it (1.0: none).
    warp: float | None = None
    agreement: int = 2  # LocalAgreement-n
    partial_max_new_tokens: int = 10  # how far a partial decodes past the committed tokens
    offline_check: bool = False  # also decode each final segment unconstrained and report agreement
    ctc_weight: float | None = None  # joint CTC/attention weight, 0-1 (None: the model's generation config)
    lexicon_penalty: float | None = None  # cost of a word outside the model's lexicon (None: the model's)
    lm_weight: float | None = None  # weight of the model's word LM, lm.npz / lm.arpa (None: the model's)
    word_bonus: float | None = None  # score per finished word when the word LM is on (None: the model's)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass
class StreamStats:
    """What a stream has done so far (for status events, tests and benchmarks)."""

    partials: int = 0
    skipped_partials: int = 0
    finals: int = 0
    speculated: int = 0  # finals decoded ahead of their endpoint, during the pause
    encodes: int = 0
    compute_seconds: float = 0.0


class Segment:
    """One segment's audio (absolute sample positions ``start``..``end``), its filterbank frames computed
    on demand, and what has been committed for it."""

    def __init__(self, index: int, start: int, policy: LocalAgreement, num_mel_bins: int) -> None:
        self.index, self.start, self.end = index, start, start
        self.policy = policy
        self.num_mel_bins = num_mel_bins
        self.chunks: list[np.ndarray] = []
        self.fbank = StreamingFbank(num_mel_bins)
        self.frames: list[torch.Tensor] = []
        self.fed = start  # samples given to the fbank so far
        self.decoded_to = start  # audio covered by the last partial
        self.hypothesis_end = start  # audio covered by the previous hypothesis
        self.commit_bound = start  # committed words lie before this sample
        self.encoded: tuple[int, torch.Tensor] | None = None  # (end, encoder output) of the last encode
        self.warp = 1.0  # the frequency warp its audio is decoded with, fixed when it opens
        self.hypothesis: list[int] = []  # the last partial's tokens: the next decode's draft
        self.speculative: tuple[int, int, FinalDecode] | None = None  # (end, committed count, final decode)

    def append(self, samples: np.ndarray) -> None:
        if samples.size:
            self.chunks.append(samples)
            self.end += samples.size

    def audio(self) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0] if self.chunks else np.zeros(0, dtype=np.float32)

    def trim(self, new_start: int) -> None:
        """Drop audio before ``new_start`` (only before anything was decoded: silence being skipped)."""
        if new_start <= self.start:
            return
        self.chunks = [self.audio()[new_start - self.start:].copy()]  # a copy: a view would pin the old audio
        self.start = self.fed = self.decoded_to = self.hypothesis_end = self.commit_bound = new_start
        self.fbank.reset()
        self.frames = []

    def split(self, at: int, index: int, policy: LocalAgreement) -> "Segment":
        """End this segment at sample ``at``; return a new segment holding the audio after it."""
        audio = self.audio()
        rest = Segment(index, at, policy, self.num_mel_bins)
        rest.append(audio[at - self.start:])
        self.chunks, self.end = [audio[:at - self.start]], at
        return rest

    def frames_upto(self, end: int) -> torch.Tensor:
        """Filterbank frames ``(n, 80)`` of the audio ``start..end``: ``n = 1 + (end - start - 400) // 160``."""
        if end > self.fed:
            new = self.fbank.accept_waveform(self.audio()[self.fed - self.start:end - self.start])
            self.frames.append(new)
            self.fed = end
        if len(self.frames) > 1:
            self.frames = [torch.cat(self.frames)]
        n = 1 + (end - self.start - WINDOW) // BLOCK if end - self.start >= WINDOW else 0
        return self.frames[0][:n] if self.frames else torch.zeros(0, self.num_mel_bins)


class Stream:
    """One audio stream's recognition state (sherpa-onnx style): ``accept_waveform``, ``is_ready``,
    ``decode``, ``result``, ``is_endpoint``, ``flush``, ``reset``. Not thread-safe: one owner."""

    def __init__(self, decoder: SegmentDecoder, config: StreamConfig, clock: Callable[[], float] = time.monotonic):
        self.decoder, self.config, self.clock = decoder, config, clock
        self.chunk = max(1, int(config.chunk_seconds * SAMPLE_RATE))
        self.stats = StreamStats()
        self._t0 = clock()
        self._meter = BlockLevels()
        self._endpointer = Endpointer(config.endpoint)
        self._received = 0
        self._segments = 0
        self._closed: deque[Segment] = deque()
        self._last: PartialEvent | None = None
        self._level = SILENCE_DB
        fixed = config.warp is not None
        self.warp = config.warp if fixed else 1.0  # the warp of segments that open from now on
        self._judge = WarpJudge([] if fixed else decoder.warp_factors)
        self._unjudged: deque[torch.Tensor] = deque()  # finished segments' frames, judged by later decodes
        self._queued = 0  # filterbank frames (10 ms) queued for judging so far
        self._open = self._new_segment(0)

    def _new_segment(self, start: int) -> Segment:
        policy = LocalAgreement(self.decoder.is_word_start, self.config.agreement)
        segment = Segment(self._segments, start, policy, self.decoder.extractor.num_mel_bins)
        segment.warp = self.warp
        return segment

    # --- input ----------------------------------------------------------------------------------

    @property
    def audio_time(self) -> float:
        """Seconds of audio accepted so far."""
        return self._received / SAMPLE_RATE

    def wall_time(self) -> float:
        return self.clock() - self._t0

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Add mono float32 samples ``(n,)`` in [-1, 1] at 16 kHz; cheap (level metering and endpointing)."""
        if sample_rate != SAMPLE_RATE:
            raise AudioError(f"streamed audio is {sample_rate} Hz; resample it to {SAMPLE_RATE} Hz first")
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioError(f"expected mono audio of shape (samples,), got {samples.shape}")
        check_finite(samples, "streamed audio")
        self._open.append(samples)
        self._received += samples.size
        levels = self._meter.accept(samples)
        if levels.size:
            self._level = float(levels.max())
        for cut in self._endpointer.accept(levels):
            self._close_at(cut * BLOCK)
        self._follow_silence()

    def _close_at(self, cut: int) -> None:
        """Queue the open segment up to sample ``cut`` for its final decode; the rest opens the next."""
        self._segments += 1
        rest = self._open.split(cut, self._segments, LocalAgreement(self.decoder.is_word_start, self.config.agreement))
        rest.warp = self.warp
        self._closed.append(self._open)
        self._open = rest

    def _follow_silence(self) -> None:
        """While there is no speech, the open segment starts where the endpointer says (a short preroll)."""
        if not self._endpointer.speaking:
            self._open.trim(self._endpointer.start * BLOCK)

    # --- decoding -------------------------------------------------------------------------------

    def _too_long(self) -> bool:
        limit = self.config.endpoint.max_segment * SAMPLE_RATE
        return self._endpointer.speaking and self._open.end - self._open.start >= limit

    def _partial_due(self) -> bool:
        seg, ep = self._open, self._endpointer
        pausing = ep.now - ep.speech_end >= ep.min_silence // 2  # the final is coming: keep the worker free
        return ep.speaking and not pausing and seg.end - seg.decoded_to >= self.chunk and seg.end - seg.start >= WINDOW

    def is_ready(self) -> bool:
        """There is work for ``decode``: a closed segment, an over-long one, a chunk of new speech, or a
        pause long enough to decode the final ahead of the endpoint."""
        return bool(self._closed) or self._too_long() or self._partial_due() or self._speculation_due()

    def is_endpoint(self) -> bool:
        """A segment has closed and waits for its final decode."""
        return bool(self._closed)

    def decode(self) -> list[Event]:
        """Finals of closed segments (in order), then at most one partial of the open segment (or, in a
        pause, its final decoded ahead: no event yet)."""
        events: list[Event] = self._finish_closed()
        if not events and self._unjudged:  # off the finals' path: judge one finished segment
            self._judge_warp(self._unjudged.popleft())
        if self._partial_due():
            events.append(self._partial())
        elif self._speculation_due():
            self._speculate()
        return events

    def flush(self) -> list[Event]:
        """Finalise everything accepted so far, the open segment included (stop, pause, end of input)."""
        events = self._finish_closed()
        if self._endpointer.speaking:
            self._endpointer.force_cut(self._endpointer.now)
            self._close_at(self._received)
            events += self._finish_closed()
        self._follow_silence()
        return events

    def reset(self) -> None:
        """Forget the open and pending segments (no events) and listen afresh from here."""
        self._closed.clear()
        self._endpointer.reset(self._endpointer.now)
        self._segments += 1  # never reuse the number of a segment whose partials were shown
        self._open = self._new_segment(self._received)
        self._last = None

    def result(self) -> str:
        """The open segment's latest text (committed then tentative), "" before its first partial."""
        return self._last.text if self._last is not None and self._last.segment == self._open.index else ""

    def _finish_closed(self) -> list[Event]:
        events: list[Event] = []
        while self._closed or self._too_long():
            if not self._closed:
                self._cut_long()
            events.append(self._final(self._closed.popleft()))
        return events

    def _cut_long(self) -> None:
        """Cut an over-long open segment at the quietest 10 ms after its committed words (within the
        second half of ``max_segment`` when the words allow), so no committed word is split."""
        seg, limit = self._open, int(self.config.endpoint.max_segment * SAMPLE_RATE)
        lo = max(seg.commit_bound, seg.start + limit // 2)
        hi = max(seg.start + limit, seg.commit_bound + SAMPLE_RATE)
        block = self._endpointer.quietest(-(-lo // BLOCK), hi // BLOCK)
        more = self._endpointer.force_cut(block)
        self._close_at(block * BLOCK)
        for cut in more:
            self._close_at(cut * BLOCK)
        self._follow_silence()

    def _encode(self, seg: Segment, end: int) -> torch.Tensor | None:
        if seg.encoded is not None and seg.encoded[0] == end:
            return seg.encoded[1]
        frames = seg.frames_upto(end)
        if frames.size(0) == 0:
            return None
        self.stats.encodes += 1
        seg.encoded = (end, self.decoder.encode(frames, seg.warp))
        return seg.encoded[1]

    def _partial(self) -> PartialEvent:
        seg, begun = self._open, time.perf_counter()
        end = seg.end
        self.stats.skipped_partials += max(0, (end - seg.decoded_to) // self.chunk - 1)
        draft = seg.policy.tentative(seg.hypothesis)
        hypothesis = seg.hypothesis = self.decoder.partial(self._encode(seg, end), seg.policy.committed, draft)
        if seg.policy.update(hypothesis):
            seg.commit_bound = seg.hypothesis_end
        seg.hypothesis_end = seg.decoded_to = end
        self.stats.partials += 1
        self.stats.compute_seconds += time.perf_counter() - begun
        self._last = PartialEvent(segment=seg.index, committed=self.decoder.text(seg.policy.committed),
                                  tentative=self.decoder.text(seg.policy.tentative(hypothesis)),
                                  start=seg.start / SAMPLE_RATE, audio_time=end / SAMPLE_RATE,
                                  wall_time=self.wall_time())
        return self._last

    def _decode_final(self, seg: Segment, end: int) -> FinalDecode:
        """The final decode of ``seg``'s audio up to ``end``: continuing its committed tokens, with the
        last partial as draft (and the unconstrained decode when the offline check is on)."""
        committed = list(seg.policy.committed)
        encoded = self._encode(seg, end)
        if encoded is None:
            return FinalDecode(committed, committed if self.config.offline_check else None)
        draft = seg.policy.tentative(seg.hypothesis)
        return self.decoder.final(encoded, committed, self.config.offline_check, draft)

    def _speculation_due(self) -> bool:
        """Speech has paused for ``tail``: if the pause lasts, the segment will end exactly here."""
        ep, seg = self._endpointer, self._open
        cut = (ep.speech_end + ep.tail) * BLOCK
        return ep.speaking and ep.now - ep.speech_end >= ep.tail and cut > seg.start and \
            (seg.speculative is None or seg.speculative[0] != cut)

    def _speculate(self) -> None:
        """Decode the final of the pausing segment ahead of its endpoint (kept if the pause lasts and no
        word was committed meanwhile), so the final comes out when the endpoint is confirmed."""
        seg, begun = self._open, time.perf_counter()
        cut = (self._endpointer.speech_end + self._endpointer.tail) * BLOCK
        seg.speculative = (cut, len(seg.policy.committed), self._decode_final(seg, cut))
        self.stats.compute_seconds += time.perf_counter() - begun

    def _final(self, seg: Segment) -> FinalEvent:
        begun = time.perf_counter()
        ready = seg.speculative
        if ready is not None and ready[0] == seg.end and ready[1] == len(seg.policy.committed):
            result = ready[2]
            self.stats.speculated += 1
        else:
            result = self._decode_final(seg, seg.end)
        tokens, offline = result.tokens, result.offline_tokens
        if self._judge.factors and self._queued < JUDGE_SECONDS * 100:
            self._unjudged.append(seg.frames_upto(seg.end))
            self._queued += len(self._unjudged[-1])
        text = self.decoder.text(tokens)
        offline_text = self.decoder.text(offline) if offline is not None else None
        self.stats.finals += 1
        self.stats.compute_seconds += time.perf_counter() - begun
        return FinalEvent(segment=seg.index, text=text, start=seg.start / SAMPLE_RATE, end=seg.end / SAMPLE_RATE,
                          tokens=tokens, audio_time=self.audio_time, wall_time=self.wall_time(),
                          offline_text=offline_text,
                          agreement=word_agreement(offline_text, text) if offline_text is not None else None)

    def _judge_warp(self, frames: torch.Tensor) -> None:
        """Fold a finished segment's frames into the choice of warp (the first JUDGE_SECONDS of
        speech are judged); segments that open later use the choice so far (an open one that has been
        decoded keeps its own: committed words stay)."""
        if frames.size(0) < MIN_JUDGE_SECONDS * 100:
            return
        begun = time.perf_counter()
        self._judge.add(self.decoder.warp_fits(frames))
        self.warp = self._judge.best
        if self._open.encoded is None:
            self._open.warp = self.warp
        self.stats.compute_seconds += time.perf_counter() - begun

    def status(self, overflows: int = 0, error: str | None = None, finished: bool = False) -> StatusEvent:
        """The stream's health now: real-time factor of decoding, lag behind the audio, input level."""
        audio, wall = self.audio_time, self.wall_time()
        return StatusEvent(audio_time=audio, wall_time=wall,
                           rtf=self.stats.compute_seconds / audio if audio else 0.0, lag=max(0.0, wall - audio),
                           overflows=overflows, skipped_partials=self.stats.skipped_partials, level_db=self._level,
                           error=error, finished=finished)


class Recognizer:
    """A model, its processor and a ``StreamConfig``; holds no audio, so one recognizer serves many streams."""

    def __init__(self, model: Any, processor: Any, config: StreamConfig | None = None) -> None:
        self.model, self.processor = model, processor
        self.config = config or StreamConfig()
        partial_beams, final_beams = self.beams()
        self.decoder = SegmentDecoder(model, processor, partial_beams, self.config.partial_max_new_tokens,
                                      ctc_weight=self.config.ctc_weight,
                                      lexicon_penalty=self.config.lexicon_penalty,
                                      lm_weight=self.config.lm_weight, word_bonus=self.config.word_bonus,
                                      final_beams=final_beams,
                                      warp_factors=model_warp_factors(model))

    def beams(self) -> tuple[int, int]:
        """The partials' and the finals' beam sizes: the stream's settings, else the model's, else greedy."""
        gc = getattr(self.model, "generation_config", None)
        partial = self.config.num_beams or getattr(gc, "stream_num_beams", None) or 1
        return partial, self.config.final_beams or getattr(gc, "stream_final_beams", None) or partial

    @classmethod
    def from_pretrained(cls, name_or_path: Any, config: StreamConfig | None = None, device: Any = None) -> "Recognizer":
        """Load a model folder, fairseq checkpoint or hub id (``ModelError`` when that fails)."""
        from s2t_live.model import Speech2TextForConditionalGeneration
        from s2t_live.processor import Speech2TextProcessor

        model = Speech2TextForConditionalGeneration.from_pretrained(name_or_path, device=device)
        model.eval()
        return cls(model, Speech2TextProcessor.from_pretrained(name_or_path), config)

    def create_stream(self, clock: Callable[[], float] = time.monotonic) -> Stream:
        """A new stream whose ``wall_time`` counts from now on ``clock``."""
        return Stream(self.decoder, self.config, clock)
