"""Lexicon costs: what a hypothesis pays for spelling words outside the model's word list."""

from __future__ import annotations

import pytest
import torch

from s2t_live import Speech2TextForConditionalGeneration
from s2t_live.errors import ModelError
from s2t_live.lexicon import Lexicon

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁th", "e", "n", "▁cat", "▁ca", "t", "s", "▁x"]
P = 5.0


def ids(*pieces: str) -> list[int]:
    return [0] + [PIECES.index(p) for p in pieces]  # the decoder start token first


def costs(lexicon: Lexicon, *pieces: str) -> dict[str, float]:
    row = lexicon.costs(torch.tensor([ids(*pieces)]), P)[0]
    return {p: float(row[i]) for i, p in enumerate(PIECES)}


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon(["the", "then", "cat", "cats"], PIECES, special={0, 1, 2, 3})


def test_a_word_pays_once_when_it_leaves_the_list(lexicon):
    start = costs(lexicon)
    assert start["▁cat"] == start["▁ca"] == start["</s>"] == 0.0
    assert start["▁x"] == start["e"] == -P  # begins no listed word
    inside = costs(lexicon, "▁th")  # "th": the start of listed words, not one itself
    assert inside["e"] == 0.0 and inside["n"] == -P
    assert inside["</s>"] == inside["▁cat"] == -P  # ending "th" here leaves it unlisted
    assert inside["▁x"] == -2 * P  # ends "th" and starts an unlisted word
    word = costs(lexicon, "▁the")
    assert word["n"] == word["</s>"] == word["▁cat"] == 0.0 and word["s"] == -P
    paid = costs(lexicon, "▁th", "n")  # "thn" has paid: nothing more until the next word
    assert paid["s"] == paid["</s>"] == paid["▁cat"] == 0.0 and paid["▁x"] == -P
    assert costs(lexicon, "▁the", "▁ca")["t"] == 0.0 and costs(lexicon, "▁the", "▁ca", "t")["s"] == 0.0


@pytest.mark.parametrize("pieces, words, word", [((), [], ""), (("▁th",), [], "th"),
                                               (("▁the", "▁ca", "t"), ["the"], "cat"),
                                               (("▁ca", "t", "s", "</s>"), [], ""), (("▁x", "e", "n"), [], "xen")])
def test_the_backward_scan_finds_the_word_that_split_ends_with(lexicon, pieces, words, word):
    seq = ids(*pieces)
    assert lexicon.split(seq) == (words, word) and lexicon.partial_word(seq) == word


def test_prefix_tables_wait_for_the_first_decode_that_uses_them(lexicon):
    assert "prefixes" not in vars(lexicon)  # loading a folder with a lexicon costs nothing at penalty 0
    costs(lexicon, "▁th")
    assert "th" in vars(lexicon)["prefixes"] and "thx" not in lexicon.prefixes


def test_costs_are_per_row(lexicon):
    rows = torch.tensor([ids("▁th", "e"), ids("▁th", "n")])
    out = lexicon.costs(rows, P)
    assert out.shape == (2, len(PIECES))
    assert out[0, PIECES.index("</s>")] == 0.0 and out[1, PIECES.index("</s>")] == 0.0
    assert out[0, PIECES.index("s")] == -P and out[1, PIECES.index("s")] == 0.0


@pytest.fixture
def folder(model_copy):
    return model_copy


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_large_penalty_keeps_decoding_to_listed_words(folder, decode_clip, num_beams):
    plain = decode_clip(folder, num_beams=num_beams)
    assert plain.split(), "the tiny model should say something"
    listed = ["a", "the", "of", "and", "to", "in", "is", "it"]
    assert set(plain.split()) - set(listed), "the test needs an unlisted word in the plain decode"
    (folder / "lexicon.txt").write_text("\n".join(listed) + "\n")
    assert decode_clip(folder, num_beams=num_beams) == plain  # no penalty set: the list is unused
    assert decode_clip(folder, num_beams=num_beams, lexicon_penalty=0.0) == plain
    constrained = decode_clip(folder, num_beams=num_beams, lexicon_penalty=1e4)
    assert constrained != plain and set(constrained.split()) <= set(listed)


def test_the_lexicon_travels_with_the_model_and_a_broken_one_is_refused(folder, tmp_path):
    (folder / "lexicon.txt").write_text("cat\nthe\n")
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert model.lexicon.words == {"cat", "the"}
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "lexicon.txt").read_text() == "cat\nthe\n"
    (folder / "lexicon.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ModelError, match="lexicon.txt"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)
