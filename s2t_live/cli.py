"""The ``s2t-live`` command: ``transcribe`` files, ``listen`` live, ``stream`` a file, list ``devices``,
start the ``gui``. Every failure a person can fix ends as one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from .errors import OutputError, S2TError
from .export import FORMATS, render, write_atomic

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def number_argument(what: str, low: float, high: float, span: str) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high`` (``span`` says so in the error)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} is {span}, not {text!r}")
        return value
    return parse


def count_argument(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1 (``what`` names it in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} is a whole number >= 1, not {text!r}")
        return value
    return parse


beams_argument = count_argument("the beam size")  # --num-beams, --beams, --final-beams
tokens_argument = count_argument("the token limit")  # --max-new-tokens
threads_argument = count_argument("the number of threads")  # --threads
seconds_argument = number_argument("the duration", 1e-3, 1e9, "a number of seconds, at least 0.001")
speed_argument = number_argument("the speed", 0.0, 1e6, "a number >= 0 (0: as fast as possible)")
_warp_factor = number_argument("the frequency warp", 0.5, 2.0, "'auto' or a number from 0.5 to 2 (1: none)")


def warp_argument(text: str) -> float | None:
    """``--warp``: 'auto' (None: the model's choice per file or speaker) or a fixed factor."""
    return None if text == "auto" else _warp_factor(text)


def add_warp_argument(parser: argparse.ArgumentParser, unit: str) -> None:
    parser.add_argument("--warp", type=warp_argument, default=None, metavar="auto|FACTOR",
                        help=f"frequency warp of the audio: 'auto' (default) tries the model's warp_factors "
                             f"and keeps the one the model prefers, per {unit} (models that list none: no "
                             "warp); a number fixes it, 1 turns it off")


weight_argument = number_argument("the CTC weight", 0.0, 1.0, "a number from 0 to 1")  # --ctc-weight
penalty_argument = number_argument("the lexicon penalty", 0.0, 1e30, "a number >= 0")  # --lexicon-penalty
lm_weight_argument = number_argument("the LM weight", 0.0, 1e30, "a number >= 0")  # --lm-weight
bonus_argument = number_argument("the word bonus", -1e30, 1e30, "a number")  # --word-bonus


def add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lm-weight`` and ``--word-bonus``: shallow fusion with the model's word LM (lm.npz or lm.arpa)."""
    parser.add_argument("--lm-weight", type=lm_weight_argument, default=None,
                        help="weight of the model's word language model (lm.npz or lm.arpa), for models that have one; "
                             "0 turns it off (default: the model's)")
    parser.add_argument("--word-bonus", type=bonus_argument, default=None,
                        help="score added per word while the word LM is on (default: the model's)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default=None,
                        help="model folder, fairseq .pt checkpoint or hub id (default: the embedded model)")


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .transcribe import Transcriber  # torch import only when needed

    transcriber = Transcriber(args.model, device=args.device, tgt_lang=args.tgt_lang, quantize=args.int8,
                              batch_size=args.batch_size, warp=args.warp, num_beams=args.num_beams,
                              max_new_tokens=args.max_new_tokens, ctc_weight=args.ctc_weight,
                              lexicon_penalty=args.lexicon_penalty, lm_weight=args.lm_weight,
                              word_bonus=args.word_bonus)
    failures = 0
    for file, result in transcriber.transcribe_files(args.files, split=not args.no_split, show_progress=True):
        if isinstance(result, S2TError):
            print(f"s2t-live: error: {result}", file=sys.stderr)
            failures += 1
            continue
        text = render(result.segments, args.format, file=result.file, duration=result.duration)
        if args.output_dir:
            target = Path(args.output_dir) / f"{Path(file).stem}.{args.format}"
            write_atomic(target, text)
            print(target, file=sys.stderr)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return EXIT_ERROR if failures else 0


def run_gui(gui_args: list[str]) -> int:
    # The GUI is a separate package (s2t_live.ui) that depends on this one; find it through its entry point.
    try:
        entry = next(iter(metadata.entry_points(group="console_scripts", name="s2t-live-gui")))
        gui_main = entry.load()
    except (StopIteration, ImportError, metadata.PackageNotFoundError) as exc:
        raise S2TError(f"the desktop app is not installed ({exc}); reinstall s2t-live") from None
    return int(gui_main(gui_args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2t-live", description="Speech recognition with Speech2Text models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("files", nargs="+", metavar="FILE", help="wav, flac, mp3 or ogg; any rate and channels")
    add_model_arguments(p)
    p.add_argument("--num-beams", type=beams_argument, default=None, help="beam size (default: the model's)")
    p.add_argument("--max-new-tokens", type=tokens_argument, default=None, help="longest text per piece, in tokens")
    p.add_argument("--ctc-weight", type=weight_argument, default=None,
                   help="weight of the CTC head in joint CTC/attention decoding, 0-1, for models that have "
                        "one (default: the model's)")
    p.add_argument("--lexicon-penalty", type=penalty_argument, default=None,
                   help="score cost of each word outside the model's lexicon.txt, for models that have one; "
                        "0 turns it off (default: the model's)")
    add_lm_arguments(p)
    add_warp_argument(p, "piece of speech or per file, as the model asks")
    p.add_argument("--batch-size", type=int, default=8,
                   help="pieces decoded together (default 8; 1 decodes them one by one)")
    p.add_argument("--format", "-f", choices=FORMATS, default="txt")
    p.add_argument("--output-dir", "-o", default=None, help="write FILE's stem + format here instead of stdout")
    p.add_argument("--no-split", action="store_true", help="decode each file as one utterance")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--tgt-lang", default=None, help="target language of a multilingual translation model")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of linear layers (CPU, faster)")
    p.set_defaults(func=cmd_transcribe)

    sub.add_parser("gui", help="start the desktop app (its options: s2t-live gui --help)", add_help=False)

    from . import cli_stream, cli_train

    cli_stream.add_listen_parser(sub)
    cli_stream.add_stream_parser(sub)
    cli_stream.add_devices_parser(sub)
    cli_train.add_train_parser(sub)
    cli_train.add_evaluate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["gui"]:  # everything after "gui" belongs to the app's own parser
            return run_gui(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except S2TError as exc:
        print(f"s2t-live: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("s2t-live: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a full disk or a closed terminal while writing results
        print(f"s2t-live: error: {OutputError(exc)}", file=sys.stderr)
        return EXIT_ERROR


def entry() -> None:
    """The console script: ``main``, then exit without tearing the interpreter down.

    Unloading torch and every module at exit takes most of a second, longer than decoding a short file;
    once the results are written and flushed there is nothing left to clean up. The desktop app exits
    normally (Qt has its own shutdown)."""
    code = main()
    if sys.argv[1:2] == ["gui"]:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
