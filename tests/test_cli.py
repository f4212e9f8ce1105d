"""``s2t-live transcribe``: formats, splitting, reference-identical ids, and one-line failures."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers

from s2t_live.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("num_beams", [1, 5])
def test_json_no_split_tokens_equal_reference_generate(tiny_model, realspeech_dir, clips, capsys, num_beams):
    files = [realspeech_dir / name for name, _, _ in clips]
    code, out, err = run(capsys, "transcribe", *files, "--model", tiny_model, "--no-split", "--format", "json",
                         "--num-beams", num_beams)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    ref = transformers.Speech2TextForConditionalGeneration.from_pretrained(tiny_model).eval()
    processor = transformers.Speech2TextProcessor.from_pretrained(tiny_model)
    for line, (_, wave, _) in zip(lines, clips):
        (segment,) = line["segments"]
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = ref.generate(inputs["input_features"], attention_mask=inputs["attention_mask"], num_beams=num_beams)
        assert segment["tokens"] == ids[0].tolist()
        assert segment["text"] == processor.decode(ids[0], skip_special_tokens=True)
        assert segment["start"] == 0 and segment["end"] == pytest.approx(len(wave) / 16000, abs=1e-3)
        assert line["duration"] == pytest.approx(len(wave) / 16000, abs=1e-3)


def test_long_audio_is_split_at_pauses_with_correct_times(tiny_model, clips, tmp_path, capsys):
    gap = np.zeros(16000 * 2, dtype=np.float32)
    parts = [clips[i][1] for i in (3, 6, 7, 4)]
    joined = np.concatenate([x for p in parts for x in (p, gap)])
    sf.write(tmp_path / "long.wav", joined, 16000)
    code, out, err = run(capsys, "transcribe", tmp_path / "long.wav", "--model", tiny_model, "--format", "json")
    assert code == 0, err
    segments = json.loads(out)["segments"]
    assert len(segments) == 4
    offset = 0.0
    for seg, part in zip(segments, parts):
        assert offset - 0.25 <= seg["start"] <= offset + len(part) / 16000
        assert seg["end"] <= offset + len(part) / 16000 + 0.3
        offset += len(part) / 16000 + 2.0
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:]))


def test_srt_vtt_txt_written_to_output_dir(tiny_model, realspeech_dir, tmp_path, capsys):
    for fmt in ("srt", "vtt", "txt"):
        code, _, err = run(capsys, "transcribe", realspeech_dir / "jfk.flac", "--model", tiny_model, "--format", fmt,
                           "-o", tmp_path)
        assert code == 0, err
    srt = (tmp_path / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,") and " --> " in srt
    assert (tmp_path / "jfk.vtt").read_text().startswith("WEBVTT\n\n00:00:00.")
    assert (tmp_path / "jfk.txt").read_text().strip()


def test_any_rate_and_channel_count_is_accepted(tiny_model, clips, tmp_path, capsys):
    wave = clips[0][1][: 16000 * 3]
    stereo = np.stack([wave, wave], axis=1)
    sf.write(tmp_path / "stereo8k.flac", stereo[::2], 8000)
    sf.write(tmp_path / "mono48k.ogg", np.repeat(wave, 3), 48000)
    code, out, err = run(capsys, "transcribe", tmp_path / "stereo8k.flac", tmp_path / "mono48k.ogg", "--model",
                         tiny_model, "--format", "json")
    assert code == 0, err
    assert len(out.splitlines()) == 2


def test_bad_inputs_give_one_line_and_keep_good_results(tiny_model, realspeech_dir, tmp_path, capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.flac").write_bytes(b"\x00\x01 definitely not audio" * 50)
    code, out, err = run(capsys, "transcribe", tmp_path / "missing.wav", tmp_path / "empty.wav",
                         tmp_path / "garbage.flac", realspeech_dir / "LJ002-0020.wav", "--model", tiny_model)
    assert code == 1
    assert out.strip()  # the good file was still transcribed
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("s2t-live: error: ") for line in lines)
    assert "Traceback" not in err


def test_model_problems_give_one_line(tiny_model, realspeech_dir, tmp_path, capsys):
    no_weights = tmp_path / "noweights"
    no_weights.mkdir()
    shutil.copy(tiny_model / "config.json", no_weights)
    for model in (no_weights, tmp_path / "nope", "facebook/not-cached-here"):
        code, _, err = run(capsys, "transcribe", realspeech_dir / "jfk.flac", "--model", model)
        assert code == 1 and err.count("\n") == 1 and err.startswith("s2t-live: error: ")


def test_console_script_exits_nonzero_without_traceback(tmp_path):
    exe = shutil.which("s2t-live") or pytest.fail("the s2t-live console script is not installed")
    result = subprocess.run([exe, "transcribe", str(tmp_path / "missing.wav"), "--model", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.startswith("s2t-live: error:")


def test_gui_subcommand_passes_its_options_to_the_app(tmp_path, capsys):
    code, _, err = run(capsys, "gui", "--input", tmp_path / "missing.wav", "--model", tmp_path / "no-model")
    assert code != 0
    assert "no-model" in err and "Traceback" not in err


def test_batched_decoding_equals_one_by_one(tiny_model, realspeech_dir, clips, capsys):
    files = [realspeech_dir / name for name, _, _ in clips]
    outputs = []
    for batch_size in (1, 3, 8):
        code, out, err = run(capsys, "transcribe", *files, "--model", tiny_model, "--format", "json",
                             "--num-beams", 3, "--batch-size", batch_size)
        assert code == 0, err
        outputs.append([json.loads(line) for line in out.splitlines()])
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) == len(files)


def test_files_come_out_in_order_across_groups_with_errors_in_place(tiny_model, realspeech_dir, clips, tmp_path):
    from s2t_live.errors import S2TError
    from s2t_live.transcribe import Transcriber

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    good = [str(realspeech_dir / name) for name, _, _ in clips[:4]]
    paths = [good[0], str(broken), *good[1:], str(tmp_path / "missing.flac")]
    transcriber = Transcriber(tiny_model, batch_size=2)
    results = list(transcriber.transcribe_files(paths, split=False, group_pieces=2))
    assert [path for path, _ in results] == paths
    assert isinstance(results[1][1], S2TError) and isinstance(results[-1][1], S2TError)
    for path, result in results:
        if path in good:
            (segment,) = result.segments
            assert segment.tokens == transcriber.decode(result_wave(path))[1]


def result_wave(path):
    from s2t_live.audio import load_audio

    return load_audio(path)


def test_batch_size_below_one_is_one_line(tiny_model, realspeech_dir, capsys):
    code, out, err = run(capsys, "transcribe", realspeech_dir / "jfk.flac", "--model", tiny_model, "--batch-size", 0)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "batch size" in err


@pytest.mark.parametrize("argv, what", [
    (["transcribe", "x.wav", "--num-beams", "0"], "the beam size is a whole number >= 1, not '0'"),
    (["transcribe", "x.wav", "--max-new-tokens", "-3"], "the token limit is a whole number >= 1"),
    (["transcribe", "x.wav", "--warp", "3"], "the frequency warp is 'auto' or a number from 0.5 to 2"),
    (["evaluate", "--model", "m", "--manifest", "t.tsv", "--warp", "none"], "the frequency warp is 'auto'"),
    (["stream", "x.wav", "--beams", "-1"], "the beam size is a whole number >= 1"),
    (["stream", "x.wav", "--final-beams", "two"], "the beam size is a whole number >= 1, not 'two'"),
    (["stream", "x.wav", "--threads", "0"], "the number of threads is a whole number >= 1"),
    (["stream", "x.wav", "--chunk", "0"], "the duration is a number of seconds"),
    (["listen", "--silence", "-1"], "the duration is a number of seconds"),
    (["stream", "x.wav", "--speed", "-1"], "the speed is a number >= 0"),
    (["evaluate", "--model", "m", "--manifest", "t.tsv", "--limit", "0"], "the utterance limit is a whole number"),
])
def test_out_of_range_options_are_usage_errors(capsys, argv, what):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and what in err and "Traceback" not in err


def test_warp_is_off_for_models_that_list_no_warp_factors_and_a_fixed_warp_changes_the_input(tiny_model, clips):
    from s2t_live.transcribe import Transcriber, encode_each

    wave = next(w for name, w, _ in clips if name == "LJ002-0020.wav")
    auto, fixed = Transcriber(str(tiny_model)), Transcriber(str(tiny_model), warp=1.2)
    assert auto.piece_warps([wave, wave]) == [1.0, 1.0] and fixed.piece_warps([wave]) == [1.2]
    plain, _ = encode_each(auto.model, auto.processor, [wave])
    assert torch.equal(encode_each(auto.model, auto.processor, [wave], [1.0])[0], plain)
    assert not torch.allclose(encode_each(auto.model, auto.processor, [wave], [1.2])[0], plain)
