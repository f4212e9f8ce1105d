"""Training recipes as data: errors a person can act on, the file formats, and the shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2t_live.train.config import ConfigError, load_config


def test_recipe_errors_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting optim.lrr"):
        load_config(None, ["data.train=x.tsv", "optim.lrr=1"])
    with pytest.raises(ConfigError, match="max_steps must be a int"):
        load_config(None, ["data.train=x.tsv", "max_steps='many'"])
    (tmp_path / "r.toml").write_text("max_steps = 3\n[model]\nd_modell = 3\n")
    with pytest.raises(ConfigError, match="model.d_modell"):
        load_config(tmp_path / "r.toml", ["data.train=x.tsv"])
    with pytest.raises(ConfigError, match="ctc_only_steps.*ctc_weight"):
        load_config(None, ["data.train=x.tsv", "optim.ctc_only_steps=5"])
    with pytest.raises(ConfigError, match="detached_decoder_steps.*ctc_weight"):
        load_config(None, ["data.train=x.tsv", "optim.detached_decoder_steps=5"])
    with pytest.raises(ConfigError, match="lm.min_count >= 1"):
        load_config(None, ["data.train=x.tsv", "lm.order=3", "lm.min_count=0"])
    with pytest.raises(ConfigError, match="data.vtlp .* not 1.5"):
        load_config(None, ["data.train=x.tsv", "data.vtlp=1.5"])
    with pytest.raises(ConfigError, match="inter_ctc_layer.*inter_ctc_weight between 0 and 1"):
        load_config(None, ["data.train=x.tsv", "optim.ctc_weight=0.3", "optim.inter_ctc_layer=2"])
    with pytest.raises(ConfigError, match="phoneme_ctc_layer.*phoneme_ctc_weight > 0"):
        load_config(None, ["data.train=x.tsv", "optim.phoneme_ctc_layer=2"])
    with pytest.raises(ConfigError, match="optim.schedule is one of inverse_sqrt, tri_stage, not 'cosine'"):
        load_config(None, ["data.train=x.tsv", "optim.schedule='cosine'"])
    with pytest.raises(ConfigError, match="tri_stage.*decay_steps > 0"):
        load_config(None, ["data.train=x.tsv", "optim.schedule='tri_stage'"])


def test_recipe_formats_agree(tmp_path):
    (tmp_path / "r.toml").write_text("max_steps = 3\n[optim]\nlr = 1e-3\nbetas = [0.9, 0.99]\n")
    (tmp_path / "r.json").write_text('{"max_steps": 3, "optim": {"lr": 0.001, "betas": [0.9, 0.99]}}')
    (tmp_path / "r.yaml").write_text("max_steps: 3\noptim:\n  lr: 0.001\n  betas: [0.9, 0.99]\n")
    loaded = [load_config(tmp_path / f"r.{ext}", ["data.train=x.tsv", "optim.warmup_steps=7"])
              for ext in ("toml", "json", "yaml")]
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0].optim.betas == (0.9, 0.99) and loaded[0].optim.warmup_steps == 7


def test_embedded_recipe_loads_and_fits_the_size_budget():
    from s2t_live.configuration import Speech2TextConfig
    from s2t_live.model import Speech2TextForConditionalGeneration

    cfg = load_config(Path(__file__).parents[1] / "recipes" / "embedded.toml")
    config = Speech2TextConfig(**{**cfg.model, "vocab_size": cfg.tokenizer.vocab_size},
                               extra={"ctc_head": cfg.optim.ctc_weight > 0})
    model = Speech2TextForConditionalGeneration(config)
    assert model.ctc_head is not None  # trained with CTC: the head is part of the shipped model
    assert model.num_parameters() <= 10_000_000 and cfg.float16_weights


def test_embedded_second_stage_recipe_continues_the_first():
    first = load_config(Path(__file__).parents[1] / "recipes" / "embedded.toml")
    second = load_config(Path(__file__).parents[1] / "recipes" / "embedded_anneal.toml")
    assert second.init_from == str(Path(first.output_dir) / "model") and second.float16_weights
    assert second.optim.ctc_weight > 0 and second.optim.lr < first.optim.lr  # the CTC head trains on
    shipped = json.loads((Path(__file__).parents[1] / "assets" / "default" / "generation_config.json").read_text())
    assert {k: shipped[k] for k in second.generation} == second.generation  # its decoding is the shipped one's
    # float32, the model card's arithmetic, in both stages; shapes that repeat for those who pass amp=true
    assert not first.amp and not second.amp
    for stage in (first, second):
        assert stage.data.pad_frames == 64 and stage.data.pad_tokens == 8
    # the phoneme head, flite's phones on layer 4, trains in stage 1 only (it is not saved with the model)
    assert (first.optim.phoneme_ctc_layer, first.optim.phoneme_ctc_weight, first.data.phonemizer) == (4, 0.3, "flite")
    assert second.optim.phoneme_ctc_layer == 0
