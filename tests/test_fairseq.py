"""fairseq S2T checkpoints (``.pt`` + ``config.yaml`` + sentencepiece files) convert on load."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil

import pytest
import torch

from s2t_live import ModelError, Speech2TextForConditionalGeneration, Speech2TextProcessor


def to_fairseq_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key == "lm_head.weight":
            out["decoder.output_projection.weight"] = value
            continue
        key = key.removeprefix("model.")
        key = key.replace("encoder.conv.", "encoder.subsample.").replace("encoder.layers.", "encoder.transformer_layers.")
        out[key] = value
    out["encoder.version"] = torch.tensor([3.0])
    out["decoder.embed_positions._float_tensor"] = torch.zeros(1)
    return out


def fairseq_args(config) -> argparse.Namespace:
    return argparse.Namespace(
        arch="s2t_transformer_s", encoder_embed_dim=config.d_model, decoder_embed_dim=config.d_model,
        encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads, decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_embed_dim=config.encoder_ffn_dim, decoder_ffn_embed_dim=config.decoder_ffn_dim,
        conv_kernel_sizes=",".join(map(str, config.conv_kernel_sizes)), conv_channels=config.conv_channels,
        input_feat_per_channel=80, input_channels=1, encoder_normalize_before=True, decoder_normalize_before=True,
        share_decoder_input_output_embed=True, no_scale_embedding=False, activation_fn="relu", dropout=0.1,
        max_source_positions=config.max_source_positions, max_target_positions=config.max_target_positions)


@pytest.fixture(scope="module")
def fairseq_dir(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fairseq")
    model = Speech2TextForConditionalGeneration.from_pretrained(tiny_model)
    torch.save({"args": fairseq_args(model.config), "model": to_fairseq_names(model.state_dict()),
                "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion"}]},
               folder / "checkpoint_best.pt")
    shutil.copy(tiny_model / "sentencepiece.bpe.model", folder / "spm_unigram.model")
    vocab = json.loads((tiny_model / "vocab.json").read_text())
    pieces = sorted((i, p) for p, i in vocab.items() if i >= 4)
    (folder / "spm_unigram.txt").write_text("".join(f"{p} 1\n" for _, p in pieces))
    (folder / "config.yaml").write_text("bpe_tokenizer:\n  bpe: sentencepiece\n  sentencepiece_model: spm_unigram.model\n"
                                        "input_channels: 1\ninput_feat_per_channel: 80\nvocab_filename: spm_unigram.txt\n")
    return folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2T_LIVE_CACHE", str(tmp_path / "cache"))


def test_converted_checkpoint_generates_same_ids_as_original(fairseq_dir, tiny_model, clips):
    original = Speech2TextForConditionalGeneration.from_pretrained(tiny_model)
    converted = Speech2TextForConditionalGeneration.from_pretrained(fairseq_dir / "checkpoint_best.pt")
    processor = Speech2TextProcessor.from_pretrained(fairseq_dir / "checkpoint_best.pt")
    for _, wave, text in clips[:4]:
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        a = original.generate(inputs["input_features"], num_beams=3, max_new_tokens=40, early_stopping=False)
        b = converted.generate(inputs["input_features"], num_beams=3, max_new_tokens=40, early_stopping=False)
        assert a.tolist() == b.tolist()
        assert processor.decode(b[0], skip_special_tokens=True) == Speech2TextProcessor.from_pretrained(
            tiny_model).decode(a[0], skip_special_tokens=True)


def test_folder_with_fairseq_checkpoint_and_cfg_dict(fairseq_dir, tmp_path):
    folder = tmp_path / "cfgstyle"
    shutil.copytree(fairseq_dir, folder)
    state = torch.load(folder / "checkpoint_best.pt", weights_only=False)
    args = vars(state.pop("args"))
    torch.save({"cfg": {"model": args}, "model": state["model"]}, folder / "checkpoint_best.pt")
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert model.config.encoder_layers == args["encoder_layers"]


def test_fairseq_checkpoint_with_code_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/s2t_live_fairseq_pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": {}, "args": Boom()}, f)
    with pytest.raises(ModelError, match="refused"):
        Speech2TextForConditionalGeneration.from_pretrained(tmp_path / "evil.pt")
    assert not os.path.exists("/tmp/s2t_live_fairseq_pwned")


def test_fairseq_checkpoint_without_tokenizer_files_says_what_is_missing(fairseq_dir, tmp_path):
    shutil.copy(fairseq_dir / "checkpoint_best.pt", tmp_path / "lonely.pt")
    with pytest.raises(ModelError, match="sentencepiece model"):
        Speech2TextForConditionalGeneration.from_pretrained(tmp_path / "lonely.pt")
