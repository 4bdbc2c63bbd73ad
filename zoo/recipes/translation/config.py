"""Settings of the translation recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section


@dataclasses.dataclass
class DataConfig(config.SequenceDataConfig):
    """Where the sentence pairs come from, and the piece vocabularies learnt from them."""

    SOURCES = ("bible", "tfds")
    source: str = option("bible", "bible (offline: Spanish RV1909 → English KJV from Debian SWORD packages) | tfds")
    tfds_name: str = option("ted_hrlr_translate/pt_to_en", "TFDS translation dataset (source=tfds), as_supervised "
                                                           "pairs (source, target)")
    source_words: int = option(8000, "most frequent source words kept whole; other words are spelt as characters",
                               at_least=1)
    target_words: int = option(6000, "most frequent target words kept whole; other words are spelt as characters",
                               at_least=1)
    max_source_tokens: int = option(30, "source tokens per sentence: longer pairs are left out of training, "
                                        "served input is truncated to this many tokens", at_least=1)
    max_target_tokens: int = option(36, "target tokens per sentence: longer pairs are left out of training",
                                    at_least=1)

    def __post_init__(self):
        super().__post_init__()
        require(self.source != "tfds" or bool(self.tfds_name), "tfds_name", self.tfds_name,
                "must name a TFDS dataset when data.source=tfds")


@dataclasses.dataclass
class ModelConfig(config.RecurrentConfig):
    """The attentional encoder-decoder (the encoder is the bidirectional recurrent stack)."""

    CELLS = ("lstm", "gru")
    embedding_dim: int = option(128, "token embedding width (source and target)", at_least=1)
    attention: str = option("luong", "attention score: luong (multiplicative) | bahdanau (additive)",
                            choices=("luong", "bahdanau"))
    attention_units: int = option(128, "hidden width of the bahdanau score", at_least=1)

    def __post_init__(self):
        super().__post_init__()
        require(self.units % 2 == 0, "units", self.units, "must be even (split between encoder directions)")


@dataclasses.dataclass
class DecodeConfig(config.Section):
    """Greedy and beam-search decoding, as ``serving_default`` and the evaluation run it."""

    beam_width: int = option(4, "beam width used by serving_default and the beam evaluation", at_least=1)
    max_length: int = option(64, "target tokens generated at most by serving_default", at_least=1)
    length_penalty: float = option(1.0, "alpha of the GNMT length normalisation ((5 + length) / 6) ** alpha; 0 = none",
                                   at_least=0)


@dataclasses.dataclass
class ServingConfig(config.ServingConfig):
    """Bounds of ``serving_default(text)`` and ``translate(text, beam_width, max_length)``."""

    max_input_bytes: int = option(4096, "bytes of each served string that are read (the rest is ignored)",
                                  at_least=1)
    max_beam_width: int = option(16, "largest beam width the `translate` signature accepts", at_least=1)
    max_length_limit: int = option(256, "largest max_length the `translate` signature accepts", at_least=1)


@dataclasses.dataclass
class TranslationConfig(config.RecipeConfig):
    """RV1909 → KJV Bible verses, BiLSTM encoder, LSTM decoder with Luong attention, greedy and beam decoding."""

    data: DataConfig = section(DataConfig, "data source and tokenisation", num_buckets=6)
    model: ModelConfig = section(ModelConfig, "network", units=256)
    decode: DecodeConfig = section(DecodeConfig, "greedy and beam-search decoding")
    serving: ServingConfig = section(ServingConfig, "bounds of the served signatures", max_batch_size=256)
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", epochs=15,
                                        early_stopping_patience=5)

    def __post_init__(self):
        require(self.serving.max_beam_width >= self.decode.beam_width, "serving.max_beam_width",
                self.serving.max_beam_width, f"must be >= decode.beam_width ({self.decode.beam_width})")
        require(self.serving.max_length_limit >= self.decode.max_length, "serving.max_length_limit",
                self.serving.max_length_limit, f"must be >= decode.max_length ({self.decode.max_length})")
