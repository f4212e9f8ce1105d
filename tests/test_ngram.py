"""Word n-gram LM: Kneser-Ney training, the ARPA format, and shallow fusion in decoding."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

from s2t_live import Speech2TextForConditionalGeneration, Speech2TextProcessor
from s2t_live.errors import ModelError
from s2t_live.lexicon import Lexicon
from s2t_live.ngram import EOS, NGramLM
from s2t_live.train.lm import kneser_ney
from s2t_live.train.lm import main as lm_main

TEXT = [s.split() for s in [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the fish",
    "a dog ate a bone", "the mat is red", "on the log sat a cat", "the fish is red",
]]


def total(lm: NGramLM, context: list[str]) -> float:
    vocab = (lm.vocab - {"<s>"})
    return sum(math.exp(lm.logprob(context, w)) for w in vocab)


@pytest.mark.parametrize("order,min_count,vocab_size", [(1, 1, 0), (2, 1, 0), (3, 1, 0), (3, 2, 0), (3, 2, 5)])
def test_kneser_ney_probabilities_sum_to_one_after_any_context(order, min_count, vocab_size):
    lm = kneser_ney(TEXT, order, min_count, vocab_size)
    for context in (["<s>"], ["<s>", "the"], ["the", "cat"], ["sat", "on"], ["zebra", "the"], ["a", "zebra"]):
        assert total(lm, context) == pytest.approx(1.0, abs=1e-6), context


def test_kneser_ney_prefers_what_the_text_says():
    lm = kneser_ney(TEXT, 3)
    assert lm.logprob(["sat", "on"], "the") > lm.logprob(["sat", "on"], "a")
    assert lm.logprob(["<s>"], "the") > lm.logprob(["<s>"], "mat")
    assert lm.logprob(["the"], "zebra") == lm.logprob(["the"], "<unk>")  # unknown words score <unk>
    assert lm.sentence_logprob("the cat sat on the mat".split()) > lm.sentence_logprob("mat the on sat cat the".split())
    small = kneser_ney(TEXT, 3, min_count=2, vocab_size=5)
    assert small.size() < lm.size() and "fish" not in small and "the" in small


@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_arpa_round_trip_keeps_every_probability(tmp_path, name):
    lm = kneser_ney(TEXT, 3, min_count=2)
    lm.write_arpa(tmp_path / name)
    back = NGramLM.from_folder(tmp_path)
    assert back is not None and back.order == 3 and set(back.probs) == set(lm.probs)
    for context, word in [(["<s>"], "the"), (["the", "cat"], "sat"), (["a", "zebra"], "cat"), (["on"], EOS)]:
        assert back.logprob(context, word) == pytest.approx(lm.logprob(context, word), abs=1e-4)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_compact_form_round_trip_keeps_every_probability(tmp_path, order):
    lm = kneser_ney(TEXT, order)
    lm.write(tmp_path / "lm.npz")
    back = NGramLM.from_folder(tmp_path)
    assert back is not None and back.order == order and back.probs.keys() == lm.probs.keys()
    assert back.size() == lm.size() and len(back) == len(lm)
    for context in (["<s>"], ["the", "cat"], ["sat", "on", "the"], ["zebra"]):
        for word in [*sorted(lm.vocab), "zebra"]:
            assert back.logprob(context, word) == lm.logprob(context, word)


def test_a_folder_prefers_the_compact_lm_to_arpa(tmp_path):
    kneser_ney(TEXT, 2).write(tmp_path / "lm.arpa.gz")
    kneser_ney(TEXT, 3).write(tmp_path / "lm.npz")
    assert NGramLM.from_folder(tmp_path).order == 3


ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-1.0\t<s>\t-0.5
-0.5\tthe\t-0.25
-1.5\tcat
-1.2\t</s>
-2.0\t<unk>

\\2-grams:
-0.1\t<s> the
-0.3\tthe cat

\\end\\
"""


def test_back_off_follows_the_arpa_definition(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    lm = NGramLM.from_folder(tmp_path)
    ln10 = math.log(10)
    assert lm.logprob(["<s>"], "the") == pytest.approx(-0.1 * ln10)  # listed bigram
    assert lm.logprob(["the"], "the") == pytest.approx((-0.25 - 0.5) * ln10)  # back-off(the) + p(the)
    assert lm.logprob(["cat"], "the") == pytest.approx(-0.5 * ln10)  # no back-off listed for "cat": 0
    assert lm.logprob(["the"], "dog") == pytest.approx((-0.25 - 2.0) * ln10)  # unknown: <unk>


def test_an_ngram_whose_prefix_is_unlisted_backs_off_as_arpa_defines(tmp_path):
    # "<s> the cat" is listed but its prefix "<s> the" is not: that context's back-off weight is 1.
    unigrams = ARPA[ARPA.index("\\1-grams:"):ARPA.index("\\2-grams:")]
    (tmp_path / "lm.arpa").write_text("\\data\\\nngram 1=5\nngram 2=1\nngram 3=1\n\n" + unigrams
                                      + "\\2-grams:\n-0.3\tthe cat\n\n\\3-grams:\n-0.05\t<s> the cat\n\n\\end\\\n")
    lm = NGramLM.from_folder(tmp_path)
    ln10 = math.log(10)
    assert lm.order == 3 and len(lm) == 7
    assert lm.logprob(["<s>", "the"], "cat") == pytest.approx(-0.05 * ln10)
    assert lm.logprob(["<s>"], "the") == pytest.approx((-0.5 - 0.5) * ln10)  # back-off(<s>) + p(the)
    assert lm.logprob(["<s>", "the"], "the") == pytest.approx((-0.25 - 0.5) * ln10)  # via "the" alone
    lm.write(tmp_path / "lm.npz")
    assert NGramLM.from_folder(tmp_path).logprob(["<s>", "the"], "cat") == lm.logprob(["<s>", "the"], "cat")


@pytest.mark.parametrize("damage", ["not a zip", "no keys", "unsorted"])
def test_a_broken_compact_lm_is_one_clear_error(tmp_path, damage):
    path = tmp_path / "lm.npz"
    if damage == "not a zip":
        path.write_bytes(b"PK\x03\x04 truncated")
    else:
        kneser_ney(TEXT, 3).write(path)
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files}
        if damage == "no keys":
            del arrays["keys3"]
        else:
            arrays["keys2"] = arrays["keys2"][::-1].copy()
        np.savez(path, **arrays)
    with pytest.raises(ModelError, match="lm.npz"):
        NGramLM.from_folder(tmp_path)


@pytest.mark.parametrize("text,message", [
    ("not an lm at all", "no \\\\data\\\\"),
    (ARPA.replace("ngram 2=2", "ngram 2=3"), "declares 3 2-grams"),
    (ARPA.replace("-0.3\tthe cat", "-0.3\tthe cat dog extra"), "expected a 2-gram"),
])
def test_a_broken_arpa_file_is_one_clear_error(tmp_path, text, message):
    (tmp_path / "lm.arpa").write_text(text)
    with pytest.raises(ModelError, match=message):
        NGramLM.from_folder(tmp_path)
    (tmp_path / "lm.arpa").unlink()
    (tmp_path / "lm.arpa.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(ModelError, match="not a readable ARPA"):
        NGramLM.from_folder(tmp_path)


def test_lm_command_writes_a_model(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in TEXT) + "\n")
    assert lm_main([str(text), "--out", str(tmp_path / "lm.arpa.gz"), "--order", "2"]) == 0
    assert "order 2" in capsys.readouterr().out
    with gzip.open(tmp_path / "lm.arpa.gz", "rt") as f:
        assert "\\2-grams:" in f.read()


# -- shallow fusion ------------------------------------------------------------------------------

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁th", "e", "n", "▁cat", "▁ca", "t", "s", "▁x", "▁sat"]


def fused(lm: NGramLM, words: list[str]) -> Lexicon:
    return Lexicon(words, PIECES, special={0, 1, 2, 3}, lm=lm)


def path_cost(lexicon: Lexicon, pieces: list[str], weight: float, bonus: float, penalty: float = 0.0) -> float:
    """The costs a decoder pays along ``pieces`` and then the end token."""
    ids = [0]
    paid = 0.0
    for piece in [*pieces, "</s>"]:
        row = lexicon.costs(torch.tensor([ids]), penalty, lm_weight=weight, word_bonus=bonus, eos=[2])[0]
        paid += float(row[PIECES.index(piece)])
        ids.append(PIECES.index(piece))
    return paid


def test_fusion_pays_exactly_the_weighted_lm_score_of_the_words():
    lm = kneser_ney(TEXT, 3)
    lexicon = fused(lm, ["the", "then", "cat", "cats", "sat"])
    for pieces, words in [(["▁the", "▁cat", "▁sat"], "the cat sat"), (["▁th", "e", "▁ca", "t", "s"], "the cats"),
                          (["▁cat"], "cat")]:
        expected = 0.3 * lm.sentence_logprob(words.split()) + 0.5 * len(words.split())
        assert path_cost(lexicon, pieces, 0.3, 0.5) == pytest.approx(expected, abs=1e-5), words


def test_a_word_the_lm_lacks_pays_unk_and_its_spelling():
    lm = kneser_ney(TEXT, 2)
    lexicon = fused(lm, ["the", "cat"])
    spell = -math.log(len(PIECES))
    # "thn": spelled out of the words once "n" follows "th"; "x" begins no word at all.
    cost = path_cost(lexicon, ["▁th", "n", "▁x"], 1.0, 0.0)
    expected = (lm.logprob(["<s>"], "<unk>") + spell + lm.logprob(["<s>", "<unk>"], "<unk>") + spell
                + lm.logprob(["<unk>", "<unk>"], EOS))
    assert cost == pytest.approx(expected, abs=1e-5)
    # Gluing words into one unlisted word is no way around the LM: every extra piece pays.
    glued = path_cost(lexicon, ["▁x", "e", "e", "e"], 1.0, 0.0)
    assert glued == pytest.approx(path_cost(lexicon, ["▁x"], 1.0, 0.0) + 3 * spell, abs=1e-5)


def test_no_weight_or_no_lm_leaves_the_lexicon_costs_alone():
    lm = kneser_ney(TEXT, 2)
    with_lm, without = fused(lm, ["the", "cat"]), Lexicon(["the", "cat"], PIECES, special={0, 1, 2, 3})
    rows = torch.tensor([[0, 5, 7], [0, 4, 8]])
    assert torch.equal(with_lm.costs(rows, 2.0, lm_weight=0.0), without.costs(rows, 2.0))
    assert torch.equal(without.costs(rows, 2.0, lm_weight=1.0, eos=[2]), without.costs(rows, 2.0))


@pytest.fixture
def folder(model_copy):
    (model_copy / "lexicon.txt").unlink(missing_ok=True)
    return model_copy


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_folder_lm_steers_decoding_and_weight_zero_is_plain_decoding(folder, decode_clip, num_beams):
    plain = decode_clip(folder, max_new_tokens=30, num_beams=num_beams)
    assert plain.split(), "the tiny model should say something"
    kneser_ney([["the"] * 3] * 20, 2).write_arpa(folder / "lm.arpa.gz")  # an LM that only knows "the"
    assert decode_clip(folder, max_new_tokens=30, num_beams=num_beams, lm_weight=0.0) == plain
    steered = decode_clip(folder, max_new_tokens=30, num_beams=num_beams, lm_weight=5.0, word_bonus=5.0)
    assert steered != plain
    assert steered.split().count("the") > plain.split().count("the")
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    assert model.lexicon is not None and model.lexicon.words == {"the"}  # the LM's words serve as the list
    model.save_pretrained(folder.parent / "copy")
    assert NGramLM.from_folder(folder.parent / "copy").probs.keys() == model.lexicon.lm.probs.keys()


def test_a_broken_folder_lm_is_refused_at_load(folder):
    (folder / "lm.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tthe\n\\end\\\n")
    with pytest.raises(ModelError, match="lm.arpa"):
        Speech2TextForConditionalGeneration.from_pretrained(folder)


def test_streaming_finals_and_the_cli_take_the_lm_options(folder, clips, capsys, tmp_path):
    import soundfile as sf

    from s2t_live.cli import build_parser, main
    from s2t_live.cli_stream import load_recognizer
    from s2t_live.streaming.decoder import SegmentDecoder

    kneser_ney([["the"] * 3] * 20, 2).write_arpa(folder / "lm.arpa.gz")
    model = Speech2TextForConditionalGeneration.from_pretrained(folder)
    processor = Speech2TextProcessor.from_pretrained(folder)
    encoded = SegmentDecoder(model, processor).encode(
        processor(clips[0][1], sampling_rate=16000, return_tensors="pt")["input_features"][0])
    plain = SegmentDecoder(model, processor, lm_weight=0.0).final(encoded, [], offline=False).tokens
    steered = SegmentDecoder(model, processor, lm_weight=5.0, word_bonus=5.0).final(encoded, [], offline=False).tokens
    words = [processor.tokenizer.decode(tokens).split() for tokens in (plain, steered)]
    assert words[1].count("the") > words[0].count("the")

    wav = tmp_path / "clip.wav"
    sf.write(wav, clips[0][1], 16000)
    outs = []
    for extra in ([], ["--lm-weight", "0"], ["--lm-weight", "5", "--word-bonus", "5"]):
        assert main(["transcribe", str(wav), "--model", str(folder), "--no-split", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] != outs[2] and outs[2].split().count("the") > outs[0].split().count("the")
    with pytest.raises(SystemExit):
        main(["transcribe", str(wav), "--model", str(folder), "--lm-weight", "heavy"])
    assert "the LM weight is a number >= 0, not 'heavy'" in capsys.readouterr().err

    args = build_parser().parse_args(["stream", str(wav), "--model", str(folder), "--lm-weight", "0.25",
                                      "--word-bonus", "-1"])  # listen takes the same recognizer options
    recognizer = load_recognizer(args, offline_check=False)
    assert (recognizer.decoder.lm_weight, recognizer.decoder.word_bonus) == (0.25, -1.0)
