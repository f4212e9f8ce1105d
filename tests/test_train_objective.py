"""What training minimises: learning-rate schedules, label smoothing, CTC-aligned attention targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2t_live.train.objective import (attention_targets, guided_attention_loss, inverse_sqrt, label_smoothed_loss,
                                     tri_stage)


def test_learning_rate_schedules_warm_up_then_decay_as_configured():
    sqrt = inverse_sqrt(100)
    assert sqrt(0) == pytest.approx(0.01) and sqrt(99) == 1.0 and sqrt(399) == pytest.approx(0.5)
    tri = tri_stage(100, 200, 1000, 0.01)
    assert tri(49) == pytest.approx(0.5) and tri(99) == tri(299) == 1.0
    assert tri(799) == pytest.approx(0.1) and tri(1299) == tri(5000) == pytest.approx(0.01)
    factors = [tri(k) for k in range(300, 1300)]
    assert all(a > b for a, b in zip(factors, factors[1:]))  # decays every update in the last stage


def test_label_smoothed_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 4, -100], [0, 2, 3]])
    eps = 0.1
    loss, nll = label_smoothed_loss(logits, labels, eps)
    want_loss = want_nll = 0.0
    for b in range(2):
        for t in range(3):
            if labels[b, t] < 0:
                continue
            p = torch.exp(logits[b, t]) / torch.exp(logits[b, t]).sum()
            target = torch.full((5,), eps / 5)
            target[labels[b, t]] += 1 - eps
            want_loss += float(-(target * p.log()).sum())
            want_nll += float(-p[labels[b, t]].log())
    assert loss.item() == pytest.approx(want_loss, rel=1e-5) and nll.item() == pytest.approx(want_nll, rel=1e-5)


def test_attention_targets_follow_the_ctc_alignment_or_else_the_diagonal():
    labels = torch.tensor([[5, 6, 7, 2], [5, 5, 2, -100]])  # 2 = </s>
    frames = torch.tensor([12, 2])
    centres, widths = attention_targets(labels, frames)
    assert torch.allclose(centres[0], torch.tensor([1.0, 4.0, 7.0, 10.0])) and widths[0].item() == pytest.approx(2.4)
    # CTC logits that put token 5 on frames 1-2, 6 on frame 5 and 7 on frames 8-9, blank (1) elsewhere.
    logits = torch.zeros(2, 12, 10)
    logits[:, :, 1] = 5.0
    for token, span in ((5, [1, 2]), (6, [5]), (7, [8, 9])):
        logits[0, span, token] = 10.0
    centres, widths = attention_targets(labels, frames, logits, blank=1, eos=2, sigma=2.0)
    assert torch.allclose(centres[0], torch.tensor([1.5, 5.0, 8.5, 10.0])) and widths[0].item() == 2.0
    # Two frames cannot hold a CTC path for "5 5" (it needs a blank between): that utterance keeps the diagonal.
    assert centres[1, 0].item() == pytest.approx(0.5 / 3 * 2 - 0.5) and widths[1].item() == pytest.approx(0.4)


def test_guided_attention_costs_attention_away_from_the_targets():
    # Keys are one-hot frame identities scaled up, so a query attends (almost) only to the frame it names.
    frames, heads = 12, 2
    keys = [torch.eye(frames).repeat(1, heads)[None] * 50.0] * 2  # two layers, (1, S, C) with C = heads * S
    labels = torch.tensor([[5, 6, 7, 2]])
    centres, widths = torch.tensor([[1.0, 4.0, 7.0, 10.0]]), torch.tensor([[1.0]])

    def cost(first: list[int], second: list[int]) -> float:
        queries = [torch.eye(frames)[looks].repeat(1, heads)[None] for looks in (first, second)]
        return guided_attention_loss(queries, keys, torch.tensor([frames]), labels, heads, centres, widths).item() / 4

    # The first layer looks where the previous token was (frame 0 before the first), the second where its own is.
    assert cost([0, 1, 4, 7], [1, 4, 7, 10]) < 0.01
    assert cost([1, 4, 7, 10], [1, 4, 7, 10]) > 0.4
    assert cost([0, 0, 0, 0], [0, 0, 0, 0]) > 0.7
    # One query one frame off its centre costs 1 - exp(-1 / (2 sigma^2)), halved over the two layers.
    looking_at = [torch.eye(frames)[[0]].repeat(1, heads)[None], torch.eye(frames)[[2]].repeat(1, heads)[None]]
    one = guided_attention_loss(looking_at, keys, torch.tensor([frames]), torch.tensor([[5, -100]]), heads,
                                centres[:, :2], widths)
    assert one.item() == pytest.approx((1 - np.exp(-0.5)) / 2, abs=1e-4)
    # Padded frames take no attention: with only 3 valid frames a query naming frame 10 spreads over 0-2
    # (one layer: it looks at its own token).
    padded = guided_attention_loss([torch.eye(frames)[[10]].repeat(1, heads)[None]], keys[:1], torch.tensor([3]),
                                   torch.tensor([[5, -100]]), heads, torch.tensor([[10.0, 0.0]]), widths)
    assert padded.item() > 0.99
