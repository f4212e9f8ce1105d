"""Fast tests of the synthetic-speech corpus builder and its waveform augmentations."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s2t_live.train import augment, corpus, sentences, voices

SR = 16000
SAMPLE_TEXT = """\
The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.
It's easy to tell the depth of a well. These days a chicken leg is a rare dish.
Rice is often served in round bowls. The juice of lemons makes fine punch.
The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage.
Four hours of steady work faced us. A large size in stockings is hard to sell.
The boy was there when the sun rose. A rod is used to catch pink salmon.
The source of the huge river is the clear spring. Kick the ball straight and follow through.
Help the woman get back to her feet. A pot of tea helps to pass the evening.
Smoky fires lack flame and heat. The soft cushion broke the man's fall.
"""


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test signal: harmonics under a syllable-rate envelope, with silence."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    wave = np.concatenate([np.zeros(SR // 2), tone * envelope, np.zeros(SR // 2)])
    wave += 1e-4 * np.random.default_rng(seed).standard_normal(wave.size)
    return (0.5 * wave / np.max(np.abs(wave))).astype(np.float32)


def test_number_words() -> None:
    assert sentences.number_to_words(0) == "zero"
    assert sentences.number_to_words(1234) == "one thousand two hundred thirty four"
    assert sentences.number_to_words(2_000_019) == "two million nineteen"
    assert sentences.year_to_words(1984) == "nineteen eighty four"
    assert sentences.year_to_words(1905) == "nineteen oh five"
    assert sentences.year_to_words(2005) == "two thousand five"
    assert sentences.ordinal_to_words(21) == "twenty first"
    assert sentences.ordinal_to_words(12) == "twelfth"


def test_normalisation() -> None:
    spoken = sentences.spoken_form("Mr. Darcy paid $5,000 for the 2nd horse in 1811 -- 100% sure!")
    assert spoken is not None
    assert sentences.normalize_transcript(spoken) == (
        "mister darcy paid five thousand dollars for the second horse in eighteen eleven "
        "one hundred percent sure")
    assert sentences.normalize_transcript("\u201cDon't,\u201d she said -- 'tis well-known.") == (
        "don't she said tis well known")
    assert sentences.spoken_form(
        "Every body said any thing to-morrow, Mrs Weston and Mr Knightley; from day to day.") == (
        "Everybody said anything tomorrow, Missus Weston and Mister Knightley; from day to day.")
    assert sentences.spoken_form("No where, To-day, some body.") == "Nowhere, Today, somebody."
    assert sentences.spoken_form("See http://example.org for NASA data") is None
    assert sentences.split_sentences("I came. Mr. Smith left! Did he? Yes.") == [
        "I came.", "Mister Smith left!", "Did he?", "Yes."]


def test_split_is_disjoint(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(SAMPLE_TEXT)
    pairs, counts = sentences.load_sentences(text, tmp_path / "cache")
    assert counts == {"text-file": len(pairs)} and len(pairs) == 18
    assert all(sentences.MIN_WORDS <= len(t.split()) <= sentences.MAX_WORDS for _, t in pairs)
    sizes = {"train": 10, "dev": 3, "test": 3, "test_unseen_voice": 2}
    pools = corpus.partition_sentences(pairs, sizes, np.random.default_rng(0))
    train = {t for _, t in pools["train_pool"]}
    held = {t for split in ("dev", "test", "test_unseen_voice") for _, t in pools[split]}
    assert not train & held
    assert not {t for _, t in pools["dev"]} & {t for _, t in pools["test"]}
    assert len(train) + len(held) == len(pairs)


def test_split_sizes_scale_down() -> None:
    assert corpus.split_sizes(6, {}) == {"dev": 1, "test": 1, "test_unseen_voice": 1, "train": 3}
    assert corpus.split_sizes(None, {"train": 5})["train"] == 5
    assert corpus.frames_of(400) == 1 and corpus.frames_of(16000) == 98


@pytest.mark.parametrize("name", ["reverb", "noise", "band", "gain", "clip"])
def test_length_preserving_augmentations(name: str) -> None:
    wave = speech_like()
    rng = np.random.default_rng(1)
    transforms = {
        "reverb": lambda: augment.add_reverb(wave, SR, rng),
        "noise": lambda: augment.add_noise(wave, SR, rng, babble_bank=[wave[:5000], wave]),
        "band": lambda: augment.band_limit(wave, SR, rng),
        "gain": lambda: augment.random_gain(wave, SR, rng),
        "clip": lambda: augment.clip_wave(wave, SR, rng),
    }
    out = transforms[name]()
    assert out.shape == wave.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1.0
    assert not np.allclose(out, wave)


def test_speed_and_resample_lengths() -> None:
    wave = speech_like()
    fast = augment.speed_perturb(wave, SR, np.random.default_rng(0), (1.1, 1.1))
    assert abs(fast.size - wave.size / 1.1) <= 1
    assert augment.resample(wave, SR, 22050).size == round(wave.size * 22050 / SR)
    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    down = augment.resample(tone, 22050, SR)
    assert np.argmax(np.abs(np.fft.rfft(down))) == 440  # 1 s at 16 kHz: 1 Hz per bin


def test_trim_keeps_margin_and_chain_is_deterministic() -> None:
    wave = speech_like()
    trimmed = augment.trim_silence(wave, SR, np.random.default_rng(0))
    assert SR + 0.2 * SR - 320 <= trimmed.size <= SR + 0.6 * SR + 320
    cfg = augment.AugmentConfig(p_augment=1.0)
    first, names = augment.augment_chain(wave, SR, np.random.default_rng(5), cfg, [wave])
    again, _ = augment.augment_chain(wave, SR, np.random.default_rng(5), cfg, [wave])
    assert names and np.array_equal(first, again) and np.max(np.abs(first)) <= 1.0


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a fairseq S2T manifest."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def tiny_build_args(tmp_path: Path, out: Path) -> list[str]:
    """Arguments of a six-utterance build of ``SAMPLE_TEXT`` into ``out``."""
    text = tmp_path / "text.txt"
    text.write_text(SAMPLE_TEXT)
    return ["--out", str(out), "--jobs", "1", "--max-utts", "6", "--text-file", str(text)]


@needs_espeak
def test_tiny_build_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    args = tiny_build_args(tmp_path, out)
    assert corpus.main(args) == 0
    for split in ("train", "dev", "test", "test_unseen_voice"):
        path = out / f"{split}.tsv"
        assert path.read_text().startswith("id\taudio\tn_frames\ttgt_text\tspeaker\n")
        rows = read_manifest(path)
        assert rows, split
        for row in rows:
            audio, rate = sf.read(str(out / row["audio"]))
            assert rate == SR and audio.ndim == 1
            assert int(row["n_frames"]) == corpus.frames_of(audio.size) > 0
            assert row["tgt_text"] == sentences.normalize_transcript(row["tgt_text"])
    unseen = {r["speaker"] for r in read_manifest(out / "test_unseen_voice.tsv")}
    seen = {r["speaker"].split("+")[0] for s in ("train", "dev", "test")
            for r in read_manifest(out / f"{s}.tsv")}
    assert not unseen & seen
    train_text = (out / "train_text.txt").read_text().splitlines()
    assert train_text == [r["tgt_text"] for r in read_manifest(out / "train.tsv")]
    before = {p: p.stat().st_mtime_ns for p in out.glob("audio/*/*.flac")}
    assert corpus.main(args) == 0  # a rerun resumes: nothing is synthesised again
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("audio/*/*.flac")}


def test_each_shard_of_consecutive_tasks_starts_a_fresh_festival(monkeypatch) -> None:
    # What a festival process says depends on what it said before, so the shards, not the pool's
    # scheduling, decide each process's history: fixed runs of consecutive tasks, each from a restart.
    events: list[object] = []

    class Bank:
        def close(self) -> None:
            events.append("restart")

    def run_task(task: str) -> tuple[str, int, bool]:
        events.append(task)
        return task, 1, True

    monkeypatch.setitem(corpus._WORKER, "bank", Bank())
    monkeypatch.setattr(corpus, "run_task", run_task)
    tasks = [f"t{i}" for i in range(7)]
    shards = corpus.shard_tasks(tasks, size=3)  # type: ignore[arg-type]
    assert shards == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]]
    results = [r for shard in shards for r in corpus.run_shard(shard)]  # type: ignore[arg-type]
    assert [task for task, _, _ in results] == tasks
    assert events == ["restart", "t0", "t1", "t2", "restart", "t3", "t4", "t5", "restart", "t6"]


@needs_espeak
def test_a_disk_that_refuses_the_audio_stops_the_build_with_one_message(tmp_path: Path, capsys) -> None:
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "audio").write_text("a file where the audio folder should be")
    assert corpus.main(tiny_build_args(tmp_path, out)) == 1
    err = capsys.readouterr().err
    assert "[corpus] stopped:" in err and "cannot write" in err and "Traceback" not in err


def test_pico_is_drawn_only_when_installed() -> None:
    found = {"espeak": ["en-us"], "flite": ["kal16", "rms"], "festival": ["kal_diphone"],
             "espeak_variants": []}
    without = voices.VoiceBank(found, "/tmp")
    with_pico = voices.VoiceBank({**found, "pico": ["en-US"]}, "/tmp")
    draws = [without.draw(np.random.default_rng(s)).label for s in range(300)]
    # Pico's weight comes on top of the others, so a bank without it draws as before Pico existed:
    # espeak-ng 0.40, flite 0.35, festival 0.25.
    labels = ["espeak:en-us", "flite:kal16", "festival:kal_diphone"]
    before = [labels[int(np.random.default_rng(s).choice(3, p=[0.40, 0.35, 0.25]))] for s in range(300)]
    assert draws == before
    pico = sum(with_pico.draw(np.random.default_rng(s)).engine == "pico" for s in range(2000))
    share = voices.ENGINE_WEIGHTS["pico"] / sum(voices.ENGINE_WEIGHTS.values())
    assert abs(pico / 2000 - share) < 0.03


@needs_espeak
def test_without_leaves_an_installed_engine_out(tmp_path: Path, monkeypatch) -> None:
    installed = voices.list_voices()
    monkeypatch.setattr(corpus, "list_voices", lambda: {**installed, "pico": ["en-US", "en-GB"]})
    out = tmp_path / "corpus"
    args = [*tiny_build_args(tmp_path, out), "--without", "pico"]
    assert corpus.parse_args(args).without == ("pico",)
    assert corpus.main(args) == 0
    trained = json.loads((out / "corpus_config.json").read_text())["train_voices"]
    assert trained and not any(v.startswith("pico:") for v in trained)
    assert all(not r["speaker"].startswith("pico:") for r in read_manifest(out / "train.tsv"))


@pytest.mark.skipif(voices.pico_engine("en-US") is None, reason="ttspico is not installed")
def test_pico_speaks_at_the_asked_speed_without_saturating() -> None:
    text = "she walked with him down the lane & into the church"
    normal = voices.pico_say("en-US", text, 1.0, 0.0)
    fast = voices.pico_say("en-US", text, 1.2, 0.0)
    low = voices.pico_say("en-GB", text, 1.0, -1.0)
    assert normal.dtype == np.float32 and 1.5 < normal.size / SR < 6
    assert 0.75 < fast.size / normal.size < 0.92
    for wave in (normal, fast, low):
        peak = np.abs(wave).max()
        assert 0.1 < peak < 0.999 and np.sum(np.abs(wave) >= peak - 1e-4) < 5
