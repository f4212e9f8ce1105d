"""Latency of the streaming recognizer at real time, against offline decoding of the same audio.

Each real clip (and one ~44 s concatenation of them) is played at ``--speed`` x real time through the
``StreamingWorker``. Printed per input and overall: partial lag (wall_time - audio_time), final lag
(wall_time - end of the segment), the real-time factor of decoding (compute / audio), the process's CPU
use (cores busy on average), and word agreement of the streaming finals with (a) the unconstrained decode
of each final's own segment and (b) one offline decode of the whole input. Without ``--model`` an
s2t-small-shaped checkpoint is fitted briefly on the clips (cached in ``--cache``).

    python bench/stream_latency.py [--model DIR] [--threads 1] [--chunk 0.5] [--beams 1] [--final-beams N] [--warp 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s2t_live.streaming.decoder import word_agreement
from s2t_live.streaming.events import FinalEvent, PartialEvent
from s2t_live.streaming.recognizer import Recognizer, StreamConfig
from s2t_live.streaming.sources import PacedSource
from s2t_live.streaming.worker import EventQueue, StreamingWorker
from s2t_live.testing import build_checkpoint, read_clips
from s2t_live.warp import choose_warp, warped_features

SR = 16000
CONCAT = ["jfk.flac", "ls_2412-153948-0000.flac", "ls_2412-153948-0001.flac", "LJ050-0131.wav",
          "LJ002-0020.wav", "LJ002-0035.wav"]  # 44 s


@dataclass
class Run:
    name: str
    seconds: float
    partial_lags: list[float] = field(default_factory=list)
    final_lags: list[float] = field(default_factory=list)
    segment_agreements: list[float] = field(default_factory=list)
    rtf: float = 0.0
    cpu: float = 0.0
    skipped: int = 0
    whole_agreement: float = 0.0
    offline_rtf: float = 0.0
    ordered: bool = True
    covered: float = 0.0


def model_folder(args: argparse.Namespace, clips: list) -> Path:
    if args.model:
        return Path(args.model)
    folder = Path(args.cache) / f"small-steps{args.build_steps}"
    if not (folder / "model.safetensors").exists():
        print(f"fitting an s2t-small-shaped checkpoint for {args.build_steps} steps into {folder} ...", flush=True)
        short = [(n, w[: 6 * SR], t) for n, w, t in clips]
        build_checkpoint(folder, short, seed=0, shape="small", steps=args.build_steps, lr=1e-3)
    return folder


def offline(recognizer: Recognizer, wave: np.ndarray) -> tuple[str, float]:
    """Text of one unconstrained decode of all of ``wave`` (warped as the stream's settings ask, the warp
    judged on the whole input) and the seconds it took."""
    begun = time.perf_counter()
    extractor, warp = recognizer.processor.feature_extractor, recognizer.config.warp
    if warp is None:
        warp = choose_warp(recognizer.model, extractor, [wave], recognizer.decoder.warp_factors)
    frames = warped_features(extractor, wave, warp)
    ids = recognizer.model.generate(frames, num_beams=recognizer.decoder.final_beams,
                                    max_length=recognizer.decoder.max_length)
    return recognizer.processor.tokenizer.decode(ids[0], skip_special_tokens=True), time.perf_counter() - begun


def run_one(recognizer: Recognizer, name: str, wave: np.ndarray, speed: float) -> Run:
    events = EventQueue(maxsize=100_000)
    worker = StreamingWorker(recognizer, PacedSource(wave, speed=speed), events)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    worker.start()
    out = list(events.events())
    worker.join()
    run = Run(name, wave.size / SR)
    run.cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    finals = [e for e in out if isinstance(e, FinalEvent)]
    run.partial_lags = [e.wall_time - e.audio_time for e in out if isinstance(e, PartialEvent)]
    run.final_lags = [e.wall_time - e.end for e in finals]
    run.segment_agreements = [e.agreement for e in finals if e.agreement is not None]
    run.rtf = worker.stream.stats.compute_seconds / run.seconds
    run.skipped = worker.stream.stats.skipped_partials
    run.ordered = all(a.end <= b.start for a, b in zip(finals, finals[1:]))
    run.covered = sum(f.end - f.start for f in finals) / run.seconds
    text, took = offline(recognizer, wave)
    run.whole_agreement = word_agreement(text, " ".join(f.text for f in finals))
    run.offline_rtf = took / run.seconds
    return run


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(runs: list[Run]) -> None:
    head = f"{'input':28s} {'sec':>5s} {'part p50':>8s} {'p95':>6s} {'final p50':>9s} {'p95':>6s} {'RTF':>5s} " \
           f"{'offRTF':>6s} {'CPU':>5s} {'skip':>4s} {'seg agr':>7s} {'whole agr':>9s} {'cover':>5s}"
    print(head)
    for r in runs:
        print(f"{r.name[:28]:28s} {r.seconds:5.1f} {pct(r.partial_lags, 50):8.3f} {pct(r.partial_lags, 95):6.3f} "
              f"{pct(r.final_lags, 50):9.3f} {pct(r.final_lags, 95):6.3f} {r.rtf:5.2f} {r.offline_rtf:6.3f} "
              f"{r.cpu:5.2f} {r.skipped:4d} {np.mean(r.segment_agreements or [np.nan]):7.3f} "
              f"{r.whole_agreement:9.3f} {r.covered:5.2f}{'' if r.ordered else '  OUT OF ORDER'}")
    partial = [x for r in runs for x in r.partial_lags]
    final = [x for r in runs for x in r.final_lags]
    seconds = sum(r.seconds for r in runs)
    print(f"\nall inputs ({seconds:.0f} s of audio): partial lag p50 {pct(partial, 50):.3f} s (target <= 0.35), "
          f"p95 {pct(partial, 95):.3f} s (<= 0.8); final lag p50 {pct(final, 50):.3f} s (<= 0.8), "
          f"p95 {pct(final, 95):.3f} s")
    print(f"RTF {sum(r.rtf * r.seconds for r in runs) / seconds:.3f}, CPU {np.mean([r.cpu for r in runs]):.2f} cores, "
          f"segment agreement {np.mean([a for r in runs for a in r.segment_agreements]):.3f}, "
          f"whole-input agreement {np.mean([r.whole_agreement for r in runs]):.3f}, "
          f"finals in order: {all(r.ordered for r in runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: fit an s2t-small-shaped one)")
    parser.add_argument("--clips", default=str(Path(__file__).resolve().parents[1] / "tests" / "data" / "realspeech"))
    parser.add_argument("--cache", default="/tmp/s2t-live-bench")
    parser.add_argument("--build-steps", type=int, default=50)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=float, default=0.5)
    parser.add_argument("--beams", type=int, default=None, help="partials' beam size (default: the model's, else 1)")
    parser.add_argument("--final-beams", type=int, default=None, help="finals' beam size (default: the model's)")
    parser.add_argument("--warp", type=float, default=None,
                        help="fixed frequency warp (default: the model's choice; 1: none)")
    parser.add_argument("--only", nargs="*", help="clip names to run (default: all, plus the concatenation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = read_clips(args.clips)
    folder = model_folder(args, clips)
    config = StreamConfig(chunk_seconds=args.chunk, num_beams=args.beams, final_beams=args.final_beams,
                          warp=args.warp, offline_check=True)
    recognizer = Recognizer.from_pretrained(folder, config)
    waves = {name: wave for name, wave, _ in clips}
    inputs = [(n, waves[n]) for n in (args.only or waves)]
    if not args.only:
        inputs.append(("concatenation", np.concatenate([waves[n] for n in CONCAT])))
    print(f"model {folder} ({recognizer.model.num_parameters() / 1e6:.1f} M parameters), {args.threads} thread(s), "
          f"chunk {args.chunk} s, beams {'/'.join(map(str, recognizer.beams()))}, speed {args.speed}")
    report([run_one(recognizer, name, wave, args.speed) for name, wave in inputs])


if __name__ == "__main__":
    main()
