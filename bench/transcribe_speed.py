"""s2t-live against the reference (transformers) on identical work, measured in one run.

For a checkpoint of the s2t-small shape (built and fitted here unless ``--model`` is given) and the same
audio files, this times:
  * the whole command, start-up included: ``s2t-live transcribe --no-split --format json`` versus
    ``bench/reference_transcribe.py`` (the same job written with transformers), greedy and beam 5,
    with each process's peak memory (max RSS);
  * in one process: the encoder alone, one decoder step with a warm cache, and ``generate``.
Token ids are compared in the same run; a mismatch is reported loudly. Ratios > 1 mean s2t-live is faster.

    python bench/transcribe_speed.py [--model DIR] [--clips DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT / "tests" / "data" / "realspeech"


def run_command(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB and stdout of one Python command (``-m module ...`` or ``script ...``),
    run under ``peak_memory.py`` (start-up of the interpreter included)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "peak_memory.py"), *cmd], capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB ")]
    return elapsed, peak[-1] // 1024, proc.stdout


def tokens_of(output: str) -> list[list[int]]:
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    return [row["segments"][0]["tokens"] if "segments" in row else row["tokens"] for row in rows]


def whole_command(model: str, files: list[str], beams: int, repeats: int) -> None:
    ours_cmd = ["-m", "s2t_live.cli", "transcribe", *files, "--model", model, "--no-split",
                "--format", "json", "--num-beams", str(beams)]
    ref_cmd = [str(ROOT / "bench" / "reference_transcribe.py"), *files, "--model", model,
               "--num-beams", str(beams)]
    ours, ref = [], []
    for _ in range(repeats):  # interleaved, so background load hits both alike
        ours.append(run_command(ours_cmd))
        ref.append(run_command(ref_cmd))
    same = tokens_of(ours[0][2]) == tokens_of(ref[0][2])
    t_ours, t_ref = statistics.median(r[0] for r in ours), statistics.median(r[0] for r in ref)
    m_ours, m_ref = max(r[1] for r in ours), max(r[1] for r in ref)
    print(f"whole command, beams={beams}: s2t-live {t_ours:.2f}s  reference {t_ref:.2f}s  "
          f"speed-up x{t_ref / t_ours:.2f}  | peak RSS {m_ours} MiB vs {m_ref} MiB "
          f"(x{m_ref / m_ours:.2f})  | ids identical: {same}")
    if not same:
        print("!! token ids differ between s2t-live and the reference")


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def in_process(model_dir: str, files: list[str], repeats: int) -> None:
    import transformers

    from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor
    from s2t_live.audio import load_audio
    from s2t_live.generation import Stepper

    ours = Speech2TextForConditionalGeneration.from_pretrained(model_dir)
    ref = transformers.Speech2TextForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = Speech2TextProcessor.from_pretrained(model_dir)
    inputs = processor(load_audio(files[0]), sampling_rate=16000, return_tensors="pt")
    feats = inputs["input_features"]
    with torch.inference_mode():
        t_ours = best_of(lambda: ours.model.encoder(feats), repeats)
        t_ref = best_of(lambda: ref.model.encoder(feats), repeats)
        print(f"encoder ({feats.shape[1]} frames): s2t-live {t_ours * 1000:.1f} ms  reference {t_ref * 1000:.1f} ms  "
              f"x{t_ref / t_ours:.2f}")

        enc = ours.model.encoder(feats).last_hidden_state
        prefix = torch.tensor([[2] + [10] * 20])
        step = Stepper(ours, enc, None, 64)
        step(prefix)

        def ours_step():
            step.cache.length = 21
            step(torch.tensor([[11]]))

        ref_out = ref(encoder_outputs=(enc,), decoder_input_ids=prefix, use_cache=True)
        cache = ref_out.cache

        def ref_step():
            ref(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([[11]]), cache=cache, use_cache=True)
            cache.crop(-1)  # drop the token just added: every call sees a cache of 21

        t_ours, t_ref = best_of(ours_step, repeats * 20), best_of(ref_step, repeats * 20)
        print(f"one decoder step (cache of 21): s2t-live {t_ours * 1000:.2f} ms  reference {t_ref * 1000:.2f} ms  "
              f"x{t_ref / t_ours:.2f}")
        for beams in (1, 5):
            kw = dict(attention_mask=inputs["attention_mask"], num_beams=beams)
            a, b = ours.generate(feats, **kw), ref.generate(feats, **kw)
            t_ours = best_of(lambda: ours.generate(feats, **kw), repeats)
            t_ref = best_of(lambda: ref.generate(feats, **kw), repeats)
            print(f"generate beams={beams} ({a.shape[1]} tokens): s2t-live {t_ours:.3f}s  reference {t_ref:.3f}s  "
                  f"x{t_ref / t_ours:.2f}  ids identical: {a.tolist() == b.tolist()}")


def int8_agreement(model_dir: str, files: list[str]) -> None:
    """Dynamic int8 quantisation: speed and agreement with float32 (identical ids, word error rate)."""
    import jiwer

    from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor
    from s2t_live.audio import load_audio
    from s2t_live.loading import quantize_int8

    full = Speech2TextForConditionalGeneration.from_pretrained(model_dir)
    quant = quantize_int8(Speech2TextForConditionalGeneration.from_pretrained(model_dir))
    processor = Speech2TextProcessor.from_pretrained(model_dir)
    same, refs, hyps, t_full, t_quant = 0, [], [], 0.0, 0.0
    for file in files:
        feats = processor(load_audio(file), sampling_rate=16000, return_tensors="pt")["input_features"]
        start = time.perf_counter()
        a = full.generate(feats, num_beams=1)
        t_full += time.perf_counter() - start
        start = time.perf_counter()
        b = quant.generate(feats, num_beams=1)
        t_quant += time.perf_counter() - start
        same += a.tolist() == b.tolist()
        refs.append(processor.decode(a[0], skip_special_tokens=True) or "<empty>")
        hyps.append(processor.decode(b[0], skip_special_tokens=True) or "<empty>")
    print(f"int8 (greedy): x{t_full / t_quant:.2f} vs float32, identical ids on {same}/{len(files)} files, "
          f"word disagreement {100 * jiwer.wer(refs, hyps):.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder (default: build an s2t-small-shaped one here)")
    parser.add_argument("--clips", default=str(CLIPS))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = args.model
    if model is None:
        from s2t_live.testing import build_checkpoint, read_clips

        model = str(Path(tempfile.mkdtemp(prefix="s2t-bench-")) / "small")
        print(f"building an s2t-small-shaped checkpoint (seed {args.seed}) in {model} ...", flush=True)
        build_checkpoint(model, read_clips(args.clips, max_seconds=4), shape="small", seed=args.seed, steps=20,
                         lr=1e-3, generation={"max_length": 100, "early_stopping": True})
    files = sorted(str(p) for p in Path(args.clips).iterdir() if p.suffix in (".wav", ".flac", ".mp3"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(files)} files")
    for beams in (1, 5):
        whole_command(model, files, beams, args.repeats)
    in_process(model, files, args.repeats)
    int8_agreement(model, files)


if __name__ == "__main__":
    main()
