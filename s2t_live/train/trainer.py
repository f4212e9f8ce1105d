"""The training loop of ``recipe.train``: updates, resumable checkpoints, validation and progress.

``Trainer`` owns the model, the optimizer, the schedule and the data position. A checkpoint captures all
of it plus every rank's RNG states, so stopping after any checkpoint and resuming gives the same weights
as an uninterrupted run. With several processes (``torchrun``) each takes every ``world_size``-th batch;
the loss is normalised by the number of target tokens of the whole update across ranks, so N processes
compute the same update as one process accumulating N batches.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..configuration import Speech2TextConfig
from ..errors import S2TError
from ..layers import subsampled_lengths
from ..model import shift_tokens_right
from . import average
from .config import DROPOUT_KEYS  # the [model] settings a resumed run may change
from .data import Batch, SpeechDataset, Utterance, bucket_batches, shard
from .distributed import DistInfo, rng_state, set_rng_state
from .evaluate import evaluate
from .objective import (PHONE_UPSAMPLE, TrainingModule, attention_targets, ctc_loss, guided_attention_loss,
                        label_smoothed_loss, lr_schedule)


@dataclass
class Position:
    """How far training got: updates done, and this rank's epoch and micro-batch index within it."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    elapsed: float = 0.0  # seconds spent training, across resumes


# ---------------------------------------------------------------------------------------------------
# Trainer


def checkpoint_phonemes(ckpt: dict[str, Any]) -> tuple[int, str]:
    """The phoneme head a checkpoint was trained with: its encoder layer (0: none) and phonemizer."""
    config = ckpt.get("config", {})
    return (config.get("optim", {}).get("phoneme_ctc_layer", 0),
            config.get("data", {}).get("phonemizer", "espeak-ng"))


class Trainer:
    """Model, optimizer, schedule and data position of one run; ``run`` trains until a limit is hit."""

    def __init__(self, cfg: Any, model: torch.nn.Module, dataset: SpeechDataset, dist: DistInfo,
                 device: torch.device, processor: Any, dev: list[Utterance]):
        self.cfg, self.dataset, self.dist, self.device = cfg, dataset, dist, device
        self.processor, self.dev = processor, dev
        self.model = model.to(device)
        self.module = TrainingModule(self.model, cfg.optim.ctc_weight > 0, cfg.optim.guided_attention > 0,
                                     cfg.optim.inter_ctc_layer, cfg.optim.phoneme_ctc_layer,
                                     dataset.num_phones).to(device)
        self.net: torch.nn.Module = self.module
        if dist.world_size > 1:
            layerdrop = model.config.encoder_layerdrop > 0 or model.config.decoder_layerdrop > 0
            layerdrop = layerdrop or cfg.optim.ctc_only_steps > 0  # the decoder sits out those updates
            layerdrop = layerdrop or cfg.optim.phoneme_ctc_steps > 0  # and the phoneme head these
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.module, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=layerdrop)
        opt = cfg.optim
        # The fused kernel updates every parameter in one pass (on CPU too): in a profile of the embedded
        # model's update the unfused optimizer step took ~15 % of the time.
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps,
                                          weight_decay=opt.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_schedule(opt))
        self.pos = Position()
        self.saved_step = -1
        self._epoch_cache: tuple[int, list[list[int]]] = (-1, [])

    # ----- data -----------------------------------------------------------------------------------

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches of ``epoch`` (the same on every run with the same seed)."""
        if self._epoch_cache[0] != epoch:
            d = self.cfg.data
            batches = bucket_batches(self.dataset.frames, self.dataset.tokens, d.max_frames, d.max_tokens,
                                     d.max_batch_size, self.cfg.seed, epoch)
            self._epoch_cache = (epoch, shard(batches, self.dist.rank, self.dist.world_size))
        return self._epoch_cache[1]

    def next_update(self) -> list[list[int]] | None:
        """The micro-batches of the next update, moving on to the next epoch when needed; None once
        ``max_epochs`` are done."""
        u = self.cfg.optim.update_freq
        while not (self.cfg.max_epochs and self.pos.epoch >= self.cfg.max_epochs):
            batches = self.epoch_batches(self.pos.epoch)
            if len(batches) < u:
                raise S2TError(f"an epoch has only {len(batches)} batch(es) per process, fewer than one update "
                               f"({u}): lower data.max_frames or optim.update_freq")
            if self.pos.batch + u <= len(batches) // u * u:
                return batches[self.pos.batch:self.pos.batch + u]
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
        return None

    # ----- one update -----------------------------------------------------------------------------

    def forward_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Summed training loss of a batch, teacher-forced: label-smoothed cross-entropy, mixed with CTC at
        ``optim.ctc_weight``, plus the guided-attention cost at ``optim.guided_attention`` (for the first
        ``optim.guided_attention_steps`` updates, when that is set); for the first
        ``optim.ctc_only_steps`` updates the CTC loss alone, and for the first ``optim.detached_decoder_steps``
        the encoder learns from CTC alone while the decoder learns on its detached output. Also its parts,
        summed and detached: ``nll``, ``ctc``, ``inter_ctc``, ``phone_ctc`` and ``align``, those that were
        computed; the phoneme CTC loss is added at ``optim.phoneme_ctc_weight`` (for the first
        ``optim.phoneme_ctc_steps`` updates, when that is set)."""
        config, opt = self.model.config, self.cfg.optim
        frames = subsampled_lengths(batch.attention_mask.sum(-1), config.num_conv_layers)
        ctc_only = self.pos.step < opt.ctc_only_steps  # the encoder learns to listen before the decoder joins
        detach = self.pos.step < opt.detached_decoder_steps
        decoder_input_ids = None if ctc_only else shift_tokens_right(batch.labels, config.pad_token_id,
                                                                     config.decoder_start_token_id)
        steps = opt.phoneme_ctc_steps
        self.module.phones_on = not 0 < steps <= self.pos.step  # no phoneme head work after its updates
        with torch.autocast(self.device.type, dtype=torch.bfloat16) if self.cfg.amp else nullcontext():
            logits, ctc_logits = self.net(batch.input_features, batch.attention_mask, decoder_input_ids, detach)
        if logits is None:
            return self.with_phonemes(*self.mixed_ctc_loss(ctc_logits, frames, batch), frames, batch)
        loss, nll = label_smoothed_loss(logits, batch.labels, opt.label_smoothing)
        parts = {"nll": nll.detach()}
        if ctc_logits is not None:
            ctc, ctc_parts = self.mixed_ctc_loss(ctc_logits, frames, batch)
            loss = (1 - opt.ctc_weight) * loss + opt.ctc_weight * ctc
            parts.update(ctc_parts)
        guided = opt.guided_attention > 0 and (opt.guided_attention_steps <= 0
                                               or self.pos.step < opt.guided_attention_steps)
        if guided:
            centres, widths = attention_targets(batch.labels, frames, ctc_logits, config.pad_token_id,
                                                config.eos_token_id, opt.guided_attention_sigma)
            align = guided_attention_loss(self.module.queries, self.module.keys, frames, batch.labels,
                                          config.decoder_attention_heads, centres, widths)
            loss = loss + opt.guided_attention * align
            parts["align"] = align.detach()
        return self.with_phonemes(loss, parts, frames, batch)

    def with_phonemes(self, loss: Tensor, parts: dict[str, Tensor], frames: Tensor,
                      batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """``loss`` plus ``optim.phoneme_ctc_weight`` times the phoneme CTC loss (part ``phone_ctc``), when
        the phoneme head ran (``forward_loss`` turns it off after ``optim.phoneme_ctc_steps``)."""
        logits = self.module.phone_logits
        if logits is None or batch.phones is None:
            return loss, parts
        phone = ctc_loss(logits, PHONE_UPSAMPLE * frames, batch.phones, blank=0, eos=-1)
        return loss + self.cfg.optim.phoneme_ctc_weight * phone, {**parts, "phone_ctc": phone.detach()}

    def mixed_ctc_loss(self, logits: Tensor, frames: Tensor, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The CTC loss of the encoder output, mixed with that of the intermediate layer when
        ``optim.inter_ctc_layer`` is set; its parts ``ctc`` (the final layer's) and ``inter_ctc``."""
        pad, eos = self.model.config.pad_token_id, self.model.config.eos_token_id
        ctc = ctc_loss(logits, frames, batch.labels, pad, eos)
        parts = {"ctc": ctc.detach()}
        inter = self.module.inter_logits
        if inter is not None:
            inter_ctc = ctc_loss(inter, frames, batch.labels, pad, eos)
            parts["inter_ctc"] = inter_ctc.detach()
            w = self.cfg.optim.inter_ctc_weight
            ctc = (1 - w) * ctc + w * inter_ctc
        return ctc, parts

    def train_step(self, groups: list[list[int]]) -> dict[str, float]:
        """One optimizer update over ``groups`` (micro-batches of utterance indices). Returns the loss and
        its parts per target token, the token count, the gradient norm and the learning rate."""
        spec = self.cfg.specaugment
        masked = spec.start_step <= self.pos.step and (spec.end_step <= 0 or self.pos.step < spec.end_step)
        batches = [self.dataset.batch(g, self.pos.epoch, augment=masked).to(self.device) for g in groups]
        local_tokens = sum(b.num_tokens for b in batches)
        total = torch.tensor([float(local_tokens)], device=self.device)
        if self.dist.world_size > 1:
            torch.distributed.all_reduce(total)
        # DDP averages gradients over ranks, hence the world_size: the result is the per-token mean
        # over every target token of the update.
        scale = self.dist.world_size / float(total)
        sums: dict[str, float] = {}
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            with self.net.no_sync() if self.net is not self.module and not last else nullcontext():
                loss, parts = self.forward_loss(batch)
                (loss * scale).backward()
            for key, value in {"loss": loss.detach(), **parts}.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        clip = self.cfg.optim.clip_norm
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip if clip > 0 else math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.pos.step += 1
        self.pos.batch += len(groups)
        return {**{key: value / local_tokens for key, value in sums.items()}, "tokens": local_tokens,
                "grad_norm": float(norm), "lr": self.optimizer.param_groups[0]["lr"]}

    # ----- checkpoints ----------------------------------------------------------------------------

    def reseed(self, offset: int = 0) -> None:
        """Seed dropout and every other RNG of this rank for a fresh start."""
        seed = self.cfg.seed + 1009 * self.dist.rank + offset
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def save(self) -> None:
        """Write a checkpoint of the current step (rank 0; every rank contributes its RNG states)."""
        rngs = [rng_state(self.device)]
        if self.dist.world_size > 1:
            rngs = [None] * self.dist.world_size
            torch.distributed.all_gather_object(rngs, rng_state(self.device))
        if self.dist.is_main:
            head = self.module.phone_head
            state = {"model": self.model.state_dict(), **({"phone_head": head.state_dict()} if head is not None else {}),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "position": asdict(self.pos), "rng": rngs,
                     "world_size": self.dist.world_size, "config": asdict(self.cfg),
                     "model_config": self.model.config.to_dict()}
            keep = max(self.cfg.keep_last, self.cfg.average_last) if self.cfg.keep_last else 0
            average.save_checkpoint(state, average.checkpoint_path(self.cfg.output_dir, self.pos.step), keep)
        self.saved_step = self.pos.step

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint of this run: weights, optimizer, schedule, position and RNGs."""
        old = Speech2TextConfig.from_dict(ckpt["model_config"])
        names = [f.name for f in fields(Speech2TextConfig) if f.name not in (*DROPOUT_KEYS, "extra")]
        changed = [k for k in names if getattr(old, k) != getattr(self.model.config, k)]
        if changed:
            raise S2TError(f"{path} was trained with another model ({changed[0]}={getattr(old, changed[0])!r}); pass "
                           "--no-resume to start over or choose another output_dir")
        with_ctc = ckpt["config"]["optim"]["ctc_weight"] > 0
        if with_ctc != (self.module.ctc is not None):
            raise S2TError(f"{path} was trained {'with' if with_ctc else 'without'} the CTC loss: keep "
                           "optim.ctc_weight on the same side of 0, or pass --no-resume")
        phone_layer, phonemizer = checkpoint_phonemes(ckpt)
        if phone_layer != self.cfg.optim.phoneme_ctc_layer:
            raise S2TError(f"{path} was trained with optim.phoneme_ctc_layer = {phone_layer}: keep it, or pass "
                           "--no-resume")
        if phone_layer and phonemizer != self.cfg.data.phonemizer:
            raise S2TError(f"{path} learnt the phonemes of data.phonemizer = \"{phonemizer}\": keep it, or pass "
                           "--no-resume")
        self.model.load_state_dict(average.model_state(ckpt))
        if self.module.phone_head is not None:
            self.module.phone_head.load_state_dict(ckpt["phone_head"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.pos = Position(**ckpt["position"])
        self.saved_step = self.pos.step
        if ckpt.get("world_size") == self.dist.world_size:
            set_rng_state(ckpt["rng"][self.dist.rank], self.device)
        else:  # another sharding: the old position means nothing, start the next epoch
            print(f"resuming with {self.dist.world_size} process(es) instead of {ckpt.get('world_size')}: "
                  "continuing from the next epoch", file=sys.stderr)
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
            self.reseed(offset=self.pos.step)

    # ----- loop -----------------------------------------------------------------------------------

    def validate(self) -> float | None:
        """Greedy dev WER of the current weights (None without a dev set), decoded with the CTC weight the
        model will be saved with."""
        if not self.dev:
            return None
        # An untrained model babbles until max_length: stop well past the longest reference instead.
        longest = max(len(self.processor.tokenizer(u.text)["input_ids"]) for u in self.dev)
        limit = min(self.cfg.generation.get("max_length", 200), 2 * longest + 10)
        return evaluate(self.model, self.processor, self.dev, num_beams=1, max_length=limit,
                        ctc_weight=self.cfg.generation.get("ctc_weight")).wer

    def agree(self, *flags: bool) -> list[bool]:
        """Rank 0's values of ``flags`` on every rank (time-based decisions must not differ)."""
        if self.dist.world_size == 1:
            return list(flags)
        values = torch.tensor([float(f) for f in flags], device=self.device)
        torch.distributed.broadcast(values, 0)
        return [bool(v) for v in values.tolist()]

    def run(self, progress: "Progress") -> None:
        """Train until ``max_steps``, ``max_epochs`` or ``max_minutes``; the last step is always saved."""
        cfg = self.cfg
        start, base, last_save = time.monotonic(), self.pos.elapsed, time.monotonic()
        progress.start(self.pos)
        while not (cfg.max_steps and self.pos.step >= cfg.max_steps):
            groups = self.next_update()
            if groups is None:
                break
            stats = self.train_step(groups)
            self.pos.elapsed = base + time.monotonic() - start
            progress.step(self.pos, stats)
            if self.dist.is_main and cfg.valid_every_steps and self.pos.step % cfg.valid_every_steps == 0:
                progress.event(self.pos, dev_wer=self.validate())
            by_time = cfg.save_every_minutes > 0 and time.monotonic() - last_save >= 60 * cfg.save_every_minutes
            out_of_time = cfg.max_minutes > 0 and self.pos.elapsed >= 60 * cfg.max_minutes
            by_time, out_of_time = self.agree(by_time, out_of_time)
            if by_time or (cfg.save_every_steps and self.pos.step % cfg.save_every_steps == 0):
                self.save()
                last_save = time.monotonic()
            if out_of_time:
                progress.event(self.pos, note=f"time budget of {cfg.max_minutes:g} minutes used")
                break
        if self.saved_step != self.pos.step:
            self.save()
        progress.close()


def format_seconds(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


LOSS_PARTS = ("loss", "nll", "ctc", "inter_ctc", "phone_ctc", "align")


class Progress:
    """A status line (step, loss and its parts, lr, speed, ETA), redrawn in place on a terminal and printed
    every ``log_every`` steps otherwise, plus ``log.jsonl`` records. Silent on ranks other than 0."""

    def __init__(self, enabled: bool, cfg: Any, log_path: Path):
        self.enabled, self.cfg, self.log_path = enabled, cfg, log_path
        self.tty = sys.stderr.isatty()
        self.sums: dict[str, tuple[float, int]] = {}  # LOSS_PARTS since the last record: token-weighted sum, tokens
        self.t0, self.step0 = time.monotonic(), 0  # since this process started: for the ETA
        self.window = (self.t0, 0)  # since the last record: the speed shown and logged

    def start(self, pos: Position) -> None:
        self.t0, self.step0 = time.monotonic(), pos.step
        self.window = (self.t0, pos.step)

    def eta(self, pos: Position) -> str:
        per_step = (time.monotonic() - self.t0) / max(pos.step - self.step0, 1)
        left = [(self.cfg.max_steps - pos.step) * per_step] if self.cfg.max_steps else []
        left += [60 * self.cfg.max_minutes - pos.elapsed] if self.cfg.max_minutes else []
        return format_seconds(min(left)) if left else "?"

    def step(self, pos: Position, stats: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key in LOSS_PARTS:
            if key in stats:  # a part may start mid-window (the decoder joining): weigh it by its own tokens
                total, tokens = self.sums.get(key, (0.0, 0))
                self.sums[key] = (total + stats[key] * stats["tokens"], tokens + stats["tokens"])
        now = time.monotonic()
        per_step = (now - self.window[0]) / max(pos.step - self.window[1], 1)  # the recent speed, not the mean
        logged = pos.step % max(self.cfg.log_every, 1) == 0
        means = {key: total / max(tokens, 1) for key, (total, tokens) in self.sums.items()}
        line = (f"step {pos.step}{f'/{self.cfg.max_steps}' if self.cfg.max_steps else ''} epoch {pos.epoch + 1} "
                + "".join(f"{key} {value:.3f} " for key, value in means.items())
                + f"lr {stats['lr']:.2e} {per_step:.2f} s/step elapsed {format_seconds(pos.elapsed)} "
                f"ETA {self.eta(pos)}")
        if self.tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        elif logged:
            print(line, file=sys.stderr, flush=True)
        if logged:
            self.record(step=pos.step, epoch=pos.epoch, **means, lr=stats["lr"], grad_norm=stats["grad_norm"],
                        sec_per_step=per_step, elapsed=pos.elapsed)
            self.sums = {}
            self.window = (now, pos.step)

    def event(self, pos: Position, **values: Any) -> None:
        """Print and record something that happened at ``pos`` (a validation, the end of the budget)."""
        if not self.enabled:
            return
        text = ", ".join(f"dev WER {100 * v:.2f}%" if k == "dev_wer" and v is not None else str(v)
                         for k, v in values.items() if v is not None)
        if text:
            print(f"{chr(10) if self.tty else ''}step {pos.step}: {text}", file=sys.stderr, flush=True)
            self.record(step=pos.step, elapsed=pos.elapsed, **values)

    def record(self, **values: Any) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(values) + "\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
