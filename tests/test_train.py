"""The training recipe: manifests, batching, SpecAugment, resumable training, averaging, DDP, evaluation.

The corpus is eight short utterances spoken by espeak-ng (or, where it is missing, tones of different
pitch and length standing in for speech); the model is tiny, so every run takes a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from s2t_live.audio import load_audio
from s2t_live.errors import S2TError
from s2t_live.features import Speech2TextFeatureExtractor
from s2t_live.model import Speech2TextForConditionalGeneration
from s2t_live.train import average
from s2t_live.train.data import (SpecAugmentConfig, SpeechDataset, bucket_batches, draw_masks, read_manifest,
                                 shard, spec_augment)
from s2t_live.train.config import ConfigError, load_config
from s2t_live.train.recipe import train
from s2t_live.train.trainer import Trainer
from s2t_live.warp import warp_frequency

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "she sells sea shells", "open the door please",
             "it is cold today", "we like green tea", "turn on the light", "the sun is bright"]
EXTRA_TEXT = "a quiet zebra"
TINY_MODEL = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
              "encoder_attention_heads": 2, "decoder_attention_heads": 2, "conv_channels": 32, "dropout": 0.1,
              "max_source_positions": 1000, "max_target_positions": 100}


def speak(text: str, index: int, path: Path) -> np.ndarray:
    """16 kHz speech for ``text`` by espeak-ng, or a stand-in tone when espeak-ng is not installed."""
    if shutil.which("espeak-ng"):
        raw = path.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-s", "220", "-w", str(raw), text], check=True, capture_output=True)
        wave = load_audio(raw)
        raw.unlink()
        return wave
    t = np.arange(int(16000 * (0.6 + 0.05 * len(text.split())))) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * index) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """train.tsv (all eight) and dev.tsv (four) with 16 kHz WAVs, in the fairseq S2T layout."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "audio").mkdir()
    lines = []
    for i, text in enumerate(SENTENCES):
        wav = root / "audio" / f"u{i}.wav"
        wave = speak(text, i, wav)
        sf.write(wav, wave, 16000, subtype="PCM_16")
        lines.append(f"u{i}\taudio/u{i}.wav\t{1 + (len(wave) - 400) // 160}\t{text}\tspk{i % 2}\n")
    header = "id\taudio\tn_frames\ttgt_text\tspeaker\n"
    (root / "train.tsv").write_text(header + "".join(lines))
    (root / "dev.tsv").write_text(header + "".join(lines[:4]))
    (root / "extra_text.txt").write_text(EXTRA_TEXT + "\n")  # unspoken training-side text, for the lexicon
    return root


def tiny_config(corpus: Path, out: Path, *extra: str):
    overrides = [f"output_dir='{out}'", f"data.corpus='{corpus}'", "data.max_frames=700", "data.valid_limit=4",
                 "tokenizer.vocab_size=40", "optim.lr=3e-3", "optim.warmup_steps=2", "save_every_steps=2",
                 "keep_last=3", "average_last=2", "valid_every_steps=0", "log_every=1", "generation.max_length=30",
                 "threads=1", "optim.ctc_weight=0.3", "optim.guided_attention=0.5", *extra]
    cfg = load_config(None, overrides)
    cfg.model = dict(TINY_MODEL)
    return cfg


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return average.load_checkpoint(average.list_checkpoints(folder)[-1])["model"]


# ----- manifests ------------------------------------------------------------------------------------


def test_manifest_rows_resolve_audio_against_the_manifest_folder(corpus):
    rows = read_manifest(corpus / "train.tsv")
    assert [r.text for r in rows] == SENTENCES
    assert rows[0].audio == corpus / "audio" / "u0.wav" and rows[1].speaker == "spk1"
    assert read_manifest(corpus / "train.tsv", limit=3)[-1].id == "u2"


def test_manifest_without_a_required_column_is_refused(tmp_path):
    (tmp_path / "m.tsv").write_text("id\taudio\ttgt_text\nu0\ta.wav\thello\n")
    with pytest.raises(S2TError, match="missing column.*n_frames"):
        read_manifest(tmp_path / "m.tsv")


def test_manifest_with_missing_audio_names_the_file(tmp_path, corpus):
    (tmp_path / "m.tsv").write_text("id\taudio\tn_frames\ttgt_text\nu0\tnowhere.wav\t100\thello\n")
    with pytest.raises(S2TError, match="1 of 1 audio files are missing.*nowhere.wav"):
        read_manifest(tmp_path / "m.tsv")
    with pytest.raises(S2TError, match="no such manifest"):
        read_manifest(tmp_path / "absent.tsv")


def test_the_feature_cache_folder_is_found_from_the_corpus_or_the_manifest(tmp_path):
    from s2t_live.train.recipe import feature_cache_dir

    assert feature_cache_dir(load_config(None, [f"data.corpus={tmp_path}"])) is None
    cfg = load_config(None, [f"data.corpus={tmp_path}", "data.feature_cache=features"])
    assert feature_cache_dir(cfg) == tmp_path / "features"
    cfg = load_config(None, [f"data.train={tmp_path / 'm' / 'train.tsv'}", "data.feature_cache=f"])
    assert feature_cache_dir(cfg) == tmp_path / "m" / "f"
    cfg = load_config(None, [f"data.corpus={tmp_path}", f"data.feature_cache={tmp_path / 'elsewhere'}"])
    assert feature_cache_dir(cfg) == tmp_path / "elsewhere"


# ----- batching, SpecAugment, averaging ---------------------------------------------------------------


def test_batches_respect_the_frame_budget_and_cover_each_utterance_once():
    rng = np.random.default_rng(0)
    frames = rng.integers(50, 400, size=200).tolist()
    tokens = rng.integers(3, 30, size=200).tolist()
    batches = bucket_batches(frames, tokens, 2000, 300, 16, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) * max(frames[i] for i in b) <= 2000 and len(b) * max(tokens[i] for i in b) <= 300
        assert len(b) <= 16
    assert batches == bucket_batches(frames, tokens, 2000, 300, 16, seed=1, epoch=0)
    assert batches != bucket_batches(frames, tokens, 2000, 300, 16, seed=1, epoch=1)
    two = [shard(batches, r, 2) for r in range(2)]
    assert len(two[0]) == len(two[1]) == len(batches) // 2 and not set(map(tuple, two[0])) & set(map(tuple, two[1]))


def test_vtlp_moves_formants_with_the_warp_factor_and_keeps_the_band_edges(corpus):
    peak = torch.zeros(3, 80)
    peak[:, 20] = 1.0
    assert torch.equal(warp_frequency(peak, 1.0), peak)
    assert warp_frequency(peak, 1.1)[0].argmax() > 20 > warp_frequency(peak, 0.9)[0].argmax()  # a longer tract: lower formants
    ramp = torch.arange(80.0).repeat(2, 1)
    for alpha in (0.9, 1.1):
        warped = warp_frequency(ramp, alpha)
        assert torch.all(warped[0, 1:] >= warped[0, :-1])  # monotonic: no bins swap
        assert warped[0, -1] == pytest.approx(79.0, abs=0.5)  # the Nyquist end stays
    rows = read_manifest(corpus / "train.tsv")
    data = SpeechDataset(rows, [[5, 2]] * len(rows), seed=3, vtlp=0.1)
    plain = SpeechDataset(rows, [[5, 2]] * len(rows), seed=3)
    a, b = data.batch([0, 1], epoch=1).input_features, data.batch([0, 1], epoch=1).input_features
    assert torch.equal(a, b) and not torch.equal(a, data.batch([0, 1], epoch=2).input_features)  # per (seed, epoch, i)
    assert torch.equal(data.batch([0, 1], augment=False).input_features, plain.batch([0, 1]).input_features)


def test_features_kept_on_disk_are_read_back_by_the_next_run_unchanged(corpus, tmp_path, monkeypatch, capsys):
    import s2t_live.train.data as data

    rows = read_manifest(corpus / "train.tsv")
    first = SpeechDataset(rows, [[5, 2]] * len(rows), feature_dir=tmp_path / "features")
    computed = [first.features(i) for i in range(2)]
    files = sorted((tmp_path / "features").glob("*.npy"))
    assert len(files) == 2 and not list((tmp_path / "features").glob("*.tmp"))

    def no_audio(path, *args, **kwargs):
        raise AssertionError("read the audio although its features were kept")
    monkeypatch.setattr(data, "load_audio", no_audio)
    second = SpeechDataset(rows, [[5, 2]] * len(rows), feature_dir=tmp_path / "features")
    for i in range(2):
        assert torch.equal(second.features(i), computed[i])
    monkeypatch.undo()

    # Other extractor settings (or rebuilt audio) never read these files; a damaged file is computed again.
    other = SpeechDataset(rows, [[5, 2]] * len(rows), Speech2TextFeatureExtractor(num_mel_bins=40),
                          feature_dir=tmp_path / "features")
    assert other.features(0).shape[1] == 40 and len(list((tmp_path / "features").glob("*.npy"))) == 3
    files[0].write_bytes(b"not an array")
    again = SpeechDataset(rows, [[5, 2]] * len(rows), feature_dir=tmp_path / "features")
    assert all(torch.equal(again.features(i), computed[i]) for i in range(2))

    # A disk that refuses the cache: one warning, training goes on with the features computed.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    refused = SpeechDataset(rows, [[5, 2]] * len(rows), feature_dir=blocked / "features")
    assert torch.equal(refused.features(0), computed[0]) and torch.equal(refused.features(1), computed[1])
    assert capsys.readouterr().err.count("going on without the feature cache") == 1


def test_specaugment_masks_stay_within_their_bounds():
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=3, time_width=30, time_ratio=0.2)
    rng = np.random.default_rng(0)
    for frames in (5, 60, 500):
        for mask in draw_masks(frames, 80, cfg, rng):
            size, limit = (80, 10) if mask.axis == 1 else (frames, min(30, int(0.2 * frames)))
            assert 0 <= mask.width <= limit and 0 <= mask.start and mask.start + mask.width <= size
    x = torch.randn(200, 80) + 5
    masks = draw_masks(200, 80, cfg, np.random.default_rng(3))
    y = spec_augment(x, cfg, np.random.default_rng(3))
    expected = torch.zeros(200, 80, dtype=torch.bool)
    for m in masks:
        if m.axis == 0:
            expected[m.start:m.start + m.width] = True
        else:
            expected[:, m.start:m.start + m.width] = True
    assert torch.equal(y == 0, expected) and torch.equal(y[~expected], x[~expected])


def test_averaging_is_the_mean_of_the_weights(tmp_path):
    states = [{"w": torch.tensor([1.0, 2.0]) * k, "n": torch.tensor([k])} for k in (1, 2, 6)]
    for k, state in enumerate(states):
        average.save_checkpoint({"model": state}, average.checkpoint_path(tmp_path, k + 1), keep_last=0)
    paths = average.list_checkpoints(tmp_path)
    mean = average.average_checkpoints(paths)
    assert torch.equal(mean["w"], torch.tensor([3.0, 6.0])) and mean["n"].item() == 6
    average.save_checkpoint({"model": states[0]}, average.checkpoint_path(tmp_path, 4), keep_last=2)
    assert [p.name for p in average.list_checkpoints(tmp_path)] == ["step_00000003.pt", "step_00000004.pt"]


# ----- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    """Six updates in one go (checkpoints every two steps, dropout on, SpecAugment on), with a lexicon and
    a word bigram LM."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(corpus, out, "max_steps=6", "float16_weights=true", "data.lexicon=true", "lm.order=2"),
          resume=False)
    return out


def test_training_writes_a_folder_the_engine_loads_and_transcribes_with(trained, corpus):
    from s2t_live.model import Speech2TextForConditionalGeneration
    from s2t_live.processor import Speech2TextProcessor

    folder = trained / "model"
    for name in ("config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
                 "sentencepiece.bpe.model", "vocab.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    processor = Speech2TextProcessor.from_pretrained(folder)
    assert model.dtype == torch.float32 and model.generation_config.num_beams == 5
    inputs = processor(load_audio(corpus / "audio" / "u0.wav"), sampling_rate=16000, return_tensors="pt")
    ids = model.generate(inputs["input_features"], attention_mask=inputs["attention_mask"], max_length=20)
    assert isinstance(processor.batch_decode(ids, skip_special_tokens=True)[0], str)
    from safetensors import safe_open
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    log = (trained / "log.jsonl").read_text().splitlines()
    assert len(log) >= 6 and '"loss"' in log[0]
    # Trained with CTC: the head is part of the model (joint CTC/attention decoding), in its float16 file.
    assert model.ctc_head is not None and json.loads((folder / "config.json").read_text())["ctc_head"] is True
    mean = average.average_checkpoints(average.list_checkpoints(trained)[-2:])  # the run averages the last 2
    assert torch.equal(mean["ctc_head.weight"].half().float(), model.ctc_head.weight)
    # data.lexicon: the words of the transcripts and of the corpus's extra text, once each.
    assert model.lexicon.words == {w for s in SENTENCES + [EXTRA_TEXT] for w in s.split()}
    lines = (folder / "lexicon.txt").read_text().splitlines()
    assert lines == sorted(set(lines)) and "zebra" in lines
    # lm.order: a word bigram LM of the same text, in the folder and loaded with the lexicon.
    assert (folder / "lm.npz").is_file() and model.lexicon.lm.order == 2
    assert model.lexicon.lm.vocab - {"<s>", "</s>", "<unk>"} == model.lexicon.words


def test_final_model_is_the_average_of_the_last_checkpoints(trained):
    from s2t_live.loading import load_state_dict

    paths = average.list_checkpoints(trained)
    assert [p.name for p in paths] == ["step_00000002.pt", "step_00000004.pt", "step_00000006.pt"]
    want = average.average_checkpoints(paths[-2:])
    got = load_state_dict(trained / "model")
    key = "model.encoder.layers.0.fc1.weight"
    assert torch.allclose(got[key].float(), want[key], atol=1e-3)


def test_stopping_and_resuming_gives_the_same_weights(trained, corpus, tmp_path):
    train(tiny_config(corpus, tmp_path, "max_steps=3"), resume=True)  # stops at an odd step, saved
    assert average.list_checkpoints(tmp_path)[-1].name == "step_00000003.pt"
    (tmp_path / "checkpoints" / "step_00000003.pt").unlink()  # as if stopped before that save
    train(tiny_config(corpus, tmp_path, "max_steps=6"), resume=True)
    once, resumed = weights(trained), weights(tmp_path)
    assert once.keys() == resumed.keys()
    assert all(torch.equal(once[k], resumed[k]) for k in once)


def test_ctc_only_updates_leave_the_decoder_untouched(corpus, tmp_path):
    torch.set_num_threads(1)
    train(tiny_config(corpus, tmp_path, "max_steps=3", "save_every_steps=1", "optim.ctc_only_steps=2"), resume=False)
    steps = [average.load_checkpoint(p)["model"] for p in average.list_checkpoints(tmp_path)]
    assert len(steps) == 3
    decoder = [k for k in steps[0] if k.startswith("model.decoder.layers.")]
    encoder = [k for k in steps[0] if k.startswith("model.encoder.layers.")]
    assert decoder and encoder
    assert all(torch.equal(steps[0][k], steps[1][k]) for k in decoder)  # update 2: CTC alone
    assert not all(torch.equal(steps[0][k], steps[1][k]) for k in encoder)
    assert not all(torch.equal(steps[1][k], steps[2][k]) for k in decoder)  # update 3: the decoder joins


def test_guided_attention_can_stop_after_its_first_updates(corpus, tmp_path):
    torch.set_num_threads(1)
    train(tiny_config(corpus, tmp_path, "max_steps=4", "optim.guided_attention_steps=2"), resume=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    records = [r for r in log if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert ["align" in r for r in records] == [True, True, False, False]


def test_specaugment_can_start_after_the_first_updates(corpus, tmp_path):
    torch.set_num_threads(1)
    steps = {}
    for name, extra in {"plain": ["specaugment.freq_masks=0", "specaugment.time_masks=0"],
                        "late": ["specaugment.freq_masks=2", "specaugment.time_masks=2", "specaugment.start_step=2"],
                        }.items():
        out = tmp_path / name
        train(tiny_config(corpus, out, "max_steps=3", "save_every_steps=1", "keep_last=5", *extra), resume=False)
        steps[name] = [average.load_checkpoint(p)["model"] for p in average.list_checkpoints(out)]
    plain, late = steps["plain"], steps["late"]
    assert len(plain) == len(late) == 3
    for i in (0, 1):  # updates 1 and 2: unmasked, so the same as without SpecAugment
        assert all(torch.equal(plain[i][k], late[i][k]) for k in plain[i])
    assert not all(torch.equal(plain[2][k], late[2][k]) for k in plain[2])  # update 3 is masked


def test_specaugment_can_stop_before_the_last_updates(corpus, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    flags = []
    real = SpeechDataset.batch

    def spy(self, indices, epoch=0, augment=True):
        flags.append(augment)
        return real(self, indices, epoch, augment)
    monkeypatch.setattr(SpeechDataset, "batch", spy)
    train(tiny_config(corpus, tmp_path, "max_steps=4", "specaugment.start_step=1", "specaugment.end_step=3"),
          resume=False)
    assert flags == [False, True, True, False]  # updates 2 and 3 masked, the last one not
    with pytest.raises(S2TError, match="end_step"):
        train(tiny_config(corpus, tmp_path / "bad", "specaugment.start_step=3", "specaugment.end_step=3"), resume=False)


def test_intermediate_ctc_mixes_the_ctc_loss_of_an_inner_encoder_layer(corpus, tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(corpus, tmp_path, "max_steps=3", "optim.ctc_only_steps=2", "optim.inter_ctc_layer=1",
                      "optim.inter_ctc_weight=0.25")
    cfg.model["encoder_layers"] = 2
    train(cfg, resume=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    records = [r for r in log if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3] and all("inter_ctc" in r for r in records)
    for r in records[:2]:  # CTC alone: the loss is the mix, per token
        assert r["loss"] == pytest.approx(0.75 * r["ctc"] + 0.25 * r["inter_ctc"], rel=1e-4)
    assert records[0]["inter_ctc"] != pytest.approx(records[0]["ctc"], rel=1e-3)
    assert len(Speech2TextForConditionalGeneration.from_pretrained(tmp_path / "model").model.encoder.layers) == 2
    cfg = tiny_config(corpus, tmp_path / "again", "max_steps=1", "optim.inter_ctc_layer=1", "optim.inter_ctc_weight=0.25")
    with pytest.raises(S2TError, match="inter_ctc_layer must be an encoder layer from 1 to 0"):
        train(cfg, resume=False)  # the tiny model has one encoder layer: nothing below the last


def test_phoneme_ctc_trains_a_head_of_its_own_that_the_model_leaves_out(corpus, tmp_path, monkeypatch):
    from s2t_live.loading import load_state_dict
    from s2t_live.train import phonemes

    # Letters stand in for espeak-ng's phonemes (the loop, not espeak-ng, is under test here).
    monkeypatch.setattr(phonemes, "phonemize", lambda texts, voice: [list(t.replace(" ", "")) for t in texts])
    torch.set_num_threads(1)
    opts = ("optim.ctc_only_steps=1", "optim.phoneme_ctc_layer=1", "optim.phoneme_ctc_weight=0.5")
    train(tiny_config(corpus, tmp_path / "a", "max_steps=2", *opts), resume=False)
    train(tiny_config(corpus, tmp_path / "a", "max_steps=4", *opts), resume=True)
    train(tiny_config(corpus, tmp_path / "b", "max_steps=4", *opts), resume=False)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    records = [r for r in log if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(r["phone_ctc"] > 0 for r in records)
    assert records[0]["loss"] == pytest.approx(records[0]["ctc"] + 0.5 * records[0]["phone_ctc"], rel=1e-4)
    table = (tmp_path / "a" / "phonemes.tsv").read_text().splitlines()
    assert table[0] == "u0\t" + " ".join("thecatsatonthemat")
    ckpts = [average.load_checkpoint(average.list_checkpoints(tmp_path / d)[-1]) for d in "ab"]
    assert all(torch.equal(ckpts[0]["phone_head"][k], ckpts[1]["phone_head"][k]) for k in ckpts[1]["phone_head"])
    assert all(torch.equal(ckpts[0]["model"][k], ckpts[1]["model"][k]) for k in ckpts[1]["model"])  # resumed = straight
    assert not any("phone" in key for key in load_state_dict(tmp_path / "a" / "model"))
    with pytest.raises(S2TError, match="phoneme_ctc_layer = 1"):
        train(tiny_config(corpus, tmp_path / "a", "max_steps=6"), resume=True)


def test_phoneme_loss_stops_after_phoneme_ctc_steps_and_flite_phones_are_kept_apart(corpus, tmp_path, monkeypatch):
    from s2t_live.train import phonemes

    monkeypatch.setattr(phonemes, "flite_phonemize", lambda texts: [t.split() for t in texts])  # words as phones
    computed = []  # whether each update ran the phoneme head: not at all once its updates are over
    forward_loss = Trainer.forward_loss
    monkeypatch.setattr(Trainer, "forward_loss", lambda self, batch: (
        forward_loss(self, batch), computed.append(self.module.phone_logits is not None))[0])
    torch.set_num_threads(1)
    opts = ("optim.ctc_only_steps=1", "optim.phoneme_ctc_layer=1", "optim.phoneme_ctc_weight=0.5",
            "optim.phoneme_ctc_steps=2", 'data.phonemizer="flite"')
    train(tiny_config(corpus, tmp_path / "a", "max_steps=4", *opts), resume=False)
    records = [r for r in map(json.loads, (tmp_path / "a" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [("phone_ctc" in r) for r in records] == [True, True, False, False]
    assert computed == [True, True, False, False]
    assert records[0]["loss"] == pytest.approx(records[0]["ctc"] + 0.5 * records[0]["phone_ctc"], rel=1e-4)
    assert (tmp_path / "a" / "phonemes_flite.tsv").read_text().splitlines()[0] == "u0\tthe cat sat on the mat"
    assert not (tmp_path / "a" / "phonemes.tsv").exists()
    with pytest.raises(S2TError, match='data.phonemizer = "flite"'):
        train(tiny_config(corpus, tmp_path / "a", "max_steps=5", *opts[:-1]), resume=True)
    with pytest.raises(ConfigError, match="data.phonemizer is one of espeak-ng, flite"):
        load_config(None, ["data.train=x.tsv", 'data.phonemizer="festival"'])
    with pytest.raises(ConfigError, match="phoneme_ctc_steps must be >= 0"):
        load_config(None, ["data.train=x.tsv", "optim.phoneme_ctc_steps=-1"])


def test_a_second_stage_starts_its_phoneme_head_from_the_first_stages(corpus, tmp_path, monkeypatch):
    from s2t_live.train import phonemes

    monkeypatch.setattr(phonemes, "flite_phonemize", lambda texts: [t.split() for t in texts])
    torch.set_num_threads(1)
    opts = ("optim.phoneme_ctc_layer=1", "optim.phoneme_ctc_weight=0.5", 'data.phonemizer="flite"', "data.dev=''")
    train(tiny_config(corpus, tmp_path / "a", "max_steps=2", *opts), resume=False)
    ckpt = average.list_checkpoints(tmp_path / "a")[-1]
    heads = []  # the head as each update finds it
    forward_loss = Trainer.forward_loss

    def spy(self, batch):
        if self.module.phone_head is not None:
            heads.append({k: v.clone() for k, v in self.module.phone_head.state_dict().items()})
        return forward_loss(self, batch)

    monkeypatch.setattr(Trainer, "forward_loss", spy)
    second = tiny_config(corpus, tmp_path / "b", "max_steps=1", f"init_from='{tmp_path / 'a' / 'model'}'",
                         f"optim.phoneme_head_from='{ckpt}'", *opts)
    second.model = {"dropout": 0.0}
    train(second, resume=False)
    saved = average.load_checkpoint(ckpt)["phone_head"]
    assert heads and all(torch.equal(heads[0][k], saved[k]) for k in saved)
    # without it the head starts untrained; a checkpoint without a head, or no head to load into, is refused
    heads.clear()
    fresh = tiny_config(corpus, tmp_path / "c", "max_steps=1", f"init_from='{tmp_path / 'a' / 'model'}'", *opts)
    fresh.model = {"dropout": 0.0}
    train(fresh, resume=False)
    assert not all(torch.equal(heads[0][k], saved[k]) for k in saved)
    train(tiny_config(corpus, tmp_path / "d", "max_steps=1", "data.dev=''"), resume=False)
    plain = average.list_checkpoints(tmp_path / "d")[-1]
    with pytest.raises(ConfigError, match="has no phoneme head on layer 1"):
        train(tiny_config(corpus, tmp_path / "e", "max_steps=1", f"optim.phoneme_head_from='{plain}'", *opts),
              resume=False)
    with pytest.raises(ConfigError, match="needs the phoneme head on"):
        load_config(None, ["data.train=x.tsv", f"optim.phoneme_head_from='{ckpt}'"])


def test_detached_decoder_updates_train_the_encoder_on_ctc_alone(corpus, tmp_path):
    """While the decoder is detached, the encoder's first update is that of CTC alone (Adam's first step is
    scale-free once its epsilon is negligible, so the CTC weight does not show), and the decoder trains too."""
    torch.set_num_threads(1)
    detached, ctc_only = tmp_path / "detached", tmp_path / "ctc_only"
    train(tiny_config(corpus, detached, "max_steps=1", "optim.eps=1e-30", "optim.detached_decoder_steps=1"),
          resume=False)
    train(tiny_config(corpus, ctc_only, "max_steps=1", "optim.eps=1e-30", "optim.ctc_only_steps=1"), resume=False)
    first, other = weights(detached), weights(ctc_only)
    # A key bias does not change the softmax: its gradient is rounding noise, which Adam's first step
    # blows up to +-lr either way.
    encoder = [k for k in first if k.startswith("model.encoder.") and not k.endswith("k_proj.bias")]
    decoder = [k for k in first if k.startswith("model.decoder.layers.")]
    assert all(torch.allclose(first[k], other[k], atol=1e-6) for k in encoder)
    assert not all(torch.equal(first[k], other[k]) for k in decoder)  # ctc_only left it at its start
    joint = tmp_path / "joint"
    train(tiny_config(corpus, joint, "max_steps=1", "optim.eps=1e-30"), resume=False)
    assert not all(torch.allclose(first[k], weights(joint)[k], atol=1e-6) for k in encoder)


def test_bfloat16_autocast_trains_on_the_cpu(corpus, tmp_path, monkeypatch):
    import s2t_live.train.recipe as recipe_module
    monkeypatch.setattr(recipe_module, "cpu_has_fast_bfloat16", lambda: True)  # emulated where it is not
    torch.set_num_threads(1)
    train(tiny_config(corpus, tmp_path, "max_steps=4", "amp=true"), resume=False)
    assert json.loads((tmp_path / "train_config.json").read_text())["amp"] is True
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(records) == 4 and all(np.isfinite(r["loss"]) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    assert all(v.dtype == torch.float32 for v in weights(tmp_path).values() if v.is_floating_point())


def test_amp_falls_back_to_float32_on_a_cpu_without_bfloat16_units(corpus, tmp_path, monkeypatch, capsys):
    import s2t_live.train.recipe as recipe_module
    import s2t_live.train.trainer as trainer_module
    monkeypatch.setattr(recipe_module, "cpu_has_fast_bfloat16", lambda: False)
    autocasts: list[object] = []
    real_autocast = torch.autocast
    monkeypatch.setattr(trainer_module.torch, "autocast", lambda *a, **k: autocasts.append(a) or real_autocast(*a, **k))
    torch.set_num_threads(1)
    train(tiny_config(corpus, tmp_path, "max_steps=2", "amp=true"), resume=False)
    assert "training in float32 instead" in capsys.readouterr().err
    assert json.loads((tmp_path / "train_config.json").read_text())["amp"] is False
    assert autocasts == [] and len((tmp_path / "log.jsonl").read_text().splitlines()) >= 2


def test_bfloat16_detection_reads_the_cpu_probes(monkeypatch):
    from s2t_live.train.distributed import cpu_has_fast_bfloat16
    for amx, avx512_bf16, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        assert cpu_has_fast_bfloat16() is expected


def test_attention_under_cpu_bfloat16_autocast_skips_the_fused_kernel(tiny_model, monkeypatch):
    import s2t_live.layers as layers_module
    fused: list[torch.dtype] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, **kwargs):
        fused.append(q.dtype)
        return sdpa(q, k, v, **kwargs)

    model = Speech2TextForConditionalGeneration.from_pretrained(tiny_model).eval()  # no dropout
    features = torch.randn(2, 120, model.config.input_feat_per_channel)
    mask = torch.ones(2, 120, dtype=torch.long)
    mask[1, 90:] = 0
    ids = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 1]])
    monkeypatch.setattr(layers_module.F, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        reference = model(features, mask, decoder_input_ids=ids).logits
    assert fused == [torch.float32] * len(fused) and fused  # float32: the fused kernel
    fused.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(features, mask, decoder_input_ids=ids).logits
    logits.float().sum().backward()
    assert logits.dtype == torch.bfloat16 and fused == []  # bfloat16: matrix products and a float32 softmax
    assert torch.allclose(logits.float(), reference, atol=0.1 * float(reference.abs().max()))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.model.encoder.parameters())
    # Keys under the mask get no weight, as in the fused kernel.
    attention = model.model.encoder.layers[0].self_attn
    q, k, v = (torch.randn(2, attention.num_heads, 7, attention.head_dim) for _ in range(3))
    keep = torch.ones(2, 7, dtype=torch.long)
    keep[1, 5:] = 0
    key_mask = layers_module.padding_to_additive(keep, torch.float32)  # the masks the encoder builds
    moved = v.clone()
    moved[1, :, 5:] += 3.0
    with torch.no_grad():
        exact = attention.attend(q, k, v, key_mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = attention.attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), key_mask)
            half_moved = attention.attend(q.bfloat16(), k.bfloat16(), moved.bfloat16(), key_mask)
    assert torch.allclose(half.float(), exact, atol=0.05) and torch.equal(half[1], half_moved[1])


def test_rounded_batch_shapes_train_the_same(corpus, tmp_path):
    torch.set_num_threads(1)
    logs = []
    for name, extra in (("plain", []), ("rounded", ["data.pad_frames=64", "data.pad_tokens=8"])):
        cfg = tiny_config(corpus, tmp_path / name, "max_steps=3", *extra)
        cfg.model["dropout"] = 0.0  # dropout masks would depend on the padded shapes
        train(cfg, resume=False)
        logs.append([json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()
                     if '"loss"' in line])
    # Padding is masked; only the longest utterance's last frames see the convolutions' padded
    # activations instead of their zero padding, as every shorter utterance of a batch does anyway.
    for plain, rounded in zip(*logs):
        assert rounded["loss"] == pytest.approx(plain["loss"], rel=1e-3)
    rows = read_manifest(corpus / "train.tsv")
    dataset = SpeechDataset(rows, [[5, 6, 2]] * len(rows), pad_frames=64, pad_tokens=8)
    batch = dataset.batch([0, 1])
    assert batch.input_features.size(1) % 64 == 0 and batch.labels.shape == (2, 8)
    assert int(batch.attention_mask.sum()) == sum(dataset.features(i).size(0) for i in (0, 1))


def test_resume_refuses_a_checkpoint_of_another_model(trained, corpus, tmp_path):
    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    shutil.copytree(trained / "tokenizer", tmp_path / "tokenizer")
    cfg = tiny_config(corpus, tmp_path, "max_steps=8")
    cfg.model["decoder_ffn_dim"] = 48
    with pytest.raises(S2TError, match="another model.*decoder_ffn_dim"):
        train(cfg)


def _ddp_worker(rank: int, port: int, corpus: Path, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    cfg = tiny_config(corpus, out, "max_steps=2", "valid_every_steps=0", "data.dev=''", "data.corpus=''",
                      f"data.train='{corpus / 'train.tsv'}'")
    cfg.model["dropout"] = 0.0
    train(cfg, resume=False)


def test_two_process_gloo_run_equals_one_process_accumulating_two_batches(corpus, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    mp.start_processes(_ddp_worker, args=(port, corpus, ddp_out), nprocs=2, start_method="spawn")
    assert [p.name for p in average.list_checkpoints(ddp_out)] == ["step_00000002.pt"]
    assert (ddp_out / "model" / "model.safetensors").is_file()
    ckpt = average.load_checkpoint(average.list_checkpoints(ddp_out)[-1])
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    cfg = tiny_config(corpus, single_out, "max_steps=2", "optim.update_freq=2", "data.dev=''", "data.corpus=''",
                      f"data.train='{corpus / 'train.tsv'}'")
    cfg.model["dropout"] = 0.0
    train(cfg, resume=False)
    one, two = weights(single_out), ckpt["model"]
    assert all(torch.allclose(one[k], two[k], atol=1e-5) for k in one)


def test_fine_tuning_reuses_the_tokenizer_of_init_from(trained, corpus, tmp_path):
    cfg = tiny_config(corpus, tmp_path, "max_steps=2", f"init_from='{trained / 'model'}'", "data.dev=''",
                      "data.corpus=''", f"data.train='{corpus / 'train.tsv'}'")
    cfg.model = {"dropout": 0.0}
    folder = train(cfg, resume=False)
    read = lambda f: json.loads((f / "vocab.json").read_text())
    assert read(folder) == read(trained / "model")
    assert not (tmp_path / "tokenizer" / "spm_train.model").exists()
    first = average.load_checkpoint(average.list_checkpoints(tmp_path)[0])
    start = first["model_config"]
    assert start["d_model"] == 32 and start["dropout"] == 0.0
    # The CTC head goes on from the one saved with init_from (two Adam updates move a weight < 2 * lr).
    init_head = Speech2TextForConditionalGeneration.from_pretrained(trained / "model").ctc_head.weight
    assert (first["model"]["ctc_head.weight"] - init_head).abs().max() < 0.01


def test_checkpoints_that_kept_the_ctc_head_apart_still_average_into_a_model_with_it():
    head = torch.nn.Linear(4, 6)
    old = {"model": {"model.encoder.w": torch.ones(2)}, "ctc": head.state_dict()}
    state = average.model_state(old)
    assert set(state) == {"model.encoder.w", "ctc_head.weight", "ctc_head.bias"}
    assert torch.equal(state["ctc_head.bias"], head.bias) and "ctc_head.weight" not in old["model"]


def test_time_budget_ends_training_gracefully_with_a_final_model(corpus, tmp_path, capsys):
    train(tiny_config(corpus, tmp_path, "max_minutes=0.0001", "data.dev=''"), resume=False)
    assert [p.name for p in average.list_checkpoints(tmp_path)] == ["step_00000001.pt"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert "time budget of 0.0001 minutes used" in capsys.readouterr().err


def test_evaluate_cli_prints_the_word_error_rate(trained, corpus, capsys):
    from s2t_live.train.evaluate import main, normalize_text

    assert normalize_text("Hello, World! It's   ok.") == "hello world it's ok"
    assert main(["--model", str(trained / "model"), "--manifest", str(corpus / "dev.tsv"), "--limit", "2",
                 "--num-beams", "1"]) == 0
    assert capsys.readouterr().out.startswith("WER ")
    assert main(["--model", str(trained / "model"), "--manifest", str(corpus / "dev.tsv"), "--limit", "3",
                 "--num-beams", "1", "--by-speaker"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in lines[:-1]} == {"spk0", "spk1"} and lines[-1].startswith("WER ")
    assert main(["--model", str(trained / "model"), "--manifest", str(corpus / "dev.tsv"), "--limit", "2",
                 "--lm-weight", "0.5", "--word-bonus", "1"]) == 0
    assert capsys.readouterr().out.startswith("WER ")
    with pytest.raises(SystemExit):
        main(["--model", str(trained / "model"), "--manifest", str(corpus / "dev.tsv"), "--lm-weight", "-1"])
    assert "the LM weight is a number >= 0" in capsys.readouterr().err


def test_word_error_rate_per_speaker_is_scored_over_each_speakers_words():
    from s2t_live.train.evaluate import EvalResult

    result = EvalResult(0.0, 4, 9, 0.0, references=["a b c", "d e", "f g h i", "j"],
                        hypotheses=["a b c", "d x", "f g", ""], speakers=["s1", "s1", "s2", ""])
    rows = result.by_speaker()
    # s1: 1 edit in 5 words; s2: 2 deletions in 4; "": 1 deletion in 1. Worst first.
    assert [(r[0], round(r[1], 3), r[2], r[3]) for r in rows] == [("", 1.0, 1, 1), ("s2", 0.5, 1, 4),
                                                                  ("s1", 0.2, 2, 5)]
    result.speakers = ["espeak:en+m1", "espeak:en+f2", "espeak:en", "flite:slt"]
    rows = result.by_speaker(voices=True)  # variants of a voice together: 3 edits in 9 words
    assert [(r[0], round(r[1], 3), r[2], r[3]) for r in rows] == [("flite:slt", 1.0, 1, 1),
                                                                  ("espeak:en", 0.333, 3, 9)]


def test_cli_parsers_set_their_functions():
    import argparse

    from s2t_live.cli_train import add_evaluate_parser, add_train_parser, cmd_evaluate, cmd_train

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    add_evaluate_parser(sub)
    args = parser.parse_args(["train", "r.toml", "optim.lr=1e-3", "max_steps=5", "--no-resume"])
    assert args.func is cmd_train and args.overrides == ["optim.lr=1e-3", "max_steps=5"] and not args.resume
    args = parser.parse_args(["evaluate", "--model", "m", "--manifest", "t.tsv", "--limit", "3"])
    assert args.func is cmd_evaluate and args.limit == 3 and args.num_beams is None


def test_progress_logs_the_recent_speed_and_estimates_from_the_run_so_far(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from s2t_live.train import trainer as trainer_module
    from s2t_live.train.trainer import Position, Progress

    clock = [100.0]
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock[0])
    cfg = SimpleNamespace(max_steps=10, max_minutes=0.0, log_every=2)
    progress = Progress(True, cfg, tmp_path / "log.jsonl")
    progress.start(Position())
    stats = {"loss": 1.0, "tokens": 10, "lr": 1e-3, "grad_norm": 1.0}
    for step, seconds in enumerate([1.0, 1.0, 3.0, 3.0], start=1):  # the updates slow down
        clock[0] += seconds
        progress.step(Position(step=step, elapsed=clock[0] - 100.0), stats)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert [r["sec_per_step"] for r in records] == [1.0, 3.0]  # each window's own speed
    assert progress.eta(Position(step=4)) == "0:00:12"  # 6 updates left at the mean 2 s of this run
