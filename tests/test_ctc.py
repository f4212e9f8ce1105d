"""Joint CTC/attention decoding: prefix scores against brute force, and the head's effect on decoding."""

from __future__ import annotations

import itertools
import pytest
import torch

from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor
from s2t_live.ctc import CTCPrefixScorer
from s2t_live.streaming.decoder import SegmentDecoder

BLANK, EOS = 1, 2


def labelling(path: tuple[int, ...]) -> tuple[int, ...]:
    """CTC collapse: merge repeats, then drop blanks."""
    return tuple(s for i, s in enumerate(path) if s != BLANK and (i == 0 or s != path[i - 1]))


def brute_force(log_probs: torch.Tensor, prefix: tuple[int, ...], exact: bool) -> float:
    """log P(labelling starts with / equals ``prefix``), summing over every path of (T, V) ``log_probs``."""
    frames, vocab = log_probs.shape
    paths = list(itertools.product(range(vocab), repeat=frames))
    scores = log_probs[torch.arange(frames), torch.tensor(paths)].sum(-1)
    keep = [(lab == prefix) if exact else (lab[:len(prefix)] == prefix) for lab in map(labelling, paths)]
    return torch.logsumexp(scores[torch.tensor(keep)], dim=0).item()


@pytest.fixture()
def frames():
    torch.manual_seed(3)
    return torch.log_softmax(torch.randn(2, 5, 5) * 2, dim=-1)


def test_prefix_scores_are_the_probability_of_all_alignments(frames):
    lengths = torch.tensor([5, 3])  # the second utterance's last two frames are padding
    scorer = CTCPrefixScorer(frames, lengths, torch.arange(2), BLANK, EOS, weight=0.5)
    tokens = torch.tensor([[0, 3, 4, EOS], [0, 3, 4, EOS]])
    score, _, _ = scorer.extend(tokens)
    for row, n in enumerate(lengths.tolist()):
        for slot, token in enumerate(tokens[row].tolist()):
            want = brute_force(frames[row, :n], (), exact=True) if token == EOS else \
                brute_force(frames[row, :n], (token,), exact=False)
            assert score[row, slot].item() == pytest.approx(want, abs=1e-4)
    # Both rows continue with token 3; then repeated and new labels, and the end after "3".
    scorer.feed(torch.tensor([[3], [3]]))
    score, _, _ = scorer.extend(tokens)
    for row, n in enumerate(lengths.tolist()):
        for slot, token in enumerate(tokens[row].tolist()):
            want = brute_force(frames[row, :n], (3,), exact=True) if token == EOS else \
                brute_force(frames[row, :n], (3, token), exact=False)
            assert score[row, slot].item() == pytest.approx(want, abs=1e-4)


def test_feeding_a_prefix_equals_advancing_through_it(frames):
    fed = CTCPrefixScorer(frames, None, torch.arange(2), BLANK, EOS, weight=0.5)
    fed.feed(torch.tensor([[4, 4], [0, 3]]))
    assert fed.score[0].item() == pytest.approx(brute_force(frames[0], (4, 4), exact=False), abs=1e-4)
    assert fed.score[1].item() == pytest.approx(brute_force(frames[1], (0, 3), exact=False), abs=1e-4)
    end, _, _ = fed.extend(torch.tensor([[EOS], [EOS]]))
    assert end[1, 0].item() == pytest.approx(brute_force(frames[1], (0, 3), exact=True), abs=1e-4)


def test_joint_scores_rule_out_non_candidates_and_forbidden_tokens(frames):
    # confident=0: no CTC token joins the candidates (no log-probability exceeds 0).
    scorer = CTCPrefixScorer(frames, None, torch.arange(2), BLANK, EOS, weight=0.3, candidates=2, confident=0.0)
    att = torch.log_softmax(torch.tensor([[3.0, 0.0, 1.0, 2.0, -1.0], [0.0, 0.0, 0.0, 0.0, 5.0]]), dim=-1)
    att[1, 0] = -float("inf")  # as a processor (e.g. no_repeat_ngram) forbids it
    joint = scorer(torch.zeros(2, 1, dtype=torch.long), att)
    assert (joint[0, [0, 3, EOS]] > -1e9).all() and (joint[0, [1, 4]] < -1e9).all()
    assert joint[1, 0] == -float("inf")
    score, _, _ = scorer.extend(torch.tensor([[0], [4]]))
    assert joint[0, 0].item() == pytest.approx(0.7 * att[0, 0].item() + 0.3 * score[0, 0].item(), abs=1e-5)


def test_tokens_the_ctc_head_is_sure_of_join_the_candidates():
    # Utterance 0's frames say token 4 (posterior ~0.98 on frame 1); utterance 1's never rise above 0.37 for
    # any label. The attention decoder ranks token 4 last in both.
    flat = torch.zeros(2, 3, 5)
    flat[0, 1, 4] = 6.0
    frames = torch.log_softmax(flat, dim=-1)
    att = torch.log_softmax(torch.tensor([[3.0, 0.0, 2.0, 1.0, -4.0]] * 2), dim=-1)
    for padded in (False, True):  # padding frames past an utterance's end are never confident
        lengths = torch.tensor([3, 3 if not padded else 1])
        if padded:
            frames[1, 1:] = frames[0, 1:]
        scorer = CTCPrefixScorer(frames, lengths, torch.tensor([0, 0, 1]), BLANK, EOS, weight=0.3, candidates=1)
        joint = scorer(torch.zeros(3, 1, dtype=torch.long), torch.cat([att, att[:1]]))
        assert (joint[:2, [0, 4, EOS]] > -1e9).all() and (joint[:2, [1, 3]] < -1e9).all()
        assert (joint[2, [0, EOS]] > -1e9).all() and (joint[2, [1, 3, 4]] < -1e9).all()
        # A chosen confident token goes on like any other: its prefix score is the one extend gives.
        want, _, _ = scorer.extend(torch.tensor([[4], [4], [4]]))
        scorer.advance(torch.tensor([0]), torch.tensor([4]))
        assert scorer.score[0].item() == pytest.approx(want[0, 0].item(), abs=1e-9)


def test_only_tokens_the_head_is_sure_of_just_ahead_of_a_hypothesis_join():
    """Token 3 is said on frames 0-1, token 4 on frame 30, after a pause of 28 blank frames (longer than
    NEAR): the empty prefix looks ahead from frame 0 and sees 3, not 4; once "3" is its prefix, the next
    label most likely starts at frame 30, so 4 joins (a pause does not hide the next word) and 3 does not."""
    from s2t_live.ctc import NEAR

    assert NEAR < 28
    logits = torch.zeros(1, 34, 5)
    logits[0, :, BLANK] = 8.0
    logits[0, 0:2, 3] = 12.0
    logits[0, 30, 4] = 12.0
    frames = torch.log_softmax(logits, dim=-1)
    scorer = CTCPrefixScorer(frames, None, torch.arange(1), BLANK, EOS, weight=0.3, candidates=1)
    att = torch.log_softmax(torch.tensor([[3.0, 0.0, 2.0, 1.0, -4.0]]), dim=-1)  # attention: token 0 first
    joint = scorer(torch.zeros(1, 1, dtype=torch.long), att)
    assert (joint[0, [0, 3, EOS]] > -1e9).all() and (joint[0, [1, 4]] < -1e9).all()
    scorer.advance(torch.tensor([0]), torch.tensor([3]))
    joint = scorer(torch.zeros(1, 2, dtype=torch.long), att)
    assert (joint[0, [0, 4, EOS]] > -1e9).all() and (joint[0, [1, 3]] < -1e9).all()


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return Speech2TextForConditionalGeneration.from_pretrained(tiny_model), Speech2TextProcessor.from_pretrained(tiny_model)


def with_head(model: Speech2TextForConditionalGeneration, favoured: int) -> Speech2TextForConditionalGeneration:
    """The model with a CTC head that says ``favoured`` on every frame, whatever the audio."""
    head = torch.nn.Linear(model.config.d_model, model.config.vocab_size)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    head.bias.data[favoured] = 30.0
    model.ctc_head = head
    return model


def features(processor, clips):
    return processor(clips[0][1], sampling_rate=16000, return_tensors="pt")["input_features"]


def test_no_weight_or_no_head_decodes_as_before(loaded, clips):
    model, processor = loaded
    x = features(processor, clips)
    plain = [model.generate(x, num_beams=k, max_new_tokens=30).tolist() for k in (1, 3)]
    assert [model.generate(x, num_beams=k, max_new_tokens=30, ctc_weight=0.5).tolist() for k in (1, 3)] == plain
    try:
        with_head(model, BLANK)
        assert [model.generate(x, num_beams=k, max_new_tokens=30, ctc_weight=0.0).tolist() for k in (1, 3)] == plain
    finally:
        model.ctc_head = None


def test_a_confident_ctc_head_decides(loaded, clips):
    model, processor = loaded
    x = features(processor, clips)
    start = model.config.decoder_start_token_id
    first = model.generate(x, max_new_tokens=30)[0, 1].item()
    att = torch.log_softmax(model(input_features=x, decoder_input_ids=torch.tensor([[start]])).logits[0, -1], -1)
    # A word piece the attention decoder ranks fifth or lower (never a special token: where the float
    # arithmetic of a CPU puts </s> fifth, the head that hears it would only end the decode).
    specials = {start, *processor.tokenizer.all_special_ids}
    other = next(int(t) for t in torch.topk(att, 12)[1][4:] if int(t) not in specials)
    assert other != first
    try:
        with_head(model, BLANK)  # CTC hears nothing: the joint decode ends at once
        for k in (1, 3):
            assert model.generate(x, num_beams=k, max_new_tokens=30, ctc_weight=0.9).tolist() == [[start, EOS]]
        with_head(model, other)  # CTC hears one token (every frame says it, repeats merge)
        for k in (1, 3):
            assert model.generate(x, num_beams=k, max_new_tokens=30, ctc_weight=0.9).tolist() == [[start, other, EOS]]
        # Streaming: greedy with a draft, and after committed tokens the scorer starts from them.
        model.generation_config.ctc_weight = 0.9
        decoder = SegmentDecoder(model, processor, num_beams=1)
        encoded = decoder.encode(x[0])
        result = decoder.final(encoded, [], offline=True, draft=[first, first])
        assert result.tokens == [other] and result.offline_tokens == [other]
        assert SegmentDecoder(model, processor, num_beams=3).final(encoded, [], offline=False).tokens == [other]
        # The stream's own weight (listen/stream --ctc-weight) overrides the checkpoint's.
        unweighted = SegmentDecoder(model, processor, num_beams=1, ctc_weight=0.0).final(encoded, [], offline=False)
        assert unweighted.tokens[:1] == [first]
    finally:
        model.ctc_head = None
        model.generation_config.ctc_weight = None
