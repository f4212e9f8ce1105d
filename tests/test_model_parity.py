"""The model against the reference implementation: logits and generated ids, on several shapes.

Each checkpoint is built and briefly fitted in this session (see ``s2t_live.testing``), saved in the
Hugging Face layout, and loaded by both implementations from the same folder.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from s2t_live import Speech2TextForConditionalGeneration, Speech2TextModel, Speech2TextProcessor

SHAPES = {
    "tiny-relu": dict(seed=0, steps=60),
    "conv3-gelu-noscale": dict(seed=1, steps=60, num_conv_layers=3, conv_kernel_sizes=[3, 5, 7],
                               activation_function="gelu", scale_embedding=False, encoder_layers=3,
                               decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=8),
    "conv1-silu-3heads": dict(seed=2, steps=60, num_conv_layers=1, conv_kernel_sizes=[3], activation_function="silu",
                              d_model=48, encoder_attention_heads=3, decoder_attention_heads=6, encoder_ffn_dim=96,
                              decoder_ffn_dim=80, conv_channels=64),
}


def load_both(folder):
    ours = Speech2TextForConditionalGeneration.from_pretrained(folder)
    ref = transformers.Speech2TextForConditionalGeneration.from_pretrained(folder).eval()
    return ours, ref, Speech2TextProcessor.from_pretrained(folder)


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request, checkpoint):
    return request.param, checkpoint(request.param, **SHAPES[request.param])


@pytest.fixture(scope="module")
def small_shape(checkpoint):
    """The s2t-small-librispeech-asr architecture, fitted just enough to depend on its input."""
    return checkpoint("s2t-small", shape="small", seed=3, steps=20, lr=1e-3)


def batch_features(processor, clips):
    waves = [wave for _, wave, _ in clips]
    return processor(waves, sampling_rate=16000, padding=True, return_tensors="pt")


def test_logits_match_reference_on_padded_batch(shaped, clips):
    _, folder = shaped
    ours, ref, processor = load_both(folder)
    inputs = batch_features(processor, clips[3:7])
    labels = processor.tokenizer([t for _, _, t in clips[3:7]], padding=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = ours(**inputs, labels=labels)
        b = ref(**inputs, labels=labels)
    assert (a.logits - b.logits).abs().max().item() <= 1e-4
    assert abs(a.loss.item() - b.loss.item()) <= 1e-4


def test_encoder_and_base_model_match_reference(shaped, clips):
    _, folder = shaped
    base = Speech2TextModel.from_pretrained(folder)
    ref = transformers.Speech2TextModel.from_pretrained(folder).eval()
    processor = Speech2TextProcessor.from_pretrained(folder)
    inputs = batch_features(processor, clips[:3])
    dec = torch.tensor([[2, 5, 9, 4], [2, 7, 1, 1], [2, 3, 3, 3]])
    with torch.no_grad():
        a = base(**inputs, decoder_input_ids=dec)
        b = ref(**inputs, decoder_input_ids=dec)
    assert (a.last_hidden_state - b.last_hidden_state).abs().max().item() <= 1e-4
    assert (a.encoder_last_hidden_state - b.encoder_last_hidden_state).abs().max().item() <= 1e-4


@pytest.mark.parametrize("num_beams", [1, 5])
def test_generated_ids_match_reference_on_every_clip(shaped, clips, num_beams):
    _, folder = shaped
    ours, ref, processor = load_both(folder)
    for name, wave, _ in clips:
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        kwargs = dict(attention_mask=inputs["attention_mask"], num_beams=num_beams, max_new_tokens=60)
        with torch.no_grad():
            expected = ref.generate(inputs["input_features"], **kwargs)
        got = ours.generate(inputs["input_features"], **kwargs)
        assert got.tolist() == expected.tolist(), name


def test_fitted_model_output_depends_on_audio(shaped, clips):
    _, folder = shaped
    ours, _, processor = load_both(folder)
    texts = set()
    for _, wave, _ in clips:
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        texts.add(processor.decode(ours.generate(inputs["input_features"], max_new_tokens=40)[0]))
    assert len(texts) >= 3


@pytest.mark.parametrize("num_beams", [1, 5])
def test_s2t_small_shape_matches_reference(small_shape, clips, num_beams):
    ours, ref, processor = load_both(small_shape)
    assert ours.num_parameters() > 25_000_000
    for name, wave, _ in clips[:4]:
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        kwargs = dict(attention_mask=inputs["attention_mask"], num_beams=num_beams, max_new_tokens=30)
        with torch.no_grad():
            expected = ref.generate(inputs["input_features"], **kwargs)
            logits_ref = ref(**inputs, decoder_input_ids=expected).logits
            logits = ours(**inputs, decoder_input_ids=expected).logits
        assert ours.generate(inputs["input_features"], **kwargs).tolist() == expected.tolist(), name
        assert (logits - logits_ref).abs().max().item() <= 1e-4


def test_batched_generation_with_padding_matches_reference(tiny_model, clips):
    ours, ref, processor = load_both(tiny_model)
    inputs = batch_features(processor, clips[:5])
    for num_beams in (1, 4):
        kwargs = dict(attention_mask=inputs["attention_mask"], num_beams=num_beams, max_new_tokens=50)
        with torch.no_grad():
            expected = ref.generate(inputs["input_features"], **kwargs)
        assert ours.generate(inputs["input_features"], **kwargs).tolist() == expected.tolist()
