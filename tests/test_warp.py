"""Test-time vocal tract length normalisation: the warped features, the choice of factor by the CTC head,
and what it does for the embedded model on a voice it never heard (``tests/data/heldout``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2t_live.audio import load_audio
from s2t_live.hub import embedded_model_dir
from s2t_live.model import Speech2TextForConditionalGeneration
from s2t_live.processor import Speech2TextProcessor
from s2t_live.train.data import read_manifest
from s2t_live.train.evaluate import evaluate_model
from s2t_live.warp import choose_warp, warped_features

HELDOUT = Path(__file__).parent / "data" / "heldout"


@pytest.fixture(scope="module")
def embedded():
    folder = embedded_model_dir()
    return (Speech2TextForConditionalGeneration.from_pretrained(folder).eval(),
            Speech2TextProcessor.from_pretrained(folder))


@pytest.fixture(scope="module")
def heldout_waves():
    return [load_audio(row.audio) for row in read_manifest(HELDOUT / "manifest.tsv")]


def test_no_warp_is_exactly_the_feature_extractor(embedded, heldout_waves):
    _, processor = embedded
    wave = heldout_waves[0]
    plain = processor.feature_extractor(wave, sampling_rate=16000, return_tensors="pt")["input_features"]
    assert torch.equal(warped_features(processor.feature_extractor, wave, 1.0), plain)
    assert not torch.equal(warped_features(processor.feature_extractor, wave, 1.1), plain)


def test_nothing_to_judge_by_means_no_warp(embedded, heldout_waves):
    model, processor = embedded
    extractor = processor.feature_extractor
    assert choose_warp(model, extractor, heldout_waves, []) == 1.0  # no factors
    assert choose_warp(model, extractor, [np.zeros(800, np.float32)], [0.9, 1.2]) == 1.0  # 50 ms: too short
    head = model.ctc_head
    try:
        model.ctc_head = None  # no CTC head to judge with
        assert choose_warp(model, extractor, heldout_waves, [0.9, 1.2]) == 1.0
    finally:
        model.ctc_head = head


def test_the_choice_follows_the_ctc_head(embedded, heldout_waves, monkeypatch):
    """The factor whose warped audio the CTC head scores highest per frame wins, judged on the longest
    pieces up to max_seconds."""
    import s2t_live.warp as warp

    model, processor = embedded
    fits, judged = {}, []
    # Features that carry their warp factor; the "CTC head" scores each factor as ``fits`` says.
    monkeypatch.setattr(warp, "warped_inputs", lambda _, frames, alpha: torch.full((1, frames.size(0), 1), alpha))

    def fit(_, features):
        judged.append(features.size(1))
        return fits[round(float(features[0, 0, 0]), 2)] * features.size(1), features.size(1)
    monkeypatch.setattr(warp, "ctc_fit", fit)
    fits = {0.9: -3.0, 1.0: -2.0, 1.1: -1.0}
    assert choose_warp(model, processor.feature_extractor, heldout_waves, list(fits)) == 1.1
    fits = {0.9: -1.0, 1.0: -2.0, 1.1: -3.0}
    assert choose_warp(model, processor.feature_extractor, heldout_waves, list(fits)) == 0.9
    judged.clear()
    choose_warp(model, processor.feature_extractor, heldout_waves, [1.0], max_seconds=5.0)
    longest = sorted((1 + (w.size - 400) // 160 for w in heldout_waves), reverse=True)  # 10 ms frames
    assert judged == longest[:len(judged)] and len(judged) < len(heldout_waves)
    assert sum(longest[:len(judged) - 1]) < 500 <= sum(longest[:len(judged)])  # 5 s of 10 ms frames


def test_the_embedded_model_warps_a_voice_it_never_heard_and_does_better(embedded, monkeypatch):
    """The held-out voice (flite rms): most of its clips decode best warped above 1 (its formants moved up,
    towards the training voices'), with fewer errors than without warping; judged per speaker by the CTC
    head alone (as for a model that asks for no decodes), all its clips get one warp above 1, and fewer
    errors too."""
    import s2t_live.train.evaluate as evaluate

    auto = evaluate_model(str(embedded_model_dir()), str(HELDOUT / "manifest.tsv"))
    plain = evaluate_model(str(embedded_model_dir()), str(HELDOUT / "manifest.tsv"), warp=1.0)
    assert sum(a > 1.0 for a in auto.warps) > len(auto.warps) / 2 and set(plain.warps) == {1.0}
    assert auto.wer < plain.wer
    assert auto.warp_labels()[auto.speakers[0]].startswith("  warp ") and plain.warp_labels() == {}
    monkeypatch.setattr(evaluate, "warp_decodes", lambda model: 0)
    speaker = evaluate_model(str(embedded_model_dir()), str(HELDOUT / "manifest.tsv"))
    assert len(set(speaker.warps)) == 1 and speaker.warps[0] > 1.0 and speaker.wer < plain.wer
    assert speaker.warp_labels() == {speaker.speakers[0]: f"  warp {speaker.warps[0]:g}"}


def test_a_stream_chooses_its_warp_from_finished_segments_as_offline_decoding_would(embedded):
    """Streamed with the embedded model, the held-out voice's clips (one after another, 0.6 s apart) are
    judged as they finish (by the decode calls that follow, off the finals' path): later segments take a
    warp above 1, as offline decoding does for this speaker (the stream judges segments, silence around
    the words included, so the two need not pick the same step), and a fixed warp is never judged."""
    from s2t_live.streaming.recognizer import Recognizer, StreamConfig

    model, processor = embedded
    rows = read_manifest(HELDOUT / "manifest.tsv")
    gap = np.zeros(9600, np.float32)
    wave = np.concatenate([piece for row in rows for piece in (load_audio(row.audio), gap)])
    factors = model.generation_config.warp_factors
    offline = choose_warp(model, processor.feature_extractor, [load_audio(row.audio) for row in rows], factors)
    assert offline >= 1.1
    for config, judged in ((StreamConfig(num_beams=1, final_beams=1), True),
                           (StreamConfig(num_beams=1, final_beams=1, warp=1.0), False)):
        stream = Recognizer(model, processor, config).create_stream()
        warps = []
        for i in range(0, wave.size, 8000):
            stream.accept_waveform(wave[i:i + 8000])
            while stream.is_ready():
                stream.decode()
            warps.append(stream.warp)
        stream.flush()
        assert warps[0] == 1.0  # unwarped until a segment has finished
        assert (stream.warp > 1.0) if judged else set(warps) == {1.0}


def test_each_piece_keeps_its_best_scoring_decode_among_its_surest_warps(embedded, heldout_waves):
    """Per piece: the warps the CTC head is surest of (mean negative entropy) are decoded and the hypothesis
    that scores highest is kept, with its warp."""
    from s2t_live.transcribe import decode_best_warp
    from s2t_live.warp import ctc_sureness, warped_inputs
    from s2t_live.features import fbank

    model, processor = embedded
    extractor = processor.feature_extractor
    waves, factors = heldout_waves[:3], [0.9, 1.0, 1.1, 1.2]
    best = decode_best_warp(model, processor, waves, factors, keep=2, batch_size=3, num_beams=3)
    for wave, (alpha, ids) in zip(waves, best):
        sure = [ctc_sureness(model, warped_inputs(extractor, fbank(wave), a))[0] for a in factors]
        surest = sorted(factors, key=lambda a: -sure[factors.index(a)])[:2]
        outs = {a: model.generate(warped_features(extractor, wave, a), num_beams=3, return_dict_in_generate=True,
                                  output_scores=True) for a in surest}
        assert alpha == max(surest, key=lambda a: float(outs[a].sequences_scores[0]))
        row = outs[alpha].sequences[0].tolist()
        assert ids[:len(row)] == row and set(ids[len(row):]) <= {model.config.pad_token_id}
    # Greedy decoding has no scores to compare: only the surest warp is decoded.
    greedy = decode_best_warp(model, processor, waves[:1], factors, keep=2, num_beams=1)
    sure = [ctc_sureness(model, warped_inputs(extractor, fbank(waves[0]), a))[0] for a in factors]
    assert greedy[0][0] == factors[max(range(len(factors)), key=sure.__getitem__)]


def test_offline_warps_are_chosen_as_the_model_asks(embedded, heldout_waves, monkeypatch):
    """With ``warp_decodes`` each piece is decoded at that many warps (its best decode kept); without,
    the CTC head chooses one warp for the whole file; a fixed warp is never judged."""
    import s2t_live.transcribe as transcribe

    transcriber = transcribe.Transcriber(str(embedded_model_dir()))
    gc = transcriber.model.generation_config
    assert gc.warp_decodes == 3
    calls = []
    real = transcribe.decode_best_warp

    def spy(model, processor, waves, factors, keep, batch_size=8, **options):
        calls.append((len(waves), keep))
        return real(model, processor, waves, factors, keep, batch_size, **options)
    monkeypatch.setattr(transcribe, "decode_best_warp", spy)
    pieces = heldout_waves[:3]
    assert transcriber.piece_warps(pieces) is None
    picked = transcriber.decode_pieces(pieces, warps=None)
    assert calls == [(3, 3)] and all(text for text, _ in picked)
    monkeypatch.setattr(gc, "warp_decodes", None)
    warps = transcriber.piece_warps(pieces)
    assert len(set(warps)) == 1 and warps[0] in gc.warp_factors
    transcriber.decode_pieces(pieces, warps=warps)
    transcriber.warp = 1.1
    monkeypatch.setattr(gc, "warp_decodes", 3)
    assert transcriber.piece_warps(pieces) == [1.1] * 3
    transcriber.decode_pieces(pieces, warps=None)  # a fixed warp: no decodes at other warps
    assert calls == [(3, 3)]
    # One utterance alone decodes at the fixed warp too, not unwarped (this clip reads differently).
    warped = transcriber.decode_batch([pieces[1]], [1.1])[0]
    assert warped != transcriber.decode_batch([pieces[1]], [1.0])[0]
    assert transcriber.decode(pieces[1]) == warped
    assert calls == [(3, 3)]
