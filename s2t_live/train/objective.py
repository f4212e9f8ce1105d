"""What stage-1 and stage-2 training minimise, and how fast: the losses and the learning-rate schedules.

Label-smoothed cross-entropy for the decoder, CTC for the encoder (and for a phoneme head on an inner
encoder layer), a guided-attention cost that pulls the decoder's cross-attention towards the CTC forced
alignment, and ``TrainingModule``, which holds the model with those heads so that DDP synchronises all of
them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from ..errors import S2TError
from .data import IGNORE_INDEX


def label_smoothed_loss(logits: Tensor, labels: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """Summed over the labels that are not -100: the cross-entropy against ``(1 - epsilon)`` on the
    target plus ``epsilon`` spread uniformly over the vocabulary, and the plain negative log-likelihood.
    logits: (B, L, V); labels: (B, L)."""
    lprobs = F.log_softmax(logits.float(), dim=-1)
    keep = labels != IGNORE_INDEX
    nll = -lprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.mean(dim=-1)
    loss = (1.0 - epsilon) * nll + epsilon * smooth
    return loss[keep].sum(), nll[keep].sum()


def ctc_loss(ctc_logits: Tensor, frames: Tensor, labels: Tensor, blank: int, eos: int) -> Tensor:
    """Summed CTC loss of (B, S, V) encoder-side logits over ``frames`` (B,) valid encoder frames, against
    the labels without padding and ``</s>``; ``blank`` is an id that never occurs in a transcript."""
    keep = (labels != IGNORE_INDEX) & (labels != eos)
    lprobs = F.log_softmax(ctc_logits.float(), dim=-1).transpose(0, 1)
    return F.ctc_loss(lprobs, labels[keep], frames, keep.sum(-1), blank=blank, reduction="sum", zero_infinity=True)


DIAGONAL_WIDTH = 0.2  # without CTC alignments: the band around the diagonal, as a fraction of the utterance


def attention_targets(labels: Tensor, frames: Tensor, ctc_logits: Tensor | None = None, blank: int = 0,
                      eos: int = -1, sigma: float = 2.0) -> tuple[Tensor, Tensor]:
    """Where each target token should attend: centres (B, L) and widths (B, 1) in encoder frames.

    With ``ctc_logits`` a token's centre is the middle of its span in the CTC forced alignment (Viterbi,
    ``torchaudio.functional.forced_align``) and ``</s>`` looks just past the last token, ``sigma`` frames
    wide. Without them, or where an utterance cannot be aligned, token ``n`` of ``N`` looks at ``n/N`` of
    the way through the ``T`` frames, ``DIAGONAL_WIDTH * T`` wide (Tachibana et al., 2017)."""
    keep = labels != IGNORE_INDEX
    n_tok = keep.sum(-1).clamp(min=1).to(torch.float32)
    length = frames.to(torch.float32).clamp(min=1)
    positions = torch.arange(labels.size(1), dtype=torch.float32, device=labels.device)
    centres = (positions[None] + 0.5) / n_tok[:, None] * length[:, None] - 0.5
    widths = (DIAGONAL_WIDTH * length)[:, None]
    if ctc_logits is None:
        return centres, widths
    lprobs = F.log_softmax(ctc_logits.detach().float(), dim=-1).cpu()
    for row in range(labels.size(0)):
        tokens = labels[row][keep[row] & (labels[row] != eos)].to(torch.int32).cpu()
        t = int(frames[row])
        if len(tokens) == 0 or len(tokens) + int((tokens[1:] == tokens[:-1]).sum()) > t:
            continue  # too short for CTC: the diagonal it is
        path, scores = AF.forced_align(lprobs[row:row + 1, :t], tokens[None], blank=blank)
        spans = AF.merge_tokens(path[0], scores[0].exp(), blank=blank)
        mid = torch.tensor([(span.start + span.end - 1) / 2 for span in spans] + [min(spans[-1].end, t - 1)])
        centres[row, :len(mid)] = mid.to(centres)
        widths[row] = sigma
    return centres, widths


def guided_attention_loss(queries: list[Tensor], keys: list[Tensor], frames: Tensor, labels: Tensor,
                          heads: int, centres: Tensor, widths: Tensor) -> Tensor:
    """Summed over target tokens: the cross-attention mass that falls away from where each position should
    look, averaged over layers and heads. Attending to frame ``t`` costs ``1 - exp(-(t - centre)^2 / (2
    width^2))``: nothing near the centre, up to 1 far from it. The first layer's centre is the previous
    token's (its query holds that token, so it can find it by content; the first position looks at frame
    0), the later layers' the centre of the token they predict: a two-step path to the alignment that the
    decoder otherwise finds only after thousands of updates, having learnt a language model first.
    queries: per layer (B, L, C) projected decoder queries; keys: per layer (B, S, C) projected encoder
    keys; frames: (B,) valid encoder frames; labels: (B, L), IGNORE_INDEX where padded; centres (B, L) and
    widths (B, 1) in frames, from ``attention_targets``."""
    keep = labels != IGNORE_INDEX
    s = keys[0].size(1)
    t = torch.arange(s, dtype=torch.float32, device=labels.device)

    def band(middle: Tensor) -> Tensor:  # (B, L) centres -> (B, 1, L, S) cost of each frame
        return (1.0 - torch.exp(-((t - middle[..., None]) ** 2) / (2 * widths[..., None] ** 2)))[:, None]

    padded = t[None, :] >= frames[:, None]
    previous = torch.cat([torch.zeros_like(centres[:, :1]), centres[:, :-1]], 1)
    total = labels.new_zeros((), dtype=torch.float32)
    for layer, (q, k) in enumerate(zip(queries, keys)):
        b, length, c = q.shape
        q = q.float().view(b, length, heads, c // heads).transpose(1, 2)
        k = k.float().view(b, s, heads, c // heads).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(c // heads)
        probs = scores.masked_fill(padded[:, None, None, :], float("-inf")).softmax(-1)
        cost = band(previous if layer == 0 and len(queries) > 1 else centres)
        penalty = (probs * cost).sum(-1).mean(1)  # (B, L)
        total = total + penalty[keep].sum()
    return total / max(len(queries), 1)


PHONE_UPSAMPLE = 2  # phoneme CTC outputs per encoder frame


class TrainingModule(torch.nn.Module):
    """The model plus, for the auxiliary CTC loss, its CTC head (a projection of the encoder output onto
    the vocabulary, added to the model when it has none; it is saved with the model and used by joint
    CTC/attention decoding). One module, so that DDP synchronises both. With ``probe``, the
    cross-attention queries and keys of every decoder layer are kept from each forward pass (for the
    guided-attention loss) through hooks on their projections, so the model itself is untouched. With
    ``inter_layer`` (1-based), the output of that encoder layer is kept the same way, and ``inter_logits``
    holds the CTC head's reading of it (after the encoder's final layer norm) from the last forward pass.
    With ``phone_layer``, ``phone_logits`` holds a phoneme head's reading of that layer's output (over
    ``num_phones`` phonemes and the blank, 0), ``PHONE_UPSAMPLE`` outputs per encoder frame: English has
    ~12 phonemes a second and the embedded model's encoder 12.5 frames, too few for CTC. The head is the
    module's own, not the model's, so it is not saved with the model."""

    def __init__(self, model: torch.nn.Module, ctc: bool, probe: bool = False, inter_layer: int = 0,
                 phone_layer: int = 0, num_phones: int = 0):
        super().__init__()
        self.model = model
        if ctc and getattr(model, "ctc_head", None) is None:
            model.ctc_head = torch.nn.Linear(model.config.d_model, model.config.vocab_size)
            model.config.extra["ctc_head"] = True
        self.ctc = model.ctc_head if ctc else None
        self.queries: list[Tensor] = []
        self.keys: list[Tensor] = []
        self.inter: list[Tensor] = []
        self.inter_logits: Tensor | None = None
        self.phone_in: list[Tensor] = []
        self.phone_logits: Tensor | None = None
        self.phone_head: torch.nn.Module | None = None
        self.phones_on = True  # the trainer turns the phoneme head off once optim.phoneme_ctc_steps are done
        layers = model.model.encoder.layers
        if inter_layer:
            if not ctc or not 0 < inter_layer < len(layers):
                raise S2TError(f"optim.inter_ctc_layer must be an encoder layer from 1 to {len(layers) - 1} "
                               f"(the model has {len(layers)}), with the CTC loss on")
            layers[inter_layer - 1].register_forward_hook(self.keep(self.inter))
        if phone_layer:
            if not 0 < phone_layer <= len(layers) or num_phones < 1:
                raise S2TError(f"optim.phoneme_ctc_layer must be an encoder layer from 1 to {len(layers)} (the "
                               "model has that many), with phoneme transcripts")
            d = model.config.d_model
            self.num_phones = num_phones
            self.phone_head = torch.nn.Sequential(torch.nn.LayerNorm(d),
                                                  torch.nn.Linear(d, PHONE_UPSAMPLE * (num_phones + 1)))
            layers[phone_layer - 1].register_forward_hook(self.keep(self.phone_in))
        if probe:
            for layer in model.model.decoder.layers:
                layer.encoder_attn.q_proj.register_forward_hook(self.keep(self.queries))
                layer.encoder_attn.k_proj.register_forward_hook(self.keep(self.keys))

    def keep(self, into: list[Tensor]) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: Any, out: Tensor) -> None:
            if self.training:
                into.append(out)
        return hook

    def forward(self, input_features: Tensor, attention_mask: Tensor, decoder_input_ids: Tensor | None,
                detach_decoder: bool = False) -> tuple[Tensor | None, Tensor | None]:
        """Decoder logits (B, L, V) (None without ``decoder_input_ids``: the encoder alone) and, with CTC,
        encoder-side logits (B, S, V). With ``detach_decoder`` the decoder reads a detached copy of the
        encoder output, so its loss trains the decoder alone."""
        self.queries.clear()
        self.keys.clear()
        self.inter.clear()
        self.phone_in.clear()
        encoder = self.model.model.encoder
        encoded = encoder(input_features, attention_mask).last_hidden_state
        self.inter_logits = self.ctc(encoder.layer_norm(self.inter[-1])) if self.inter else None
        self.phone_logits = None
        if self.phone_head is not None and self.phones_on and self.phone_in:
            out = self.phone_head(self.phone_in[-1])  # (B, S, 2 (P + 1)) -> (B, 2 S, P + 1): two per frame
            self.phone_logits = out.reshape(out.size(0), -1, self.num_phones + 1)
        logits = None
        if decoder_input_ids is not None:
            memory = encoded.detach() if detach_decoder else encoded
            logits = self.model(attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                                encoder_outputs=(memory,)).logits
        return logits, self.ctc(encoded) if self.ctc is not None else None


def inverse_sqrt(warmup: int) -> Callable[[int], float]:
    """Learning-rate factor for update ``k + 1``: linear warm-up to 1 over ``warmup`` updates, then
    ``sqrt(warmup / k)``."""
    def factor(done: int) -> float:
        k = done + 1
        return 1.0 / math.sqrt(k) if warmup <= 0 else min(k / warmup, math.sqrt(warmup / k))
    return factor


def tri_stage(warmup: int, hold: int, decay: int, final_scale: float) -> Callable[[int], float]:
    """Learning-rate factor for update ``k + 1``: linear warm-up to 1 over ``warmup`` updates, 1 for the
    next ``hold``, then an exponential decay that reaches ``final_scale`` after ``decay`` more, and stays."""
    def factor(done: int) -> float:
        k = done + 1
        if k <= warmup:
            return k / warmup
        into = k - warmup - hold
        return 1.0 if into <= 0 else final_scale ** min(into / decay, 1.0)
    return factor


SCHEDULES = ("inverse_sqrt", "tri_stage")


def lr_schedule(opt: Any) -> Callable[[int], float]:
    """The factor of ``optim.lr`` for each update, by ``optim.schedule``."""
    if opt.schedule == "tri_stage":
        return tri_stage(opt.warmup_steps, opt.hold_steps, opt.decay_steps, opt.final_lr_scale)
    return inverse_sqrt(opt.warmup_steps)
