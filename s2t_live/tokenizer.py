"""Speech2Text's sentencepiece tokenizer, in plain Python.

Text becomes pieces by sentencepiece, and pieces become ids through ``vocab.json``, whose
order is fairseq's dictionary rather than sentencepiece's. Special and language tokens are
matched whole before sentencepiece runs. Behaviour follows the reference
``Speech2TextTokenizer`` (transformers v5), quirks included, and folders saved by either
load in the other.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import sentencepiece

from s2t_live.encoding import EncodingMixin
from s2t_live.errors import ModelError, OutputError

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "spm_file": "sentencepiece.bpe.model"}
LANGUAGES = {"mustc": ["pt", "fr", "ru", "nl", "ro", "it", "es", "de"]}
NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "pad_token")  # the reference's order
VERY_LARGE_INTEGER = int(1e30)  # "no length limit", written as the reference writes it


@dataclass
class AddedToken:
    """A token matched whole in the text before sentencepiece runs (specials, language tags)."""

    content: str
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = False
    special: bool = True


def _special_property(name: str, as_id: bool) -> property:
    def get(self: Speech2TextTokenizer) -> str | int | None:
        token = self._named.get(name)
        return self.convert_tokens_to_ids(token) if as_id and token is not None else token

    return property(get, doc=f"The {name.replace('_', ' ')}{' id' if as_id else ''}, or None.")


class Speech2TextTokenizer(EncodingMixin):
    """Sentencepiece tokenizer of the fairseq S2T checkpoints, with the reference's API.

    ``vocab_file`` (``vocab.json``) maps pieces to ids; ``spm_file`` is the sentencepiece
    model. ``do_upper_case`` upper-cases decoded text (LibriSpeech models are trained
    upper-case); ``do_lower_case`` is stored but, as in the reference v5, does not change
    encoding. ``lang_codes="mustc"`` enables the MuST-C ``<lang:xx>`` tokens, and ``tgt_lang``
    picks the one prepended to every encoded sequence. Missing or unreadable files raise
    ``ModelError`` naming the path.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | Path,
        spm_file: str | Path,
        bos_token: Any = "<s>",
        eos_token: Any = "</s>",
        pad_token: Any = "<pad>",
        unk_token: Any = "<unk>",
        do_upper_case: bool = False,
        do_lower_case: bool = False,
        tgt_lang: str | None = None,
        lang_codes: str | None = None,
        additional_special_tokens: Sequence[Any] | None = None,
        sp_model_kwargs: dict[str, Any] | None = None,
        *,
        extra_special_tokens: Sequence[Any] | None = None,
        added_tokens_decoder: dict[Any, Any] | None = None,
        model_max_length: int | None = None,
        clean_up_tokenization_spaces: bool = False,
        padding_side: str = "right",
        truncation_side: str = "right",
        **_ignored: Any,
    ) -> None:
        self.vocab_file, self.spm_file = str(vocab_file), str(spm_file)
        self.sp_model_kwargs = dict(sp_model_kwargs or {})
        self.do_upper_case, self.do_lower_case = do_upper_case, do_lower_case
        self.encoder = load_vocab(Path(vocab_file))
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.sp_model = _load_spm(Path(spm_file), self.sp_model_kwargs)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.padding_side, self.truncation_side = padding_side, truncation_side
        named = dict(zip(NAMED_SPECIALS, (bos_token, eos_token, unk_token, pad_token)))
        self._named = {key: _content(value) for key, value in named.items() if value is not None}
        if self.unk_token not in self.encoder:
            raise ModelError(f"tokenizer vocabulary has no {self.unk_token!r} entry: {vocab_file}")

        extras = list(additional_special_tokens or [])
        self.lang_codes, self.langs, self.lang_tokens = lang_codes, [], []
        self.lang_code_to_id: dict[str, int] = {}
        if lang_codes is not None:
            if lang_codes not in LANGUAGES:
                raise ModelError(f"unknown lang_codes {lang_codes!r} in tokenizer config; known: {list(LANGUAGES)}")
            self.langs = list(LANGUAGES[lang_codes])
            self.lang_tokens = [f"<lang:{lang}>" for lang in self.langs]
            # The reference asks sentencepiece, not vocab.json, for these ids. Real checkpoints
            # agree on both (fairseq builds its dictionary in sentencepiece order).
            self.lang_code_to_id = {lang: self.sp_model.PieceToId(f"<lang:{lang}>") for lang in self.langs}
            extras = self.lang_tokens + extras
        if extra_special_tokens is not None:
            extras = list(extra_special_tokens)
        self._extras = [_content(token) for token in extras]

        self._added = {int(i): _as_added(token) for i, token in (added_tokens_decoder or {}).items()}
        self._added_encoder = {token.content: i for i, token in self._added.items()}
        self._register_special_tokens()
        self._tgt_lang: str | None = None
        self.prefix_tokens: list[int] = []
        if lang_codes is not None:
            self.tgt_lang = tgt_lang if tgt_lang is not None else self.langs[0]

    # ----- vocabulary and special tokens -------------------------------------------------

    def _register_special_tokens(self) -> None:
        """Give every special token an added-token entry: its vocab id, or a new id past the end."""
        vocab = self.get_vocab()
        for token in self.all_special_tokens:
            if token in self._added_encoder:
                continue
            if token not in vocab:
                vocab[token] = len(vocab)
            self._added[vocab[token]] = AddedToken(token)
        self._added_encoder = {t.content: i for i, t in sorted(self._added.items())}
        contents = sorted(self._added_encoder, key=len, reverse=True)
        # Longest alternative first, so the leftmost match is also the longest one.
        self._splitter = re.compile("(" + "|".join(map(re.escape, contents)) + ")") if contents else None

    bos_token = _special_property("bos_token", False)
    eos_token = _special_property("eos_token", False)
    unk_token = _special_property("unk_token", False)
    pad_token = _special_property("pad_token", False)
    bos_token_id = _special_property("bos_token", True)
    eos_token_id = _special_property("eos_token", True)
    unk_token_id = _special_property("unk_token", True)
    pad_token_id = _special_property("pad_token", True)

    @property
    def vocab_size(self) -> int:
        """Size of ``vocab.json`` alone, without tokens added past its end."""
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    def get_vocab(self) -> dict[str, int]:
        """Every token to its id: ``vocab.json`` plus the added tokens."""
        vocab = dict(self.encoder)
        vocab.update(self._added_encoder)
        return vocab

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Added (matched-whole) tokens to their ids, sorted by id."""
        return dict(self._added_encoder)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Ids to added tokens, sorted by id."""
        return dict(sorted(self._added.items()))

    @property
    def additional_special_tokens(self) -> list[str]:
        """The special tokens beyond bos/eos/unk/pad: language tags first, then any extras."""
        return list(self._extras)

    extra_special_tokens = additional_special_tokens

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens, e.g. ``{"bos_token": "<s>", ...}``."""
        return dict(self._named)

    @property
    def all_special_tokens(self) -> list[str]:
        """Named special tokens (bos, eos, unk, pad) then the extras, without duplicates."""
        return list(dict.fromkeys([*self._named.values(), *self._extras]))

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of ``all_special_tokens``, in the same order."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def tgt_lang(self) -> str | None:
        """The target language whose ``<lang:xx>`` id prefixes encoded sequences (multilingual only)."""
        return self._tgt_lang

    @tgt_lang.setter
    def tgt_lang(self, lang: str) -> None:
        if lang not in self.lang_code_to_id:
            known = ", ".join(self.lang_code_to_id) or "none: this model is not multilingual"
            raise ModelError(f"unknown target language {lang!r}; known: {known}")
        self._tgt_lang = lang
        self.prefix_tokens = [self.lang_code_to_id[lang]]

    # ----- text <-> tokens <-> ids ---------------------------------------------------------

    def tokenize(self, text: str, **_ignored: Any) -> list[str]:
        """Split ``text`` into pieces: added tokens whole, the rest by sentencepiece."""
        parts = [part for part in self._splitter.split(text) if part] if self._splitter else [text]
        for i, part in enumerate(parts):
            added = self._added.get(self._added_encoder[part]) if part in self._added_encoder else None
            if added is None:
                continue
            left = parts[i - 1] if i > 0 else None
            right = parts[i + 1] if i < len(parts) - 1 else None
            if added.rstrip and right:
                parts[i + 1] = right.lstrip()
            if added.lstrip and left:
                parts[i - 1] = left.rstrip()
            if added.single_word:
                if left and left[-1] != " ":
                    parts[i - 1], parts[i] = left + part, ""
                elif right and right[0] != " ":
                    parts[i + 1], parts[i] = part + parts[i + 1], ""
        specials = set(self.all_special_tokens)
        tokens: list[str] = []
        for part in parts:
            if part in self._added_encoder or part in specials:
                tokens.append(part)
            elif part:
                tokens.extend(self.sp_model.encode(part, out_type=str))
        return tokens

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Map token(s) to id(s) through the added tokens, then ``vocab.json``; unknown -> unk id."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int:
        if token in self._added_encoder:
            return self._added_encoder[token]
        return self.encoder.get(token, self.encoder[self.unk_token])

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Map id(s) to token(s); unknown ids -> unk token. Skipping applies to sequences only."""
        if isinstance(ids, int):
            return self._id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._id_to_token(int(i)) for i in ids if int(i) not in skip]

    def _id_to_token(self, index: int) -> str:
        if index in self._added:
            return self._added[index].content
        return self.decoder.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join pieces with sentencepiece; special tokens are kept verbatim, each followed by a space."""
        specials = set(self.all_special_tokens)
        pieces: list[str] = []
        text = ""
        for token in tokens:
            if token in specials:
                text += self._decode_pieces(pieces) + token + " "
                pieces = []
            else:
                pieces.append(token)
        return (text + self._decode_pieces(pieces)).strip()

    def _decode_pieces(self, pieces: list[str]) -> str:
        decoded = self.sp_model.decode(pieces)
        return decoded.upper() if self.do_upper_case else decoded

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> str | list[str]:
        """Ids (int, list, numpy, torch) to text; a batch (nested sequence) gives a list of texts."""
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, list) and token_ids and isinstance(token_ids[0], list):
            return [self._decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in token_ids]
        return self._decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)

    def batch_decode(
        self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> list[str]:
        """Decode a batch of id sequences to a list of texts (a single sequence gives one text)."""
        sequences = _to_python(sequences)
        if len(sequences) == 0:
            return []
        result = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces)
        return [result] if isinstance(result, str) else result

    def _decode(self, ids: int | list[int], skip_special_tokens: bool, clean_up: bool | None) -> str:
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string([tokens] if isinstance(tokens, str) else tokens)
        if self.clean_up_tokenization_spaces if clean_up is None else clean_up:
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(before, after)
        return text

    # ----- special-token layout ------------------------------------------------------------

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """Prefix (the target-language id, if any) + ids (+ pair ids) + eos."""
        return self.prefix_tokens + token_ids_0 + (token_ids_1 or []) + [self.eos_token_id]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many ids ``build_inputs_with_special_tokens`` adds."""
        return len(self.prefix_tokens) + 1

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 for special positions, 0 for text, over the built sequence (or over given ids if already built)."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("token_ids_1 must be None when the ids already hold special tokens")
            special = set(self.all_special_ids)
            return [1 if int(i) in special else 0 for i in token_ids_0]
        body = len(token_ids_0) + len(token_ids_1 or [])
        return [1] * len(self.prefix_tokens) + [0] * body + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 over the first built sequence (prefix and eos included), 1 over the pair's ids, as the reference does."""
        first = len(self.build_inputs_with_special_tokens(token_ids_0))
        if token_ids_1 is None:
            return [0] * first
        return [0] * first + [1] * (len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1)) - first)

    # ----- encoding (the rest is EncodingMixin's) ---------------------------------------

    def _ids(self, text: Any) -> list[int]:
        if isinstance(text, str):
            return self.convert_tokens_to_ids(self.tokenize(text))
        if isinstance(text, (list, tuple)) and text and isinstance(text[0], int):
            return list(text)
        if isinstance(text, (list, tuple)) and text and isinstance(text[0], str):
            return self.convert_tokens_to_ids(list(text))
        raise ValueError(f"expected a string, a list of pieces or a list of ids, got {type(text).__name__}")

    # ----- files ---------------------------------------------------------------------------

    def save_vocabulary(self, save_directory: str | Path, filename_prefix: str | None = None) -> tuple[str, str]:
        """Write ``vocab.json`` and a copy of the sentencepiece model; return both paths."""
        folder = Path(save_directory)
        if not folder.is_dir():
            raise OutputError(f"cannot save the tokenizer: {folder} is not a folder")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        vocab_path = folder / (prefix + VOCAB_FILES_NAMES["vocab_file"])
        spm_path = folder / (prefix + VOCAB_FILES_NAMES["spm_file"])
        try:
            vocab_path.write_text(json.dumps(self.encoder, indent=2), encoding="utf-8")
            source = Path(self.spm_file)
            if not source.is_file():
                spm_path.write_bytes(self.sp_model.serialized_model_proto())
            elif source.resolve() != spm_path.resolve():
                shutil.copyfile(source, spm_path)
        except OSError as error:
            raise OutputError(f"cannot write tokenizer files to {folder}: {error.strerror or error}") from error
        return str(vocab_path), str(spm_path)

    def save_pretrained(self, save_directory: str | Path, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write a folder that this class and the reference ``from_pretrained`` both load.

        Files: ``tokenizer_config.json`` (flags, special and added tokens with their ids),
        ``special_tokens_map.json``, ``vocab.json``, ``sentencepiece.bpe.model``, and
        ``added_tokens.json`` when some tokens live past the end of ``vocab.json``.
        """
        folder = Path(save_directory)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config: dict[str, Any] = {
            "added_tokens_decoder": {str(i): asdict(token) for i, token in sorted(self._added.items())},
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "do_lower_case": self.do_lower_case,
            "do_upper_case": self.do_upper_case,
            "lang_codes": self.lang_codes,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "sp_model_kwargs": self.sp_model_kwargs,
            "tgt_lang": self.tgt_lang,
            "tokenizer_class": type(self).__name__,
            "truncation_side": self.truncation_side,
            **self.special_tokens_map,
        }
        special_map: dict[str, Any] = dict(self.special_tokens_map)
        if self._extras:
            # "additional_special_tokens" is read by transformers v4 and v5 alike.
            config["additional_special_tokens"] = special_map["additional_special_tokens"] = list(self._extras)
        past_end = {token: i for token, i in self._added_encoder.items() if i >= self.vocab_size}
        files = {"tokenizer_config.json": config, "special_tokens_map.json": special_map}
        if past_end:
            files["added_tokens.json"] = past_end
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
                (folder / (prefix + name)).write_text(text, encoding="utf-8")
        except OSError as error:
            raise OutputError(f"cannot write tokenizer files to {folder}: {error.strerror or error}") from error
        written = tuple(str(folder / (prefix + name)) for name in files)
        return written + self.save_vocabulary(folder, filename_prefix)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> Speech2TextTokenizer:
        """Load a local folder (``vocab.json``, ``sentencepiece.bpe.model``, optional configs).

        Reads ``tokenizer_config.json`` (``do_upper_case``, ``lang_codes``, ``tgt_lang``,
        ``model_max_length``, special and added tokens...) and, for folders without
        ``added_tokens_decoder``, the legacy ``special_tokens_map.json`` and ``added_tokens.json``.
        ``kwargs`` override the saved settings. Hub ids are resolved by the caller.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelError(f"tokenizer folder not found: {folder}")
        config = _read_json(folder / "tokenizer_config.json", default={})
        if "added_tokens_decoder" not in config:
            config.update(_read_json(folder / "special_tokens_map.json", default={}))
            legacy_added = _read_json(folder / "added_tokens.json", default={})
            if legacy_added:
                specials = {_content(config.get(key)) for key in NAMED_SPECIALS if config.get(key)}
                specials.update(_content(t) for t in config.get("additional_special_tokens") or [])
                config["added_tokens_decoder"] = {
                    i: AddedToken(token, normalized=token not in specials, special=token in specials)
                    for token, i in legacy_added.items()
                }
        for key in ("vocab_file", "spm_file", "tokenizer_file", "name_or_path"):
            config.pop(key, None)  # file paths come from the folder only, never from its config
        config.update(kwargs)
        # As in the reference, saved or passed extras replace (not extend) the language tags.
        if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
            config["extra_special_tokens"] = config.pop("additional_special_tokens")
        if not isinstance(config.get("extra_special_tokens", []), list):
            config.pop("extra_special_tokens")  # a dict of named model-specific tokens: none in S2T
        return cls(folder / VOCAB_FILES_NAMES["vocab_file"], folder / VOCAB_FILES_NAMES["spm_file"], **config)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, lang_codes={self.lang_codes!r}, "
                f"tgt_lang={self.tgt_lang!r}, do_upper_case={self.do_upper_case})")


def _content(token: Any) -> str:
    """The string of a token given as str, ``AddedToken``, or a saved token dict."""
    if isinstance(token, dict):
        return token["content"]
    return token.content if hasattr(token, "content") else str(token)


def _as_added(token: Any) -> AddedToken:
    if isinstance(token, dict):
        names = {field.name for field in fields(AddedToken)}
        return AddedToken(**{key: value for key, value in token.items() if key in names})
    if isinstance(token, str):
        return AddedToken(token)
    return AddedToken(**{field.name: getattr(token, field.name) for field in fields(AddedToken)})


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file() and default is not None:
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"tokenizer file missing: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"tokenizer file is unreadable or not valid JSON: {path} ({error})") from error


def load_vocab(path: Path) -> dict[str, int]:
    """``vocab.json``: piece -> id (``ModelError`` when it is missing or malformed)."""
    vocab = _read_json(path)
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise ModelError(f"tokenizer vocabulary must map tokens to integer ids: {path}")
    return vocab


def _load_spm(path: Path, sp_model_kwargs: dict[str, Any]) -> sentencepiece.SentencePieceProcessor:
    if not path.is_file():
        raise ModelError(f"sentencepiece model missing: {path}")
    model = sentencepiece.SentencePieceProcessor(**sp_model_kwargs)
    try:
        model.Load(str(path))
    except (OSError, RuntimeError) as error:
        raise ModelError(f"sentencepiece model is unreadable or corrupt: {path}") from error
    return model


def _to_python(value: Any) -> Any:
    """Torch tensors, numpy arrays and scalars, and nested sequences to plain Python lists/ints."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_python(item) for item in value]
    return value
