"""Settings of the speech_ctc recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section

SAMPLE_RATE = 16000  # Hz; every source is resampled to it, and the served model only accepts it
SOURCES = ("tuxpaint_espeak", "librispeech", "ljspeech")
NEW_TESTAMENT = ("Matt", "Mark", "Luke", "John", "Acts", "Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess",
                 "2Thess", "1Tim", "2Tim", "Titus", "Phlm", "Heb", "Jas", "1Pet", "2Pet", "1John", "2John", "3John",
                 "Jude", "Rev")


@dataclasses.dataclass
class DataConfig(config.SequenceDataConfig, config.FileSourceConfig,
                 files="your .csv / .tsv manifests with path and text columns"):
    """Real and synthesised speech: sources, espeak-ng voices and degradations."""

    SOURCES = SOURCES
    source: str = option("tuxpaint_espeak", "tuxpaint_espeak (offline: espeak-ng Spanish + real tuxpaint clips) | "
                                            "librispeech | ljspeech (TFDS)")
    alphabet: str = option(" abcdefghijklmnopqrstuvwxyzáéíóúüñ'", "characters the model writes (index 0 is the CTC "
                           "blank); transcripts are lower-cased and other characters become spaces (source files: "
                           "learnt from the training transcripts instead)")
    synthetic_clips: int = option(30000, "espeak-ng training clips (training voices, training sentences)",
                                  at_least=1)
    synthetic_eval_clips: int = option(300, "espeak-ng clips for validation and for the held-out-voice test each",
                                       at_least=1)
    perturbed_variants: int = option(200, "extra training voice variants, each a training variant with its formant "
                                     "frequencies and pitch range scaled by random factors (0 = none)")
    variant_formant_scale: float = option(1.3, "formant factor of a perturbed variant: log-uniform in [1/x, x]")
    variant_pitch_scale: float = option(1.6, "pitch factor of a perturbed variant: log-uniform in [1/x, x]")
    held_out_voice_every: int = option(5, "every N-th espeak-ng voice variant (sorted by name) is kept for the test",
                                       at_least=1)
    real_train_percent: int = option(50, "percent of the real tuxpaint clips used for training (by hash of the stamp)",
                                     at_least=0)
    real_validation_percent: int = option(10, "percent of the real clips for validation; the rest is the real test",
                                          at_least=0)
    max_real_clips: int = option(0, "use only the first N real clips (0 = all); for smoke runs", at_least=0)
    real_train_repeats: int = option(15, "oversampling of the real training clips in the random training mix "
                                     "(each is drawn as often as N synthetic clips; 0 = synthetic only)", at_least=0)
    bible_books: list[str] = option(list(NEW_TESTAMENT), "SpaRV books read for sentences (OSIS names)")
    max_words: int = option(7, "longest synthetic sentence in words (verses are cut at punctuation)", at_least=1)
    speech_rate: list[int] = option([130, 230], "espeak-ng words per minute, uniform in [low, high]")
    pitch: list[int] = option([15, 85], "espeak-ng pitch, uniform in [low, high] (0-99)")
    snr_db: list[float] = option([5.0, 40.0], "signal-to-noise ratio of added white/brown noise, uniform in dB")
    gain_db: list[float] = option([-20.0, 6.0], "gain applied after the noise, uniform in dB; loud clips clip at 1")
    max_train_seconds: float = option(8.0, "training clips longer than this are dropped")

    def __post_init__(self):
        super().__post_init__()
        require(len(self.alphabet) >= 2 and len(set(self.alphabet)) == len(self.alphabet) and " " in self.alphabet,
                "alphabet", self.alphabet, "must hold distinct characters including a space")
        require(0 <= self.perturbed_variants <= 240, "perturbed_variants", self.perturbed_variants,
                "must be in [0, 240] (espeak-ng lists at most 349 voices, 103 of them installed Spanish ones)")
        for name in ("variant_formant_scale", "variant_pitch_scale"):
            require(1 <= getattr(self, name) <= 3, name, getattr(self, name), "must be in [1, 3]")
        require(self.real_train_percent + self.real_validation_percent < 100, "real_train_percent",
                (self.real_train_percent, self.real_validation_percent),
                "train and validation percents must leave some clips for the test")
        require(bool(self.bible_books), "bible_books", self.bible_books, "must not be empty")
        for name, lo, hi in (("speech_rate", 80, 450), ("pitch", 0, 99), ("snr_db", -10, 100), ("gain_db", -60, 20)):
            value = getattr(self, name)
            require(len(value) == 2 and lo <= value[0] <= value[1] <= hi, name, value,
                    f"must be [low, high] with {lo} <= low <= high <= {hi}")
        require(self.max_train_seconds > 0, "max_train_seconds", self.max_train_seconds, "must be > 0")


@dataclasses.dataclass
class ModelConfig(config.RecurrentConfig):
    """Log-mel features, augmentation, a conv front end, the bidirectional stack, CTC decoding."""

    num_mels: int = option(80, "log-mel bands computed inside the model", at_least=1)
    frame_ms: float = option(25.0, "STFT window length in milliseconds")
    hop_ms: float = option(10.0, "STFT hop in milliseconds")
    conv_filters: list[int] = option([32, 32], "filters of each 2-D conv layer of the front end", at_least=1)
    conv_time_strides: list[int] = option([2, 1], "time stride of each conv layer (frequency stride is always 2)",
                                          at_least=1)
    vtlp_max_factor: float = option(1.2, "vocal tract length perturbation while training: each utterance's "
                                    "frequency axis is scaled by a factor in [1/this, this] (1 = off)")
    spec_augment: bool = option(True, "SpecAugment-style time and frequency masking while training")
    freq_masks: int = option(2, "frequency masks per utterance (SpecAugment)", at_least=0)
    freq_mask_width: int = option(10, "widest frequency mask in mel bands", at_least=0)
    time_masks: int = option(2, "time masks per utterance (SpecAugment)", at_least=0)
    time_mask_width: int = option(8, "widest time mask in STFT frames", at_least=0)
    beam_width: int = option(16, "hypotheses kept by CTC beam search", at_least=1)

    def __post_init__(self):
        super().__post_init__()
        require(0 < self.hop_ms <= self.frame_ms <= 100, "hop_ms", (self.hop_ms, self.frame_ms),
                "need 0 < hop_ms <= frame_ms <= 100")
        require(bool(self.conv_filters), "conv_filters", self.conv_filters, "must not be empty")
        require(len(self.conv_time_strides) == len(self.conv_filters), "conv_time_strides", self.conv_time_strides,
                f"must hold one stride per conv layer ({len(self.conv_filters)})")
        require(1 <= self.vtlp_max_factor <= 2, "vtlp_max_factor", self.vtlp_max_factor, "must be in [1, 2]")
        require(self.freq_mask_width < self.num_mels, "freq_mask_width", self.freq_mask_width,
                "must be < model.num_mels")


@dataclasses.dataclass
class SpeechTrainConfig(config.TrainConfig):
    """Training on an endless random mix of clips, in short epochs."""

    steps_per_epoch: int = option(0, "batches per epoch, drawn at random from the whole training set (0 = one pass); "
                                  "short epochs give the time budget and early stopping a fine grain", at_least=0)


@dataclasses.dataclass
class ServingConfig(config.ServingConfig):
    """Bounds of ``serving_default(audio, lengths)``."""

    max_input_seconds: float = option(60.0, "longest input the served model accepts (longer requests are rejected)")
    max_request_samples: int = option(2_880_000, "most audio samples in one request: clips × samples of the padded "
                                                 "batch (180 s at 16 kHz; a larger request is refused before any "
                                                 "work)", at_least=1)

    def __post_init__(self):
        super().__post_init__()
        require(self.max_input_seconds > 0, "max_input_seconds", self.max_input_seconds, "must be > 0")


@dataclasses.dataclass
class SpeechConfig(config.RecipeConfig):
    """espeak-ng Spanish + real Tux Paint clips, conv front end + BiGRU + CTC, 15 minutes on 2 CPU cores."""

    data: DataConfig = section(DataConfig, "data sources and speech synthesis", num_buckets=6)
    model: ModelConfig = section(ModelConfig, "features and network", cell="gru", units=160, num_layers=2,
                                 dropout=0.1)
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature")
    train: SpeechTrainConfig = section(SpeechTrainConfig, "optimisation and run directory", epochs=35,
                                       batch_size=32, early_stopping_patience=6,
                                       steps_per_epoch=50, ema_momentum=0.99, lr_plateau_patience=2)

    def __post_init__(self):
        require(self.serving.max_input_seconds >= self.data.max_train_seconds, "serving.max_input_seconds",
                self.serving.max_input_seconds, f"must be >= data.max_train_seconds ({self.data.max_train_seconds})")
