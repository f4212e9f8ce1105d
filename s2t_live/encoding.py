"""Text-to-ids batching shared by tokenizers: padding, truncation, special tokens and tensors.

``EncodingMixin`` gives a tokenizer the reference's ``__call__``/``encode`` semantics (padding and
truncation strategies, ``pad_to_multiple_of``, pairs, ``text_target``, ``return_tensors``) on top of a
few methods the tokenizer defines: ``_ids`` (text, pieces or ids -> ids), ``build_inputs_with_special_tokens``,
``create_token_type_ids_from_sequences``, ``get_special_tokens_mask``, ``num_special_tokens_to_add``,
and the attributes ``model_max_length``, ``pad_token``/``pad_token_id``, ``padding_side`` and
``truncation_side``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

LARGE_INTEGER = int(1e20)  # model_max_length above this means "no limit"
_PADDINGS = ("longest", "max_length", "do_not_pad")
_TRUNCATIONS = ("longest_first", "only_first", "only_second", "do_not_truncate")


class BatchEncoding(dict):
    """Encoder output: a dict (``input_ids``, ``attention_mask``, ...) also readable as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> BatchEncoding:
        """Move tensor values to ``device`` (torch only) and return self."""
        for key, value in self.items():
            if hasattr(value, "to"):
                self[key] = value.to(device)
        return self


class EncodingMixin:
    """Batch encoding with the reference tokenizer's padding and truncation (see the module docstring)."""

    def encode(self, text: str | Sequence[Any], text_pair: str | Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """The ids the model reads: ``__call__(text, text_pair, **kwargs)["input_ids"]`` (default: a list)."""
        return self(text, text_pair, **kwargs)["input_ids"]

    def __call__(
        self,
        text: str | Sequence[Any] | None = None,
        text_pair: str | Sequence[Any] | None = None,
        text_target: str | Sequence[Any] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        return_token_type_ids: bool | None = None,
        return_special_tokens_mask: bool = False,
    ) -> BatchEncoding:
        """Encode one text or a batch (list of texts) into ``input_ids`` and ``attention_mask``.

        ``padding``: False, True/"longest" or "max_length"; ``truncation``: True/"longest_first",
        "only_first", "only_second" or False (``max_length`` alone implies truncation);
        ``return_tensors``: None (lists), "pt" or "np" (a single text gets a batch axis of 1).
        ``text_target`` is encoded the same way and returned as ``labels`` (or alone).
        """
        if text is None and text_target is None:
            raise ValueError("pass text or text_target")
        pad, trunc, max_length = self._strategies(padding, truncation, max_length)
        options = dict(add_special_tokens=add_special_tokens, pad=pad, trunc=trunc, max_length=max_length,
                       multiple=pad_to_multiple_of, side=padding_side or self.padding_side,
                       tensors=return_tensors, mask=return_attention_mask is not False,
                       type_ids=bool(return_token_type_ids), special_mask=return_special_tokens_mask)
        encoded = self._encode_batch_or_one(text, text_pair, **options) if text is not None else None
        if text_target is None:
            return encoded
        target = self._encode_batch_or_one(text_target, None, **options)
        if encoded is None:
            return target
        encoded["labels"] = target["input_ids"]
        return encoded

    def _strategies(self, padding: Any, truncation: Any, max_length: int | None) -> tuple[str, str, int | None]:
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        pad = ("longest" if padding else "do_not_pad") if isinstance(padding, bool) else padding
        trunc = "longest_first" if truncation is True else truncation or "do_not_truncate"
        if pad not in _PADDINGS or trunc not in _TRUNCATIONS:
            raise ValueError(f"padding must be one of {_PADDINGS}, truncation one of {_TRUNCATIONS}")
        if max_length is None:
            limit = self.model_max_length if self.model_max_length <= LARGE_INTEGER else None
            if pad == "max_length" and limit is None:
                pad = "do_not_pad"
            if trunc != "do_not_truncate" and limit is None:
                trunc = "do_not_truncate"
            if pad == "max_length" or trunc != "do_not_truncate":
                max_length = limit
        if pad != "do_not_pad" and self.pad_token is None:
            raise ValueError("padding needs a pad token, and this tokenizer has none")
        return pad, trunc, max_length

    def _encode_batch_or_one(self, text: Any, pair: Any, *, tensors: str | None, **options: Any) -> BatchEncoding:
        batched = isinstance(text, (list, tuple)) and (not text or not isinstance(text[0], int))
        if not batched:
            return BatchEncoding(_to_tensors(self._encode_rows([text], [pair], **options)[0], tensors, True))
        if not text:
            raise ValueError("cannot encode an empty batch")
        pairs = list(pair) if pair is not None else [None] * len(text)
        if len(pairs) != len(text):
            raise ValueError("text and text_pair batches differ in length")
        rows = self._encode_rows(list(text), pairs, **options)
        return BatchEncoding(_to_tensors({key: [row[key] for row in rows] for key in rows[0]}, tensors, False))

    def _encode_rows(self, texts: list[Any], pairs: list[Any], *, add_special_tokens: bool, pad: str, trunc: str,
                     max_length: int | None, multiple: int | None, side: str, mask: bool, type_ids: bool,
                     special_mask: bool) -> list[dict[str, list[int]]]:
        rows = []
        for text, pair in zip(texts, pairs):
            ids, pair_ids = self._ids(text), (self._ids(pair) if pair is not None else None)
            extra = self.num_special_tokens_to_add(pair_ids is not None) if add_special_tokens else 0
            excess = len(ids) + len(pair_ids or []) + extra - (max_length or 0)
            if trunc != "do_not_truncate" and max_length and excess > 0:
                ids, pair_ids = self._truncate(ids, pair_ids, excess, trunc)
            if add_special_tokens:
                row = {"input_ids": self.build_inputs_with_special_tokens(ids, pair_ids)}
                types = self.create_token_type_ids_from_sequences(ids, pair_ids)
                specials = self.get_special_tokens_mask(ids, pair_ids)
            else:
                row = {"input_ids": ids + (pair_ids or [])}
                types = specials = [0] * len(row["input_ids"])
            if type_ids:
                row["token_type_ids"] = types
            if special_mask:
                row["special_tokens_mask"] = specials
            rows.append(row)
        target = max(len(row["input_ids"]) for row in rows) if pad == "longest" else max_length
        if target is not None and multiple and target % multiple:
            target = (target // multiple + 1) * multiple
        fills = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}
        for row in rows:
            length = len(row["input_ids"])
            if mask:
                row["attention_mask"] = [1] * length
            missing = target - length if pad != "do_not_pad" and target is not None else 0
            for key in row if missing > 0 else ():
                fill = [fills[key]] * missing
                row[key] = row[key] + fill if side == "right" else fill + row[key]
        return rows

    def _truncate(self, ids: list[int], pair: list[int] | None, excess: int, strategy: str) -> tuple[list, Any]:
        def cut(seq: list[int], n: int) -> list[int]:
            return seq[n:] if self.truncation_side == "left" else seq[: len(seq) - n] if n < len(seq) else []

        if strategy == "only_first" or (strategy == "longest_first" and pair is None):
            return cut(ids, excess), pair
        if strategy == "only_second":
            return ids, (cut(pair, excess) if pair else pair)
        # longest_first on a pair: first even out the lengths, then take from both (the reference's split).
        first = min(abs(len(pair) - len(ids)), excess)
        half, other_half = (excess - first) // 2, excess - first - (excess - first) // 2
        from_ids, from_pair = (first + half, other_half) if len(ids) > len(pair) else (half, first + other_half)
        return cut(ids, from_ids), (cut(pair, from_pair) if pair else None)


def _to_tensors(data: dict[str, list], kind: str | None, batch_axis: bool) -> dict[str, Any]:
    """Lists to int64 tensors ("pt") or arrays ("np"); None keeps the lists."""
    if kind is None:
        return data
    if kind not in ("pt", "np"):
        raise ValueError(f'return_tensors must be "pt", "np" or None, got {kind!r}')
    for key, value in data.items():
        rows = [value] if batch_axis else value
        if len({len(row) for row in rows}) > 1:
            raise ValueError(f"cannot make a tensor of {key}: rows differ in length; pass padding=True")
        if kind == "pt":
            import torch  # only here: decoding and list outputs work without it

            data[key] = torch.tensor(rows, dtype=torch.int64)
        else:
            data[key] = np.asarray(rows, dtype=np.int64)
    return data
