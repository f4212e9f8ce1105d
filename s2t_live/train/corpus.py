"""Build the synthetic-speech corpus that trains the embedded default model.

Sentences come from Debian packages (``s2t_live.train.sentences``) and are spoken by the English voices
of espeak-ng, flite, festival and, with PyPI's ``ttspico`` installed, SVOX Pico
(``s2t_live.train.voices``); the voice named first in ``HELD_OUT_VOICES`` that is available (flite
``rms``) never speaks a training utterance. About 70 % of the training utterances are then augmented
(``s2t_live.train.augment``).

Output in ``OUT``: ``audio/<split>/<id>.flac`` (16 kHz mono, 16-bit), the fairseq S2T
manifests ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``test_unseen_voice.tsv`` whose
``audio`` column is relative to ``OUT``, ``train_text.txt`` (training transcripts),
``extra_text.txt`` (unused training-side sentences, for the tokenizer or an LM) and
``corpus_config.json``; text packages that are not installed are unpacked in ``OUT/text_sources``.
Everything derives from ``--seed``; a rerun skips utterances whose audio already exists, and
manifests are rewritten every ``FLUSH_EVERY`` utterances.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

from s2t_live.errors import S2TError
from s2t_live.export import atomic_open, write_atomic
from s2t_live.train import augment
from s2t_live.train.sentences import load_sentences
from s2t_live.train.voices import ENGINE_WEIGHTS, Voice, VoiceBank, list_voices

SAMPLE_RATE = 16000
SPLITS = ("dev", "test", "test_unseen_voice", "train")
DEFAULT_SIZES = {"train": 30000, "dev": 300, "test": 300, "test_unseen_voice": 300}
MANIFEST_HEADER = "id\taudio\tn_frames\ttgt_text\tspeaker\n"
FLUSH_EVERY = 500
PROGRESS_EVERY = 50
BABBLE_CLIPS = 24
SHARD_SIZE = 200  # tasks per festival process (run_shard)
PEAK_RANGE = (0.5, 0.95)


@dataclass(frozen=True)
class Task:
    """One utterance to synthesise: text, voice and the seed of its random choices."""

    uid: str
    split: str
    spoken: str
    transcript: str
    voice: Voice
    speed: float
    pitch: float
    seed: int

    @property
    def rel_path(self) -> str:
        """Audio path relative to the output folder."""
        return f"audio/{self.split}/{self.uid}.flac"


@dataclass(frozen=True)
class CorpusConfig:
    """Command-line settings of one corpus build."""

    out: Path
    jobs: int = 2
    seed: int = 1
    sizes: tuple[tuple[str, int], ...] = tuple(DEFAULT_SIZES.items())
    text_file: Path | None = None
    without: tuple[str, ...] = ()  # engines left out although installed ("pico", "festival", ...)


def frames_of(num_samples: int) -> int:
    """Number of 25 ms / 10 ms fbank frames fairseq computes for ``num_samples`` at 16 kHz."""
    return 0 if num_samples < 400 else 1 + (num_samples - 400) // 160


def split_sizes(max_utts: int | None, overrides: dict[str, int | None]) -> dict[str, int]:
    """Per-split utterance counts: the defaults, overridden, then scaled under ``max_utts``."""
    sizes = {s: (overrides.get(s) if overrides.get(s) is not None else DEFAULT_SIZES[s])
             for s in DEFAULT_SIZES}
    if max_utts is None or max_utts >= sum(sizes.values()):
        return {s: int(n) for s, n in sizes.items()}
    total = sum(sizes.values())
    held = {s: max(1, sizes[s] * max_utts // total) for s in sizes if s != "train"}
    return {**held, "train": max(1, max_utts - sum(held.values()))}


def partition_sentences(pairs: list[tuple[str, str]], sizes: dict[str, int],
                        rng: np.random.Generator) -> dict[str, list[tuple[str, str]]]:
    """Shuffle (spoken, transcript) pairs into disjoint dev, test and training pools.

    ``test_unseen_voice`` reuses the test sentences, so seen and unseen voices can be
    compared on the same text; no held-out sentence is in the training pool.
    """
    order = rng.permutation(len(pairs))
    shuffled = [pairs[i] for i in order]
    n_dev, n_test = sizes["dev"], max(sizes["test"], sizes["test_unseen_voice"])
    if n_dev + n_test >= len(shuffled):
        raise ValueError(f"only {len(shuffled)} sentences for {n_dev + n_test} held out")
    test = shuffled[n_dev:n_dev + n_test]
    return {"dev": shuffled[:n_dev], "test": test[:sizes["test"]],
            "test_unseen_voice": test[:sizes["test_unseen_voice"]],
            "train_pool": shuffled[n_dev + n_test:]}


def task_id(split: str, index: int, parts: Iterable[object]) -> str:
    """A readable id whose hash suffix changes whenever text, voice or seed change."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]
    return f"{split}-{index:06d}-{digest}"


def plan_tasks(pools: dict[str, list[tuple[str, str]]], sizes: dict[str, int],
               bank: VoiceBank, rng: np.random.Generator) -> list[Task]:
    """Every utterance of the corpus in synthesis order: held-out splits first."""
    tasks: list[Task] = []
    for split in SPLITS:
        sentences = pools["train_pool"] if split == "train" else pools[split]
        for index in range(sizes[split]):
            spoken, transcript = sentences[index % len(sentences)]
            voice = bank.held_out if split == "test_unseen_voice" else bank.draw(rng)
            speed, pitch = float(rng.uniform(0.85, 1.2)), float(rng.uniform(-1.0, 1.0))
            seed = int(rng.integers(2**62))
            uid = task_id(split, index, (spoken, voice.label, f"{speed:.3f}", f"{pitch:.3f}",
                                         seed))
            tasks.append(Task(uid, split, spoken, transcript, voice, speed, pitch, seed))
    return tasks


def read_valid(path: Path) -> int | None:
    """Sample count of an existing, readable 16 kHz mono file, else None."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    ok = info.samplerate == SAMPLE_RATE and info.channels == 1 and info.frames >= 400
    return int(info.frames) if ok else None


def write_audio(path: Path, wave: np.ndarray) -> None:
    """Write 16-bit FLAC atomically (temporary file, then rename)."""
    with atomic_open(path, "wb", sync=False) as f:
        sf.write(f, wave, SAMPLE_RATE, subtype="PCM_16", format="FLAC")


def render(task: Task, bank: VoiceBank, babble: list[np.ndarray]) -> np.ndarray:
    """Synthesise, resample, trim, level and (for training) augment one utterance."""
    rng = np.random.default_rng(task.seed)
    wave, rate = bank.synthesize(task.voice, task.spoken, task.speed, task.pitch)
    wave = augment.resample(wave, rate, SAMPLE_RATE)
    wave = augment.trim_silence(wave, SAMPLE_RATE, rng)
    wave = augment.peak_normalize(wave, float(rng.uniform(*PEAK_RANGE)))
    if task.split == "train":
        wave, _ = augment.augment_chain(wave, SAMPLE_RATE, rng, augment.AugmentConfig(), babble)
    return wave


_WORKER: dict[str, object] = {}


def init_worker(out_dir: str) -> None:
    """Per-process state: the voice bank (with its festival process) and the babble clips."""
    _WORKER["out"] = Path(out_dir)
    _WORKER["bank"] = VoiceBank(list_voices(), tempfile.mkdtemp(prefix="s2t-corpus-"))
    babble_dir = Path(out_dir) / "babble"
    _WORKER["babble"] = [sf.read(str(p), dtype="float32")[0]
                         for p in sorted(babble_dir.glob("*.flac"))]


def run_task(task: Task) -> tuple[Task, int | None, bool]:
    """Make one utterance unless it exists; return (task, samples or None, synthesised)."""
    path = Path(_WORKER["out"]) / task.rel_path  # type: ignore[arg-type]
    samples = read_valid(path)
    if samples is not None:
        return task, samples, False
    try:
        wave = render(task, _WORKER["bank"], _WORKER["babble"])  # type: ignore[arg-type]
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        print(f"[corpus] failed {task.uid} ({task.voice.label}): {error}", file=sys.stderr)
        return task, None, True
    if wave.size < 400:
        return task, None, True
    write_audio(path, wave)
    return task, int(wave.size), True


def build_babble(out: Path, pool: list[tuple[str, str]], bank: VoiceBank,
                 rng: np.random.Generator, clips: int) -> None:
    """Synthesise the clean clips that babble noise is mixed from (seen voices only)."""
    fast = [v for v in bank.train_voices if v.engine != "festival"] or bank.train_voices
    for index in range(min(BABBLE_CLIPS, max(2, clips), len(pool))):
        spoken = pool[-1 - index][0]
        voice = fast[int(rng.integers(len(fast)))]
        path = out / "babble" / f"babble-{index:02d}-{hashlib.sha1(spoken.encode()).hexdigest()[:8]}.flac"
        if read_valid(path) is None:
            wave, rate = bank.synthesize(voice, spoken, 1.0, 0.0)
            write_audio(path, augment.peak_normalize(augment.resample(wave, rate, SAMPLE_RATE)))


def write_manifests(out: Path, tasks: list[Task], samples: dict[str, int]) -> None:
    """(Re)write the four manifests and ``train_text.txt`` from the finished utterances."""
    for split in SPLITS:
        lines = [f"{t.uid}\t{t.rel_path}\t{frames_of(samples[t.uid])}\t{t.transcript}\t"
                 f"{t.voice.label}\n" for t in tasks if t.split == split and t.uid in samples]
        write_atomic(out / f"{split}.tsv", MANIFEST_HEADER + "".join(lines))
    train_text = [t.transcript + "\n" for t in tasks if t.split == "train" and t.uid in samples]
    write_atomic(out / "train_text.txt", "".join(train_text))


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` for a duration in seconds."""
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def shard_tasks(tasks: list[Task], size: int = SHARD_SIZE) -> list[list[Task]]:
    """The tasks cut into fixed runs of ``size`` consecutive ones, whatever the number of jobs."""
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


def run_shard(shard: list[Task]) -> list[tuple[Task, int | None, bool]]:
    """Run one shard's tasks in order, from a fresh festival process.

    Festival's diphone voices now and then end an utterance with a short burst of sound where its closing
    silence should be, and whether they do depends on what the process said before. A pool hands out work
    as workers come free, which made that history, and so a few utterances of each build, depend on timing.
    Restarted at each shard, every festival process hears the same requests in the same order, with any
    ``--jobs`` (a resumed build skips the finished ones, so its shards' histories may differ).
    """
    _WORKER["bank"].close()  # type: ignore[attr-defined]
    return [run_task(task) for task in shard]


def execute(cfg: CorpusConfig, tasks: list[Task]) -> Iterator[tuple[Task, int | None, bool]]:
    """Run the tasks in order, shard by shard, in this process (``jobs == 1``) or a process pool."""
    shards = shard_tasks(tasks)
    if cfg.jobs <= 1:
        init_worker(str(cfg.out))
        for shard in shards:
            yield from run_shard(shard)
        _WORKER["bank"].close()  # type: ignore[attr-defined]
        return
    with ProcessPoolExecutor(cfg.jobs, initializer=init_worker,
                             initargs=(str(cfg.out),)) as pool:
        for results in pool.map(run_shard, shards):
            yield from results


def synthesize_all(cfg: CorpusConfig, tasks: list[Task]) -> dict[str, int]:
    """Make every utterance, flushing manifests and printing progress with an ETA."""
    samples: dict[str, int] = {}
    start, made, failed = time.monotonic(), 0, 0
    for done, (task, count, synthesized) in enumerate(execute(cfg, tasks), start=1):
        made += int(synthesized)
        if count is None:
            failed += 1
        else:
            samples[task.uid] = count
        if done % FLUSH_EVERY == 0:
            write_manifests(cfg.out, tasks, samples)
        if done % PROGRESS_EVERY == 0 or done == len(tasks):
            elapsed = time.monotonic() - start
            per_minute = 60.0 * made / elapsed if elapsed > 0 else 0.0
            eta = (len(tasks) - done) * elapsed / made if made else 0.0
            print(f"[corpus] {done}/{len(tasks)} done, {made} synthesised "
                  f"({per_minute:.0f}/min), {failed} failed, elapsed {format_eta(elapsed)}, "
                  f"ETA {format_eta(eta)}", file=sys.stderr, flush=True)
    write_manifests(cfg.out, tasks, samples)
    return samples


def build(cfg: CorpusConfig) -> dict[str, int]:
    """Build (or resume) the whole corpus; return the finished utterance counts per split."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    sizes = dict(cfg.sizes)
    rng = np.random.default_rng(cfg.seed)
    sentences, source_counts = load_sentences(cfg.text_file, cfg.out / "text_sources")
    pools = partition_sentences(sentences, sizes, rng)
    found = {engine: [] if engine in cfg.without else names for engine, names in list_voices().items()}
    bank = VoiceBank(found, tempfile.mkdtemp(prefix="s2t-corpus-"))
    print(f"[corpus] {len(sentences)} sentences {source_counts}; training voices: "
          f"{[v.label for v in bank.train_voices]}; held out: {bank.held_out.label}",
          file=sys.stderr, flush=True)
    tasks = plan_tasks(pools, sizes, bank, rng)
    build_babble(cfg.out, pools["train_pool"], bank, rng, sizes["train"] // 10)
    bank.close()
    used = min(sizes["train"], len(pools["train_pool"]))
    write_atomic(cfg.out / "extra_text.txt",
                 "".join(t + "\n" for _, t in pools["train_pool"][used:]))
    summary = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
               "sources": source_counts, "sentences": len(sentences),
               "held_out_voice": bank.held_out.label,
               "train_voices": [v.label for v in bank.train_voices]}
    write_atomic(cfg.out / "corpus_config.json", json.dumps(summary, indent=1))
    samples = synthesize_all(cfg, tasks)
    return {s: sum(1 for t in tasks if t.split == s and t.uid in samples) for s in SPLITS}


def parse_args(argv: list[str] | None = None) -> CorpusConfig:
    """Command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=2, help="parallel synthesis processes")
    parser.add_argument("--max-utts", type=int, default=None,
                        help="cap on all utterances (splits scaled down, each at least 1)")
    parser.add_argument("--seed", type=int, default=1)
    for split in DEFAULT_SIZES:
        parser.add_argument(f"--{split.replace('_', '-')}-utts", type=int, default=None,
                            help=f"utterances in {split} (default {DEFAULT_SIZES[split]})")
    parser.add_argument("--text-file", type=Path, default=None,
                        help="use this text (one paragraph a line) instead of the Debian sources")
    parser.add_argument("--without", action="append", default=[], choices=sorted(ENGINE_WEIGHTS),
                        help="leave this engine's voices out although it is installed (repeatable); "
                             "--without pico rebuilds a corpus made before the Pico voices")
    args = parser.parse_args(argv)
    overrides = {s: getattr(args, f"{s}_utts") for s in DEFAULT_SIZES}
    sizes = split_sizes(args.max_utts, overrides)
    return CorpusConfig(out=args.out, jobs=args.jobs, seed=args.seed,
                        sizes=tuple(sizes.items()), text_file=args.text_file,
                        without=tuple(args.without))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m s2t_live.train.corpus``."""
    cfg = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("[corpus] espeak-ng is required (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    try:
        counts = build(cfg)
    except (OSError, S2TError) as error:  # a full disk, a folder that cannot be written
        print(f"[corpus] stopped: {error}; run the same command again to go on from what is written",
              file=sys.stderr)
        return 1
    print(f"[corpus] finished: {counts} in {cfg.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
