"""Word error rate of a model on a manifest, decoded by the engine.

    python -m s2t_live.train.evaluate --model DIR --manifest TSV [--num-beams N] [--limit N] [--by-speaker] [--by-voice]

Each utterance is encoded on its own, as ``s2t-live transcribe`` encodes each piece (padding would move a
shorter utterance's last encoder frames, up to 1.2 on the embedded model, since the convolutions read
padded frames as in the reference), and the decoder runs on batches of similar length. References and
hypotheses are compared after
``normalize_text`` (case folded, punctuation other than apostrophes removed), with jiwer.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..audio import load_audio
from ..errors import S2TError
from ..warp import choose_warp, longest_pieces, model_warp_factors, warp_decodes
from .data import Utterance, read_manifest


@dataclass
class EvalResult:
    """WER (a fraction) over ``num_words`` reference words, and what was compared."""

    wer: float
    num_utterances: int
    num_words: int
    seconds: float
    references: list[str] = field(default_factory=list, repr=False)
    hypotheses: list[str] = field(default_factory=list, repr=False)
    speakers: list[str] = field(default_factory=list, repr=False)
    warps: list[float] = field(default_factory=list, repr=False)  # the frequency warp of each utterance

    def summary(self) -> str:
        return (f"WER {100 * self.wer:.2f}% on {self.num_utterances} utterances ({self.num_words} words, "
                f"{self.seconds:.1f} s)")

    def groups(self, voices: bool = False) -> dict[str, list[int]]:
        """Utterance indices per speaker (per voice: variants of one espeak-ng voice together)."""
        groups: dict[str, list[int]] = {}
        for i, speaker in enumerate(self.speakers or [""] * len(self.references)):
            groups.setdefault(speaker.split("+")[0] if voices else speaker, []).append(i)
        return groups

    def warp_labels(self, voices: bool = False) -> dict[str, str]:
        """``"  warp 1.15"`` (or a range) per speaker group whose audio was warped; nothing for the others."""
        out = {}
        for speaker, indices in self.groups(voices).items():
            used = sorted({self.warps[i] for i in indices}) if self.warps else [1.0]
            if used != [1.0]:
                out[speaker or "(no speaker)"] = "  warp " + (f"{used[0]:g}" if len(used) == 1
                                                              else f"{used[0]:g}-{used[-1]:g}")
        return out

    def by_speaker(self, voices: bool = False) -> list[tuple[str, float, int, int]]:
        """(speaker, WER, utterances, reference words) per distinct ``speaker``, worst first; utterances
        without a speaker count as "" . With ``voices``, speakers that differ only in a variant suffix
        (espeak-ng's ``voice+variant``) are one group."""
        rows = []
        for speaker, indices in self.groups(voices).items():
            refs = [self.references[i] for i in indices]
            words = count_words(refs)
            wer = word_error_rate(refs, [self.hypotheses[i] for i in indices]) if words else 0.0
            rows.append((speaker, wer, len(indices), words))
        return sorted(rows, key=lambda row: (-row[1], row[0]))


def normalize_text(text: str) -> str:
    """Case-folded words without punctuation (apostrophes inside words kept), single-spaced."""
    chars = [" " if unicodedata.category(c).startswith(("P", "S")) and c != "'" else c for c in text.casefold()]
    words = (w.strip("'") for w in "".join(chars).split())
    return " ".join(w for w in words if w)


def count_words(texts: Sequence[str]) -> int:
    """Words of ``texts`` after ``normalize_text``: what a WER is counted over."""
    return sum(len(normalize_text(t).split()) for t in texts)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level WER (total edits / total reference words) of normalised texts; empty references are
    left out (jiwer cannot score them)."""
    try:
        import jiwer
    except ImportError:
        raise S2TError("scoring needs jiwer: pip install jiwer") from None

    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        raise S2TError("no reference words to score")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def length_batches(utterances: Sequence[Utterance], max_frames: int) -> list[list[int]]:
    """Indices grouped by length so that each batch pads to at most ``max_frames`` frames."""
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].n_frames)
    batches: list[list[int]] = []
    for index in order:
        n = utterances[index].n_frames
        if batches and (len(batches[-1]) + 1) * n <= max_frames:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


@torch.inference_mode()
def decode_utterances(model: Any, processor: Any, utterances: Sequence[Utterance], max_frames: int = 20000,
                      warps: Sequence[float] | None = None, pick_warps: bool = False,
                      **options: Any) -> tuple[list[str], list[float]]:
    """Hypotheses for ``utterances``, in their order, decoded by ``model.generate(**options)`` (options
    left out or None: the model's generation defaults), and the warp of each. Each utterance is encoded
    unpadded (its audio warped by ``warps[i]``, if given), the decoder runs on batches of up to
    ``max_frames`` padded frames. With ``pick_warps`` (and no ``warps``) each utterance is decoded at the
    model's ``warp_decodes`` surest warps and keeps the best-scoring hypothesis
    (``s2t_live.transcribe.decode_best_warp``), as ``transcribe`` decodes each piece."""
    from ..transcribe import decode_best_warp, encode_each

    was_training = model.training
    model.eval()
    texts, used = [""] * len(utterances), list(warps or [1.0] * len(utterances))
    pick = pick_warps and warps is None and warp_decodes(model) > 0
    for indices in length_batches(utterances, max_frames):
        waves = [load_audio(utterances[i].audio) for i in indices]
        if pick:
            best = decode_best_warp(model, processor, waves, model_warp_factors(model), warp_decodes(model),
                                    len(waves), **options)
            ids = [row for _, row in best]
            for i, (alpha, _) in zip(indices, best):
                used[i] = alpha
        else:
            hidden, mask = encode_each(model, processor, waves, [warps[i] for i in indices] if warps else None)
            ids = model.generate(encoder_outputs=(hidden,), attention_mask=mask, **options)
        for i, text in zip(indices, processor.batch_decode(ids, skip_special_tokens=True)):
            texts[i] = text
    model.train(was_training)
    return texts, used


def evaluate(model: Any, processor: Any, utterances: Sequence[Utterance], max_frames: int = 20000,
             warps: Sequence[float] | None = None, pick_warps: bool = False, **options: Any) -> EvalResult:
    """Decode ``utterances`` (``warps``, ``pick_warps`` and ``options`` as for ``decode_utterances``) and
    score them against their transcripts."""
    start = time.monotonic()
    hyps, used = decode_utterances(model, processor, utterances, max_frames, warps, pick_warps, **options)
    refs = [u.text for u in utterances]
    return EvalResult(word_error_rate(refs, hyps), len(refs), count_words(refs), time.monotonic() - start,
                      refs, hyps, [u.speaker for u in utterances], used)


def speaker_warps(model: Any, processor: Any, utterances: Sequence[Utterance]) -> list[float]:
    """Each utterance's frequency warp: per speaker, the one of the model's ``warp_factors`` that its CTC
    head prefers on that speaker's audio (``s2t_live.warp.choose_warp``); all 1.0 for models without."""
    factors = model_warp_factors(model)
    if not factors:
        return [1.0] * len(utterances)
    chosen: dict[str, float] = {}
    for speaker in dict.fromkeys(u.speaker for u in utterances):
        group = [u for u in utterances if u.speaker == speaker]
        judged = longest_pieces([u.n_frames / 100 for u in group])  # only their audio is read
        chosen[speaker] = choose_warp(model, processor.feature_extractor, [load_audio(group[i].audio) for i in judged],
                                      factors)
    return [chosen[u.speaker] for u in utterances]


def evaluate_model(model_dir: str, manifest: str, limit: int | None = None, device: str = "cpu",
                   audio_root: str | None = None, warp: float | None = None, **options: Any) -> EvalResult:
    """Load a model folder (or hub id) and evaluate it on the first ``limit`` rows of ``manifest``;
    ``options`` (``num_beams``, ``ctc_weight``, ``lexicon_penalty``, ...) left out or None use the
    model's generation defaults. ``warp``: every utterance's frequency warp; None: the model's choice, as
    ``transcribe`` makes it: per utterance by decoding (``warp_decodes``), else per speaker by the CTC head
    (``speaker_warps``)."""
    from ..model import Speech2TextForConditionalGeneration
    from ..processor import Speech2TextProcessor

    utterances = read_manifest(manifest, audio_root, limit=limit)
    processor = Speech2TextProcessor.from_pretrained(model_dir)
    model = Speech2TextForConditionalGeneration.from_pretrained(model_dir, device=device)
    if warp is not None:
        return evaluate(model, processor, utterances, warps=[warp] * len(utterances), **options)
    if warp_decodes(model):
        return evaluate(model, processor, utterances, pick_warps=True, **options)
    start = time.monotonic()
    result = evaluate(model, processor, utterances, warps=speaker_warps(model, processor, utterances), **options)
    result.seconds = time.monotonic() - start  # the warps' choice included
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation options, shared by this module's CLI and ``s2t-live evaluate``."""
    from ..cli import (add_lm_arguments, add_warp_argument, beams_argument, count_argument, penalty_argument,
                       weight_argument)
    parser.add_argument("--model", "-m", required=True, help="model folder or hub id")
    parser.add_argument("--manifest", required=True, help="fairseq S2T manifest (TSV) to score")
    parser.add_argument("--num-beams", type=beams_argument, default=None, help="beam size (default: the model's)")
    parser.add_argument("--ctc-weight", type=weight_argument, default=None,
                        help="weight of the CTC head in joint decoding, 0-1 (default: the model's)")
    parser.add_argument("--lexicon-penalty", type=penalty_argument, default=None,
                        help="cost of each word outside the model's lexicon, 0: off (default: the model's)")
    add_lm_arguments(parser)
    add_warp_argument(parser, "utterance or per speaker (the manifest's speaker column), as the model "
                              "asks")
    parser.add_argument("--limit", type=count_argument("the utterance limit"), default=None, help="score only the first N utterances")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--audio-root", default=None, help="folder the audio paths are relative to "
                                                           "(default: the manifest's folder)")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="also print N wrong hypotheses")
    parser.add_argument("--by-speaker", action="store_true",
                        help="also print the WER of each speaker (the manifest's speaker column)")
    parser.add_argument("--by-voice", action="store_true",
                        help="also print the WER of each voice: speakers that differ only in a variant "
                             "(espeak-ng's voice+variant) together")


def run(args: argparse.Namespace) -> int:
    """Evaluate as the parsed ``args`` ask and print the WER line."""
    result = evaluate_model(args.model, args.manifest, args.limit, args.device, args.audio_root, args.warp,
                            num_beams=args.num_beams, ctc_weight=args.ctc_weight,
                            lexicon_penalty=args.lexicon_penalty, lm_weight=args.lm_weight,
                            word_bonus=args.word_bonus)
    shown = 0
    for ref, hyp in zip(result.references, result.hypotheses):
        if shown < args.show and normalize_text(ref) != normalize_text(hyp):
            print(f"REF: {ref}\nHYP: {hyp}\n")
            shown += 1
    for wanted, voices in ((args.by_speaker, False), (args.by_voice, True)):
        if not wanted:
            continue
        rows = [(speaker or "(no speaker)", *rest) for speaker, *rest in result.by_speaker(voices)]
        width = max(len(row[0]) for row in rows)
        warps = result.warp_labels(voices)
        for speaker, wer, utterances, words in rows:
            print(f"{speaker:{width}s}  WER {100 * wer:6.2f}%  {utterances} utterances, {words} words"
                  f"{warps.get(speaker, '')}")
    print(result.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2t_live.train.evaluate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except S2TError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
