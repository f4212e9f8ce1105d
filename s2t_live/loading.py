"""Loading and saving model weights safely: safetensors first, else ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .configuration import Speech2TextConfig
from .errors import ModelError
from .generation import GENERATION_CONFIG_NAME, GenerationConfig
from .hub import resolve_model_dir

SAFE_WEIGHTS = "model.safetensors"
PICKLE_WEIGHTS = "pytorch_model.bin"
# Buffers that older checkpoints saved but that are recomputed here.
IGNORED_SUFFIXES = ("embed_positions.weights", "embed_positions._float_tensor", ".version")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


def _load_one(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        try:
            return load_file(str(file))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{file}: weights cannot be read ({exc})") from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise ModelError(f"{file}: refused to load, the file holds more than weights and loading it "
                         f"could run code ({first[:160]})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{file}: weights cannot be read ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{file}: not a state dict")
    return state


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All weights of a model folder: ``model.safetensors`` preferred, sharded files via their index."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_load_one(folder / shard))
            return state
    for name in (SAFE_WEIGHTS, PICKLE_WEIGHTS):
        if (folder / name).is_file():
            return _load_one(folder / name)
    raise ModelError(f"{folder}: no model weights ({SAFE_WEIGHTS} or {PICKLE_WEIGHTS})")


def _adapt_keys(state: dict[str, torch.Tensor], want_prefix: bool) -> dict[str, torch.Tensor]:
    """Map checkpoint names onto this model: drop recomputed buffers, add or strip the ``model.`` prefix."""
    out = {}
    for key, value in state.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        has_prefix = key.startswith("model.")
        head = key == "lm_head.weight" or key.startswith("ctc_head.")
        if want_prefix and not has_prefix and not head:
            key = "model." + key
        elif not want_prefix:
            if head:
                continue
            key = key[len("model."):] if has_prefix else key
        out[key] = value
    return out


def resolve_dtype(dtype: Any, config: Speech2TextConfig, state: dict[str, torch.Tensor]) -> torch.dtype:
    """``dtype``/``torch_dtype`` as the reference takes it: None -> float32, "auto" -> the checkpoint's."""
    if dtype is None:
        return torch.float32
    if dtype == "auto":
        named = config.extra.get("dtype") or config.extra.get("torch_dtype")
        if named in DTYPES:
            return DTYPES[named]
        floats = [t.dtype for t in state.values() if t.is_floating_point()]
        return floats[0] if floats else torch.float32
    return DTYPES[dtype] if isinstance(dtype, str) else dtype


def load_model(cls: type, name_or_path: Any, dtype: Any = None, torch_dtype: Any = None,
               device: Any = None, revision: str | None = None, **config_overrides: Any) -> Any:
    """Build ``cls`` from a hub id, a Hugging Face folder or a fairseq checkpoint and load its weights,
    checking every name and shape. The model is returned in eval mode."""
    folder = resolve_model_dir(name_or_path, revision)
    for key in ("low_cpu_mem_usage", "local_files_only", "cache_dir", "trust_remote_code", "use_safetensors"):
        config_overrides.pop(key, None)
    config = Speech2TextConfig.from_pretrained(folder, **config_overrides)
    state = load_state_dict(folder)
    wants_head = hasattr(cls, "generate")
    state = _adapt_keys(state, want_prefix=wants_head)
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    if wants_head and config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{folder}: weights do not match the config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise ModelError(f"{folder}: {key} has shape {tuple(state[key].shape)}, the config implies "
                             f"{tuple(tensor.shape)}")
    target = resolve_dtype(dtype if dtype is not None else torch_dtype, config, state)
    # Every parameter comes from the checkpoint (checked above), so the meta tensors are swapped for the
    # loaded ones directly; only the position tables (not saved) are computed. (``to_empty`` would cost a
    # second of imports on the meta path and write memory that is thrown away.)
    model.load_state_dict({k: v.to(target) for k, v in state.items()}, strict=False, assign=True)
    _reset_buffers(model)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left and not (left == ["lm_head.weight"] and config.tie_word_embeddings):
        raise ModelError(f"{folder}: no weights for {left[:3]}")
    if wants_head and config.tie_word_embeddings:
        model.lm_head.weight = model.model.decoder.embed_tokens.weight
    model = model.to(target)
    if device is not None:
        model = model.to(device)
    if wants_head:
        gen_file = folder / GENERATION_CONFIG_NAME
        model.generation_config = (GenerationConfig.from_pretrained(folder) if gen_file.is_file()
                                   else GenerationConfig.from_model_config(config))
        model.lexicon = load_lexicon(folder, config)
    model.name_or_path = str(name_or_path)
    return model.eval()


def _reset_buffers(model: torch.nn.Module) -> None:
    """Compute the non-persistent buffers (position tables), which a meta-device model lacks."""
    from .layers import SinusoidalPositionalEmbedding, sinusoidal_table

    for module in model.modules():
        if isinstance(module, SinusoidalPositionalEmbedding):
            module.weights = sinusoidal_table(module.weights.size(0), module.dim, module.padding_idx)


def load_lexicon(folder: Path, config: Any) -> Any:
    """The folder's word list for ``lexicon_penalty`` decoding (``s2t_live.lexicon``), or None."""
    from .lexicon import Lexicon

    special = {getattr(config, name, None) for name in ("bos_token_id", "eos_token_id", "pad_token_id",
                                                         "decoder_start_token_id")} - {None}
    return Lexicon.from_folder(folder, special)


def save_model(model: Any, save_directory: Any, safe_serialization: bool = True, **_: Any) -> None:
    """Write config, generation config and weights (tied head left out, as the reference does), and the
    lexicon when the model has one."""
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    if getattr(model, "lexicon", None) is not None:
        model.lexicon.save(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    try:
        if safe_serialization:
            save_file(state, str(folder / SAFE_WEIGHTS), metadata={"format": "pt"})
        else:
            torch.save(state, folder / PICKLE_WEIGHTS)
    except OSError as exc:
        raise ModelError(f"{folder}: cannot write the weights ({exc})") from None


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every linear layer (weights int8, activations quantised per batch).

    Faster on CPU and ~4x smaller linear weights, at a small cost in accuracy; ``bench/transcribe_speed.py``
    reports its agreement with float32."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
