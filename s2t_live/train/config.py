"""The training recipe as data: ``TrainConfig`` and its tables, read from TOML, JSON or YAML.

``load_config(path, overrides)`` reads a recipe file, applies ``KEY=VALUE`` overrides (dotted keys reach
into tables: ``optim.lr=1e-3``, values in TOML syntax), checks every key and type, and says what is wrong
in a ``ConfigError``, a message a person can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Sequence

from ..configuration import Speech2TextConfig
from ..errors import S2TError
from .data import SpecAugmentConfig
from .objective import SCHEDULES

# The [model] settings that may differ from init_from's model or from the checkpoint a run resumes.
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
