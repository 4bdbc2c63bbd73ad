"""Settings of the translation recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section


@dataclasses.dataclass
class DataConfig(config.SequenceDataConfig, config.FileSourceConfig,
                 files="your .tsv files, source<TAB>target per line"):
    """Where the sentence pairs come from, and the piece vocabularies learnt from them."""

    SOURCES = ("bible", "tfds")
    source: str = option("bible", "bible (offline: Spanish RV1909 → English KJV from Debian SWORD packages) | tfds")
    tfds_name: str = option("ted_hrlr_translate/pt_to_en", "TFDS translation dataset (source=tfds), as_supervised "
                                                           "pairs (source, target)")
    source_words: int = option(8000, "most frequent source words kept whole; other words are spelt as characters",
                               at_least=1)
    target_words: int = option(6000, "most frequent target words kept whole; other words are spelt as characters",
                               at_least=1)
    max_source_tokens: int = option(256, "source pieces per training pair: longer pairs are left out of training "
                                         "(the default keeps every verse; the count left out is reported)",
                                    at_least=1)
    max_target_tokens: int = option(384, "target pieces per training pair: longer pairs are left out of training",
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
    tie_embeddings: bool = option(False, "score decoder outputs against the target embeddings (tied output layer, "
                                         "half the output layer's cost) instead of a separate output matrix")
    sampled_softmax: int = option(1024, "training scores each target piece against this many candidate pieces "
                                        "drawn from the training targets' frequencies (sampled softmax: the output "
                                        "layer costs a fraction of the full vocabulary's); 0 = full softmax. "
                                        "Validation, decoding and serving always use the full softmax",
                                  at_least=0)

    def __post_init__(self):
        super().__post_init__()
        require(self.units % 2 == 0, "units", self.units, "must be even (split between encoder directions)")


@dataclasses.dataclass
class DecodeConfig(config.Section):
    """Greedy and beam-search decoding, as ``serving_default`` and the evaluation run it."""

    beam_width: int = option(4, "beam width used by serving_default and the beam evaluation", at_least=1)
    length_ratio: float = option(2.0, "a translation stops at </s> or after length_ratio * source pieces + "
                                      "length_offset pieces", at_least=0)
    length_offset: int = option(10, "see decode.length_ratio", at_least=1)
    length_penalty: float = option(1.0, "alpha of the GNMT length normalisation ((5 + length) / 6) ** alpha; 0 = none",
                                   at_least=0)


@dataclasses.dataclass
class ServingConfig(config.TextServingConfig):
    """Bounds of ``serving_default(text)`` and ``translate(text, beam_width, max_length)``."""

    max_input_bytes: int = option(4096, "longest served text in bytes (a longer one is an error)", at_least=1)
    max_source_pieces: int = option(256, "longest served text in source pieces (a longer one is an error)",
                                    at_least=1)
    max_beam_width: int = option(16, "largest beam width the `translate` signature accepts", at_least=1)
    max_request_steps: int = option(20000, "most decoder steps in one request: texts × beam width × the longest "
                                           "translation's length limit (a larger request is refused before "
                                           "decoding)", at_least=1)
    max_length_limit: int = option(600, "most pieces a translation may have (serving_default's cap, and the "
                                        "largest max_length the `translate` signature accepts)", at_least=1)


@dataclasses.dataclass
class TranslationConfig(config.RecipeConfig):
    """RV1909 → KJV Bible verses, BiLSTM encoder, LSTM decoder with Luong attention, greedy and beam decoding."""

    data: DataConfig = section(DataConfig, "data source and tokenisation", num_buckets=6)
    model: ModelConfig = section(ModelConfig, "network", units=256)
    decode: DecodeConfig = section(DecodeConfig, "greedy and beam-search decoding")
    serving: ServingConfig = section(ServingConfig, "bounds of the served signatures", max_batch_size=256)
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", epochs=5,
                                        early_stopping_patience=5)

    def __post_init__(self):
        require(self.serving.max_beam_width >= self.decode.beam_width, "serving.max_beam_width",
                self.serving.max_beam_width, f"must be >= decode.beam_width ({self.decode.beam_width})")
