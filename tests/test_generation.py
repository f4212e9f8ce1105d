"""Decoding options against the reference ``generate``: lengths, penalties, early stopping, prefixes."""

from __future__ import annotations

import pytest
import torch
import transformers

from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor

OPTIONS = [
    dict(num_beams=5, length_penalty=0.3),
    dict(num_beams=5, length_penalty=2.0, early_stopping=True),
    dict(num_beams=4, early_stopping="never", max_new_tokens=12),
    dict(num_beams=3, no_repeat_ngram_size=2),
    dict(num_beams=1, no_repeat_ngram_size=3, repetition_penalty=1.3),
    dict(num_beams=1, min_new_tokens=25, max_new_tokens=30),
    dict(num_beams=4, min_length=10, max_length=15),
    dict(num_beams=4, num_return_sequences=3, max_new_tokens=20),
    dict(num_beams=1, max_length=7),
    dict(num_beams=2, forced_eos_token_id=2, max_new_tokens=9),
]


@pytest.fixture(scope="module")
def both(tiny_model):
    return (Speech2TextForConditionalGeneration.from_pretrained(tiny_model),
            transformers.Speech2TextForConditionalGeneration.from_pretrained(tiny_model).eval(),
            Speech2TextProcessor.from_pretrained(tiny_model))


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_options_give_reference_ids(both, clips, options):
    ours, ref, processor = both
    for _, wave, _ in clips[::2]:
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = ref.generate(inputs["input_features"], **options)
        assert ours.generate(inputs["input_features"], **options).tolist() == expected.tolist()


def test_decoder_prefix_is_continued_as_reference_does(both, clips):
    ours, ref, processor = both
    _, wave, _ = clips[0]
    inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
    full = ours.generate(inputs["input_features"], max_new_tokens=40)
    for prefix in (full[:, 1:4], full[:, :5], torch.tensor([[7, 7, 7]])):
        for beams in (1, 3):
            with torch.no_grad():
                expected = ref.generate(inputs["input_features"], decoder_input_ids=prefix, num_beams=beams,
                                        max_new_tokens=30)
            got = ours.generate(inputs["input_features"], decoder_input_ids=prefix, num_beams=beams, max_new_tokens=30)
            assert got.tolist() == expected.tolist()


def test_forced_bos_token_starts_every_hypothesis(both, clips):
    ours, ref, processor = both
    inputs = processor(clips[1][1], sampling_rate=16000, return_tensors="pt")
    for beams in (1, 4):
        with torch.no_grad():
            expected = ref.generate(inputs["input_features"], forced_bos_token_id=11, num_beams=beams, max_new_tokens=20)
        got = ours.generate(inputs["input_features"], forced_bos_token_id=11, num_beams=beams, max_new_tokens=20)
        assert got[0, 1].item() == 11
        assert got.tolist() == expected.tolist()


def test_return_dict_gives_beam_scores_like_reference(both, clips):
    ours, ref, processor = both
    inputs = processor(clips[2][1], sampling_rate=16000, return_tensors="pt")
    kwargs = dict(num_beams=4, num_return_sequences=2, return_dict_in_generate=True, output_scores=True,
                  max_new_tokens=30)
    with torch.no_grad():
        expected = ref.generate(inputs["input_features"], **kwargs)
    got = ours.generate(inputs["input_features"], **kwargs)
    assert got.sequences.tolist() == expected.sequences.tolist()
    assert torch.allclose(got.sequences_scores, expected.sequences_scores, atol=1e-4)


def test_checkpoint_generation_defaults_are_used(tmp_path, train_clips, clips):
    from s2t_live.testing import build_checkpoint

    folder = build_checkpoint(tmp_path, train_clips[:3], steps=20, generation={"num_beams": 3, "max_length": 9,
                                                                              "no_repeat_ngram_size": 2})
    ours = Speech2TextForConditionalGeneration.from_pretrained(folder)
    ref = transformers.Speech2TextForConditionalGeneration.from_pretrained(folder).eval()
    processor = Speech2TextProcessor.from_pretrained(folder)
    inputs = processor(clips[0][1], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = ref.generate(inputs["input_features"])
    got = ours.generate(inputs["input_features"])
    assert got.shape[1] <= 9
    assert got.tolist() == expected.tolist()
