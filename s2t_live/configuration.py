"""Speech2TextConfig: the architecture of an S2T checkpoint, read from and written to ``config.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ModelError

CONFIG_NAME = "config.json"

# Generation settings that old checkpoints keep in config.json (the reference reads them from there
# when a checkpoint has no generation_config.json).
LEGACY_GENERATION_KEYS = (
    "max_length", "min_length", "num_beams", "early_stopping", "length_penalty", "no_repeat_ngram_size",
    "repetition_penalty", "forced_bos_token_id", "forced_eos_token_id", "num_return_sequences",
    "bad_words_ids", "do_sample",
)


@dataclass
class Speech2TextConfig:
    """Hyper-parameters of a Speech2Text encoder-decoder, with the reference's field names and defaults.

    Unknown keys of a ``config.json`` (``architectures``, legacy generation settings such as
    ``num_beams``/``max_length``, ...) are kept in ``extra`` and written back unchanged.
    """

    vocab_size: int = 10000
    encoder_layers: int = 12
    encoder_ffn_dim: int = 2048
    encoder_attention_heads: int = 4
    decoder_layers: int = 6
    decoder_ffn_dim: int = 2048
    decoder_attention_heads: int = 4
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "relu"
    d_model: int = 256
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    decoder_start_token_id: int = 2
    scale_embedding: bool = True
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    max_source_positions: int = 6000
    max_target_positions: int = 1024
    num_conv_layers: int = 2
    conv_kernel_sizes: list[int] = field(default_factory=lambda: [5, 5])
    conv_channels: int = 1024
    input_feat_per_channel: int = 80
    input_channels: int = 1
    tie_word_embeddings: bool = True
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    model_type = "speech_to_text"
    attribute_map = {"num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
                     "num_hidden_layers": "encoder_layers"}

    def __post_init__(self) -> None:
        self.conv_kernel_sizes = list(self.conv_kernel_sizes)
        if len(self.conv_kernel_sizes) != self.num_conv_layers:
            raise ValueError(
                f"conv_kernel_sizes has {len(self.conv_kernel_sizes)} entries but num_conv_layers is "
                f"{self.num_conv_layers}; they must match")

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: aliases, then extra keys of config.json.
        mapped = type(self).attribute_map.get(name)
        if mapped is not None:
            return getattr(self, mapped)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @classmethod
    def from_dict(cls, config: dict[str, Any], **overrides: Any) -> "Speech2TextConfig":
        """Build a config from a ``config.json`` dict; keys that are not fields go to ``extra``."""
        merged = {**config, **overrides}
        for alias, name in cls.attribute_map.items():
            if alias in merged and name not in merged:
                merged[name] = merged.pop(alias)
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in merged.items() if k in names}
        extra = {k: v for k, v in merged.items() if k not in names and k not in cls.attribute_map}
        extra.pop("model_type", None)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` content: every field, the extra keys, and ``model_type``."""
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data, "model_type": self.model_type}

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Write ``config.json`` into ``save_directory`` (created if needed)."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(self.to_json_string())

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: Any) -> "Speech2TextConfig":
        """Read ``config.json`` from a model folder (or the file itself); hub ids go through ``s2t_live.hub``."""
        from .hub import resolve_model_dir  # local import: hub imports this module

        path = Path(path) if Path(path).is_file() else resolve_model_dir(path) / CONFIG_NAME
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: no config.json; this folder is not a Speech2Text model") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: config.json cannot be read ({exc})") from None
        if data.get("model_type", cls.model_type) != cls.model_type:
            raise ModelError(f"{path}: model_type is {data.get('model_type')!r}, not a Speech2Text model")
        try:
            return cls.from_dict(data, **overrides)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: invalid Speech2Text config ({exc})") from None

    def generation_defaults(self) -> dict[str, Any]:
        """Legacy generation settings stored in config.json (used when there is no generation_config.json)."""
        return {k: self.extra[k] for k in LEGACY_GENERATION_KEYS if self.extra.get(k) is not None}
