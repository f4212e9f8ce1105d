"""Model outputs: small dataclasses readable by attribute, by name and by position, like the reference's."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from .cache import DecoderCache


class ModelOutput:
    """Base of the output dataclasses: attribute access, ``out["logits"]`` and ``out[0]`` over set fields."""

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def __getitem__(self, key: int | str) -> Any:
        return getattr(self, key) if isinstance(key, str) else self.to_tuple()[key]


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Tensor | None = None


@dataclass
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Tensor | None = None
    cache: "DecoderCache | None" = None
    encoder_last_hidden_state: Tensor | None = None


@dataclass
class Seq2SeqLMOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    cache: "DecoderCache | None" = None
    encoder_last_hidden_state: Tensor | None = None
