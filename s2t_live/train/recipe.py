"""Train or fine-tune a Speech2Text model from fairseq S2T manifests: ``s2t-live train CONFIG [KEY=VALUE ...]``.

The recipe (TOML, JSON or YAML) fills ``TrainConfig`` (``s2t_live.train.config``; ``KEY=VALUE`` arguments
override it). A run trains a unigram sentencepiece tokenizer on the training transcripts (or reuses the
one of ``init_from``), then optimises label-smoothed cross-entropy with Adam and an inverse-square-root
schedule, saving resumable checkpoints into
``output_dir/checkpoints``. At the end (``max_steps``, ``max_epochs`` or ``max_minutes``) the last
checkpoints are averaged into ``output_dir/model``, a folder the engine loads.

Runs under ``torchrun`` are data-parallel (gloo on CPU, nccl on GPU): every rank takes every
``world_size``-th batch and only rank 0 writes. Across machines, ``output_dir`` must be a shared folder:
the other ranks read the tokenizer and, on resume, the checkpoints from it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..configuration import Speech2TextConfig
from ..features import Speech2TextFeatureExtractor
from ..model import Speech2TextForConditionalGeneration
from ..processor import Speech2TextProcessor
from ..tokenizer import Speech2TextTokenizer
from . import average
from .config import ConfigError, TrainConfig
from .data import SpeechDataset, filter_lengths, read_manifest, read_texts
from .distributed import barrier, cpu_has_fast_bfloat16, setup_distributed
from .trainer import Progress, Trainer, checkpoint_phonemes


def prepare_tokenizer(cfg: TrainConfig, out: Path, texts: Sequence[str], is_main: bool) -> Speech2TextTokenizer:
    """The run's tokenizer in ``out/tokenizer``: trained on ``texts`` (or ``tokenizer.texts``), or copied
    from ``init_from``; made once by rank 0 and reused on resume."""
    from .spm import train_tokenizer

    folder = out / "tokenizer"
    if is_main and not (folder / "vocab.json").is_file():
        if cfg.init_from:
            Speech2TextProcessor.from_pretrained(cfg.init_from).tokenizer.save_pretrained(folder)
        else:
            corpus = read_texts(cfg.tokenizer.texts) if cfg.tokenizer.texts else list(texts)
            train_tokenizer(folder, corpus, cfg.tokenizer.vocab_size, cfg.tokenizer.model_type)
    barrier()
    return Speech2TextTokenizer.from_pretrained(folder)


def initialize(model: Speech2TextForConditionalGeneration) -> None:
    """Xavier-uniform linear weights, N(0, d^-1/2) token embeddings (they are scaled by sqrt(d) and
    tied to the output layer), zero biases. The convolutions get N(0, 1/fan_in), which keeps the scale of
    their input: with PyTorch's default each GLU convolution shrinks it about threefold, so behind three of
    them the audio reaches the first layer weaker than the positional encoding, and learning starts slowly."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            torch.nn.init.xavier_uniform_(module.weight)
        elif isinstance(module, torch.nn.Conv1d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
        else:
            continue
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    embed = model.model.decoder.embed_tokens
    torch.nn.init.normal_(embed.weight, std=model.config.d_model ** -0.5)
    with torch.no_grad():
        embed.weight[model.config.pad_token_id].zero_()


def build_model(cfg: TrainConfig, tokenizer: Speech2TextTokenizer) -> Speech2TextForConditionalGeneration:
    """``init_from``'s model (dropout settings overridable), or a fresh one sized to the tokenizer."""
    if cfg.init_from:
        model = Speech2TextForConditionalGeneration.from_pretrained(cfg.init_from, **cfg.model)
        if len(tokenizer) > model.config.vocab_size:
            raise ConfigError(f"{cfg.init_from}: its tokenizer has more tokens than the model's vocab_size")
        return model.train()
    eos = tokenizer.eos_token_id
    config = Speech2TextConfig(**{**cfg.model, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                                  "bos_token_id": tokenizer.bos_token_id, "eos_token_id": eos,
                                  "decoder_start_token_id": eos})
    model = Speech2TextForConditionalGeneration(config)
    initialize(model)
    return model.train()


def prepare_phonemes(cfg: TrainConfig, out: Path, rows: list, is_main: bool) -> dict[str, list[str]] | None:
    """Utterance id -> phonemes (``data.phonemizer``'s), with ``optim.phoneme_ctc_layer`` (else None): made
    once by rank 0 into ``out/phonemes.tsv`` (espeak-ng's) or ``out/phonemes_flite.tsv``, which the other
    ranks and resumed runs read."""
    if not cfg.optim.phoneme_ctc_layer:
        return None
    from .phonemes import load_or_make

    source = cfg.data.phonemizer
    name = "phonemes.tsv" if source == "espeak-ng" else f"phonemes_{source}.tsv"
    ids, texts, path = [u.id for u in rows], [u.text for u in rows], out / name
    phones = load_or_make(path, ids, texts, cfg.data.phoneme_voice, source) if is_main else None
    barrier()
    if phones is None:
        phones = load_or_make(path, ids, texts, cfg.data.phoneme_voice, source)
    return dict(zip(ids, phones))


def make_dataset(cfg: TrainConfig, tokenizer: Speech2TextTokenizer, utterances: list,
                 phonemes: dict[str, list[str]] | None = None) -> tuple[SpeechDataset, int]:
    """The training set (over-long utterances dropped) and how many were dropped; with ``phonemes``
    (``prepare_phonemes``), each kept utterance's phoneme ids too."""
    ids = [tokenizer(u.text)["input_ids"] for u in utterances]
    kept, kept_ids, dropped = filter_lengths(utterances, ids, cfg.data.max_utterance_frames,
                                             cfg.data.max_utterance_tokens)
    if not kept:
        raise ConfigError("every training utterance is longer than data.max_utterance_frames/tokens")
    phone_ids, num_phones = None, 0
    if phonemes is not None:
        from .phonemes import inventory

        phones = [phonemes[u.id] for u in kept]
        table = inventory(phones)
        phone_ids, num_phones = [[table[s] for s in p] for p in phones], len(table)
    return SpeechDataset(kept, kept_ids, Speech2TextFeatureExtractor(), cfg.specaugment, cfg.seed,
                         cache_features=cfg.data.cache_features, pad_frames=cfg.data.pad_frames,
                         pad_tokens=cfg.data.pad_tokens, vtlp=cfg.data.vtlp, phone_ids=phone_ids,
                         num_phones=num_phones, feature_dir=feature_cache_dir(cfg)), dropped


def feature_cache_dir(cfg: TrainConfig) -> Path | None:
    """The folder of ``data.feature_cache``: relative paths from the corpus folder, else from the training
    manifest's folder; None when it is not set."""
    if not cfg.data.feature_cache:
        return None
    base = Path(cfg.data.corpus) if cfg.data.corpus else Path(cfg.data.manifest("train")).parent
    return base / cfg.data.feature_cache


def clear_run(out: Path) -> None:
    """Forget a previous run in ``out`` (checkpoints, tokenizer, log) before starting over."""
    for name in (average.CHECKPOINT_DIR, "tokenizer"):
        if (out / name).exists():
            print(f"starting over: removing {out / name}", file=sys.stderr)
            shutil.rmtree(out / name)
    (out / "log.jsonl").unlink(missing_ok=True)


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Run (or continue, with ``resume``) the training that ``cfg`` describes; return the final model
    folder ``output_dir/model``."""
    # Denormal floats (gradients that decay towards zero) take a slow path on x86 CPUs: the embedded
    # recipe's updates went from 0.25 to 0.49 s within 1,000 updates until they were flushed to zero.
    # Flushed for the run only (torch's default is off).
    torch.set_flush_denormal(True)
    try:
        return run_training(cfg, resume)
    finally:
        torch.set_flush_denormal(False)


def run_training(cfg: TrainConfig, resume: bool) -> Path:
    """The body of ``train``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist, device = setup_distributed(cfg.device)
    if cfg.amp and device.type == "cpu" and not cpu_has_fast_bfloat16():
        if dist.is_main:
            print("amp: this CPU has no bfloat16 matrix units (AMX, AVX512-BF16), where bfloat16 autocast runs "
                  "~30x slower than float32; training in float32 instead (amp = false)", file=sys.stderr)
        cfg = replace(cfg, amp=False)
    out = Path(cfg.output_dir)
    if dist.is_main:
        if not resume:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    barrier()
    root = cfg.data.audio_root or None
    rows = read_manifest(cfg.data.manifest("train"), root)
    dev = read_manifest(cfg.data.manifest("dev"), root, limit=cfg.data.valid_limit) if cfg.data.manifest("dev") else []
    if dev and importlib.util.find_spec("jiwer") is None:
        raise ConfigError("validation needs jiwer (pip install jiwer), or set data.dev='' to train without it")
    tokenizer = prepare_tokenizer(cfg, out, [u.text for u in rows], dist.is_main)
    dataset, dropped = make_dataset(cfg, tokenizer, rows, prepare_phonemes(cfg, out, rows, dist.is_main))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tokenizer)
    processor = Speech2TextProcessor(Speech2TextFeatureExtractor(), tokenizer)
    trainer = Trainer(cfg, model, dataset, dist, device, processor, dev)
    checkpoints = average.list_checkpoints(out)
    if resume and checkpoints:
        trainer.restore(average.load_checkpoint(checkpoints[-1]), checkpoints[-1])
    else:
        trainer.reseed()
        if cfg.optim.phoneme_head_from:
            load_phoneme_head(cfg, trainer)
    if dist.is_main:
        size = sum(p.numel() for p in set(model.parameters()))
        print(f"{len(dataset)} training utterances ({dropped} too long, skipped), {len(dev)} for validation, "
              f"{size / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}, {dist.world_size} process(es) on "
              f"{device}", file=sys.stderr)
    trainer.run(Progress(dist.is_main, cfg, out / "log.jsonl"))
    texts = lexicon_texts(cfg, rows) if cfg.data.lexicon or cfg.lm.order else []
    words = {word for text in texts for word in text.split()} if cfg.data.lexicon else set()
    lm = word_lm(cfg, texts) if dist.is_main else None  # only rank 0 writes the model
    folder = finish(cfg, trainer, out, tokenizer_dir=out / "tokenizer", words=words, lm=lm)
    if dist.world_size > 1:
        torch.distributed.destroy_process_group()
    return folder


def load_phoneme_head(cfg: TrainConfig, trainer: Trainer) -> None:
    """Start the phoneme head from ``optim.phoneme_head_from``'s: the same layer and phonemizer, and as many
    phonemes. Phoneme ids follow the corpus's phoneme set, so the same corpus gives the same ids; only
    their number is checked."""
    path = cfg.optim.phoneme_head_from
    ckpt = average.load_checkpoint(path)
    if "phone_head" not in ckpt or checkpoint_phonemes(ckpt) != (cfg.optim.phoneme_ctc_layer, cfg.data.phonemizer):
        raise ConfigError(f"optim.phoneme_head_from: {path} has no phoneme head on layer "
                          f"{cfg.optim.phoneme_ctc_layer} with data.phonemizer = \"{cfg.data.phonemizer}\"")
    try:
        trainer.module.phone_head.load_state_dict(ckpt["phone_head"])
    except RuntimeError:
        raise ConfigError(f"optim.phoneme_head_from: {path} learnt another number of phonemes than this "
                          "corpus has") from None


def lexicon_texts(cfg: TrainConfig, rows: list) -> list[str]:
    """The text of the lexicon and the word LM: the training transcripts and the corpus folder's
    extra_text.txt, when there is one."""
    texts = [u.text for u in rows]
    extra = Path(cfg.data.corpus) / "extra_text.txt" if cfg.data.corpus else None
    if extra is not None and extra.is_file():
        texts += read_texts(extra)
    return texts


def word_lm(cfg: TrainConfig, texts: Sequence[str]) -> Any:
    """The ``[lm]`` model of ``texts`` (``s2t_live.ngram.NGramLM``), or None when ``lm.order`` is 0."""
    if not cfg.lm.order:
        return None
    from .lm import kneser_ney, to_sentences

    return kneser_ney(to_sentences(texts), cfg.lm.order, cfg.lm.min_count, cfg.lm.vocab_size)


def finish(cfg: TrainConfig, trainer: Trainer, out: Path, tokenizer_dir: Path, words: Iterable[str] = (),
           lm: Any = None) -> Path:
    """Average the last checkpoints into ``out/model`` (with the lexicon ``words`` and the word ``lm``, if
    any) and report its dev WER (rank 0 writes)."""
    folder = out / "model"
    if trainer.dist.is_main:
        paths = average.list_checkpoints(out)[-max(cfg.average_last, 1):]
        state = average.average_checkpoints(paths)
        average.write_model(folder, state, trainer.model.config, tokenizer_dir, cfg.generation, cfg.float16_weights,
                            words, lm)
        trainer.model.load_state_dict(state)
        wer = trainer.validate()
        note = f", dev WER {100 * wer:.2f}% (greedy)" if wer is not None else ""
        lm_note = f", word {lm.order}-gram LM of {lm.size()} numbers" if lm is not None else ""
        print(f"averaged {len(paths)} checkpoint(s) into {folder}{lm_note}{note}", file=sys.stderr)
    barrier()
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m s2t_live.train.recipe CONFIG [KEY=VALUE ...]`` (the same as ``s2t-live train``)."""
    from ..cli_train import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
