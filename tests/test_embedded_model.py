"""The embedded default model: within the size budget, used when no model is given, and transcribing a
voice and sentences it never heard (``tests/data/heldout``) through the CLI, as a newcomer's first command
would."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
from safetensors import safe_open

from s2t_live.cli import main
from s2t_live.hub import default_model, embedded_model_dir
from s2t_live.ngram import NGramLM
from s2t_live.train.data import read_manifest

HELDOUT = Path(__file__).parent / "data" / "heldout"
# Issue 8's target for a voice never heard: 25 %. `transcribe` scores these 16 clips (159 words) at 22.0 %
# with the shipped model (session 22), its 20 beams and each clip's best decode of its 3 surest warps (27.7 %
# unwarped; the session-18 weights: 20.1 %, 28.3 % unwarped; the models before them: 34.0 %, 44.7 %).
MAX_HELDOUT_WER = 0.25


def test_embedded_model_is_the_default_and_fits_the_budget(monkeypatch):
    monkeypatch.delenv("S2T_LIVE_MODEL", raising=False)
    folder = embedded_model_dir()
    assert folder is not None and default_model() == str(folder)
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 20_000_000
    with safe_open(weights, "pt") as f:
        tensors = [f.get_tensor(name) for name in f.keys()]
    # A word LM shipped with the model counts too (its probabilities and back-off weights).
    lm = NGramLM.from_folder(folder)
    assert sum(t.numel() for t in tensors) + (lm.size() if lm is not None else 0) <= 10_000_000
    assert {str(t.dtype) for t in tensors} == {"torch.float16"}


def test_embedded_model_decodes_with_its_ctc_head():
    folder = embedded_model_dir()
    assert json.loads((folder / "config.json").read_text())["ctc_head"] is True
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["ctc_weight"] == 0.4 and generation["num_beams"] == 20
    # Live captions: partials over 5 beams, finals over 10 (recipes/embedded_anneal.toml has the measurements).
    assert (generation["stream_num_beams"], generation["stream_final_beams"]) == (5, 10)
    assert 1.0 in generation["warp_factors"]  # test-time warps, unwarped among them (s2t_live.warp)
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert f.get_tensor("ctc_head.weight").shape == (1000, 160)


def test_embedded_model_fuses_its_word_lm():
    from s2t_live.model import Speech2TextForConditionalGeneration

    folder = embedded_model_dir()
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert model.generation_config.lm_weight == 0.2 and model.generation_config.word_bonus == 0.0
    lm = model.lexicon.lm
    assert lm is not None and lm.order == 3
    # Austen's phrasing is likelier than the same words shuffled.
    assert lm.sentence_logprob("she was very much obliged to him".split()) > \
        lm.sentence_logprob("obliged she him much to very was".split())


def test_embedded_model_prices_words_outside_its_lexicon():
    from s2t_live.model import Speech2TextForConditionalGeneration

    folder = embedded_model_dir()
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert model.generation_config.lexicon_penalty == 1.5
    assert len(model.lexicon) > 30_000 and {"the", "emma", "dictionary"} <= model.lexicon.words
    assert "dectionary" not in model.lexicon.words


def test_transcribe_without_a_model_reads_a_voice_it_never_heard(monkeypatch, capsys):
    monkeypatch.delenv("S2T_LIVE_MODEL", raising=False)
    rows = read_manifest(HELDOUT / "manifest.tsv")
    code = main(["transcribe", *(str(row.audio) for row in rows), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["file"] for line in lines] == [str(row.audio) for row in rows]
    hypotheses = [" ".join(segment["text"] for segment in line["segments"]).strip() for line in lines]
    assert all(hypotheses)
    assert jiwer.wer([row.text for row in rows], hypotheses) <= MAX_HELDOUT_WER
