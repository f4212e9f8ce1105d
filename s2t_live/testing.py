"""Small Speech2Text checkpoints built on this machine, for tests, benchmarks and acceptance checks.

A model with random weights repeats one token whatever it hears, so ``build_checkpoint`` fits each model
briefly on a few (audio, transcript) pairs: its output then depends on the audio, which is what parity
tests of decoding need. Everything is seeded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .audio import load_audio
from .configuration import Speech2TextConfig
from .features import Speech2TextFeatureExtractor
from .generation import GenerationConfig
from .model import Speech2TextForConditionalGeneration
from .tokenizer import Speech2TextTokenizer
from .train.spm import train_tokenizer

SHAPES: dict[str, dict[str, Any]] = {
    # The s2t-small-librispeech-asr architecture.
    "small": dict(encoder_layers=12, decoder_layers=6, d_model=256, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                  encoder_attention_heads=4, decoder_attention_heads=4, conv_channels=1024,
                  num_conv_layers=2, conv_kernel_sizes=[5, 5], vocab_size=10000),
    "tiny": dict(encoder_layers=2, decoder_layers=2, d_model=64, encoder_ffn_dim=128, decoder_ffn_dim=128,
                 encoder_attention_heads=4, decoder_attention_heads=4, conv_channels=96,
                 num_conv_layers=2, conv_kernel_sizes=[5, 5]),
}


@contextmanager
def one_thread():
    """Run torch single-threaded inside the block: small sequential decoding only contends for a shared
    machine's cores when given more threads (tests and benchmarks run beside other work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def read_clips(folder: str | Path, max_seconds: float | None = None) -> list[tuple[str, np.ndarray, str]]:
    """(name, 16 kHz mono audio, transcript) for each row of ``transcripts.tsv`` in ``folder``."""
    folder = Path(folder)
    with open(folder / "transcripts.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    clips = []
    for row in rows:
        wave = load_audio(folder / row["file"])
        if max_seconds is not None:
            wave = wave[: int(max_seconds * 16000)]
        clips.append((row["file"], wave, row["transcript"]))
    return clips


def fit(model: Speech2TextForConditionalGeneration, features: dict[str, torch.Tensor], labels: torch.Tensor,
        steps: int, lr: float) -> float:
    """A few full-batch Adam steps of teacher-forced cross-entropy; returns the last loss."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        opt.zero_grad()
        loss = model(input_features=features["input_features"], attention_mask=features["attention_mask"],
                     labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss.detach())


def build_checkpoint(folder: str | Path, clips: Sequence[tuple[str, np.ndarray, str]], seed: int = 0,
                     shape: str | dict[str, Any] = "tiny", steps: int = 60, lr: float = 3e-3,
                     vocab_size: int = 120, shuffle_vocab: bool = True, generation: dict[str, Any] | None = None,
                     **config: Any) -> Path:
    """Train a tokenizer on the transcripts, build a seeded model of ``shape`` (+ ``config`` overrides),
    fit it for ``steps`` steps on the clips, and save everything in the Hugging Face layout."""
    folder = Path(folder)
    torch.manual_seed(seed)
    texts = [text for _, _, text in clips]
    train_tokenizer(folder, texts * 4, vocab_size, shuffle_seed=seed if shuffle_vocab else None)
    tokenizer = Speech2TextTokenizer.from_pretrained(folder)
    extractor = Speech2TextFeatureExtractor()
    extractor.save_pretrained(folder)
    arch = dict(SHAPES[shape]) if isinstance(shape, str) else dict(shape)
    arch.update(config)
    arch["vocab_size"] = max(arch.get("vocab_size", 0), len(tokenizer.get_vocab()))
    cfg = Speech2TextConfig(**{"dropout": 0.0, "max_source_positions": 3000, "max_target_positions": 256, **arch})
    model = Speech2TextForConditionalGeneration(cfg)
    init_weights(model, cfg.init_std)
    features = extractor([wave for _, wave, _ in clips], sampling_rate=16000, padding=True,
                         return_tensors="pt", return_attention_mask=True)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    if steps:
        fit(model, features, labels, steps, lr)
    model.generation_config = GenerationConfig.from_model_config(cfg)
    for key, value in (generation or {}).items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(folder)
    return folder


def init_weights(model: torch.nn.Module, std: float) -> None:
    """Normal(0, std) linear/conv/embedding weights and zero biases, as the reference initialises them."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            torch.nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a small fitted Speech2Text checkpoint for tests/benchmarks")
    parser.add_argument("out")
    parser.add_argument("--clips", required=True, help="folder with transcripts.tsv and its audio files")
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set activation_function=gelu --set encoder_layers=3")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = eval_literal(value)
    clips = read_clips(args.clips, args.max_seconds)
    print(build_checkpoint(args.out, clips, seed=args.seed, shape=args.shape, steps=args.steps, **overrides))


def eval_literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


if __name__ == "__main__":
    main()
