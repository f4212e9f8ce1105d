"""The user-facing failures of s2t-live.

Every failure a person can act on (a missing file, unreadable audio, a broken model
folder, no microphone, a full disk) is raised as one of these. The CLI and the GUI show
``str(error)`` as a single line and exit non-zero; anything else is a bug.
"""

from __future__ import annotations


class S2TError(Exception):
    """Base class: a failure with a message a person can act on."""


class AudioError(S2TError):
    """Audio that cannot be read: missing, empty, corrupt, unsupported, or non-finite."""


class ModelError(S2TError):
    """A model that cannot be found or loaded: missing or broken folder, unsafe weights, offline."""


class DeviceError(S2TError):
    """An audio input device that is absent, busy, or disappeared while recording."""


class OutputError(S2TError):
    """A result that cannot be written: no space, no permission, bad path."""
