"""Speech2TextTokenizer against the reference ``transformers.Speech2TextTokenizer``.

Tiny sentencepiece models (unigram and bpe, vocab ids in sentencepiece order and shuffled,
with and without the MuST-C language tags) are trained once per session; every behaviour
is compared with the reference loaded from the same folder.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece
import torch

from helpers_tokenizer import MUSTC_LANGS, build_tokenizer_files, english_lines
from s2t_live.errors import ModelError
from s2t_live.tokenizer import Speech2TextTokenizer

transformers = pytest.importorskip("transformers")
Reference = transformers.Speech2TextTokenizer

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the dog.",
    "  leading and   trailing spaces  ",
    "UPPER case Words And MiXeD",
    "zebra quixotic xylophone",  # words the model never saw
    "naïve café 中文 🙂 ß",  # characters outside the sentencepiece vocabulary
    "",
    "   ",
    "tab\tand\nnewline",
    "<s> hello </s> world<unk><pad>",
    "speak<lang:de>listen <lang:fr> open",
    "don't stop , ok . what ?",
]

VARIANTS = {
    "unigram": dict(model_type="unigram"),
    "unigram-shuffled": dict(model_type="unigram", shuffle=True, seed=1),
    "bpe": dict(model_type="bpe"),
    "bpe-shuffled": dict(model_type="bpe", shuffle=True, seed=2),
    "mustc": dict(model_type="unigram", lang_codes="mustc"),
    "mustc-shuffled": dict(model_type="bpe", lang_codes="mustc", shuffle=True, seed=3),
}


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    lines = english_lines(400)
    return {name: build_tokenizer_files(root / name, lines, 160, **kw) for name, kw in VARIANTS.items()}


def load_both(folder: Path, **kwargs) -> tuple[Speech2TextTokenizer, object]:
    return Speech2TextTokenizer.from_pretrained(folder, **kwargs), Reference.from_pretrained(str(folder), **kwargs)


def multilingual_kwargs(name: str) -> dict:
    return {"lang_codes": "mustc", "tgt_lang": "de"} if name.startswith("mustc") else {}


def assert_same_encoding(ours, ref, texts) -> None:
    for text in texts:
        assert ours.tokenize(text) == ref.tokenize(text), text
        assert ours.encode(text) == ref.encode(text), text
        assert ours.encode(text, add_special_tokens=False) == ref.encode(text, add_special_tokens=False), text
        assert dict(ours(text)) == dict(ref(text)), text


def assert_same_decoding(ours, ref, texts) -> None:
    for text in texts:
        ids = ref.encode(text)
        for skip in (False, True):
            for clean in (None, True, False):
                kw = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
                assert ours.decode(ids, **kw) == ref.decode(ids, **kw), (text, kw)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_tokens_ids_and_text_match_reference(folders, name):
    ours, ref = load_both(folders[name], **multilingual_kwargs(name))
    assert_same_encoding(ours, ref, TEXTS)
    assert_same_decoding(ours, ref, TEXTS)


@pytest.mark.parametrize("name", ["unigram-shuffled", "bpe"])
@pytest.mark.parametrize(
    "flags", [dict(do_upper_case=True), dict(do_lower_case=True), dict(do_upper_case=True, do_lower_case=True)]
)
def test_case_flags_match_reference(folders, name, flags):
    ours, ref = load_both(folders[name], **flags)
    assert_same_encoding(ours, ref, TEXTS)
    assert_same_decoding(ours, ref, TEXTS)
    if flags.get("do_upper_case"):
        assert ours.decode(ours.encode("hello world"), skip_special_tokens=True) == "HELLO WORLD"


def test_shuffled_vocab_maps_pieces_through_vocab_json(folders):
    folder = folders["unigram-shuffled"]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model"))
    ours, ref = load_both(folder)
    ids = ours.encode("hello world listen", add_special_tokens=False)
    assert ids != sp.encode("hello world listen")
    assert ids == ref.encode("hello world listen", add_special_tokens=False)
    assert ours.convert_ids_to_tokens(ids) == sp.encode("hello world listen", out_type=str)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_vocabulary_and_special_tokens_match_reference(folders, name):
    ours, ref = load_both(folders[name], **multilingual_kwargs(name))
    assert ours.vocab_size == ref.vocab_size and len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.all_special_tokens == ref.all_special_tokens
    assert ours.all_special_ids == ref.all_special_ids
    assert ours.special_tokens_map == ref.special_tokens_map
    for attr in ("bos", "eos", "pad", "unk"):
        assert getattr(ours, f"{attr}_token") == getattr(ref, f"{attr}_token")
        assert getattr(ours, f"{attr}_token_id") == getattr(ref, f"{attr}_token_id")
    every_id = list(range(len(ref) + 3))  # includes ids past the end -> unk
    for skip in (False, True):
        assert ours.convert_ids_to_tokens(every_id, skip) == ref.convert_ids_to_tokens(every_id, skip)
    tokens = ["▁hello", "<s>", "not-a-piece", "<lang:fr>", "</s>"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("nope") == ref.convert_tokens_to_ids("nope") == ref.unk_token_id
    assert ours.convert_ids_to_tokens(2) == ref.convert_ids_to_tokens(2)


@pytest.mark.parametrize("name", ["unigram", "mustc", "mustc-shuffled"])
def test_special_token_layout_matches_reference(folders, name):
    ours, ref = load_both(folders[name], **multilingual_kwargs(name))
    a, b = ref.encode("hello world", add_special_tokens=False), ref.encode("open river", add_special_tokens=False)
    for args in ((a,), (a, b), ([],), ([], [])):
        assert ours.build_inputs_with_special_tokens(*args) == ref.build_inputs_with_special_tokens(*args)
        assert ours.get_special_tokens_mask(*args) == ref.get_special_tokens_mask(*args)
        assert ours.create_token_type_ids_from_sequences(*args) == ref.create_token_type_ids_from_sequences(*args)
    built = ref.build_inputs_with_special_tokens(a)
    assert ours.get_special_tokens_mask(built, already_has_special_tokens=True) == ref.get_special_tokens_mask(
        built, already_has_special_tokens=True
    )
    assert ours.num_special_tokens_to_add() == ref.num_special_tokens_to_add()


@pytest.mark.parametrize("name", ["mustc", "mustc-shuffled"])
def test_target_language_prefix_matches_reference(folders, name):
    for lang in MUSTC_LANGS:
        ours, ref = load_both(folders[name], lang_codes="mustc", tgt_lang=lang)
        assert ours.lang_code_to_id == ref.lang_code_to_id
        assert ours.prefix_tokens == ref.prefix_tokens and ours.tgt_lang == ref.tgt_lang == lang
        assert_same_encoding(ours, ref, TEXTS[:3])
        assert_same_decoding(ours, ref, TEXTS[:3])
    ours, ref = load_both(folders[name], lang_codes="mustc")  # default: the first language
    assert ours.tgt_lang == ref.tgt_lang == "pt"
    ours.tgt_lang, ref.tgt_lang = "it", "it"
    assert ours.encode("hello") == ref.encode("hello")
    assert ours.additional_special_tokens == [f"<lang:{lang}>" for lang in MUSTC_LANGS]


def test_unknown_target_language_is_a_model_error(folders):
    ours = Speech2TextTokenizer.from_pretrained(folders["mustc"], lang_codes="mustc")
    with pytest.raises(ModelError, match="'en'"):
        ours.tgt_lang = "en"
    with pytest.raises(ModelError, match="not multilingual"):
        Speech2TextTokenizer.from_pretrained(folders["unigram"]).tgt_lang = "fr"


def test_decode_accepts_ints_numpy_torch_and_batches(folders):
    ours, ref = load_both(folders["mustc-shuffled"], lang_codes="mustc", tgt_lang="fr")
    batch = ref(TEXTS[:4], padding=True, return_tensors="pt")["input_ids"]
    for skip in (False, True):
        for value in (batch, batch.numpy(), batch.tolist(), batch[0], batch[0].numpy(), [list(batch[1])], 5, 2):
            assert ours.decode(value, skip_special_tokens=skip) == ref.decode(value, skip_special_tokens=skip)
        for value in (batch, batch.numpy(), batch.tolist(), batch[0].tolist(), []):
            assert ours.batch_decode(value, skip_special_tokens=skip) == ref.batch_decode(
                value, skip_special_tokens=skip
            )


CALLS = [
    dict(),
    dict(padding=True),
    dict(padding="longest", pad_to_multiple_of=8),
    dict(padding="max_length", max_length=40),
    dict(max_length=6),
    dict(truncation=True, max_length=5, padding="max_length"),
    dict(padding=True, return_special_tokens_mask=True, return_token_type_ids=True),
    dict(padding=True, padding_side="left"),
    dict(padding=True, return_attention_mask=False),
    dict(add_special_tokens=False, padding=True),
]


@pytest.mark.parametrize("kwargs", CALLS)
@pytest.mark.parametrize("tensors", [None, "pt", "np"])
def test_call_batches_pad_and_truncate_like_reference(folders, kwargs, tensors):
    ours, ref = load_both(folders["mustc-shuffled"], lang_codes="mustc", tgt_lang="es")
    padded = kwargs.get("padding") or tensors is None
    inputs = [TEXTS[:5], TEXTS[1]] if padded else [TEXTS[1], TEXTS[6]]
    for text in inputs:
        assert_same_outputs(ours(text, return_tensors=tensors, **kwargs), ref(text, return_tensors=tensors, **kwargs))


def test_pairs_targets_and_left_truncation_match_reference(folders):
    ours, ref = load_both(folders["mustc"], lang_codes="mustc", tgt_lang="ro", model_max_length=9)
    assert_same_outputs(ours("hello world", "open the river"), ref("hello world", "open the river"))
    for strategy in ("longest_first", "only_first", "only_second"):
        kw = dict(truncation=strategy, max_length=7, return_token_type_ids=True)
        assert_same_outputs(ours("a b c d e", "f g h", **kw), ref("a b c d e", "f g h", **kw))
    kw = dict(text_target=["open the door", "hi"], padding=True, return_tensors="pt")
    assert_same_outputs(ours(["hello world", "listen"], **kw), ref(["hello world", "listen"], **kw))
    assert_same_outputs(ours(text_target="hello"), ref(text_target="hello"))
    assert_same_outputs(ours(TEXTS[1], truncation=True), ref(TEXTS[1], truncation=True))  # model_max_length
    ours.truncation_side = ref.truncation_side = "left"
    assert_same_outputs(ours(TEXTS[1], max_length=5), ref(TEXTS[1], max_length=5))


def assert_same_outputs(ours, ref) -> None:
    assert list(ours.keys()) == list(ref.keys())
    for key in ref:
        mine, theirs = ours[key], ref[key]
        assert type(mine) is type(theirs), key
        if isinstance(theirs, torch.Tensor):
            assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), key
        elif isinstance(theirs, np.ndarray):
            assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), key
        else:
            assert mine == theirs, key


@pytest.mark.parametrize("name", ["unigram-shuffled", "mustc-shuffled"])
def test_save_pretrained_round_trips_both_ways(folders, name, tmp_path):
    kwargs = dict(do_upper_case=True, model_max_length=1024, **multilingual_kwargs(name))
    ours, ref = load_both(folders[name], **kwargs)
    if name.startswith("mustc"):
        ours.tgt_lang = ref.tgt_lang = "nl"
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(str(tmp_path / "ref"))
    assert {"tokenizer_config.json", "special_tokens_map.json", "vocab.json", "sentencepiece.bpe.model"} <= {
        p.name for p in (tmp_path / "ours").iterdir()
    }
    for folder in ("ours", "ref"):
        again_ours, again_ref = load_both(tmp_path / folder)
        for tok in (again_ours, again_ref):
            assert (tok.do_upper_case, tok.model_max_length, tok.tgt_lang) == (
                True, 1024, "nl" if name.startswith("mustc") else None
            )
        assert again_ours.get_vocab() == again_ref.get_vocab() == ref.get_vocab()
        assert again_ours.all_special_ids == again_ref.all_special_ids == ref.all_special_ids
        assert_same_encoding(again_ours, ref, TEXTS)
        assert_same_encoding(again_ref, ref, TEXTS)
        assert_same_decoding(again_ours, ref, TEXTS)


def test_save_vocabulary_writes_vocab_and_spm(folders, tmp_path):
    ours, ref = load_both(folders["bpe-shuffled"])
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    mine = ours.save_vocabulary(tmp_path / "a", filename_prefix="x")
    theirs = ref.save_vocabulary(str(tmp_path / "b"), filename_prefix="x")
    assert [Path(p).name for p in mine] == [Path(p).name for p in theirs]
    for a, b in zip(mine, theirs):
        assert json.loads(Path(a).read_bytes()) == json.loads(Path(b).read_bytes()) if a.endswith("json") else (
            Path(a).read_bytes() == Path(b).read_bytes()
        )


def test_legacy_hub_layout_loads_like_reference(folders, tmp_path):
    """Older hub folders: no added_tokens_decoder, language tags in special_tokens_map.json."""
    folder = build_tokenizer_files(tmp_path, english_lines(400), 160, lang_codes="mustc", model_type="bpe")
    config = {"do_upper_case": True, "do_lower_case": False, "lang_codes": "mustc", "tgt_lang": "fr",
              "model_max_length": 1024, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "pad_token": "<pad>", "special_tokens_map_file": "/old/path.json", "name_or_path": "x",
              "tokenizer_class": "Speech2TextTokenizer"}
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "additional_special_tokens": [f"<lang:{lang}>" for lang in MUSTC_LANGS]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    ours, ref = load_both(folder)
    assert (ours.tgt_lang, ours.do_upper_case, ours.model_max_length) == ("fr", True, 1024)
    assert ours.all_special_ids == ref.all_special_ids
    assert_same_encoding(ours, ref, TEXTS)
    assert_same_decoding(ours, ref, TEXTS)


def test_missing_or_broken_files_are_model_errors_naming_the_path(folders, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Speech2TextTokenizer.from_pretrained(tmp_path / "absent")
    for name, content in (("vocab.json", None), ("sentencepiece.bpe.model", None),
                          ("vocab.json", b"{broken"), ("sentencepiece.bpe.model", b"garbage"),
                          ("vocab.json", b'["a", "b"]'), ("tokenizer_config.json", b"\xff\xfe")):
        folder = tmp_path / f"case-{name}-{content!r}"
        folder.mkdir()
        for file in ("vocab.json", "sentencepiece.bpe.model"):
            (folder / file).write_bytes((folders["unigram"] / file).read_bytes())
        target = folder / name
        target.unlink(missing_ok=True) if content is None else target.write_bytes(content)
        with pytest.raises(ModelError) as error:
            Speech2TextTokenizer.from_pretrained(str(folder))
        assert str(target) in str(error.value) and "\n" not in str(error.value)


def test_tokenizer_module_never_imports_transformers():
    import s2t_live.tokenizer as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in names if name.split(".")[0] == "transformers"]


def test_special_tokens_missing_from_vocab_get_ids_past_the_end(folders, tmp_path):
    """Language tags absent from vocab.json and the spm model: ids appended, spm's unk as prefix."""
    kwargs = dict(lang_codes="mustc", tgt_lang="ru", additional_special_tokens=["<noise>", "<s>"])
    ours, ref = load_both(folders["bpe-shuffled"], **kwargs)
    assert len(ours) == len(ref) > ours.vocab_size
    assert ours.get_vocab() == ref.get_vocab() and ours.all_special_ids == ref.all_special_ids
    assert ours.prefix_tokens == ref.prefix_tokens
    assert_same_encoding(ours, ref, TEXTS + ["<noise> hello <lang:ru>"])
    assert_same_decoding(ours, ref, TEXTS + ["<noise> hello <lang:ru>"])
    files = [str(folders["bpe-shuffled"] / name) for name in ("vocab.json", "sentencepiece.bpe.model")]
    direct_ours, direct_ref = Speech2TextTokenizer(*files, **kwargs), Reference(*files, **kwargs)
    assert direct_ours.all_special_ids == direct_ref.all_special_ids  # here the tags stay special
    assert_same_encoding(direct_ours, direct_ref, ["<noise> hello <lang:ru>"])
    ours.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "added_tokens.json").is_file()
    for again in load_both(tmp_path / "ours"):
        assert again.get_vocab() == ref.get_vocab() and again.all_special_ids == ref.all_special_ids
        assert again.encode("<noise> hi") == ref.encode("<noise> hi")


def test_saved_added_token_flags_strip_like_reference(folders, tmp_path):
    ours = Speech2TextTokenizer.from_pretrained(folders["unigram"])
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    flags = {"</s>": dict(lstrip=True, rstrip=True), "<unk>": dict(single_word=True), "<pad>": dict(rstrip=True)}
    for token in config["added_tokens_decoder"].values():
        token.update(flags.get(token["content"], {}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours, ref = load_both(tmp_path)
    texts = ["hello </s> world", "a<unk>b", "x <unk> y", "<unk>z", "<pad>   open", "<s><unk></s>", " </s> "]
    assert_same_encoding(ours, ref, texts + TEXTS)


def test_sp_model_kwargs_reach_sentencepiece(folders):
    ours, ref = load_both(folders["unigram"], sp_model_kwargs={"reverse": True})
    plain = Speech2TextTokenizer.from_pretrained(folders["unigram"])
    assert ours.tokenize("hello world") != plain.tokenize("hello world")
    assert_same_encoding(ours, ref, TEXTS)


def test_random_strings_encode_and_decode_like_reference(folders):
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghij ABC.,'?!é中🙂\t")
    alphabet += ["<s>", "</s>", "<unk>", "<pad>", "<lang:fr>", "<lang:", "▁", "  "]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(150)]
    for name in ("unigram-shuffled", "mustc-shuffled"):
        ours, ref = load_both(folders[name], **multilingual_kwargs(name))
        assert_same_encoding(ours, ref, texts)
        assert_same_decoding(ours, ref, texts)
        ids = rng.integers(0, len(ref) + 2, size=(20, 12))
        assert ours.batch_decode(ids) == ref.batch_decode(ids)
        assert ours.batch_decode(ids, skip_special_tokens=True) == ref.batch_decode(ids, skip_special_tokens=True)
