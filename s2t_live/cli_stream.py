"""The streaming subcommands of ``s2t-live``: ``listen`` (microphone), ``stream`` (a file through the
live path) and ``devices``. Each ``add_*_parser`` registers one subcommand whose ``func(args)`` returns
the exit status; failures a person can fix are raised as ``S2TError`` for ``s2t_live.cli`` to print."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any, TextIO

from .cli import (add_lm_arguments, add_warp_argument, beams_argument, penalty_argument, seconds_argument, speed_argument,
                  threads_argument, weight_argument)
from .export import Segment, render, to_srt, write_atomic
from .streaming.endpoint import EndpointConfig
from .streaming.events import Event, FinalEvent, PartialEvent, StatusEvent
from .streaming.recognizer import Recognizer, StreamConfig
from .streaming.worker import EventQueue, StreamingWorker

DIM, RESET, CLEAR_LINE = "\033[2m", "\033[0m", "\r\033[K"


def _add_recognizer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder, fairseq checkpoint or hub id (default: the built-in model)")
    parser.add_argument("--chunk", type=seconds_argument, default=0.5, help="seconds of new audio between partial results")
    parser.add_argument("--beams", type=beams_argument, default=None,
                        help="beam size of partial results, 1 = greedy (default: the model's streaming setting, "
                             "else greedy)")
    parser.add_argument("--final-beams", type=beams_argument, default=None,
                        help="beam size of final results (default: the model's streaming setting, else --beams)")
    parser.add_argument("--ctc-weight", type=weight_argument, default=None,
                        help="weight of the CTC head in joint decoding, 0-1 (default: the model's)")
    parser.add_argument("--lexicon-penalty", type=penalty_argument, default=None,
                        help="cost of each word outside the model's lexicon, 0: off (default: the model's)")
    add_lm_arguments(parser)
    add_warp_argument(parser, "stream (chosen on its first minute of speech)")
    parser.add_argument("--silence", type=seconds_argument, default=0.5, help="trailing silence (s) that ends a segment")
    parser.add_argument("--max-segment", type=seconds_argument, default=16.0, help="longest segment (s) before a forced cut")
    parser.add_argument("--threads", type=threads_argument, default=None, help="CPU threads for the model")


def load_recognizer(args: argparse.Namespace, offline_check: bool) -> Recognizer:
    """The recognizer the command-line options describe (``ModelError`` when the model cannot load)."""
    import torch

    from .hub import default_model

    if args.threads:
        torch.set_num_threads(args.threads)
    endpoint = EndpointConfig(min_silence=args.silence, max_segment=args.max_segment)
    config = StreamConfig(chunk_seconds=args.chunk, num_beams=args.beams, final_beams=args.final_beams,
                          offline_check=offline_check,
                          endpoint=endpoint, ctc_weight=args.ctc_weight,
                          lexicon_penalty=args.lexicon_penalty, lm_weight=args.lm_weight,
                          word_bonus=args.word_bonus, warp=args.warp)
    return Recognizer.from_pretrained(args.model or default_model(), config)


def event_json(event: PartialEvent | FinalEvent) -> str:
    """One JSON line: "type", "text", "committed", "start", "end", "audio_time", "wall_time" (finals add
    "tokens", "offline_text", "agreement"; a partial's "end" is the audio it has heard)."""
    data: dict[str, Any] = event.to_dict()
    if isinstance(event, PartialEvent):
        data["end"] = event.audio_time
    else:
        data["committed"] = event.text
    for key in ("start", "end", "audio_time", "wall_time"):
        data[key] = round(data[key], 3)
    return json.dumps(data, ensure_ascii=False)


class Captions:
    """Live captions on a text stream: finals as lines; on a terminal also the open segment on the
    current line, committed words plain and tentative ones dim, redrawn in place."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty = out, tty

    def partial(self, event: PartialEvent) -> None:
        if not self.tty:
            return
        line = event.text[-(shutil.get_terminal_size().columns - 1):]  # newest words on the one line
        split = len(line) - min(len(event.tentative), len(line))
        self.out.write(f"{CLEAR_LINE}{line[:split]}{DIM}{line[split:]}{RESET}")
        self.out.flush()

    def final(self, event: FinalEvent) -> None:
        prefix = CLEAR_LINE if self.tty else ""
        if event.text or self.tty:
            self.out.write(f"{prefix}{event.text}\n" if event.text else prefix)
        self.out.flush()


def _consume(worker: StreamingWorker, events: EventQueue, on_event: Any) -> None:
    """Hand every event to ``on_event`` until the worker's finished status; the first Ctrl-C stops the
    worker (which finalises the open segment) instead of abandoning it."""
    while True:
        try:
            event = events.get(0.1)
        except KeyboardInterrupt:
            worker.stop(wait=False)
            continue
        if event is None:
            continue
        on_event(event)
        if isinstance(event, StatusEvent) and event.finished:
            break
    worker.join()
    if worker.error is not None:
        raise worker.error


def _segments(finals: list[FinalEvent]) -> list[Segment]:
    return [Segment(f.start, f.end, f.text, list(f.tokens)) for f in finals if f.text]


def run_listen(args: argparse.Namespace) -> int:
    from .streaming.microphone import MicrophoneSource, find_device

    device = int(args.device) if args.device is not None and str(args.device).isdigit() else args.device
    find_device(device)  # no microphone: say so before loading a model
    recognizer = load_recognizer(args, offline_check=args.offline_check)
    events = EventQueue()
    worker = StreamingWorker(recognizer, MicrophoneSource(device), events)
    captions = Captions(sys.stdout, sys.stdout.isatty())
    finals: list[FinalEvent] = []

    def show(event: Event) -> None:
        if isinstance(event, PartialEvent):
            captions.partial(event)
        elif isinstance(event, FinalEvent):
            captions.final(event)
            finals.append(event)

    print("listening; press Ctrl-C to stop", file=sys.stderr)
    worker.start()
    try:
        _consume(worker, events, show)
    finally:
        if args.srt:
            write_atomic(args.srt, to_srt(_segments(finals)))
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from .streaming.sources import FileSource

    source = FileSource(args.file, speed=args.speed)
    recognizer = load_recognizer(args, offline_check=not args.no_offline_check)
    events = EventQueue()
    worker = StreamingWorker(recognizer, source, events)
    finals: list[FinalEvent] = []

    def show(event: Event) -> None:
        if isinstance(event, FinalEvent):
            finals.append(event)
        if args.format == "jsonl" and isinstance(event, (PartialEvent, FinalEvent)):
            print(event_json(event), flush=True)
        elif isinstance(event, StatusEvent) and event.error and worker.error is None:
            print(f"error: {event.error}", file=sys.stderr)

    worker.start()
    _consume(worker, events, show)
    if args.format != "jsonl":
        sys.stdout.write(render(_segments(finals), args.format))
    return 0


def run_devices(args: argparse.Namespace) -> int:
    from .streaming.microphone import list_input_devices

    for device in list_input_devices():
        mark = "  (default)" if device.is_default else ""
        print(f"{device.index}: {device.name}  [{device.channels} ch, {device.default_samplerate:g} Hz]{mark}")
    return 0


def add_listen_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("listen", help="live captions from a microphone")
    _add_recognizer_options(parser)
    parser.add_argument("--device", help="input device index or part of its name (see `s2t-live devices`)")
    parser.add_argument("--srt", help="also write the captions to this SRT file when stopped")
    parser.add_argument("--offline-check", action="store_true",
                        help="also decode each segment offline and report agreement (costs CPU)")
    parser.set_defaults(func=run_listen)
    return parser


def add_stream_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("stream", help="play an audio file through the live recognizer")
    parser.add_argument("file", help="audio file (WAV, FLAC, OGG, MP3)")
    _add_recognizer_options(parser)
    parser.add_argument("--speed", type=speed_argument, default=1.0, help="x real time (0 = as fast as possible)")
    parser.add_argument("--format", choices=("jsonl", "srt", "txt"), default="jsonl")
    parser.add_argument("--no-offline-check", action="store_true",
                        help="skip the offline decode of each segment (no offline_text/agreement)")
    parser.set_defaults(func=run_stream)
    return parser


def add_devices_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("devices", help="list audio input devices")
    parser.set_defaults(func=run_devices)
    return parser

