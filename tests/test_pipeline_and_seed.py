"""The seed document's two examples, with ``s2t_live`` in place of ``transformers`` and a local folder.

Offline: the hub id in the example text is replaced by a checkpoint built here (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import contextlib
import io
import sys
import types

import numpy as np
import pytest

SEED_EXAMPLE_2 = '''
import torch
from datasets import load_dataset
from transformers import Speech2TextProcessor, Speech2TextForConditionalGeneration

model = Speech2TextForConditionalGeneration.from_pretrained("facebook/s2t-small-librispeech-asr", dtype="auto")
processor = Speech2TextProcessor.from_pretrained("facebook/s2t-small-librispeech-asr")

ds = load_dataset("hf-internal-testing/librispeech_asr_demo", "clean", split="validation")
inputs = processor(ds[0]["audio"]["array"], sampling_rate=ds[0]["audio"]["sampling_rate"], return_tensors="pt")
generated_ids = model.generate(inputs["input_features"], attention_mask=inputs["attention_mask"])
print(f"Transcription: {processor.batch_decode(generated_ids, skip_special_tokens=True)}")
'''


@pytest.fixture(scope="module")
def librispeech_like(checkpoint):
    """A checkpoint with the generation defaults of facebook/s2t-small-librispeech-asr."""
    return checkpoint("seed", seed=5, steps=60, generation={"max_length": 200, "num_beams": 5, "early_stopping": True})


def run_example(code: str, library: str, folder, wave) -> str:
    fake_datasets = types.ModuleType("datasets")
    fake_datasets.load_dataset = lambda *a, **k: [{"audio": {"array": wave, "sampling_rate": 16000}}]
    source = code.replace("facebook/s2t-small-librispeech-asr", str(folder)).replace("from transformers", f"from {library}")
    out = io.StringIO()
    saved = sys.modules.get("datasets")
    sys.modules["datasets"] = fake_datasets
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "seed_example", "exec"), {})
    finally:
        if saved is None:
            sys.modules.pop("datasets")
        else:
            sys.modules["datasets"] = saved
    return out.getvalue()


def test_seed_example_prints_what_the_reference_prints(librispeech_like, clips):
    for _, wave, _ in clips[:3]:
        ours = run_example(SEED_EXAMPLE_2, "s2t_live", librispeech_like, wave)
        ref = run_example(SEED_EXAMPLE_2, "transformers", librispeech_like, wave)
        assert ours.startswith("Transcription: ['")
        assert ours == ref


def test_pipeline_accepts_array_path_and_dict(librispeech_like, realspeech_dir, clips):
    import s2t_live
    import transformers

    ours = s2t_live.pipeline(task="automatic-speech-recognition", model=str(librispeech_like), dtype="auto")
    ref = transformers.pipeline(task="automatic-speech-recognition", model=str(librispeech_like), dtype="auto")
    name, wave, _ = next(c for c in clips if c[0].startswith("ls_"))  # a 16 kHz file
    expected = ref(wave.copy())
    assert ours(wave) == expected
    assert ours(str(realspeech_dir / name)) == expected
    assert ours({"raw": wave, "sampling_rate": 16000}) == expected
    stereo_44k = {"raw": np.stack([wave, wave], 1), "sampling_rate": 16000}
    assert ours(stereo_44k) == expected
    assert ours([wave, wave]) == [expected, expected]
