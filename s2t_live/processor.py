"""Speech2TextProcessor: the feature extractor and the tokenizer of a checkpoint behind one object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .features import Speech2TextFeatureExtractor
from .hub import resolve_model_dir
from .tokenizer import Speech2TextTokenizer


class Speech2TextProcessor:
    """Audio -> ``input_features``/``attention_mask`` and text <-> ids, as the reference processor."""

    attributes = ["feature_extractor", "tokenizer"]

    def __init__(self, feature_extractor: Speech2TextFeatureExtractor, tokenizer: Speech2TextTokenizer):
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``processor(audio, sampling_rate=16000)`` -> features; ``text=`` -> ids; both -> features with
        ``labels``."""
        audio = kwargs.pop("audio", None)
        sampling_rate = kwargs.pop("sampling_rate", None)
        text = kwargs.pop("text", None)
        if args:
            audio, args = args[0], args[1:]
        if audio is None and text is None:
            raise ValueError("You need to specify either an `audio` or `text` input to process.")
        inputs = self.feature_extractor(audio, *args, sampling_rate=sampling_rate, **kwargs) if audio is not None else None
        encodings = self.tokenizer(text, **kwargs) if text is not None else None
        if encodings is None:
            return inputs
        if inputs is None:
            return encodings
        inputs["labels"] = encodings["input_ids"]
        return inputs

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> "Speech2TextProcessor":
        """Load both parts from a model folder, a fairseq checkpoint or a hub id."""
        folder = resolve_model_dir(pretrained_model_name_or_path, kwargs.pop("revision", None))
        return cls(Speech2TextFeatureExtractor.from_pretrained(folder),
                   Speech2TextTokenizer.from_pretrained(folder, **kwargs))

    def save_pretrained(self, save_directory: str | Path, **_: Any) -> list[str]:
        """Write the feature extractor's and the tokenizer's files into ``save_directory``."""
        saved = list(self.feature_extractor.save_pretrained(save_directory) or [])
        saved += list(self.tokenizer.save_pretrained(save_directory) or [])
        return saved

    def __repr__(self) -> str:
        return f"{type(self).__name__}(feature_extractor={self.feature_extractor!r}, tokenizer={self.tokenizer!r})"
