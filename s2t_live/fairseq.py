"""Converting fairseq S2T checkpoints (``checkpoint.pt`` + ``config.yaml`` + sentencepiece files) into
the Hugging Face layout, on load.

The checkpoint is unpickled with ``weights_only=True``; the only non-tensor object allowed in is
``argparse.Namespace`` (fairseq's saved training arguments). The converted folder is cached under
``$S2T_LIVE_CACHE`` (default ``~/.cache/s2t-live/converted``), keyed by the checkpoint's path, size and
modification time, and written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from .configuration import Speech2TextConfig
from .errors import ModelError
from .features import Speech2TextFeatureExtractor

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
# fairseq parameter names -> Hugging Face names (applied as substring replacements, in order).
RENAMES = (("encoder.subsample.", "encoder.conv."), ("encoder.transformer_layers.", "encoder.layers."))
DROPPED = ("_float_tensor", ".version", "decoder.output_projection.weight")


def cache_root() -> Path:
    env = os.environ.get("S2T_LIVE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s2t-live"
    return base / "converted"


def find_checkpoint(path: Path) -> Path:
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.pt"))
    preferred = [p for p in candidates if p.name in ("checkpoint_best.pt", "checkpoint.pt", "model.pt")]
    return (preferred or candidates)[0]


def read_checkpoint(file: Path) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ModelError(f"{file}: refused to load, the checkpoint holds objects other than weights and "
                         f"training arguments ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{file}: not a readable fairseq checkpoint ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ModelError(f"{file}: not a fairseq checkpoint (no 'model' weights)")
    return state


def training_args(state: dict[str, Any], file: Path) -> dict[str, Any]:
    """fairseq's model arguments: ``args`` (a Namespace, fairseq < 0.10.2) or ``cfg['model']``."""
    if state.get("args") is not None:
        args = state["args"]
        return vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    cfg = state.get("cfg") or {}
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if isinstance(model, argparse.Namespace):
        return vars(model)
    if isinstance(model, dict):
        return model
    raise ModelError(f"{file}: the checkpoint carries no model arguments ('args' or 'cfg.model')")


def config_from_args(args: dict[str, Any], weights: dict[str, torch.Tensor], file: Path) -> Speech2TextConfig:
    if not args.get("encoder_normalize_before", True) or not args.get("decoder_normalize_before", True):
        raise ModelError(f"{file}: post-norm S2T transformers are not supported (Speech2Text is pre-norm)")
    if "encoder.subsample.conv_layers.0.weight" not in weights:
        raise ModelError(f"{file}: not an s2t_transformer checkpoint (no conv subsampler weights)")
    kernels = [int(k) for k in str(args.get("conv_kernel_sizes", "5,5")).split(",")]
    d_model = args.get("encoder_embed_dim", 256)
    return Speech2TextConfig(
        vocab_size=weights["decoder.embed_tokens.weight"].shape[0],
        d_model=d_model,
        encoder_layers=args.get("encoder_layers", 12), decoder_layers=args.get("decoder_layers", 6),
        encoder_attention_heads=args.get("encoder_attention_heads", 4),
        decoder_attention_heads=args.get("decoder_attention_heads", 4),
        encoder_ffn_dim=args.get("encoder_ffn_embed_dim", 2048),
        decoder_ffn_dim=args.get("decoder_ffn_embed_dim", 2048),
        dropout=args.get("dropout", 0.1), attention_dropout=args.get("attention_dropout", 0.0),
        activation_dropout=args.get("activation_dropout", args.get("relu_dropout", 0.0)),
        activation_function=args.get("activation_fn", "relu"),
        num_conv_layers=len(kernels), conv_kernel_sizes=kernels,
        conv_channels=args.get("conv_channels", 1024),
        input_feat_per_channel=args.get("input_feat_per_channel", 80),
        input_channels=args.get("input_channels", 1),
        max_source_positions=args.get("max_source_positions", 6000),
        max_target_positions=args.get("max_target_positions", 1024),
        scale_embedding=not args.get("no_scale_embedding", False),
        tie_word_embeddings=bool(args.get("share_decoder_input_output_embed", True)),
        extra={"architectures": ["Speech2TextForConditionalGeneration"], "max_length": 200, "num_beams": 5,
               "early_stopping": True},
    )


def convert_weights(weights: dict[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in weights.items():
        if key.endswith(DROPPED) and not (key == "decoder.output_projection.weight" and not tied):
            continue
        if key == "decoder.output_projection.weight":
            out["lm_head.weight"] = value
            continue
        for old, new in RENAMES:
            key = key.replace(old, new)
        out["model." + key] = value
    return out


def tokenizer_files(folder: Path, target: Path) -> None:
    """Copy the sentencepiece model and turn fairseq's dictionary (``piece count`` lines) into vocab.json."""
    data_cfg = {}
    if (folder / "config.yaml").is_file():
        try:
            data_cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        except yaml.YAMLError as exc:
            raise ModelError(f"{folder / 'config.yaml'}: not valid YAML ({exc})") from None
    spm_name = (data_cfg.get("bpe_tokenizer") or {}).get("sentencepiece_model")
    dict_name = data_cfg.get("vocab_filename")
    spm = folder / spm_name if spm_name else next(iter(sorted(folder.glob("*.model"))), None)
    dictionary = folder / dict_name if dict_name else next(
        (p for p in sorted(folder.glob("*.txt")) if p.stem.startswith(("spm", "dict"))), None)
    if spm is None or not spm.is_file() or dictionary is None or not dictionary.is_file():
        raise ModelError(f"{folder}: a fairseq S2T checkpoint needs its sentencepiece model (*.model) and "
                         "dictionary (*.txt) beside it, named in config.yaml")
    pieces = [line.rsplit(" ", 1)[0] for line in dictionary.read_text(encoding="utf-8").splitlines() if line.strip()]
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    shutil.copyfile(spm, target / "sentencepiece.bpe.model")
    (target / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
    langs = sorted(p[len("<lang:"):-1] for p in vocab if p.startswith("<lang:") and p.endswith(">"))
    tok_cfg = {"tokenizer_class": "Speech2TextTokenizer", "do_upper_case": False, "do_lower_case": False}
    if langs:
        tok_cfg |= {"lang_codes": "mustc", "tgt_lang": langs[0]}
    (target / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1))
    Speech2TextFeatureExtractor(feature_size=data_cfg.get("input_feat_per_channel", 80),
                                num_mel_bins=data_cfg.get("input_feat_per_channel", 80)).save_pretrained(target)


def convert_fairseq_checkpoint(path: str | Path) -> Path:
    """A Hugging Face folder for a fairseq S2T checkpoint (a ``.pt`` file or a folder holding one)."""
    path = Path(path).resolve()
    file = find_checkpoint(path)
    stat = file.stat()
    key = hashlib.sha1(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_root() / key
    if (target / "model.safetensors").is_file():
        return target
    state = read_checkpoint(file)
    weights = {k: v for k, v in state["model"].items() if isinstance(v, torch.Tensor)}
    config = config_from_args(training_args(state, file), weights, file)
    converted = convert_weights(weights, config.tie_word_embeddings)
    if config.tie_word_embeddings:
        converted.pop("lm_head.weight", None)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{key}."))
        config.save_pretrained(tmp)
        tokenizer_files(file.parent, tmp)
        save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp / "model.safetensors"))
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write the converted model under {target.parent} ({exc})") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
