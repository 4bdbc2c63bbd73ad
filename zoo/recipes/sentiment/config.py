"""Settings of the sentiment recipe; defaults live in ``recipes/sentiment/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

VADER_DOMAINS = ("movie", "amazon", "nyt", "tweets")


@dataclasses.dataclass
class DataConfig:
    source: str = option("vader", "vader (offline, human-rated snippets from the vaderSentiment sdist) | imdb_reviews (TFDS)")
    train_domains: list[str] = option(list(VADER_DOMAINS), "VADER domains to train on (test always reports each)")
    vocab_size: int = option(20000, "words learnt from the training text (incl. padding and OOV); lexicon words are added on top")
    max_tokens: int = option(128, "tokens kept per text (longer texts are truncated, in training and serving)")
    max_input_bytes: int = option(65536, "bytes of each served string that are read (the rest is ignored)")
    max_batch_size: int = option(1024, "largest batch the served signature accepts")
    num_buckets: int = option(6, "length buckets for batching (1 = no bucketing)")
    tfds_data_dir: str = option("", "TFDS data dir (empty: <zoo cache>/tfds)")

    def __post_init__(self):
        one_of("data.source", self.source, ("vader", "imdb_reviews"))
        bad = [d for d in self.train_domains if d not in VADER_DOMAINS]
        require(bool(self.train_domains) and not bad, "data.train_domains", self.train_domains,
                f"must be a non-empty subset of {list(VADER_DOMAINS)}")
        require_at_least("data", self, ("vocab_size", "max_tokens", "max_input_bytes", "max_batch_size", "num_buckets"))
        require(self.vocab_size >= 3, "data.vocab_size", self.vocab_size, "must be >= 3 (padding, OOV, one word)")


@dataclasses.dataclass
class ModelConfig:
    embedding_dim: int = option(128, "word embedding width")
    lexicon_feature: bool = option(True, "append each token's VADER lexicon valence (frozen) to its embedding")
    embedding_dropout: float = option(0.5, "dropout on word embeddings")
    cell: str = option("gru", "recurrent cell: lstm | gru | rnn")
    units: int = option(128, "units per recurrent layer and direction")
    num_layers: int = option(1, "stacked recurrent layers")
    bidirectional: bool = option(True, "bidirectional recurrent layers")
    residual: bool = option(False, "residual connections between recurrent layers")
    dropout: float = option(0.5, "dropout between recurrent layers and before the heads")
    pooling: list[str] = option(["max", "mean"], "masked pooling modes over time, concatenated: last | mean | max")
    ensemble_size: int = option(3, "independently seeded classifiers whose probabilities are averaged (1 = one)")
    polarity_loss_weight: float = option(1.0, "weight of the positive/negative loss beside the 5-class rating loss")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        require_at_least("model", self, ("embedding_dim", "units", "num_layers", "ensemble_size"))
        for name in ("embedding_dropout", "dropout"):
            require(0 <= getattr(self, name) < 1, f"model.{name}", getattr(self, name), "must be in [0, 1)")
        bad = [p for p in self.pooling if p not in ("last", "mean", "max")]
        require(bool(self.pooling) and not bad, "model.pooling", self.pooling, "must use last | mean | max")
        require(self.polarity_loss_weight >= 0, "model.polarity_loss_weight", self.polarity_loss_weight, "must be >= 0")


@dataclasses.dataclass
class SentimentConfig:
    data: DataConfig = section(DataConfig, "data source and text handling")
    model: ModelConfig = section(ModelConfig, "network")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = SentimentConfig
