"""Settings of the sentiment recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, section

VADER_DOMAINS = ("movie", "amazon", "nyt", "tweets")


@dataclasses.dataclass
class DataConfig(config.TextDataConfig, config.FileSourceConfig,
                 files="your .csv / .tsv / .jsonl with text and label columns"):
    """Where the rated texts come from, and the vocabulary learnt from them."""

    SOURCES = ("vader", "imdb_reviews")
    source: str = option("vader", "vader (offline, human-rated snippets from the vaderSentiment sdist) | "
                                  "imdb_reviews (TFDS)")
    train_domains: list[str] = option(list(VADER_DOMAINS), "VADER domains to train on (test always reports each)",
                                      choices=VADER_DOMAINS)
    vocab_size: int = option(20000, "words learnt from the training text (incl. padding and OOV: >= 3); lexicon "
                                    "words are added on top", at_least=3)


@dataclasses.dataclass
class ModelConfig(config.PooledRecurrentConfig, config.EnsembleConfig):
    """The classifier: what reads the words, the pooled recurrent stack, two heads."""

    ENCODERS = ("words", "minilm")
    encoder: str = option("minilm", "what reads the words: minilm (the pretrained all-MiniLM-L6-v2 encoder from "
                                    "PyPI, frozen: its features are computed once, the network above them is "
                                    "trained) | words (word embeddings trained here, + lexicon valence)")
    max_pieces: int = option(256, "word pieces the pretrained encoder reads per text ([CLS] and [SEP] included; "
                                  "the rest is cut, in training and serving)", at_least=3)
    projection_dim: int = option(128, "width the pretrained features are projected to before the recurrent "
                                      "stack (0 = none)", at_least=0)
    embedding_dim: int = option(128, "word embedding width (encoder words)", at_least=1)
    lexicon_feature: bool = option(True, "append each token's VADER lexicon valence (frozen) to its embedding "
                                          "(encoder words)")
    embedding_dropout: float = option(0.5, "dropout on word embeddings (or the pretrained features)", fraction=True)
    polarity_loss_weight: float = option(1.0, "weight of the positive/negative loss beside the 5-class rating loss",
                                         at_least=0)

    def __post_init__(self):
        super().__post_init__()
        config.one_of("encoder", self.encoder, self.ENCODERS)


@dataclasses.dataclass
class ServingConfig(config.TextServingConfig):
    """Bounds of ``serving_default(text)``."""

    max_input_bytes: int = option(65536, "bytes of each served string that are read (the rest is ignored)",
                                  at_least=1)
    max_request_pieces: int = option(32768, "most word pieces the pretrained encoder reads in one request, all "
                                            "strings together, each counted up to model.max_pieces (a larger "
                                            "request is refused before the encoder runs)", at_least=1)


C_GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]


@dataclasses.dataclass
class PeersConfig(config.PeerConfig):
    """NBSVM-bi and TF-IDF logistic regression, ``peers.py``."""

    nbsvm_beta: float = option(0.25, "NBSVM's interpolation towards the mean weight (Wang & Manning: 0.25)",
                               fraction=True)
    c_grid: list[float] = option(list(C_GRID), "regularisation values tried for each peer; the best on the "
                                 "validation split is kept")


@dataclasses.dataclass
class WideConfig(config.Section):
    """The "wide" half of the served model: NBSVM on the model's own word n-grams (a `BagLinear` in the graph),
    stacked with the network's positive/negative score. Used where the data has that target."""

    ngrams: int = option(2, "n-gram order of the wide model's features (0 = no wide model)", at_least=0)
    max_features: int = option(300000, "most frequent training n-grams kept as features", at_least=3)
    beta: float = option(0.25, "NBSVM's interpolation towards the mean weight", fraction=True)
    c_grid: list[float] = option(list(C_GRID), "SVM regularisation values tried; the best on the validation split "
                                 "is kept")


@dataclasses.dataclass
class SentimentConfig(config.RecipeConfig):
    """VADER snippets; the frozen MiniLM encoder's features → BiGRU, max+mean pooling, a 2-member ensemble,
    stacked with NBSVM. ``--preset words``: the word-embedding BiGRU (no pretrained encoder)."""

    data: DataConfig = section(DataConfig, "data source and text handling", num_buckets=6)
    model: ModelConfig = section(ModelConfig, "network", cell="gru", units=128, bidirectional=True, dropout=0.5,
                                 embedding_dropout=0.3, pooling=["max", "mean"], ensemble_size=2)
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature", max_batch_size=1024,
                                     max_request_bytes=4 << 20)
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory")
    wide: WideConfig = section(WideConfig, "NBSVM on the model's n-grams, stacked with the network")
    peers: PeersConfig = section(PeersConfig, "classical peers scored beside the network")
