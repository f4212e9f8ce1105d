"""Train or fine-tune a Speech2Text model from fairseq S2T manifests: ``s2t-live train CONFIG [KEY=VALUE ...]``.

The recipe (TOML, JSON or YAML) fills ``TrainConfig``; ``KEY=VALUE`` arguments override it (dotted keys
reach into tables: ``optim.lr=1e-3``, values in TOML syntax). A run trains a unigram sentencepiece
tokenizer on the training transcripts (or reuses the one of ``init_from``), then optimises label-smoothed
cross-entropy with Adam and an inverse-square-root schedule, saving resumable checkpoints into
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
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..configuration import Speech2TextConfig
from ..errors import S2TError
from ..features import Speech2TextFeatureExtractor
from ..model import Speech2TextForConditionalGeneration
from ..processor import Speech2TextProcessor
from ..tokenizer import Speech2TextTokenizer
from . import average
from .data import SpecAugmentConfig, SpeechDataset, filter_lengths, read_manifest, read_texts
from .trainer import (SCHEDULES, Progress, Trainer, barrier, checkpoint_phonemes, cpu_has_fast_bfloat16,
                      setup_distributed)

DROPOUT_KEYS = ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "decoder_layerdrop")


class ConfigError(S2TError):
    """A recipe that cannot be used: unreadable file, unknown key, wrongly typed value."""


@dataclass
class DataConfig:
    """Where the manifests are and how utterances are batched."""

    corpus: str = ""  # folder holding train.tsv and dev.tsv (used when train/dev are not given)
    train: str = ""
    dev: str = ""  # "" with corpus "": no validation
    audio_root: str = ""  # audio paths are relative to this (default: each manifest's folder)
    max_frames: int = 20000  # padded feature frames per batch (10 ms each)
    max_tokens: int = 0  # padded target tokens per batch, 0: no limit
    max_batch_size: int = 128
    max_utterance_frames: int = 3000  # longer utterances are skipped
    max_utterance_tokens: int = 200
    valid_limit: int = 200  # dev utterances decoded at each validation
    cache_features: bool = True  # keep each utterance's features in memory after its first use
    # A folder that keeps each utterance's features on disk as well (float32 .npy, ~32 KB per second of
    # audio), so that the next run on the same audio (a second stage, a resumed run) reads them instead of
    # computing them in its first epoch; relative to the corpus folder (else the training manifest's). "": none.
    feature_cache: str = ""
    # Round each batch's padded frames / tokens up to a multiple, so that batch shapes repeat: oneDNN builds
    # bfloat16 kernels per shape. For amp on the CPU: the embedded recipe at 64 / 8 on 2 AMX cores, 0.20 s per
    # update against 0.30 in float32 (unrounded bfloat16 was no faster than float32).
    pad_frames: int = 1
    pad_tokens: int = 1
    # Vocal tract length perturbation: each utterance's frequency axis scaled by a factor from
    # [1 - vtlp, 1 + vtlp], drawn anew every epoch (0: off).
    vtlp: float = 0.0
    # Ship a lexicon (lexicon.txt) with the model: every word of the training transcripts and of the
    # corpus folder's extra_text.txt (its unspoken training-side sentences), when there is one.
    lexicon: bool = False
    # Where optim.phoneme_ctc_layer's phonemes come from: "espeak-ng" (its voice phoneme_voice) or "flite"
    # (t2p: the CMU lexicon's phones, which the flite and festival voices say).
    phonemizer: str = "espeak-ng"
    phoneme_voice: str = "en-us"  # espeak-ng voice whose phonemes optim.phoneme_ctc_layer learns

    def manifest(self, name: str) -> str:
        given = getattr(self, name)
        return given or (str(Path(self.corpus) / f"{name}.tsv") if self.corpus else "")


@dataclass
class TokenizerConfig:
    vocab_size: int = 1000  # includes <s>, <pad>, </s>, <unk>
    model_type: str = "unigram"
    texts: str = ""  # text file to train on (default: the training transcripts)


@dataclass
class LMConfig:
    """A word n-gram language model shipped with the model (``lm.npz``, for ``lm_weight`` decoding),
    trained on the lexicon's text: the training transcripts and the corpus folder's extra_text.txt."""

    order: int = 0  # 0: none
    vocab_size: int = 0  # the most frequent words kept, the others are <unk>; 0: all
    min_count: int = 1  # n-grams of 2+ words seen fewer times are left out


@dataclass
class OptimConfig:
    lr: float = 2e-3  # peak learning rate, reached after warmup_steps updates
    warmup_steps: int = 1000
    # "inverse_sqrt": lr * sqrt(warmup_steps / step) after the warm-up. "tri_stage" (as fairseq's): held at
    # lr for hold_steps after the warm-up, then decayed exponentially to lr * final_lr_scale over
    # decay_steps, and kept there.
    schedule: str = "inverse_sqrt"
    hold_steps: int = 0
    decay_steps: int = 0
    final_lr_scale: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 10.0  # 0: no clipping
    label_smoothing: float = 0.1
    ctc_weight: float = 0.0  # weight of an auxiliary CTC loss on the encoder (its head is saved with the model)
    update_freq: int = 1  # batches accumulated per update (per process)
    ctc_only_steps: int = 0  # first updates train the encoder with CTC alone (needs ctc_weight > 0)
    detached_decoder_steps: int = 0  # first updates: the encoder learns from CTC alone, the decoder on its output
    guided_attention: float = 0.0  # weight of the cost of cross-attention away from the CTC alignment, per token
    guided_attention_sigma: float = 2.0  # width of the allowed band around it, in encoder frames
    # Guide only the first N updates (0: all). Once the alignment is learnt the cost buys little: from the
    # embedded stage 1's update 5,000, 500 updates without it ran 10 % faster (0.226 vs 0.251 s) with the
    # same losses (NLL 3.276 vs 3.277, CTC 2.834 vs 2.849) and dev WER (62.4 vs 62.7 % greedy).
    guided_attention_steps: int = 0
    # Intermediate CTC (Lee & Watanabe, 2021): the CTC head, after the encoder's final layer norm, also reads
    # the output of encoder layer N (1-based; 0: off), and the CTC loss becomes
    # (1 - inter_ctc_weight) * final + inter_ctc_weight * intermediate. Training only: no new weights.
    inter_ctc_layer: int = 0
    inter_ctc_weight: float = 0.0
    # Phoneme CTC (phonemes.py): a head of its own (layer norm and projection, training only) reads the
    # output of encoder layer N (1-based; 0: off) and learns espeak-ng's phonemes of the transcript (voice
    # data.phoneme_voice); its CTC loss is added at phoneme_ctc_weight, for the first phoneme_ctc_steps
    # updates (0: in every update).
    phoneme_ctc_layer: int = 0
    phoneme_ctc_weight: float = 0.0
    phoneme_ctc_steps: int = 0
    # A checkpoint (checkpoints/step_*.pt) of an earlier run with the same phoneme head (layer, phonemizer,
    # corpus) whose trained head a new run starts from, e.g. a second stage that goes on learning the
    # phonemes; without it the head starts untrained. Read once, when the run starts (not on resume).
    phoneme_head_from: str = ""


@dataclass
class TrainConfig:
    """Everything a training run needs; ``model`` holds ``Speech2TextConfig`` fields."""

    output_dir: str = "runs/s2t"
    init_from: str = ""  # model folder or hub id to fine-tune (its tokenizer is reused)
    seed: int = 1
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads, 0: torch's default
    amp: bool = False  # bfloat16 autocast (CUDA, or CPUs with bfloat16 matrix units: AMX, AVX512-BF16)
    max_steps: int = 0  # 0: no limit
    max_epochs: int = 0
    max_minutes: float = 0.0  # training time budget across resumes, 0: none
    save_every_steps: int = 500
    save_every_minutes: float = 0.0
    keep_last: int = 5
    average_last: int = 5
    valid_every_steps: int = 1000  # 0: only at the end
    log_every: int = 10
    float16_weights: bool = False  # final model.safetensors in half precision
    model: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=lambda: {"num_beams": 5, "max_length": 200})
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)


# ---------------------------------------------------------------------------------------------------
# Configuration files


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The nested dict of a ``.toml``, ``.json`` or ``.yaml``/``.yml`` recipe."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unknown recipe format {path.suffix!r}; use .toml, .json or .yaml")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # tomllib/json errors are ValueErrors
        raise ConfigError(f"{path}: cannot read the recipe ({str(exc).splitlines()[0]})") from None
    except ImportError as exc:
        raise ConfigError(f"{path}: reading it needs {exc.name}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a table of settings")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` -> (["optim", "lr"], 0.001); values in TOML syntax, else taken as text."""
    import tomllib

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip().split("."), value


def _coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` checked against the type of the field's ``default`` (ints are accepted as floats)."""
    if isinstance(default, bool) or isinstance(default, str) or isinstance(default, dict):
        ok = isinstance(value, type(default))
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where} must be a {type(default).__name__} like {default!r}, got {value!r}")
    return value


def build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """An instance of the config dataclass ``cls`` from a nested dict, refusing unknown keys."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting {where}{unknown[0]}; known: {', '.join(sorted(known))}")
    instance = cls()
    for name, value in data.items():
        default = getattr(instance, name)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{name} must be a table of settings")
            value = build(type(default), value, f"{where}{name}.")
        else:
            value = _coerce(value, default, where + name)
            if isinstance(default, dict):  # tables of free keys extend the defaults
                value = {**default, **value}
        setattr(instance, name, value)
    return instance


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The recipe at ``path`` (None: defaults) with ``KEY=VALUE`` overrides applied, validated."""
    data = read_config_file(path) if path is not None else {}
    for item in overrides:
        keys, value = parse_override(item)
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {item!r}: {key} is not a table")
        table[keys[-1]] = value
    cfg = build(TrainConfig, data)
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot work, with the reason."""
    names = {f.name for f in fields(Speech2TextConfig)} - {"extra"}
    bad = sorted(set(cfg.model) - names)
    if bad:
        raise ConfigError(f"unknown model setting model.{bad[0]}; see Speech2TextConfig for the names")
    if cfg.init_from and set(cfg.model) - set(DROPOUT_KEYS):
        raise ConfigError(f"with init_from only {', '.join(DROPOUT_KEYS)} of [model] can change")
    if not cfg.data.manifest("train"):
        raise ConfigError("no training data: set data.corpus or data.train")
    if min(cfg.optim.update_freq, cfg.data.max_frames, cfg.data.pad_frames, cfg.data.pad_tokens) < 1:
        raise ConfigError("optim.update_freq, data.max_frames, data.pad_frames and data.pad_tokens must be at "
                          "least 1")
    if (cfg.optim.ctc_only_steps > 0 or cfg.optim.detached_decoder_steps > 0) and cfg.optim.ctc_weight <= 0:
        raise ConfigError("optim.ctc_only_steps and optim.detached_decoder_steps train the encoder on CTC alone: "
                          "they need optim.ctc_weight > 0")
    if cfg.optim.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule is one of {', '.join(SCHEDULES)}, not {cfg.optim.schedule!r}")
    if cfg.optim.schedule == "tri_stage" and not (cfg.optim.decay_steps > 0 and 0 < cfg.optim.final_lr_scale <= 1):
        raise ConfigError("optim.schedule = \"tri_stage\" needs optim.decay_steps > 0 and optim.final_lr_scale "
                          "in (0, 1]")
    if 0 < cfg.specaugment.end_step <= cfg.specaugment.start_step:
        raise ConfigError("specaugment.end_step (0: masks to the end) must come after specaugment.start_step")
    inter = cfg.optim.inter_ctc_layer
    if inter < 0 or inter and not (cfg.optim.ctc_weight > 0 and 0 < cfg.optim.inter_ctc_weight < 1):
        raise ConfigError("optim.inter_ctc_layer (an encoder layer, from 1; 0: off) needs optim.ctc_weight > 0 "
                          "and optim.inter_ctc_weight between 0 and 1")
    phone = cfg.optim.phoneme_ctc_layer
    if phone < 0 or phone and cfg.optim.phoneme_ctc_weight <= 0:
        raise ConfigError("optim.phoneme_ctc_layer (an encoder layer, from 1; 0: off) needs optim.phoneme_ctc_weight "
                          "> 0")
    if cfg.optim.phoneme_head_from and not phone:
        raise ConfigError("optim.phoneme_head_from needs the phoneme head on (optim.phoneme_ctc_layer)")
    if cfg.optim.phoneme_ctc_steps < 0:
        raise ConfigError("optim.phoneme_ctc_steps must be >= 0 (0: the phoneme loss in every update)")
    from .phonemes import PHONEMIZERS
    if cfg.data.phonemizer not in PHONEMIZERS:
        raise ConfigError(f"data.phonemizer is one of {', '.join(PHONEMIZERS)}, not {cfg.data.phonemizer!r}")
    if cfg.lm.order < 0 or cfg.lm.vocab_size < 0 or cfg.lm.min_count < 1:
        raise ConfigError("lm.order and lm.vocab_size must be >= 0 and lm.min_count >= 1")
    if not 0.0 <= cfg.data.vtlp < 1.0:
        raise ConfigError(f"data.vtlp is the largest warp, from 0 (off) to below 1, not {cfg.data.vtlp}")
    if not cfg.init_from:
        try:
            Speech2TextConfig(**cfg.model)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid [model] settings: {exc}") from None


# ---------------------------------------------------------------------------------------------------
# Building the run


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
