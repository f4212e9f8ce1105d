"""The phoneme targets of the auxiliary phoneme CTC head: espeak-ng's and flite's phones."""

from __future__ import annotations

import shutil

import pytest


def test_espeak_phoneme_output_parses_into_symbols_without_stress():
    from s2t_live.train.phonemes import inventory, parse

    line = "h_'a_r_i@_t k_r_'aI_d 'E_m_@ 'aa_f_t_3_r- a# m_,oU"
    assert parse(line) == ["h", "a", "r", "i@", "t", "k", "r", "aI", "d", "E", "m", "@", "aa", "f", "t", "3", "r-",
                           "a#", "m", "oU"]
    assert inventory([["t", "a"], ["b", "t"]]) == {"a": 1, "b": 2, "t": 3}  # 0 is the blank


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_phonemize_gives_one_phoneme_string_per_sentence_in_order(monkeypatch):
    from s2t_live.train import phonemes

    texts = ["the cat sat", "a dog", "the cat"]
    out = phonemes.phonemize(texts)
    assert len(out) == 3 and out[0][:len(out[2])] == out[2] and out[0] != out[1]
    assert "k" in out[0] and "d" in out[1] and not any("'" in s for p in out for s in p)
    monkeypatch.setattr(phonemes, "CHUNK", 1)  # one espeak-ng call per sentence, several at a time
    assert phonemes.phonemize(texts) == out


def test_flite_phones_lose_stress_and_pauses():
    from s2t_live.train.phonemes import parse_flite

    assert parse_flite("pau sh iy1 ch aa1 r m d hh ih1 m pau \n") == ["sh", "iy", "ch", "aa", "r", "m", "d", "hh",
                                                                   "ih", "m"]


@pytest.mark.skipif(shutil.which("t2p") is None, reason="needs flite's t2p")
def test_flite_phonemize_gives_each_sentence_its_cmu_phones():
    from s2t_live.train.phonemes import flite_phonemize

    assert flite_phonemize(["the cat", "a dog", "the cat"]) == [["dh", "ax", "k", "ae", "t"], ["ax", "d", "ao", "g"],
                                                                 ["dh", "ax", "k", "ae", "t"]]
