"""Which models the picker offers, which of them translate, and fetching one from the Hugging Face hub.

The downloader is a plain function ``(repo_id, progress, cancelled) -> folder`` so the dialog can be
driven by a fake hub in tests; ``hub_downloader`` is the real one.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Callable

from s2t_live.errors import ModelError
from s2t_live.hub import HUB_FILES, embedded_model_dir, looks_like_hub_id
from s2t_live.tokenizer import LANGUAGES

# The Speech2Text checkpoints published by fairseq's authors on the hub.
HUB_MODELS = [
    "facebook/s2t-small-librispeech-asr",
    "facebook/s2t-medium-librispeech-asr",
    "facebook/s2t-large-librispeech-asr",
    "facebook/s2t-medium-mustc-multilingual-st",
    *(f"facebook/s2t-small-mustc-en-{lang}-st" for lang in ("de", "es", "fr", "it", "nl", "pt", "ro", "ru")),
]

LANGUAGE_NAMES = {"de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch",
                  "pt": "Portuguese", "ro": "Romanian", "ru": "Russian"}
MUSTC_LANGUAGES = sorted(LANGUAGES["mustc"], key=lambda code: LANGUAGE_NAMES.get(code, code))

Progress = Callable[[int, int], None]  # bytes done, bytes expected (0: unknown yet)
Downloader = Callable[[str, Progress, threading.Event], Path]


class DownloadCancelled(Exception):
    """The user cancelled a download."""


def translation_languages(model: str) -> list[str]:
    """The target languages a multilingual speech-translation model can be asked for (else [])."""
    path = Path(model).expanduser() if model else embedded_model_dir()
    if path is not None and (path / "tokenizer_config.json").is_file():
        try:
            config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return list(LANGUAGES.get(config.get("lang_codes") or "", []))
    if looks_like_hub_id(model) and "multilingual" in model:
        return list(MUSTC_LANGUAGES)
    return []


def cached_folder(repo_id: str) -> Path | None:
    """The local snapshot of a hub model when it is already in the Hugging Face cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if (folder / "config.json").is_file() else None


def hub_downloader(repo_id: str, progress: Progress, cancelled: threading.Event) -> Path:
    """Download the Speech2Text files of ``repo_id``; reports bytes, raises ``DownloadCancelled``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
    from tqdm.auto import tqdm

    class Reporter(tqdm):
        """A silent progress bar that forwards byte counts and stops the download on cancel."""

        def __init__(self, *args, **kwargs):
            kwargs["file"] = io.StringIO()
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            # Of the byte bars, follow the one of bytes written (xet also has one of bytes received).
            self.reports = self.unit == "B" and not str(self.desc).startswith("Downloading bytes")

        def update(self, n=1):
            if cancelled.is_set():
                raise DownloadCancelled()
            result = super().update(n)
            if self.reports:
                progress(int(self.n), int(self.total or 0))
            return result

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, tqdm_class=Reporter))
    except RepositoryNotFoundError:
        raise ModelError(f"{repo_id}: no such model on the Hugging Face hub") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"{repo_id}: download failed ({exc})") from None
