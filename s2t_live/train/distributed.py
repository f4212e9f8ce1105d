"""One process or several (``torchrun``): rank and world size, the process group, RNG states, and
whether this CPU has bfloat16 matrix units (for ``amp``).

A checkpoint stores each rank's RNG states (``rng_state``), so that a resumed run draws what the
uninterrupted one would have drawn.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import S2TError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX512-BF16); elsewhere oneDNN
    emulates them, ~30x slower than float32 (README, ``amp``). True where torch has neither probe, so that
    the setting stays as asked."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if not any(probes):
        return True
    return any(bool(probe()) for probe in probes if probe is not None)


def setup_distributed(device: str) -> tuple[DistInfo, torch.device]:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), gloo on CPU and nccl on
    CUDA; a single process needs nothing. Returns this rank and its device."""
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise S2TError(f"device {device} was asked for but no CUDA GPU is available; use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(torch.distributed.get_rank(), torch.distributed.get_world_size()), dev


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def barrier() -> None:
    if distributed():
        torch.distributed.barrier()


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch, CUDA, numpy and Python RNG states, as types ``torch.load(weights_only=True)`` reads."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64)),
             "numpy_pos": int(pos), "numpy_gauss": (int(has_gauss), float(gauss)), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         *state["numpy_gauss"]))
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
