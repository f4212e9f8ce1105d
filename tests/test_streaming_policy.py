"""LocalAgreement commits only what consecutive hypotheses agree on, at whole words, and never retracts;
the endpointer cuts segments on trailing silence and keeps no audio while nothing is said."""

from __future__ import annotations

import numpy as np
import pytest

from s2t_live.streaming.endpoint import BLOCK, BlockLevels, EndpointConfig, Endpointer
from s2t_live.streaming.policy import LocalAgreement

# Token ids: even ids start a word ("▁..."), odd ids continue one.
def word_start(token: int) -> bool:
    return token % 2 == 0


def test_local_agreement_commits_only_the_prefix_two_hypotheses_share():
    policy = LocalAgreement(word_start, n=2)
    assert policy.update([10, 12, 14]) == []  # one hypothesis is not an agreement
    assert policy.update([10, 12, 16, 18]) == [10, 12]  # both go on with a new word after 12
    assert policy.update([10, 12, 17, 18]) == []  # 14/16 vs 17: no further agreement
    assert policy.committed == [10, 12]


def test_local_agreement_waits_until_the_next_token_starts_a_word():
    policy = LocalAgreement(word_start, n=2)
    policy.update([10, 12, 13])
    assert policy.update([10, 12, 13]) == [10]  # 12 may still grow: 13 continues it
    assert policy.update([10, 12, 13, 20]) == []  # the older hypothesis ended after 13
    assert policy.update([10, 12, 13, 20, 22]) == [12, 13]
    assert policy.committed == [10, 12, 13]


def test_local_agreement_never_commits_the_last_word_of_a_hypothesis():
    policy = LocalAgreement(word_start, n=2)
    policy.update([10, 12])
    assert policy.update([10, 12]) == [10]  # 12 ends both hypotheses: it may be cut off by the audio edge


def test_hypothesis_contradicting_committed_tokens_commits_nothing():
    policy = LocalAgreement(word_start, n=2)
    policy.update([10, 12, 14])
    policy.update([10, 12, 14])
    assert policy.committed == [10, 12]
    assert policy.update([30, 32, 34]) == []
    assert policy.update([30, 32, 34]) == []
    assert policy.committed == [10, 12]
    assert policy.tentative([10, 12, 14, 16]) == [14, 16]
    assert policy.tentative([30, 32]) == [30, 32]


@pytest.mark.parametrize("n", [2, 3])
def test_committed_tokens_only_grow_across_random_hypotheses(n):
    rng = np.random.default_rng(n)
    policy = LocalAgreement(word_start, n=n)
    truth = [int(t) for t in rng.integers(10, 40, size=60)]
    history: list[list[int]] = []
    for step in range(300):
        if rng.random() < 0.3:  # noise: an unrelated hypothesis
            hyp = [int(t) for t in rng.integers(10, 40, size=int(rng.integers(0, 20)))]
        else:  # the truth so far, with a random tail
            upto = min(len(truth), step // 4 + 1)
            hyp = truth[:upto] + [int(t) for t in rng.integers(10, 40, size=int(rng.integers(0, 3)))]
        before = list(policy.committed)
        new = policy.update(hyp)
        assert policy.committed == before + new
        history.append(hyp)
        if new:  # what was committed appeared, followed by a word start, in the last n hypotheses
            for h in history[-n:]:
                assert h[:len(policy.committed)] == policy.committed
                assert word_start(h[len(policy.committed)])


def levels_of(wave: np.ndarray) -> np.ndarray:
    return BlockLevels().accept(wave)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def test_endpointer_cuts_after_trailing_silence_keeping_a_tail():
    config = EndpointConfig(min_silence=0.5, tail=0.2, preroll=0.3)
    wave = np.concatenate([np.zeros(16000), speechlike(2.0), np.zeros(16000)]).astype(np.float32)
    ep = Endpointer(config)
    cuts = ep.accept(levels_of(wave))
    assert cuts == [300 + 20]  # speech ends at block 300, + 0.2 s tail
    assert not ep.speaking


def test_endpointer_follows_the_present_through_silence():
    ep = Endpointer(EndpointConfig(preroll=0.3))
    for _ in range(50):
        assert ep.accept(levels_of(np.zeros(16000, dtype=np.float32))) == []
    assert ep.now == 5000 and ep.start == 5000 - 30
    assert ep.levels.size <= 30


def test_endpointer_result_does_not_depend_on_how_audio_is_split():
    wave = np.concatenate([speechlike(1.0), np.zeros(12000), speechlike(1.5, 1), np.zeros(16000)]).astype(np.float32)
    whole = Endpointer().accept(levels_of(wave))
    rng = np.random.default_rng(0)
    ep, meter, cuts, i = Endpointer(), BlockLevels(), [], 0
    while i < wave.size:
        n = int(rng.integers(1, 5000))
        cuts += ep.accept(meter.accept(wave[i:i + n]))
        i += n
    assert cuts == whole and len(whole) == 2


def test_forced_cut_reopens_the_segment_after_the_cut():
    ep = Endpointer()
    ep.accept(levels_of(speechlike(0.9)))
    assert ep.speaking
    quiet = ep.quietest(ep.start + 20, ep.now)
    assert ep.start + 20 <= quiet < ep.now
    assert ep.force_cut(quiet) == []
    assert ep.start == quiet and ep.speaking  # the audio after the cut is still speech
    assert ep.levels.size == ep.now - ep.start
    assert quiet * BLOCK % 160 == 0
