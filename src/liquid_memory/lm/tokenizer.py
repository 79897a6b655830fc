"""The LiquidLM tokenizer: byte-level BPE trained with Hugging Face ``tokenizers`` on the training split.

Byte-level means every UTF-8 text encodes (no unknown token); ``<|endoftext|>`` separates documents. The
tokenizer travels inside the checkpoint as its JSON, so a checkpoint alone is enough to chat.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"


class TextCodec:
    """A trained ``tokenizers.Tokenizer`` with the few operations training and chat need."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        eos = tokenizer.token_to_id(EOS)
        if eos is None:
            raise ValueError(f"tokenizer has no {EOS} token")
        self.eos_id = eos

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> TextCodec:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def from_json(cls, text: str) -> TextCodec:
        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def encode_documents(self, texts: Iterable[str]) -> list[int]:
        """One token stream: each document followed by ``<|endoftext|>``."""
        stream: list[int] = []
        for encoding in self.tokenizer.encode_batch(list(texts)):
            stream.extend(encoding.ids)
            stream.append(self.eos_id)
        return stream


class StreamDecoder:
    """Turns tokens into text as they arrive; O(1) amortised per token (a short look-back window only).

    A byte-level token may end inside a multi-byte character: such text is held back until it completes.
    """

    def __init__(self, codec: TextCodec) -> None:
        self.codec = codec
        self.ids: list[int] = []
        self.prefix = 0  # tokens before this are already fully printed
        self.read = 0  # text of ids[prefix:read] has been printed

    def push(self, token: int) -> str:
        self.ids.append(token)
        printed = self.codec.decode(self.ids[self.prefix : self.read])
        current = self.codec.decode(self.ids[self.prefix :])
        if current.endswith("\ufffd") or len(current) <= len(printed):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return current[len(printed) :]
