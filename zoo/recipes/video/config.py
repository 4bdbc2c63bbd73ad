"""Settings of the video recipe; defaults live in ``recipes/video/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

POOLING_MODES = ("last", "mean", "max")


@dataclasses.dataclass
class DataConfig:
    source: str = option("digits", "digits (offline: clips rendered from scikit-learn's handwritten digits) | "
                                   "ucf101 (TFDS)")
    frame_size: int = option(32, "side of the square frames the network sees (rendered at it, or resized to it)")
    min_frames: int = option(8, "digits: shortest rendered clip")
    max_frames: int = option(16, "longest training/evaluation clip (digits: longest rendered; ucf101: cut to it)")
    num_train: int = option(6000, "digits: training clips")
    num_validation: int = option(600, "digits: validation clips (early stopping)")
    num_test: int = option(1000, "digits: held-out test clips (held-out seeds and held-out digit images)")
    clutter: int = option(2, "digits: at most this many faint drifting distractor digits per clip")
    noise: float = option(0.05, "digits: std of per-pixel Gaussian noise, as a fraction of full scale")
    shake: int = option(1, "digits: largest camera-shake offset in pixels, drawn per frame")
    seed: int = option(0, "digits: generator seed; each clip draws from (seed, split, index)")
    frame_stride: int = option(4, "ucf101: keep every n-th frame before cutting to max_frames")
    ucf101_config: str = option("ucf101_1_256", "ucf101: TFDS builder config (split 1-3, 256x256 frames)")
    tfds_data_dir: str = option("", "TFDS data dir (empty: <zoo cache>/tfds)")
    num_buckets: int = option(4, "clip-length buckets for batching (1 = no bucketing)")
    max_serving_frames: int = option(64, "longest clip (time steps) the served signature accepts")
    max_serving_side: int = option(1024, "largest frame height or width the served signature accepts")
    max_batch_size: int = option(64, "largest batch of clips the served signature accepts")

    def __post_init__(self):
        one_of("data.source", self.source, ("digits", "ucf101"))
        require_at_least("data", self, ("frame_size", "min_frames", "max_frames", "num_train", "num_validation",
                                        "num_test", "frame_stride", "num_buckets", "max_serving_frames",
                                        "max_serving_side", "max_batch_size"))
        require(self.frame_size >= 8, "data.frame_size", self.frame_size, "must be >= 8 (the encoder pools 3 times)")
        require(self.max_frames >= self.min_frames, "data.max_frames", self.max_frames,
                f"must be >= data.min_frames ({self.min_frames})")
        require(self.max_serving_frames >= self.max_frames, "data.max_serving_frames", self.max_serving_frames,
                f"must be >= data.max_frames ({self.max_frames})")
        require(self.clutter >= 0, "data.clutter", self.clutter, "must be >= 0")
        require(0 <= self.noise < 1, "data.noise", self.noise, "must be in [0, 1)")
        require(0 <= self.shake < self.frame_size // 4, "data.shake", self.shake,
                f"must be in [0, frame_size / 4) = [0, {self.frame_size // 4})")
        one_of("data.ucf101_config", self.ucf101_config, ("ucf101_1_256", "ucf101_1", "ucf101_2", "ucf101_3"))


@dataclasses.dataclass
class ModelConfig:
    encoder: str = option("cnn", "cnn (per-frame CNN, then the recurrent stack) | convlstm (CNN stem, then ConvLSTM2D)")
    filters: list[int] = option([16, 32, 64], "filters of the per-frame 3x3 conv blocks, each followed by 2x2 pooling")
    frame_features: int = option(128, "width of each frame's feature vector")
    convlstm_filters: int = option(32, "convlstm: filters of the ConvLSTM2D layer")
    cell: str = option("gru", "recurrent cell: lstm | gru | rnn")
    units: int = option(64, "units per recurrent layer and direction")
    num_layers: int = option(1, "stacked recurrent layers")
    bidirectional: bool = option(False, "bidirectional recurrent layers")
    residual: bool = option(False, "residual connections between recurrent layers")
    dropout: float = option(0.2, "dropout on frame features, between recurrent layers and before the head")
    pooling: list[str] = option(["last", "max"], "masked pooling modes over time, concatenated: last | mean | max")

    def __post_init__(self):
        one_of("model.encoder", self.encoder, ("cnn", "convlstm"))
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        require(bool(self.filters) and all(f >= 1 for f in self.filters), "model.filters", self.filters,
                "must be a non-empty list of positive ints")
        require(len(self.filters) <= 3, "model.filters", self.filters, "at most 3 conv blocks (frames may be 8x8)")
        require_at_least("model", self, ("frame_features", "convlstm_filters", "units", "num_layers"))
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")
        bad = [p for p in self.pooling if p not in POOLING_MODES]
        require(bool(self.pooling) and not bad, "model.pooling", self.pooling, f"must use {' | '.join(POOLING_MODES)}")


@dataclasses.dataclass
class BaselinesConfig:
    enabled: bool = option(True, "also train the frame-shuffled and single-frame baselines and report them")
    epochs: int = option(4, "epochs of each baseline (same network, same data, order or time removed)")

    def __post_init__(self):
        require(self.epochs >= 1, "baselines.epochs", self.epochs, "must be >= 1")


@dataclasses.dataclass
class VideoConfig:
    data: DataConfig = section(DataConfig, "data source, clip rendering and serving bounds")
    model: ModelConfig = section(ModelConfig, "network")
    baselines: BaselinesConfig = section(BaselinesConfig, "order-free baselines")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = VideoConfig
