"""Where a model comes from: a local folder, a fairseq checkpoint, the Hugging Face cache, or the
model embedded in the package. Everything is resolved to a local folder in the Hugging Face layout."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ModelError

# Files a Speech2Text checkpoint folder may hold; nothing else is fetched from the hub.
HUB_FILES = [
    "config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "sentencepiece.bpe.model", "model.safetensors",
    "model.safetensors.index.json", "model-*.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json",
    "pytorch_model-*.bin", "added_tokens.json",
    "lexicon.txt", "lm.npz", "lm.arpa", "lm.arpa.gz",  # s2t-live's decoding extras, where a repository has them
]


def embedded_model_dir() -> Path | None:
    """The small model shipped in ``s2t_live/assets/default``, or None when this install has none."""
    try:
        folder = Path(str(resources.files("s2t_live.assets") / "default"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "config.json").is_file() else None


def default_model() -> str:
    """The model used when none is given: ``$S2T_LIVE_MODEL``, else the embedded one."""
    env = os.environ.get("S2T_LIVE_MODEL")
    if env:
        return env
    folder = embedded_model_dir()
    if folder is None:
        raise ModelError("no model given and this install has no embedded model: pass --model with a "
                         "model folder, a fairseq checkpoint or a hub id such as facebook/s2t-small-librispeech-asr")
    return str(folder)


def is_fairseq_checkpoint(path: Path) -> bool:
    """A fairseq S2T checkpoint: a ``.pt`` file, or a folder holding one and no ``config.json``."""
    if path.is_file():
        return path.suffix == ".pt"
    return path.is_dir() and not (path / "config.json").exists() and any(path.glob("*.pt"))


def looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def download(repo_id: str, revision: str | None = None) -> Path:
    """Fetch (or find in the cache) the Speech2Text files of a hub repo; honours ``HF_HUB_OFFLINE``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError:
        raise ModelError(f"{repo_id}: not in the Hugging Face cache and the hub cannot be reached "
                         "(offline?); download it once online or pass a local model folder") from None
    except RepositoryNotFoundError:
        raise ModelError(f"{repo_id}: no such model on the Hugging Face hub") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"{repo_id}: download failed ({exc})") from None


def resolve_model_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder in the Hugging Face layout for a folder, a fairseq checkpoint or a hub id."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if is_fairseq_checkpoint(path):
            from .fairseq import convert_fairseq_checkpoint

            return convert_fairseq_checkpoint(path)
        if path.is_dir():
            return path
        raise ModelError(f"{path}: not a model folder or a fairseq .pt checkpoint")
    if looks_like_hub_id(str(name_or_path)):
        return download(str(name_or_path), revision)
    raise ModelError(f"{name_or_path}: no such model folder or file")
