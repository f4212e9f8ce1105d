"""Training checkpoints on disk: naming, rotation, averaging, and the final model in the Hugging Face layout.

A checkpoint is ``checkpoints/step_<N>.pt`` holding the model, optimizer and scheduler states, the RNG
states and the data position (see ``trainer.Trainer``); it loads with ``torch.load(weights_only=True)``.
The final model is the element-wise mean of the last checkpoints' weights, which smooths the noise of
the last updates much as a decayed learning rate would.

    python -m s2t_live.train.average OUT_DIR CKPT [CKPT ...] --tokenizer DIR [--float16]
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..configuration import Speech2TextConfig
from ..errors import ModelError, OutputError
from ..export import atomic_open
from ..lexicon import write_words
from ..ngram import LM_FILES
from ..features import Speech2TextFeatureExtractor
from ..generation import GenerationConfig
from ..model import Speech2TextForConditionalGeneration

CHECKPOINT_DIR = "checkpoints"
PATTERN = re.compile(r"step_(\d+)\.pt$")
TOKENIZER_FILES = ("sentencepiece.bpe.model", "vocab.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest (lowest step) first."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := PATTERN.search(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by ``save_checkpoint``; raises ``ModelError`` if it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the checkpoint ({str(exc).splitlines()[0][:160]})") from None


def save_checkpoint(state: dict[str, Any], path: Path, keep_last: int) -> None:
    """Write ``state`` atomically (a stopped run never leaves half a file) and keep only the newest
    ``keep_last`` checkpoints of its folder (0: keep all)."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    if keep_last > 0:
        for old in list_checkpoints(path.parent.parent)[:-keep_last]:
            old.unlink(missing_ok=True)


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (accumulated in float64); other tensors from the last."""
    if not states:
        raise ModelError("no checkpoints to average")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise ModelError("the checkpoints to average hold different parameters")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            total = sum(s[key].double() for s in states)
            out[key] = (total / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A checkpoint's model weights, CTC head included (checkpoints written before the head was part
    of the model kept it apart, under ``ctc``)."""
    state = dict(ckpt["model"])
    for key, value in (ckpt.get("ctc") or {}).items():
        state.setdefault(f"ctc_head.{key}", value)
    return state


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, torch.Tensor]:
    """Mean model weights of the given checkpoint files (loaded one at a time)."""
    return average_state_dicts([model_state(load_checkpoint(p)) for p in paths])


def write_model(folder: str | Path, state: dict[str, torch.Tensor], model_config: Speech2TextConfig,
                tokenizer_dir: str | Path, generation: dict[str, Any] | None = None,
                float16: bool = False, words: Iterable[str] = (), lm: Any = None) -> Path:
    """Write a model folder the engine loads: config.json, generation_config.json, model.safetensors,
    preprocessor_config.json, the tokenizer files copied from ``tokenizer_dir`` and, given ``words``, the
    lexicon (``lexicon.txt``: each distinct word once, sorted) for ``lexicon_penalty`` decoding, and given
    ``lm`` (``s2t_live.ngram.NGramLM``) the word LM ``lm.npz`` for ``lm_weight`` decoding.

    ``float16`` stores the weights in half precision (half the size); ``config.json`` still says
    ``torch_dtype: float32``, so loaders compute in float32 either way. A CTC head in ``state`` is kept
    (``"ctc_head": true``), for joint CTC/attention decoding."""
    folder = Path(folder)
    config = Speech2TextConfig.from_dict(model_config.to_dict())
    if any(key.startswith("ctc_head.") for key in state):
        config.extra["ctc_head"] = True
    config.extra["torch_dtype"] = "float32"
    config.extra.setdefault("architectures", ["Speech2TextForConditionalGeneration"])
    model = Speech2TextForConditionalGeneration(config)
    model.load_state_dict(state)
    if float16:
        model = model.half()
    model.generation_config = GenerationConfig.from_dict({
        "decoder_start_token_id": config.decoder_start_token_id, "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id, **(generation or {})})
    try:
        model.save_pretrained(folder)
        Speech2TextFeatureExtractor().save_pretrained(folder)
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copyfile(Path(tokenizer_dir) / name, folder / name)
        if words:
            write_words(folder, words)
        if lm is not None:
            lm.write_npz(folder / LM_FILES[0])
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the model ({exc.strerror or exc})") from None
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Average training checkpoints into a model folder")
    parser.add_argument("out", help="model folder to write")
    parser.add_argument("checkpoints", nargs="+", help="step_*.pt files written by s2t-live train")
    parser.add_argument("--tokenizer", required=True, help="folder with the run's tokenizer files")
    parser.add_argument("--float16", action="store_true", help="store weights in half precision")
    args = parser.parse_args(argv)
    last = load_checkpoint(args.checkpoints[-1])
    config = Speech2TextConfig.from_dict(last["model_config"])
    generation = last["config"].get("generation", {}) if isinstance(last.get("config"), dict) else {}
    write_model(args.out, average_checkpoints(args.checkpoints), config, args.tokenizer, generation, args.float16)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
