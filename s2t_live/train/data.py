"""Training data: fairseq S2T manifests, on-the-fly features, SpecAugment and length-bucketed batches.

A manifest is a TSV file with a header naming at least ``id``, ``audio``, ``n_frames`` and ``tgt_text``
(``speaker`` and other columns are kept but unused); ``audio`` is a path relative to the manifest's
folder (or to ``audio_root``). Features are computed per utterance exactly as the engine computes them
(``Speech2TextFeatureExtractor``: Kaldi fbank, then utterance CMVN), then masked by SpecAugment.

Everything random here is a pure function of ``(seed, epoch, utterance index)``, so a resumed run needs
only its position (epoch, batch) to see the same batches and the same masks as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..audio import SAMPLE_RATE, load_audio
from ..errors import OutputError, S2TError
from ..export import write_atomic
from ..features import Speech2TextFeatureExtractor
from ..warp import warp_frequency

REQUIRED_COLUMNS = ("id", "audio", "n_frames", "tgt_text")
IGNORE_INDEX = -100  # label value the loss skips (padding)


class ManifestError(S2TError):
    """A manifest that cannot be used: missing file or column, malformed row, missing audio."""


@dataclass(frozen=True)
class Utterance:
    """One manifest row: ``n_frames`` is the number of 10 ms feature frames."""

    id: str
    audio: Path
    n_frames: int
    text: str
    speaker: str = ""


def read_manifest(path: str | Path, audio_root: str | Path | None = None, check_audio: bool = True,
                  limit: int | None = None) -> list[Utterance]:
    """Rows of a fairseq S2T manifest, with ``audio`` resolved against ``audio_root`` (default: the
    manifest's folder). Raises ``ManifestError`` naming the file (and line) for a missing file, a missing
    column, a malformed row or, with ``check_audio``, audio files that do not exist."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc})") from None
    if not lines:
        raise ManifestError(f"{path}: the manifest is empty (it needs a header line)")
    header = lines[0].split("\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                            f"{', '.join(REQUIRED_COLUMNS)} (tab-separated)")
    col = {name: i for i, name in enumerate(header)}
    root = Path(audio_root) if audio_root else path.parent
    rows: list[Utterance] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if limit is not None and len(rows) >= limit:
            break
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ManifestError(f"{path}:{number}: {len(fields)} fields but the header has {len(header)}")
        try:
            n_frames = int(fields[col["n_frames"]])
        except ValueError:
            raise ManifestError(f"{path}:{number}: n_frames {fields[col['n_frames']]!r} is not a number") from None
        speaker = fields[col["speaker"]] if "speaker" in col else ""
        rows.append(Utterance(fields[col["id"]], root / fields[col["audio"]], n_frames, fields[col["tgt_text"]],
                              speaker))
    if not rows:
        raise ManifestError(f"{path}: the manifest has no utterances")
    if check_audio:
        absent = [u for u in rows if not u.audio.is_file()]
        if absent:
            raise ManifestError(f"{path}: {len(absent)} of {len(rows)} audio files are missing, first "
                                f"{absent[0].audio} (utterance {absent[0].id})")
    return rows


def read_texts(path: str | Path) -> list[str]:
    """Non-empty lines of a text file (tokenizer training text)."""
    try:
        return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the text file ({exc})") from None


# ---------------------------------------------------------------------------------------------------
# SpecAugment


@dataclass
class SpecAugmentConfig:
    """Frequency and time masking (Park et al., 2019) on normalised features; no time warping."""

    freq_masks: int = 2  # number of frequency masks
    freq_width: int = 27  # F: widest frequency mask, in mel bins
    time_masks: int = 2  # number of time masks
    time_width: int = 40  # T: widest time mask, in frames
    time_ratio: float = 0.2  # p: a time mask covers at most this fraction of the utterance
    mask_value: float = 0.0  # 0 is the mean after utterance CMVN
    start_step: int = 0  # the first updates see unmasked features (masking slows a model still learning to listen)
    end_step: int = 0  # and from this update count on they are unmasked again, to fit them at the end (0: never)

    @property
    def enabled(self) -> bool:
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0)


@dataclass(frozen=True)
class Mask:
    """``width`` rows (axis 0, time) or columns (axis 1, frequency) from ``start`` are masked."""

    axis: int
    start: int
    width: int


def draw_masks(num_frames: int, num_bins: int, cfg: SpecAugmentConfig, rng: np.random.Generator) -> list[Mask]:
    """Random masks for a (num_frames, num_bins) utterance: widths uniform in [0, F] and in
    [0, min(T, p * num_frames)], starts uniform over the positions where the mask fits."""
    masks = []
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, min(cfg.freq_width, num_bins) + 1))
        masks.append(Mask(1, int(rng.integers(0, num_bins - width + 1)), width))
    time_limit = min(cfg.time_width, int(cfg.time_ratio * num_frames))
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, max(time_limit, 0) + 1))
        masks.append(Mask(0, int(rng.integers(0, num_frames - width + 1)), width))
    return masks


def spec_augment(features: Tensor, cfg: SpecAugmentConfig, rng: np.random.Generator) -> Tensor:
    """A copy of (num_frames, num_bins) ``features`` with the masks of ``draw_masks`` set to ``mask_value``."""
    out = features.clone()
    for mask in draw_masks(out.size(0), out.size(1), cfg, rng):
        if mask.axis == 0:
            out[mask.start:mask.start + mask.width, :] = cfg.mask_value
        else:
            out[:, mask.start:mask.start + mask.width] = cfg.mask_value
    return out


# ---------------------------------------------------------------------------------------------------
# Batching


@dataclass
class Batch:
    """Padded model inputs: features (B, T, 80), attention_mask (B, T), labels (B, L) with -100 padding,
    and, when the dataset has them, phoneme targets (B, P) with -100 padding."""

    input_features: Tensor
    attention_mask: Tensor
    labels: Tensor
    indices: list[int]
    phones: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.input_features.to(device), self.attention_mask.to(device), self.labels.to(device),
                     self.indices, None if self.phones is None else self.phones.to(device))


def bucket_batches(frames: Sequence[int], tokens: Sequence[int], max_frames: int, max_tokens: int,
                   max_batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Group utterance indices into batches of similar length, then shuffle the batches.

    Utterances are sorted by frame count (ties in a per-epoch random order) and filled greedily while the
    padded size stays within ``max_frames`` feature frames, ``max_tokens`` target tokens (0: no limit)
    and ``max_batch_size`` utterances. Depends only on ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(frames))
    order = order[np.argsort(np.asarray(frames)[order], kind="stable")]
    batches: list[list[int]] = []
    current: list[int] = []
    longest = most_tokens = 0
    for index in order.tolist():
        f, t = max(longest, frames[index]), max(most_tokens, tokens[index])
        n = len(current) + 1
        if current and (n * f > max_frames or (max_tokens and n * t > max_tokens) or n > max_batch_size):
            batches.append(current)
            current, f, t = [], frames[index], tokens[index]
        current.append(index)
        longest, most_tokens = f, t
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


def shard(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This rank's batches: every ``world_size``-th from ``rank``, cut so that all ranks get equally many."""
    usable = len(batches) // world_size * world_size
    return batches[rank:usable:world_size]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class SpeechDataset:
    """Utterances with their target ids; builds padded batches with features computed on the fly.

    ``token_ids[i]`` are the tokenizer's ids for utterance ``i`` (text then ``</s>``). SpecAugment, when
    given, draws its masks from a generator seeded by ``(seed, epoch, i)``. With ``cache_features`` the
    features of an utterance are computed once and kept in memory (about 110 KB per second of audio),
    which saves decoding and fbank work from the second epoch on; the values are the same either way.
    ``vtlp`` > 0 warps each utterance's frequency axis by a factor drawn uniformly from
    [1 - vtlp, 1 + vtlp] (seeded by ``(seed, epoch, i)`` too): new vocal tracts for the few voices there are.
    ``pad_frames`` / ``pad_tokens`` round each batch's padded length up to a multiple, so that batch shapes
    repeat: oneDNN's bfloat16 kernels are built per shape. The padding is masked; it changes only the
    longest utterance's last frames a little, as padding changes every shorter one's. ``phone_ids``, when
    given, are each utterance's phoneme ids (``phonemes.py``) from 1 to ``num_phones``, batched as
    ``Batch.phones``. ``feature_dir``, when given, keeps each utterance's features on disk too (float32
    ``.npy``, the same values), so that another run on the same audio, such as a second stage or a resumed
    run, reads them instead of decoding and computing them again; a file is named by a hash of the audio
    file's path, size and modification time and of the extractor's settings, so a rebuilt corpus never
    reads stale features. A cache that cannot be written (a full disk) is given up with a message, and an
    unreadable file is computed again.
    """

    def __init__(self, utterances: list[Utterance], token_ids: list[list[int]],
                 extractor: Speech2TextFeatureExtractor | None = None, specaugment: SpecAugmentConfig | None = None,
                 seed: int = 0, cache_features: bool = False, pad_frames: int = 1, pad_tokens: int = 1,
                 vtlp: float = 0.0, phone_ids: list[list[int]] | None = None, num_phones: int = 0,
                 feature_dir: str | Path | None = None):
        self.utterances, self.token_ids, self.phone_ids = utterances, token_ids, phone_ids
        self.num_phones = num_phones
        self.extractor = extractor or Speech2TextFeatureExtractor()
        self.specaugment = specaugment if specaugment is not None and specaugment.enabled else None
        self.seed = seed
        self._cache: dict[int, Tensor] | None = {} if cache_features else None
        self.pad_frames, self.pad_tokens = max(pad_frames, 1), max(pad_tokens, 1)
        self.vtlp = vtlp
        self.feature_dir = Path(feature_dir) if feature_dir else None
        self._settings = json.dumps(self.extractor.to_dict(), sort_keys=True)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def frames(self) -> list[int]:
        return [u.n_frames for u in self.utterances]

    @property
    def tokens(self) -> list[int]:
        return [len(ids) for ids in self.token_ids]

    def features(self, index: int) -> Tensor:
        """(num_frames, 80) normalised log-mel features of utterance ``index``, as the engine computes them."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self._feature_file(index) if self.feature_dir is not None else None
        out = read_features(path) if path is not None else None
        if out is None:
            wave = load_audio(self.utterances[index].audio)
            out = torch.from_numpy(self.extractor(wave, sampling_rate=SAMPLE_RATE)["input_features"][0])
            if path is not None and not write_features(path, out):
                self.feature_dir = None
        if self._cache is not None:
            self._cache[index] = out
        return out

    def _feature_file(self, index: int) -> Path | None:
        """Where utterance ``index``'s features are kept on disk (None: its audio cannot be looked at)."""
        audio = Path(self.utterances[index].audio)
        try:
            stat = audio.stat()
        except OSError:
            return None  # load_audio says what is wrong with it
        ident = f"{audio.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self._settings}"
        return self.feature_dir / f"{hashlib.sha1(ident.encode()).hexdigest()[:24]}.npy"  # type: ignore[operator]

    def batch(self, indices: list[int], epoch: int = 0, augment: bool = True) -> Batch:
        """Padded inputs and labels of the utterances ``indices`` (VTLP and SpecAugment applied if
        ``augment``)."""
        feats = []
        for index in indices:
            x = self.features(index)
            if augment and self.vtlp > 0:
                rng = np.random.default_rng([self.seed, epoch, index, 1])
                x = warp_frequency(x, float(rng.uniform(1.0 - self.vtlp, 1.0 + self.vtlp)))
            if augment and self.specaugment is not None:
                x = spec_augment(x, self.specaugment, np.random.default_rng([self.seed, epoch, index]))
            feats.append(x)
        length = round_up(max(x.size(0) for x in feats), self.pad_frames)
        features = torch.zeros(len(feats), length, feats[0].size(1))
        mask = torch.zeros(len(feats), length, dtype=torch.long)
        for row, x in enumerate(feats):
            features[row, :x.size(0)] = x
            mask[row, :x.size(0)] = 1
        labels = pad_ids([self.token_ids[i] for i in indices], self.pad_tokens)
        phones = None if self.phone_ids is None else pad_ids([self.phone_ids[i] for i in indices])
        return Batch(features, mask, labels, list(indices), phones)


def read_features(path: Path) -> Tensor | None:
    """Features kept by ``write_features``; None when there are none or the file is unreadable."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.float32 or array.ndim != 2:
        return None
    return torch.from_numpy(array)


def write_features(path: Path, features: Tensor) -> bool:
    """Keep ``features`` at ``path`` (written whole or not at all, ``write_atomic``); False, with a message,
    when the disk refuses (full, read-only): training goes on without the disk cache."""
    buffer = io.BytesIO()
    np.save(buffer, features.numpy(), allow_pickle=False)
    try:
        write_atomic(path, buffer.getvalue(), sync=False)
        return True
    except OutputError as e:
        print(f"warning: {e}; going on without the feature cache", file=sys.stderr)
        return False


def pad_ids(rows: Sequence[Sequence[int]], multiple: int = 1) -> Tensor:
    """(B, W) id sequences padded with IGNORE_INDEX, W the longest rounded up to ``multiple`` (at least 1)."""
    width = round_up(max(max(len(r) for r in rows), 1), multiple)
    out = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for row, ids in enumerate(rows):
        out[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def filter_lengths(utterances: list[Utterance], token_ids: list[list[int]], max_frames: int,
                   max_tokens: int) -> tuple[list[Utterance], list[list[int]], int]:
    """Drop utterances too short to subsample (< 8 frames) or longer than the limits; return the kept
    utterances, their ids, and how many were dropped."""
    keep = [i for i, (u, ids) in enumerate(zip(utterances, token_ids))
            if 8 <= u.n_frames <= max_frames and len(ids) <= max_tokens]
    return [utterances[i] for i in keep], [token_ids[i] for i in keep], len(utterances) - len(keep)
