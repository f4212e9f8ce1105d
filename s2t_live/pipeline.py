"""``pipeline("automatic-speech-recognition", model=...)``: audio in, ``{"text": ...}`` out."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from .audio import check_finite, load_audio, resample, to_mono
from .errors import AudioError
from .hub import default_model
from .model import Speech2TextForConditionalGeneration
from .processor import Speech2TextProcessor

TASKS = ("automatic-speech-recognition",)


class AutomaticSpeechRecognitionPipeline:
    """Transcribe one input or a list of them: an array (16 kHz), a file path, bytes of a file, or a dict
    ``{"raw"|"array": samples, "sampling_rate": sr}``. Long audio is decoded as one utterance, as the
    reference pipeline does for Speech2Text."""

    def __init__(self, model: Speech2TextForConditionalGeneration, processor: Speech2TextProcessor,
                 generate_kwargs: dict[str, Any] | None = None):
        self.model = model
        self.processor = processor
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.generate_kwargs = dict(generate_kwargs or {})

    def _audio(self, item: Any) -> np.ndarray:
        rate = self.feature_extractor.sampling_rate
        if isinstance(item, (str, Path)):
            return load_audio(item, rate)
        if isinstance(item, (bytes, bytearray)):
            try:
                samples, sr = sf.read(io.BytesIO(bytes(item)), dtype="float32")
            except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
                raise AudioError(f"audio bytes cannot be decoded ({exc})") from None
            item = {"raw": samples, "sampling_rate": sr}
        if isinstance(item, dict):
            samples = item.get("raw", item.get("array"))
            if samples is None or "sampling_rate" not in item:
                raise AudioError("an audio dict needs 'raw' (or 'array') and 'sampling_rate'")
            wave = to_mono(np.asarray(samples, dtype=np.float32))
            wave = resample(wave, int(item["sampling_rate"]), rate)
        else:
            wave = np.asarray(item.numpy() if isinstance(item, torch.Tensor) else item, dtype=np.float32)
            if wave.ndim != 1:
                raise AudioError(f"expected mono audio of shape (samples,), got {wave.shape}")
        check_finite(wave)
        if wave.size == 0:
            raise AudioError("the audio is empty")
        return wave

    def __call__(self, inputs: Any, generate_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """One input -> ``{"text": str}``; a list of inputs -> a list of those."""
        if isinstance(inputs, list):
            return [self(item, generate_kwargs, **kwargs) for item in inputs]
        wave = self._audio(inputs)
        features = self.processor(wave, sampling_rate=self.feature_extractor.sampling_rate,
                                  return_tensors="pt", return_attention_mask=True)
        options = {**self.generate_kwargs, **(generate_kwargs or {}), **kwargs}
        ids = self.model.generate(features["input_features"], attention_mask=features["attention_mask"],
                                  **options)
        return {"text": self.tokenizer.decode(ids[0], skip_special_tokens=True)}


def pipeline(task: str = "automatic-speech-recognition", model: Any = None, dtype: Any = None,
             torch_dtype: Any = None, device: Any = None, generate_kwargs: dict[str, Any] | None = None,
             **_: Any) -> AutomaticSpeechRecognitionPipeline:
    """Build the ASR pipeline for a hub id, a model folder, a fairseq checkpoint or a loaded model
    (None: the embedded default model)."""
    if task not in TASKS:
        raise ValueError(f"unsupported task {task!r}; s2t-live provides {TASKS}")
    if isinstance(device, int):
        device = "cpu" if device < 0 else f"cuda:{device}"
    if isinstance(model, Speech2TextForConditionalGeneration):
        processor = Speech2TextProcessor.from_pretrained(model.name_or_path)
    else:
        name = model if model is not None else default_model()
        processor = Speech2TextProcessor.from_pretrained(name)
        model = Speech2TextForConditionalGeneration.from_pretrained(
            name, dtype=dtype if dtype is not None else torch_dtype, device=device)
    return AutomaticSpeechRecognitionPipeline(model, processor, generate_kwargs)
