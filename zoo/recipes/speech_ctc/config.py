"""Settings of the speech_ctc recipe; defaults live in ``recipes/speech_ctc/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

SAMPLE_RATE = 16000  # Hz; every source is resampled to it, and the served model only accepts it
SOURCES = ("tuxpaint_espeak", "librispeech", "ljspeech")
NEW_TESTAMENT = ("Matt", "Mark", "Luke", "John", "Acts", "Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess",
                 "2Thess", "1Tim", "2Tim", "Titus", "Phlm", "Heb", "Jas", "1Pet", "2Pet", "1John", "2John", "3John",
                 "Jude", "Rev")


@dataclasses.dataclass
class DataConfig:
    source: str = option("tuxpaint_espeak", "tuxpaint_espeak (offline: espeak-ng Spanish + real tuxpaint clips) | "
                                            "librispeech | ljspeech (TFDS)")
    alphabet: str = option(" abcdefghijklmnopqrstuvwxyzáéíóúüñ'", "characters the model writes (index 0 is the CTC "
                           "blank); transcripts are lower-cased and other characters become spaces")
    synthetic_clips: int = option(30000, "espeak-ng training clips (training voices, training sentences)")
    synthetic_eval_clips: int = option(300, "espeak-ng clips for validation and for the held-out-voice test each")
    perturbed_variants: int = option(200, "extra training voice variants, each a training variant with its formant "
                                     "frequencies and pitch range scaled by random factors (0 = none)")
    variant_formant_scale: float = option(1.3, "formant factor of a perturbed variant: log-uniform in [1/x, x]")
    variant_pitch_scale: float = option(1.6, "pitch factor of a perturbed variant: log-uniform in [1/x, x]")
    held_out_voice_every: int = option(5, "every N-th espeak-ng voice variant (sorted by name) is kept for the test")
    real_train_percent: int = option(50, "percent of the real tuxpaint clips used for training (by hash of the stamp)")
    real_validation_percent: int = option(10, "percent of the real clips for validation; the rest is the real test")
    max_real_clips: int = option(0, "use only the first N real clips (0 = all); for smoke runs")
    real_train_repeats: int = option(15, "oversampling of the real training clips in the random training mix "
                                     "(each is drawn as often as N synthetic clips; 0 = synthetic only)")
    bible_books: list[str] = option(list(NEW_TESTAMENT), "SpaRV books read for sentences (OSIS names)")
    max_words: int = option(7, "longest synthetic sentence in words (verses are cut at punctuation)")
    speech_rate: list[int] = option([130, 230], "espeak-ng words per minute, uniform in [low, high]")
    pitch: list[int] = option([15, 85], "espeak-ng pitch, uniform in [low, high] (0-99)")
    snr_db: list[float] = option([5.0, 40.0], "signal-to-noise ratio of added white/brown noise, uniform in dB")
    gain_db: list[float] = option([-20.0, 6.0], "gain applied after the noise, uniform in dB; loud clips clip at 1")
    max_train_seconds: float = option(8.0, "training clips longer than this are dropped")
    max_input_seconds: float = option(60.0, "longest input the served model accepts (longer requests are rejected)")
    max_batch_size: int = option(64, "largest batch the served signature accepts")
    num_buckets: int = option(6, "length buckets for batching (1 = no bucketing)")
    tfds_data_dir: str = option("", "TFDS data dir (empty: <zoo cache>/tfds)")

    def __post_init__(self):
        one_of("data.source", self.source, SOURCES)
        require(len(self.alphabet) >= 2 and len(set(self.alphabet)) == len(self.alphabet) and " " in self.alphabet,
                "data.alphabet", self.alphabet, "must hold distinct characters including a space")
        require_at_least("data", self, ("synthetic_clips", "synthetic_eval_clips", "held_out_voice_every",
                                        "max_words", "max_batch_size", "num_buckets"))
        require(0 <= self.perturbed_variants <= 240, "data.perturbed_variants", self.perturbed_variants,
                "must be in [0, 240] (espeak-ng lists at most 349 voices, 103 of them installed Spanish ones)")
        for name in ("variant_formant_scale", "variant_pitch_scale"):
            require(1 <= getattr(self, name) <= 3, f"data.{name}", getattr(self, name), "must be in [1, 3]")
        require(self.max_real_clips >= 0, "data.max_real_clips", self.max_real_clips, "must be >= 0")
        require(self.real_train_repeats >= 0, "data.real_train_repeats", self.real_train_repeats, "must be >= 0")
        require(0 <= self.real_train_percent and 0 <= self.real_validation_percent
                and self.real_train_percent + self.real_validation_percent < 100, "data.real_train_percent",
                (self.real_train_percent, self.real_validation_percent),
                "train and validation percents must be >= 0 and leave some clips for the test")
        require(bool(self.bible_books), "data.bible_books", self.bible_books, "must not be empty")
        for name, lo, hi in (("speech_rate", 80, 450), ("pitch", 0, 99), ("snr_db", -10, 100), ("gain_db", -60, 20)):
            value = getattr(self, name)
            require(len(value) == 2 and lo <= value[0] <= value[1] <= hi, f"data.{name}", value,
                    f"must be [low, high] with {lo} <= low <= high <= {hi}")
        require(self.max_train_seconds > 0, "data.max_train_seconds", self.max_train_seconds, "must be > 0")
        require(self.max_input_seconds >= self.max_train_seconds, "data.max_input_seconds", self.max_input_seconds,
                "must be >= data.max_train_seconds")


@dataclasses.dataclass
class ModelConfig:
    num_mels: int = option(80, "log-mel bands computed inside the model")
    frame_ms: float = option(25.0, "STFT window length in milliseconds")
    hop_ms: float = option(10.0, "STFT hop in milliseconds")
    conv_filters: list[int] = option([32, 32], "filters of each 2-D conv layer of the front end")
    conv_time_strides: list[int] = option([2, 1], "time stride of each conv layer (frequency stride is always 2)")
    cell: str = option("gru", "recurrent cell: lstm | gru | rnn")
    units: int = option(160, "units per recurrent layer and direction")
    num_layers: int = option(2, "stacked bidirectional recurrent layers")
    dropout: float = option(0.1, "dropout between recurrent layers and before the logits")
    vtlp_max_factor: float = option(1.2, "vocal tract length perturbation while training: each utterance's "
                                    "frequency axis is scaled by a factor in [1/this, this] (1 = off)")
    spec_augment: bool = option(True, "SpecAugment-style time and frequency masking while training")
    freq_masks: int = option(2, "frequency masks per utterance (SpecAugment)")
    freq_mask_width: int = option(10, "widest frequency mask in mel bands")
    time_masks: int = option(2, "time masks per utterance (SpecAugment)")
    time_mask_width: int = option(8, "widest time mask in STFT frames")
    beam_width: int = option(16, "hypotheses kept by CTC beam search")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        require_at_least("model", self, ("num_mels", "units", "num_layers", "beam_width"))
        require(0 < self.hop_ms <= self.frame_ms <= 100, "model.hop_ms", (self.hop_ms, self.frame_ms),
                "need 0 < hop_ms <= frame_ms <= 100")
        require(bool(self.conv_filters) and all(f >= 1 for f in self.conv_filters), "model.conv_filters",
                self.conv_filters, "must be a non-empty list of positive filter counts")
        require(len(self.conv_time_strides) == len(self.conv_filters) and all(s >= 1 for s in self.conv_time_strides),
                "model.conv_time_strides", self.conv_time_strides,
                f"must hold one positive stride per conv layer ({len(self.conv_filters)})")
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")
        require_at_least("model", self, ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"), 0)
        require(1 <= self.vtlp_max_factor <= 2, "model.vtlp_max_factor", self.vtlp_max_factor, "must be in [1, 2]")
        require(self.freq_mask_width < self.num_mels, "model.freq_mask_width", self.freq_mask_width,
                "must be < model.num_mels")


@dataclasses.dataclass
class SpeechTrainConfig(TrainConfig):
    steps_per_epoch: int = option(0, "batches per epoch, drawn at random from the whole training set (0 = one pass); "
                                  "short epochs give the time budget and early stopping a fine grain")
    lr_plateau_patience: int = option(2, "epochs without validation improvement before the learning rate is "
                                      "multiplied by train.lr_plateau_factor (0 = constant learning rate)")
    lr_plateau_factor: float = option(0.5, "learning-rate multiplier on a plateau")
    ema_momentum: float = option(0.0, "keep an exponential moving average of the weights with this momentum "
                                 "(Polyak averaging); validation, checkpoints and the saved model use it (0 = off)")

    def __post_init__(self):
        super().__post_init__()
        require(self.steps_per_epoch >= 0, "train.steps_per_epoch", self.steps_per_epoch, "must be >= 0")
        require(self.lr_plateau_patience >= 0, "train.lr_plateau_patience", self.lr_plateau_patience, "must be >= 0")
        require(0 < self.lr_plateau_factor < 1, "train.lr_plateau_factor", self.lr_plateau_factor, "must be in (0, 1)")
        require(0 <= self.ema_momentum < 1, "train.ema_momentum", self.ema_momentum, "must be in [0, 1)")


@dataclasses.dataclass
class SpeechConfig:
    data: DataConfig = section(DataConfig, "data sources, speech synthesis and serving bounds")
    model: ModelConfig = section(ModelConfig, "features and network")
    train: SpeechTrainConfig = section(SpeechTrainConfig, "optimisation, time limit and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = SpeechConfig
