"""Live input from a sound card through ``sounddevice`` (PortAudio).

The PortAudio callback runs on PortAudio's own thread and only copies each block into a bounded queue;
everything else (resampling to 16 kHz, rejecting non-finite samples, noticing a device that went away)
happens in ``read``, on the consumer's thread. ``sounddevice`` is imported only when a device is used, so
a machine without PortAudio or a sound card fails with a ``DeviceError`` saying so, not at import time.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

from s2t_live.audio import SAMPLE_RATE
from s2t_live.errors import DeviceError

from .resample import StreamingResampler
from .sources import BLOCK_SECONDS

_DEVICE_LOST = object()  # queued by PortAudio's finished callback when the stream ends on its own


def load_sounddevice() -> ModuleType:
    """The ``sounddevice`` module, or ``DeviceError`` when PortAudio is missing (tests replace this)."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError at import when libportaudio is absent
        raise DeviceError(f"no audio input available: {exc} (install the PortAudio library, e.g. "
                          "apt-get install libportaudio2)") from None
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    """One capture device as PortAudio lists it."""

    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool = False


def list_input_devices(sd: ModuleType | None = None) -> list[InputDevice]:
    """The capture devices PortAudio knows; ``DeviceError`` when there is none or PortAudio is missing."""
    sd = sd or load_sounddevice()
    try:
        devices = list(sd.query_devices())
        default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    except (sd.PortAudioError, OSError) as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    found = [InputDevice(i, str(d["name"]), int(d["max_input_channels"]), float(d["default_samplerate"]),
                         i == default)
             for i, d in enumerate(devices) if int(d.get("max_input_channels", 0)) > 0]
    if not found:
        raise DeviceError("no audio input device found: connect a microphone (or check permissions) "
                          "and run `s2t-live devices`")
    return found


def find_device(device: int | str | None, sd: ModuleType | None = None) -> InputDevice:
    """The input device with index ``device``, or whose name contains it (case-insensitive), or the default."""
    devices = list_input_devices(sd)
    if device is None or device == "":
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(device, int) or str(device).isdigit():
        match = [d for d in devices if d.index == int(device)]
    else:
        match = [d for d in devices if str(device).lower() in d.name.lower()]
    if not match:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise DeviceError(f"no input device matches {device!r}; available: {names}")
    return match[0]


class MicrophoneSource:
    """A sound card input as an ``AudioSource``: 16 kHz mono float32 blocks, overflows counted.

    ``device`` is an index, part of a name, or None for the default. Blocks wait in a queue of
    ``queue_seconds``; when the consumer falls further behind, blocks are dropped and counted in
    ``overflows`` (as are PortAudio's own input overflows). Non-finite samples are replaced by silence
    and counted in ``rejected_samples``. A stream that ends on its own, or delivers nothing for
    ``stall_seconds``, raises ``DeviceError`` from ``read``.
    """

    sample_rate = SAMPLE_RATE
    live = True

    def __init__(self, device: int | str | None = None, block_seconds: float = BLOCK_SECONDS,
                 queue_seconds: float = 10.0, stall_seconds: float = 2.0, sd: ModuleType | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.requested = device
        self.block_seconds = block_seconds
        self.stall_seconds = stall_seconds
        self._sd = sd
        self.clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(2, round(queue_seconds / block_seconds)))
        self.overflows = 0
        self.rejected_samples = 0
        self.device: InputDevice | None = None
        self._stream: Any = None
        self._resampler: StreamingResampler | None = None
        self._paused = False
        self._stopped = False
        self._last_data = 0.0

    # --- PortAudio's thread: copy and leave ---------------------------------------------------

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.overflows += 1

    def _finished(self) -> None:
        if not (self._paused or self._stopped):
            try:
                self._queue.put_nowait(_DEVICE_LOST)
            except queue.Full:
                self.overflows += 1  # read() still notices: the stream is no longer active

    # --- the consumer's thread ----------------------------------------------------------------

    def _native_rate(self, sd: ModuleType, device: InputDevice) -> int:
        """16 kHz when the device takes it, else its default rate (resampled here)."""
        try:
            sd.check_input_settings(device=device.index, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
            return SAMPLE_RATE
        except (sd.PortAudioError, ValueError):
            return int(device.default_samplerate)

    def start(self) -> None:
        """Open the device and start capturing; ``DeviceError`` when it is absent or busy."""
        sd = self._sd = self._sd or load_sounddevice()
        self.device = find_device(self.requested, sd)
        rate = self._native_rate(sd, self.device)
        self._resampler = StreamingResampler(rate, SAMPLE_RATE)
        try:
            self._stream = sd.InputStream(device=self.device.index, channels=1, samplerate=rate, dtype="float32",
                                          blocksize=int(rate * self.block_seconds), callback=self._callback,
                                          finished_callback=self._finished)
            self._paused = self._stopped = False
            self._stream.start()
        except (sd.PortAudioError, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open input device {self.device.name!r}: {exc}") from None
        self._last_data = self.clock()

    def _lost(self, why: str) -> DeviceError:
        name = self.device.name if self.device else self.requested
        return DeviceError(f"input device {name!r} {why}; reconnect it and start again")

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The next 16 kHz block (empty when none arrived within ``timeout``); None after ``stop``."""
        if self._stream is None:
            return None
        try:
            item = self._queue.get(block=not self._stopped and timeout != 0, timeout=timeout)
        except queue.Empty:
            if self._stopped:
                return None
            if self._paused:
                return np.zeros(0, dtype=np.float32)
            if not getattr(self._stream, "active", True):
                raise self._lost("stopped delivering audio") from None
            if self.clock() - self._last_data > self.stall_seconds:
                raise self._lost(f"delivered no audio for {self.stall_seconds:g} s") from None
            return np.zeros(0, dtype=np.float32)
        if item is _DEVICE_LOST:
            raise self._lost("disappeared (unplugged?)")
        self._last_data = self.clock()
        finite = np.isfinite(item)
        if not finite.all():
            self.rejected_samples += int(item.size - np.count_nonzero(finite))
            item = np.where(finite, item, 0.0).astype(np.float32)
        return self._resampler.accept(item)

    def available(self) -> bool:
        return not self._queue.empty()

    def pause(self) -> None:
        """Stop capturing (nothing is captured, so nothing is dropped) until ``resume``."""
        if self._stream is not None and not (self._paused or self._stopped):
            self._paused = True
            self._stream.stop()

    def resume(self) -> None:
        if self._stream is not None and self._paused and not self._stopped:
            self._paused = False
            self._stream.start()
            self._last_data = self.clock()

    def stop(self) -> None:
        """Stop capturing; blocks already queued can still be read, then ``read`` returns None."""
        if self._stream is None or self._stopped:
            return
        self._stopped = True
        try:
            self._stream.stop()
            self._stream.close()
        except (self._sd.PortAudioError, OSError):
            pass  # the device is already gone; what was captured stays readable
