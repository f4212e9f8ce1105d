"""Log-mel filterbank features for Speech2Text, whole-signal and streaming.

``fbank`` is Kaldi's log-mel filterbank on audio scaled to the 16-bit range,
``utterance_cmvn`` normalises each utterance per bin, ``Speech2TextFeatureExtractor``
batches, pads and serialises them as the reference ``transformers`` class does, and
``StreamingFbank`` gives the same frames for audio that arrives in pieces.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from .errors import AudioError, ModelError, OutputError

INT16_SCALE = 2**15  # Kaldi expects samples in the 16-bit integer range
FRAME_LENGTH_MS = 25.0  # Kaldi --frame-length
FRAME_SHIFT_MS = 10.0  # Kaldi --frame-shift
CONFIG_NAME = "preprocessor_config.json"
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")


class BatchFeature(dict):
    """A dict of model inputs (``input_features``, ``attention_mask``) with attribute access.

    Values are lists of numpy arrays, or batched arrays/tensors after
    ``convert_to_tensors("np" | "pt")``: ``input_features`` ``(batch, num_frames,
    num_mel_bins)`` float32 and ``attention_mask`` ``(batch, num_frames)`` int32.
    """

    def __init__(self, data: dict[str, Any] | None = None, tensor_type: str | None = None) -> None:
        super().__init__(data or {})
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def convert_to_tensors(self, tensor_type: str | None = None) -> "BatchFeature":
        """Stack each value into one numpy array (``"np"``) or torch tensor (``"pt"``), in place.

        ``None`` leaves the values as they are. Ragged lists become object arrays under
        ``"np"`` and raise ``ValueError`` under ``"pt"`` (pad the batch first).
        """
        if tensor_type is None:
            return self
        tensor_type = getattr(tensor_type, "value", tensor_type)
        if tensor_type not in ("np", "pt"):
            raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {tensor_type!r}")
        for key, value in self.items():
            if isinstance(value, torch.Tensor) or (tensor_type == "np" and isinstance(value, np.ndarray)):
                continue
            if isinstance(value, (list, tuple)):
                value = [v.numpy(force=True) if isinstance(v, torch.Tensor) else np.asarray(v) for v in value]
            if isinstance(value, list) and len({v.shape for v in value}) > 1:
                if tensor_type == "pt":
                    raise ValueError(f"cannot stack '{key}' of different lengths into a tensor: pass padding=True")
                self[key] = np.empty(len(value), dtype=object)
                for index, item in enumerate(value):
                    self[key][index] = item
            else:
                self[key] = torch.from_numpy(np.asarray(value)) if tensor_type == "pt" else np.asarray(value)
        return self

    def to(self, *args: Any, **kwargs: Any) -> "BatchFeature":
        """Move tensors to a device and/or cast floating tensors to a dtype, in place.

        Takes what ``Tensor.to`` takes. Integer tensors such as ``attention_mask`` only
        move device; they are never cast. Returns ``self``.
        """
        device = kwargs.get("device")
        if device is None and args:
            if isinstance(args[0], (str, int, torch.device)):
                device = args[0]
            elif not isinstance(args[0], torch.dtype):
                raise ValueError(f"cannot move a BatchFeature to {args[0]!r}: give a device or a dtype")
        non_blocking = kwargs.get("non_blocking", False)

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.to(*args, **kwargs)
            if isinstance(value, torch.Tensor) and device is not None:
                return value.to(device=device, non_blocking=non_blocking)
            if isinstance(value, (list, tuple)):
                return type(value)(move(v) for v in value)
            return value

        for key in list(self):
            self[key] = move(self[key])
        return self


def _window_samples(sample_frequency: float) -> tuple[int, int]:
    """Kaldi's frame length and shift in samples (400 and 160 at 16 kHz)."""
    return int(sample_frequency * FRAME_LENGTH_MS / 1000), int(sample_frequency * FRAME_SHIFT_MS / 1000)


def _as_float_tensor(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float32 tensor view of mono samples, copying numpy input only when it is read-only."""
    if isinstance(waveform, torch.Tensor):
        wave = waveform.to(torch.float32)
    else:
        wave = torch.from_numpy(np.require(waveform, dtype=np.float32, requirements=["C", "W"]))
    if wave.dim() == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.dim() != 1:
        raise AudioError(f"expected mono audio of shape (samples,), got {tuple(wave.shape)}; mix it down first")
    return wave


def fbank(
    waveform: np.ndarray | torch.Tensor,
    num_mel_bins: int = 80,
    sample_frequency: float = 16000.0,
    dither: float = 0.0,
) -> torch.Tensor:
    """Kaldi log-mel filterbank of mono audio in [-1, 1], as Speech2Text computes it.

    ``waveform`` is ``(num_samples,)`` (or ``(1, num_samples)``); it is scaled to the
    16-bit range and framed with 25 ms windows every 10 ms (snip_edges, povey window,
    DC removal, pre-emphasis 0.97). ``dither`` is Kaldi's dither in 16-bit units.
    Returns float32 ``(num_frames, num_mel_bins)``, with ``num_frames = 1 + (num_samples
    - 400) // 160`` at 16 kHz and zero frames for audio shorter than one window.
    """
    wave = _as_float_tensor(waveform)
    window_size, _ = _window_samples(sample_frequency)
    if wave.numel() < window_size:
        return torch.zeros((0, num_mel_bins), dtype=torch.float32, device=wave.device)
    return kaldi.fbank(
        (wave * INT16_SCALE).unsqueeze(0), dither=dither, frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS,
        num_mel_bins=num_mel_bins, sample_frequency=sample_frequency,
    )  # fmt: skip


def utterance_cmvn(
    features: np.ndarray | torch.Tensor,
    input_length: int,
    normalize_means: bool = True,
    normalize_vars: bool = True,
    padding_value: float = 0.0,
) -> np.ndarray | torch.Tensor:
    """Utterance-level cepstral mean and variance normalisation of ``(num_frames, num_mel_bins)``.

    Mean and (population) standard deviation per bin come from the first
    ``input_length`` frames only; every frame is shifted and scaled by them and the
    frames from ``input_length`` on (padding) are then set to ``padding_value``. It is
    computed in float32 numpy with the reference's operation order so results match it
    bit for bit. Returns float32 of the same shape and kind (numpy or torch) as given.
    """
    as_tensor = isinstance(features, torch.Tensor)
    x = features.numpy(force=True) if as_tensor else np.asarray(features)
    x = x.astype(np.float32)
    if normalize_means:
        x = x - x[:input_length].mean(axis=0)
    if normalize_vars:
        x = x / x[:input_length].std(axis=0)
    x[input_length:] = padding_value
    return torch.from_numpy(x).to(features.device) if as_tensor else x


class StreamingFbank:
    """Incremental ``fbank``: feed audio in chunks of any size, get each frame once.

    Frames are per-window computations, so keeping the samples that have not yet
    completed a window is enough to emit exactly the frames ``fbank`` gives for the
    whole signal. Use ``dither=0`` for reproducible features.
    """

    def __init__(self, num_mel_bins: int = 80, sample_frequency: float = 16000.0, dither: float = 0.0) -> None:
        self.num_mel_bins = num_mel_bins
        self.sample_frequency = sample_frequency
        self.dither = dither
        self._window_size, self._window_shift = _window_samples(sample_frequency)
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples and the frame count, ready for a new utterance."""
        self._leftover = torch.zeros(0, dtype=torch.float32)
        self._num_frames = 0

    @property
    def num_frames_emitted(self) -> int:
        """Frames returned by ``accept_waveform`` since construction or ``reset``."""
        return self._num_frames

    def accept_waveform(self, chunk: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Add mono float32 samples in [-1, 1] of shape ``(chunk_samples,)`` (any length, even 0).

        Returns the newly completed frames, ``(num_new_frames, num_mel_bins)`` float32,
        possibly zero of them.
        """
        buffer = torch.cat([self._leftover, _as_float_tensor(chunk).cpu()])
        if buffer.numel() < self._window_size:
            self._leftover = buffer
            return torch.zeros((0, self.num_mel_bins), dtype=torch.float32)
        num_new = 1 + (buffer.numel() - self._window_size) // self._window_shift
        used = (num_new - 1) * self._window_shift + self._window_size
        frames = fbank(buffer[:used], self.num_mel_bins, self.sample_frequency, self.dither)
        self._leftover = buffer[num_new * self._window_shift :].clone()
        self._num_frames += num_new
        return frames


def _mono(wave: Any, window_size: int) -> np.ndarray:
    """One utterance as a 1-D float32 array, refusing multi-channel audio."""
    wave = np.asarray(wave.numpy(force=True) if isinstance(wave, torch.Tensor) else wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"expected mono audio, got an array of shape {wave.shape}: mix channels down first")
    if wave.shape[0] < window_size:
        raise AudioError(f"audio has {wave.shape[0]} samples, fewer than one {FRAME_LENGTH_MS:g} ms frame")
    return wave


def _padding_strategy(padding: bool | str, max_length: int | None) -> str:
    """The reference's padding strategy name for ``padding`` (True means longest)."""
    strategy = {True: "longest", False: "do_not_pad"}.get(padding, str(getattr(padding, "value", padding)))
    if strategy not in PADDING_STRATEGIES:
        raise ValueError(f"padding must be True, False or one of {PADDING_STRATEGIES}, got {padding!r}")
    if strategy == "max_length" and max_length is None:
        raise ValueError("padding='max_length' needs max_length")
    return strategy


def _round_up(length: int, multiple: int | None) -> int:
    return length if not multiple or length % multiple == 0 else (length // multiple + 1) * multiple


class Speech2TextFeatureExtractor:
    """Turns raw 16 kHz speech into normalised log-mel features for Speech2Text models.

    Same constructor arguments, call semantics, outputs and ``preprocessor_config.json``
    as the reference ``transformers`` class: ``__call__`` returns a ``BatchFeature`` with
    ``input_features`` ``(batch, num_frames, num_mel_bins)`` and ``attention_mask``
    ``(batch, num_frames)`` (lists of arrays unless ``return_tensors`` is given).
    """

    model_input_names = ["input_features", "attention_mask"]
    utterance_cmvn = staticmethod(utterance_cmvn)

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        num_mel_bins: int = 80,
        padding_value: float = 0.0,
        dither: float = 0.0,
        do_ceptral_normalize: bool = True,
        normalize_means: bool = True,
        normalize_vars: bool = True,
        return_attention_mask: bool = True,
        padding_side: str = "right",
        **kwargs: Any,
    ) -> None:
        if padding_side != "right":
            raise ModelError(f"padding_side={padding_side!r} is not supported: Speech2Text pads on the right")
        self.feature_size = feature_size
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.padding_value = padding_value
        self.dither = dither
        self.do_ceptral_normalize = do_ceptral_normalize
        self.normalize_means = normalize_means
        self.normalize_vars = normalize_vars
        self.return_attention_mask = return_attention_mask
        self.padding_side = padding_side
        kwargs.pop("feature_extractor_type", None)
        kwargs.pop("processor_class", None)
        self._extra = kwargs  # unknown config keys, kept so that saving round-trips them

    def _batch(self, raw_speech: Any) -> list[np.ndarray]:
        """The input as a list of mono float32 utterances."""
        window_size, _ = _window_samples(self.sampling_rate)
        if isinstance(raw_speech, (np.ndarray, torch.Tensor)):
            shape = tuple(raw_speech.shape)
            # (samples, channels) would otherwise pass for a batch of utterances too short to frame
            if len(shape) > 2 or (len(shape) == 2 and shape[0] > shape[1] and shape[1] < window_size):
                raise AudioError(f"expected mono audio, got an array of shape {shape}: mix channels down first")
            is_batch = len(shape) == 2
        elif not raw_speech:
            raise AudioError("no audio given: raw_speech is empty")
        else:  # a list of utterances, or one utterance as a list of floats
            is_batch = isinstance(raw_speech[0], (np.ndarray, torch.Tensor, list, tuple))
        batch = list(raw_speech) if is_batch else [raw_speech]
        return [_mono(wave, window_size) for wave in batch]

    def __call__(
        self,
        raw_speech: np.ndarray | torch.Tensor | list[float] | list[np.ndarray] | list[list[float]],
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        sampling_rate: int | None = None,
        return_attention_mask: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Extract, truncate, pad and normalise features for one utterance or a batch.

        ``raw_speech`` is mono float audio in [-1, 1]: ``(num_samples,)`` or a batch
        (list of those, or ``(batch, num_samples)``). ``padding`` is False, True /
        ``"longest"`` or ``"max_length"``; ``truncation`` cuts to ``max_length`` frames.
        Statistics for normalisation exclude padded frames, which are set to
        ``padding_value``. Raises ``AudioError`` for stereo input or a ``sampling_rate``
        other than the extractor's; warns when ``sampling_rate`` is not given.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments to {type(self).__name__}(): {sorted(kwargs)}")
        if sampling_rate is None:
            message = f"pass sampling_rate to {type(self).__name__}() so that wrongly sampled audio is caught"
            warnings.warn(message, UserWarning, stacklevel=2)
        elif sampling_rate != self.sampling_rate:
            raise AudioError(
                f"audio is sampled at {sampling_rate} Hz but this model needs {self.sampling_rate} Hz: "
                "resample it first (s2t_live.audio.resample)"
            )
        strategy = _padding_strategy(padding, max_length)
        if truncation and max_length is None:
            raise ValueError("truncation=True needs max_length")
        with_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        features = [
            fbank(wave, self.num_mel_bins, self.sampling_rate, self.dither).numpy() for wave in self._batch(raw_speech)
        ]
        if truncation:
            features = [f[: _round_up(max_length, pad_to_multiple_of)] for f in features]
        lengths = [f.shape[0] for f in features]
        if self.do_ceptral_normalize:
            features = [
                utterance_cmvn(f, n, self.normalize_means, self.normalize_vars, self.padding_value)
                for f, n in zip(features, lengths)
            ]
        target = {"longest": max(lengths), "max_length": max_length, "do_not_pad": 0}[strategy]
        target = _round_up(target, pad_to_multiple_of)
        padded = [
            np.pad(f, ((0, max(target - n, 0)), (0, 0)), constant_values=self.padding_value).astype(np.float32)
            for f, n in zip(features, lengths)
        ]
        data: dict[str, Any] = {"input_features": padded}
        if with_mask:
            data["attention_mask"] = [(np.arange(len(f)) < n).astype(np.int32) for f, n in zip(padded, lengths)]
        return BatchFeature(data, tensor_type=return_tensors)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as saved in ``preprocessor_config.json``, reference keys included."""
        settings = {key: value for key, value in vars(self).items() if not key.startswith("_")}
        return {**self._extra, **settings, "feature_extractor_type": type(self).__name__}

    def to_json_string(self) -> str:
        """``to_dict`` as indented JSON with sorted keys and a trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def save_pretrained(self, save_directory: str | Path) -> list[str]:
        """Write ``preprocessor_config.json`` into ``save_directory`` (created if needed); return its path."""
        path = Path(save_directory) / CONFIG_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.to_json_string(), encoding="utf-8")
        except OSError as error:
            raise OutputError(f"{path}: cannot write feature extractor config ({error.strerror})") from None
        return [str(path)]

    @classmethod
    def from_dict(cls, config: dict[str, Any], **kwargs: Any) -> "Speech2TextFeatureExtractor":
        """Build from a configuration dict; ``kwargs`` override its entries."""
        return cls(**{**config, **kwargs})

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> "Speech2TextFeatureExtractor":
        """Load from a model folder holding ``preprocessor_config.json`` or from that file itself.

        ``kwargs`` override saved entries. Raises ``ModelError`` when the file is
        missing, is not valid JSON, or describes another kind of feature extractor.
        """
        file = Path(path) / CONFIG_NAME if Path(path).is_dir() else Path(path)
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{file}: not found; is this a Speech2Text model folder?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{file}: cannot read feature extractor config ({error})") from None
        if not isinstance(config, dict):
            raise ModelError(f"{file}: expected a JSON object of feature extractor settings")
        kind = config.get("feature_extractor_type", cls.__name__)
        if kind != cls.__name__:
            raise ModelError(f"{file}: describes a {kind}, not a {cls.__name__}")
        return cls.from_dict(config, **kwargs)
