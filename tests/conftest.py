"""Shared fixtures: the real speech clips and small fitted checkpoints built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the hub: offline, models built locally

REALSPEECH = Path(os.environ.get("S2T_REALSPEECH", Path(__file__).resolve().parent / "data" / "realspeech"))


@pytest.fixture(scope="session")
def realspeech_dir() -> Path:
    assert (REALSPEECH / "transcripts.tsv").is_file(), f"missing test clips in {REALSPEECH}"
    return REALSPEECH


@pytest.fixture(scope="session")
def clips(realspeech_dir):
    """(name, 16 kHz mono audio, transcript) for every real clip, full length."""
    from s2t_live.testing import read_clips

    return read_clips(realspeech_dir)


@pytest.fixture(scope="session")
def train_clips(realspeech_dir):
    """The clips cut to 4 s: enough for a small model to learn audio-dependent output quickly."""
    from s2t_live.testing import read_clips

    return read_clips(realspeech_dir, max_seconds=4)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, train_clips):
    """``checkpoint(name, **kwargs)``: a fitted checkpoint folder, built once per distinct name."""
    from s2t_live.testing import build_checkpoint

    built: dict[str, Path] = {}

    def make(name: str, **kwargs) -> Path:
        if name not in built:
            built[name] = build_checkpoint(tmp_path_factory.mktemp(name), train_clips, **kwargs)
        return built[name]

    return make


@pytest.fixture(scope="session")
def tiny_model(checkpoint) -> Path:
    """The default small fitted checkpoint most tests share."""
    return checkpoint("tiny", seed=0, steps=60)


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> Path:
    """A writable copy of the tiny checkpoint's folder, for tests that add files to it."""
    import shutil

    out = tmp_path / "model"
    shutil.copytree(tiny_model, out)
    return out


@pytest.fixture
def decode_clip(clips):
    """``decode(folder, **generate options)``: the text a model folder makes of the first real clip."""
    from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor

    def decode(folder: Path, max_new_tokens: int = 40, **options) -> str:
        model = Speech2TextForConditionalGeneration.from_pretrained(folder)
        processor = Speech2TextProcessor.from_pretrained(folder)
        x = processor(clips[0][1], sampling_rate=16000, return_tensors="pt")["input_features"]
        ids = model.generate(x, max_new_tokens=max_new_tokens, **options)
        return processor.batch_decode(ids, skip_special_tokens=True)[0]
    return decode


@pytest.fixture(scope="session")
def memorising_model(tmp_path_factory, realspeech_dir) -> Path:
    """A tiny checkpoint fitted 80 steps on the 6-s clips: it reproduces their transcripts, so streaming
    and GUI tests see real, audio-dependent text."""
    import torch

    from s2t_live.testing import build_checkpoint, one_thread, read_clips

    folder = tmp_path_factory.mktemp("memorising")
    torch.manual_seed(0)
    with one_thread():
        build_checkpoint(folder, read_clips(realspeech_dir, max_seconds=6), seed=0, shape="tiny", steps=80)
    return folder


@pytest.fixture(scope="module")
def single_thread():
    """Use in a module with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    from s2t_live.testing import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session")
def model_dir(memorising_model) -> Path:
    """The model the streaming tests decode with."""
    return memorising_model
