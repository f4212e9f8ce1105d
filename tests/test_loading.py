"""Loading checkpoints safely, from every place a model can come from, and failing clearly."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from s2t_live import ModelError, Speech2TextForConditionalGeneration, Speech2TextModel, Speech2TextProcessor
from s2t_live.hub import resolve_model_dir


def copy_model(src, dst, keep=("config.json", "generation_config.json", "preprocessor_config.json",
                               "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                               "sentencepiece.bpe.model", "model.safetensors")):
    dst.mkdir(parents=True, exist_ok=True)
    for name in keep:
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    return dst


def test_pytorch_bin_loads_with_same_weights(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "bin", keep=("config.json", "vocab.json"))
    ref = Speech2TextForConditionalGeneration.from_pretrained(tiny_model)
    torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    loaded = Speech2TextForConditionalGeneration.from_pretrained(folder)
    for (name, a), b in zip(ref.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_safetensors_preferred_over_pickle(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "both")
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    Speech2TextForConditionalGeneration.from_pretrained(folder)  # never touches the broken .bin


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/s2t_live_pwned",))


def test_pickle_that_runs_code_is_refused(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "evil", keep=("config.json",))
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"model.x": Boom()}, f)
    with pytest.raises(ModelError, match="refused"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert not os.path.exists("/tmp/s2t_live_pwned")


def test_folder_without_weights_is_a_clear_error(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "noweights", keep=("config.json",))
    with pytest.raises(ModelError, match="no model weights"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)


def test_mismatched_weights_name_the_tensor(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "mismatch")
    config = json.loads((folder / "config.json").read_text())
    config["d_model"] = 32
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="shape"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)


def test_broken_config_is_a_clear_error(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path / "badconfig")
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ModelError, match="config.json"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)


def test_missing_folder_and_offline_hub_id_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="no such model folder"):
        resolve_model_dir(tmp_path / "nothing-here")
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        resolve_model_dir("facebook/s2t-small-librispeech-asr")


def test_hub_id_resolves_from_the_standard_cache(tiny_model, tmp_path, monkeypatch):
    """A model already in the Hugging Face cache layout loads offline by its hub id."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--facebook--s2t-tiny-test" / "snapshots" / ("a" * 40)
    copy_model(tiny_model, snapshot)
    (cache / "models--facebook--s2t-tiny-test" / "refs").mkdir()
    (cache / "models--facebook--s2t-tiny-test" / "refs" / "main").write_text("a" * 40)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    model = Speech2TextForConditionalGeneration.from_pretrained("facebook/s2t-tiny-test")
    processor = Speech2TextProcessor.from_pretrained("facebook/s2t-tiny-test")
    assert model.config.d_model == 64 and processor.tokenizer.vocab_size > 10


def test_save_pretrained_round_trip_is_read_by_reference(tiny_model, tmp_path):
    import transformers

    model = Speech2TextForConditionalGeneration.from_pretrained(tiny_model)
    model.save_pretrained(tmp_path / "saved")
    Speech2TextProcessor.from_pretrained(tiny_model).save_pretrained(tmp_path / "saved")
    ref = transformers.Speech2TextForConditionalGeneration.from_pretrained(tmp_path / "saved")
    ours = model.state_dict()
    for name, tensor in ref.state_dict().items():
        assert torch.equal(tensor, ours[name]), name
    transformers.Speech2TextProcessor.from_pretrained(tmp_path / "saved")


def test_base_model_loads_from_generation_checkpoint(tiny_model):
    base = Speech2TextModel.from_pretrained(tiny_model)
    full = Speech2TextForConditionalGeneration.from_pretrained(tiny_model)
    assert torch.equal(base.encoder.layers[0].fc1.weight, full.model.encoder.layers[0].fc1.weight)


def test_dtype_auto_and_explicit(tiny_model):
    assert Speech2TextForConditionalGeneration.from_pretrained(tiny_model, dtype="auto").dtype == torch.float32
    half = Speech2TextForConditionalGeneration.from_pretrained(tiny_model, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
