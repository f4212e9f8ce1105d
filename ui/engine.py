"""The real recognition behind the GUI's ``Session`` protocol: ``s2t_live.streaming``'s ``Recognizer``,
an audio source and a ``StreamingWorker``. Loading a model is slow, so the factory keeps the last
recognizer and reuses it while the model, chunk length and target language stay the same."""

from __future__ import annotations

import threading
from typing import Callable

from s2t_live.errors import ModelError
from s2t_live.hub import default_model
from s2t_live.streaming.events import Event
from s2t_live.streaming.microphone import MicrophoneSource, list_input_devices
from s2t_live.streaming.recognizer import Recognizer, StreamConfig
from s2t_live.streaming.sources import FileSource
from s2t_live.streaming.worker import StreamingWorker

from .session import SessionConfig


def input_device_names() -> list[str]:
    """Names of the capture devices (``DeviceError`` when there are none or PortAudio is missing)."""
    return [device.name for device in list_input_devices()]


class StreamingSession:
    """A ``StreamingWorker`` seen through the ``Session`` protocol (its thread runs the stream)."""

    def __init__(self, worker: StreamingWorker):
        self.worker = worker

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(wait=False)

    def pause(self) -> None:
        self.worker.pause()

    def resume(self) -> None:
        self.worker.resume()


class StreamingSessionFactory:
    """``SessionFactory`` for the real engine; called on the session's worker thread."""

    def __init__(self, torch_device: str | None = None, load: Callable[..., Recognizer] = Recognizer.from_pretrained):
        self.torch_device = torch_device
        self.load = load
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._recognizer: Recognizer | None = None

    def recognizer(self, config: SessionConfig) -> Recognizer:
        model = config.model or default_model()
        key = (model, config.chunk_seconds, config.tgt_lang)
        with self._lock:
            if key != self._key:
                self._recognizer = None  # free the old model before loading the next
                recognizer = self.load(model, StreamConfig(chunk_seconds=config.chunk_seconds),
                                       device=self.torch_device)
                if config.tgt_lang:
                    force_target_language(recognizer, config.tgt_lang)
                self._key, self._recognizer = key, recognizer
            return self._recognizer

    def __call__(self, config: SessionConfig, on_event: Callable[[Event], None]) -> StreamingSession:
        recognizer = self.recognizer(config)
        if config.input_file:
            source = FileSource(config.input_file, speed=config.speed)
        else:
            source = MicrophoneSource(config.device or None)
        # Status ten times a second keeps the level meter live; a status event costs next to nothing.
        return StreamingSession(StreamingWorker(recognizer, source, on_event, status_every=0.1))


def force_target_language(recognizer: Recognizer, lang: str) -> None:
    """Make a multilingual translation model decode into ``lang`` (its ``<lang:xx>`` token comes first).

    The streaming decoder has no target-language option of its own, so this goes through the generation
    config's ``forced_bos_token_id``, as the offline transcriber does."""
    codes = recognizer.processor.tokenizer.lang_code_to_id
    if lang not in codes:
        known = ", ".join(codes) or "none: this model does not translate"
        raise ModelError(f"this model has no target language {lang!r}; it knows: {known}")
    recognizer.model.generation_config.forced_bos_token_id = codes[lang]
