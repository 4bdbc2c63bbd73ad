"""Settings of the translation recipe; defaults live in ``recipes/translation/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section


@dataclasses.dataclass
class DataConfig:
    source: str = option("bible", "bible (offline: Spanish RV1909 → English KJV from Debian SWORD packages) | tfds")
    tfds_name: str = option("ted_hrlr_translate/pt_to_en", "TFDS translation dataset (source=tfds), as_supervised "
                                                           "pairs (source, target)")
    tfds_data_dir: str = option("", "TFDS data dir (empty: <zoo cache>/tfds)")
    source_words: int = option(8000, "most frequent source words kept whole; other words are spelt as characters")
    target_words: int = option(6000, "most frequent target words kept whole; other words are spelt as characters")
    max_source_tokens: int = option(40, "source tokens per sentence: longer pairs are left out of training, "
                                        "served input is truncated to this many tokens")
    max_target_tokens: int = option(48, "target tokens per sentence: longer pairs are left out of training")
    max_input_bytes: int = option(4096, "bytes of each served string that are read (the rest is ignored)")
    max_batch_size: int = option(256, "largest batch the served signatures accept")
    num_buckets: int = option(6, "length buckets for batching (1 = no bucketing)")

    def __post_init__(self):
        one_of("data.source", self.source, ("bible", "tfds"))
        require(self.source != "tfds" or bool(self.tfds_name), "data.tfds_name", self.tfds_name,
                "must name a TFDS dataset when data.source=tfds")
        require_at_least("data", self, ("source_words", "target_words", "max_source_tokens", "max_target_tokens",
                                        "max_input_bytes", "max_batch_size", "num_buckets"))


@dataclasses.dataclass
class ModelConfig:
    embedding_dim: int = option(128, "token embedding width (source and target)")
    cell: str = option("lstm", "recurrent cell of encoder and decoder: lstm | gru")
    units: int = option(256, "units of the decoder; each encoder direction gets half")
    encoder_layers: int = option(1, "stacked bidirectional encoder layers")
    attention: str = option("luong", "attention score: luong (multiplicative) | bahdanau (additive)")
    attention_units: int = option(128, "hidden width of the bahdanau score")
    dropout: float = option(0.2, "dropout on embeddings, between encoder layers and before the output layer")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru"))
        one_of("model.attention", self.attention, ("luong", "bahdanau"))
        require_at_least("model", self, ("embedding_dim", "units", "encoder_layers", "attention_units"))
        require(self.units % 2 == 0, "model.units", self.units, "must be even (split between encoder directions)")
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


@dataclasses.dataclass
class DecodeConfig:
    beam_width: int = option(4, "beam width used by serving_default and the beam evaluation")
    max_beam_width: int = option(16, "largest beam width the `translate` signature accepts")
    max_length: int = option(64, "target tokens generated at most by serving_default")
    max_length_limit: int = option(256, "largest max_length the `translate` signature accepts")
    length_penalty: float = option(1.0, "alpha of the GNMT length normalisation ((5 + length) / 6) ** alpha; 0 = none")

    def __post_init__(self):
        require(self.beam_width >= 1, "decode.beam_width", self.beam_width, "must be >= 1")
        require(self.max_beam_width >= self.beam_width, "decode.max_beam_width", self.max_beam_width,
                f"must be >= decode.beam_width ({self.beam_width})")
        require(self.max_length >= 1, "decode.max_length", self.max_length, "must be >= 1")
        require(self.max_length_limit >= self.max_length, "decode.max_length_limit", self.max_length_limit,
                f"must be >= decode.max_length ({self.max_length})")
        require(self.length_penalty >= 0, "decode.length_penalty", self.length_penalty, "must be >= 0")


@dataclasses.dataclass
class TranslationConfig:
    data: DataConfig = section(DataConfig, "data source and tokenisation")
    model: ModelConfig = section(ModelConfig, "network")
    decode: DecodeConfig = section(DecodeConfig, "greedy and beam-search decoding")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = TranslationConfig
