"""Features against torchaudio's Kaldi fbank and the reference transformers extractor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from s2t_live.audio import load_audio
from s2t_live.errors import AudioError, ModelError
from s2t_live.features import (
    BatchFeature,
    Speech2TextFeatureExtractor,
    StreamingFbank,
    fbank,
    utterance_cmvn,
)

transformers = pytest.importorskip("transformers")
Reference = transformers.Speech2TextFeatureExtractor

REALSPEECH = Path(os.environ.get("S2T_REALSPEECH", Path(__file__).resolve().parent / "data" / "realspeech"))
TOLERANCE = 1e-4
STREAM_TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two shared cores: OpenMP threads spinning against other jobs only slow these small FFTs down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    if not (REALSPEECH / "transcripts.tsv").is_file():
        pytest.skip(f"real speech clips not found at {REALSPEECH} (set S2T_REALSPEECH)")
    names = [line.split("\t")[0] for line in (REALSPEECH / "transcripts.tsv").read_text().splitlines()[1:] if line]
    return [load_audio(REALSPEECH / name) for name in names]


@pytest.fixture(scope="module")
def short_clips(clips) -> list[np.ndarray]:
    """The clips cut to 1-4 s of different lengths, so batch tests stay quick but still pad."""
    return [wave[: 16000 + 4567 * index] for index, wave in enumerate(clips)]


def noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(num_samples) * 0.1).astype(np.float32)


def assert_same_batch(ours: BatchFeature, ref) -> float:
    """Same keys, container types, shapes and dtypes; returns the max abs difference."""
    assert list(ours.keys()) == list(ref.keys())
    worst = 0.0
    for key in ref.keys():
        assert type(ours[key]) is type(ref[key]), key
        assert len(ours[key]) == len(ref[key])
        for a, b in zip(ours[key], ref[key]):
            a, b = np.asarray(a), np.asarray(b)
            assert a.shape == b.shape and a.dtype == b.dtype, (key, a.shape, b.shape, a.dtype, b.dtype)
            worst = max(worst, float(np.abs(a.astype(np.float64) - b).max(initial=0.0)))
    assert worst <= TOLERANCE
    return worst


def test_fbank_equals_torchaudio_kaldi_on_16bit_scaled_real_speech(clips):
    for wave in clips:
        expected = kaldi.fbank(torch.from_numpy(wave * 2**15)[None], num_mel_bins=80, sample_frequency=16000)
        assert torch.equal(fbank(wave), expected)


def test_fbank_of_audio_shorter_than_a_window_has_no_frames():
    assert fbank(noise(399)).shape == (0, 80)
    assert fbank(noise(400)).shape == (1, 80)


@pytest.mark.parametrize("return_tensors", [None, "np", "pt"])
def test_single_clips_match_reference(clips, return_tensors):
    ours, ref = Speech2TextFeatureExtractor(), Reference()
    for wave in clips:
        assert_same_batch(
            ours(wave, sampling_rate=16000, return_tensors=return_tensors),
            ref(wave, sampling_rate=16000, return_tensors=return_tensors),
        )


@pytest.mark.parametrize(
    "options",
    [
        dict(padding=False),
        dict(padding=True, return_tensors="pt"),
        dict(padding="longest", return_tensors="np"),
        dict(padding="longest", pad_to_multiple_of=64, return_tensors="pt"),
        dict(padding="max_length", max_length=500, return_tensors="pt"),
        dict(padding="max_length", max_length=150, truncation=True, return_tensors="pt"),
        dict(padding="longest", max_length=250, truncation=True, pad_to_multiple_of=64, return_tensors="np"),
        dict(padding=False, max_length=150, truncation=True),
        dict(padding=False, return_tensors="np"),
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()),
)
def test_padded_and_truncated_batches_match_reference(short_clips, options):
    ours = Speech2TextFeatureExtractor()(short_clips, sampling_rate=16000, **options)
    ref = Reference()(short_clips, sampling_rate=16000, **options)
    assert_same_batch(ours, ref)


def test_max_length_without_truncation_pads_short_items_and_keeps_long_ones_whole(short_clips):
    # The reference pads the same way but then fails to stack the ragged attention masks.
    out = Speech2TextFeatureExtractor()(short_clips, sampling_rate=16000, padding="max_length", max_length=200)
    alone = Speech2TextFeatureExtractor()(short_clips, sampling_rate=16000)
    for features, mask, single in zip(out.input_features, out.attention_mask, alone.input_features):
        assert len(features) == len(mask) == max(200, len(single)) and mask.sum() == len(single)
        assert np.array_equal(features[: len(single)], single)


def test_normalisation_ignores_padded_frames_and_fills_them_with_padding_value(short_clips):
    options = dict(sampling_rate=16000, padding=True, return_tensors="np")
    ours = Speech2TextFeatureExtractor(padding_value=-3.0)(short_clips[:3], **options)
    ref = Reference(padding_value=-3.0)(short_clips[:3], **options)
    assert_same_batch(ours, ref)
    short = int(ours.attention_mask.sum(-1).argmin())
    alone = Speech2TextFeatureExtractor()(short_clips[short], sampling_rate=16000).input_features[0]
    assert np.abs(ours.input_features[short, : len(alone)] - alone).max() <= TOLERANCE
    assert (ours.input_features[short, len(alone) :] == -3.0).all()


def test_utterance_cmvn_matches_reference_staticmethod():
    features = fbank(noise(16000)).numpy()
    features[80:] = 0.0
    ref = Reference.utterance_cmvn(features.copy(), 80, True, True, 1.5)
    assert np.array_equal(utterance_cmvn(features, 80, padding_value=1.5), ref)
    assert torch.equal(utterance_cmvn(torch.from_numpy(features), 80, padding_value=1.5), torch.from_numpy(ref))


def test_switches_for_normalisation_and_attention_mask_follow_reference(short_clips):
    call = dict(sampling_rate=16000, padding=True, return_tensors="pt")
    for options in [dict(do_ceptral_normalize=False), dict(normalize_vars=False), dict(normalize_means=False)]:
        ours, ref = Speech2TextFeatureExtractor(**options), Reference(**options)
        assert_same_batch(ours(short_clips, **call), ref(short_clips, **call))
    out = Speech2TextFeatureExtractor()(short_clips[:2], sampling_rate=16000, return_attention_mask=False)
    assert list(out.keys()) == ["input_features"]


def test_2d_array_and_float_list_inputs_match_reference():
    batch = np.stack([noise(8000, 1), noise(8000, 2)])
    ours, ref = Speech2TextFeatureExtractor(), Reference()
    assert_same_batch(ours(batch, sampling_rate=16000), ref(batch, sampling_rate=16000))
    as_list = noise(4000).astype(np.float64).tolist()
    assert_same_batch(ours(as_list, sampling_rate=16000), ref(as_list, sampling_rate=16000))


def test_wrong_sampling_rate_is_refused_and_missing_one_warns():
    extractor = Speech2TextFeatureExtractor()
    with pytest.raises(AudioError, match="8000 Hz.*16000 Hz"):
        extractor(noise(8000), sampling_rate=8000)
    with pytest.warns(UserWarning, match="sampling_rate"):
        extractor(noise(8000))


@pytest.mark.parametrize(
    "stereo", [noise(32000).reshape(16000, 2), noise(32000).reshape(1, 16000, 2), [noise(32000).reshape(16000, 2)]]
)
def test_stereo_input_is_refused_with_a_mono_hint(stereo):
    with pytest.raises(AudioError, match="mono"):
        Speech2TextFeatureExtractor()(stereo, sampling_rate=16000)


def test_bad_padding_arguments_raise_value_error():
    extractor = Speech2TextFeatureExtractor()
    with pytest.raises(ValueError, match="max_length"):
        extractor(noise(8000), sampling_rate=16000, padding="max_length")
    with pytest.raises(ValueError, match="max_length"):
        extractor(noise(8000), sampling_rate=16000, truncation=True)
    with pytest.raises(ValueError, match="padding=True"):
        extractor([noise(8000), noise(4000)], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(AudioError, match="fewer than one"):
        extractor(noise(100), sampling_rate=16000)


def test_batch_feature_attribute_access_and_to_casts_only_floating_tensors():
    batch = [noise(8000), noise(4000)]
    out = Speech2TextFeatureExtractor()(batch, sampling_rate=16000, padding=True, return_tensors="pt")
    assert out.input_features is out["input_features"]
    with pytest.raises(AttributeError):
        out.labels
    out.to(torch.float16)
    assert out.input_features.dtype == torch.float16 and out.attention_mask.dtype == torch.int32
    out.to("cpu", dtype=torch.float64)
    assert out.input_features.dtype == torch.float64 and out.attention_mask.dtype == torch.int32
    ragged = BatchFeature({"x": [np.zeros(3), np.zeros(2)]}, tensor_type="np")
    assert ragged.x.dtype == object and len(ragged.x) == 2


def test_save_and_load_round_trip_and_reference_reads_our_config(tmp_path):
    settings = dict(num_mel_bins=40, feature_size=40, dither=0.5, normalize_vars=False)
    ours = Speech2TextFeatureExtractor(**settings)
    written = ours.save_pretrained(tmp_path / "model")
    assert written == [str(tmp_path / "model" / "preprocessor_config.json")]
    saved = json.loads(Path(written[0]).read_text())
    assert saved == json.loads(Reference(**settings).to_json_string())
    assert saved["feature_extractor_type"] == "Speech2TextFeatureExtractor"
    again = Speech2TextFeatureExtractor.from_pretrained(tmp_path / "model")
    assert again.to_dict() == ours.to_dict()
    assert Speech2TextFeatureExtractor.from_pretrained(written[0]).num_mel_bins == 40
    assert Reference.from_pretrained(tmp_path / "model").to_dict() == ours.to_dict()


def test_we_read_the_reference_config_and_keep_unknown_keys(tmp_path):
    ref = Reference(normalize_means=False, padding_value=1.0)
    ref.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    config["processor_class"] = "Speech2TextProcessor"
    config["custom_note"] = "kept"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    ours = Speech2TextFeatureExtractor.from_pretrained(tmp_path, padding_value=2.0)
    assert ours.normalize_means is False and ours.padding_value == 2.0
    assert ours.to_dict()["custom_note"] == "kept" and "processor_class" not in ours.to_dict()
    assert Speech2TextFeatureExtractor.from_dict(ref.to_dict()).to_json_string() == ref.to_json_string()


def test_broken_or_foreign_config_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Speech2TextFeatureExtractor.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ModelError, match="preprocessor_config.json"):
        Speech2TextFeatureExtractor.from_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"feature_extractor_type": "WhisperFeatureExtractor"}')
    with pytest.raises(ModelError, match="WhisperFeatureExtractor"):
        Speech2TextFeatureExtractor.from_pretrained(tmp_path)


def stream(wave: np.ndarray, sizes) -> tuple[torch.Tensor, StreamingFbank]:
    """Feed ``wave`` through a StreamingFbank in chunks of the given sizes (cycled)."""
    streamer, frames, start, index = StreamingFbank(), [], 0, 0
    while start < len(wave):
        size = sizes[index % len(sizes)]
        frames.append(streamer.accept_waveform(wave[start : start + size]))
        start, index = start + size, index + 1
    return torch.cat(frames + [torch.zeros(0, 80)]), streamer


@pytest.mark.parametrize("chunk", [1, 159, 160, 161, 399, 400, 401, 16000])
def test_streaming_fbank_equals_whole_signal_for_fixed_chunk_sizes(chunk):
    wave = noise(3237 if chunk == 1 else 16037, seed=chunk)
    frames, streamer = stream(wave, [chunk])
    expected = fbank(wave)
    assert frames.shape == expected.shape and streamer.num_frames_emitted == len(expected)
    assert (frames - expected).abs().max() <= STREAM_TOLERANCE


@pytest.mark.parametrize("seed", range(5))
def test_streaming_fbank_equals_whole_signal_for_random_chunkings(seed):
    rng = np.random.default_rng(seed)
    wave = noise(int(rng.integers(400, 24000)), seed=100 + seed)
    sizes = [int(s) for s in rng.integers(0, 1200, size=50)] + [0, 1]
    frames, _ = stream(wave, sizes)
    expected = fbank(wave)
    assert frames.shape == expected.shape
    assert (frames - expected).abs().max() <= STREAM_TOLERANCE


def test_streaming_fbank_on_real_speech_in_tensor_chunks(clips):
    wave = clips[0]
    sizes = [int(s) for s in np.random.default_rng(7).integers(1, 4000, size=40)]
    streamer, frames, start = StreamingFbank(), [], 0
    for size in sizes * (len(wave) // sum(sizes) + 1):
        frames.append(streamer.accept_waveform(torch.from_numpy(wave[start : start + size])))
        start += size
    assert (torch.cat(frames) - fbank(wave)).abs().max() <= STREAM_TOLERANCE


@pytest.mark.parametrize("length", [0, 1, 200, 399])
def test_streaming_fbank_emits_nothing_before_a_full_window(length):
    streamer = StreamingFbank()
    frames = [streamer.accept_waveform(piece) for piece in np.array_split(noise(length), 3)]
    assert all(f.shape == (0, 80) for f in frames) and streamer.num_frames_emitted == 0
    assert streamer.accept_waveform(noise(400 - length)).shape == (1, 80)


def test_streaming_fbank_reset_starts_a_new_utterance():
    streamer = StreamingFbank()
    first = streamer.accept_waveform(noise(1000))
    streamer.accept_waveform(noise(150, seed=3))
    streamer.reset()
    assert streamer.num_frames_emitted == 0
    assert torch.equal(streamer.accept_waveform(noise(1000)), first)
    assert streamer.num_frames_emitted == len(first) == 4
