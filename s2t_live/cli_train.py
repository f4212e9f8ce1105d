"""The ``train`` and ``evaluate`` subcommands of ``s2t-live``.

    s2t-live train recipes/embedded.toml data.corpus=/path/to/corpus [--no-resume] [--device cuda]
    s2t-live evaluate --model runs/embedded/model --manifest corpus/test.tsv [--num-beams 5] [--limit 200]

Several processes: ``torchrun --nproc-per-node N -m s2t_live.cli_train train RECIPE ...``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from .errors import S2TError


def cmd_train(args: argparse.Namespace) -> int:
    from .train.config import load_config  # torch import only when needed
    from .train.recipe import train

    cfg = load_config(args.config, args.overrides)
    if args.device:
        cfg.device = args.device
    print(train(cfg, resume=args.resume))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train.evaluate import run

    return run(args)


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train RECIPE [KEY=VALUE ...] [--resume/--no-resume] [--device D]`` to ``subparsers``."""
    p = subparsers.add_parser("train", help="train or fine-tune a model on fairseq S2T manifests",
                              description="Train a Speech2Text model as a recipe describes; a stopped run "
                                          "continues from its last checkpoint.")
    p.add_argument("config", metavar="RECIPE", help="TOML, JSON or YAML recipe, e.g. recipes/embedded.toml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override recipe settings, e.g. data.corpus=corpus optim.lr=1e-3 max_minutes=30")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last checkpoint in output_dir (default); --no-resume deletes the "
                        "old checkpoints and tokenizer and starts over")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the recipe's)")
    p.set_defaults(func=cmd_train)
    return p


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate --model DIR --manifest TSV [--num-beams N] [--limit N]`` to ``subparsers``."""
    from .train.evaluate import add_arguments

    p = subparsers.add_parser("evaluate", help="word error rate of a model on a manifest",
                              description="Decode a fairseq S2T manifest and print the word error rate.")
    add_arguments(p)
    p.set_defaults(func=cmd_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (also what ``torchrun -m s2t_live.cli_train`` runs)."""
    parser = argparse.ArgumentParser(prog="s2t-live")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(sub)
    add_evaluate_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except S2TError as exc:
        print(f"s2t-live: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("s2t-live: interrupted; run the same command again to continue from the last checkpoint",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
