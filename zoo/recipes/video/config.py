"""Settings of the video recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section


@dataclasses.dataclass
class DataConfig(config.SequenceDataConfig, config.FileSourceConfig,
                 files="your directories with one sub-directory per class"):
    """Where the clips come from (rendered digit activities, UCF101 or your files) and their size."""

    SOURCES = ("digits", "ucf101")
    source: str = option("digits", "digits (offline: clips rendered from scikit-learn's handwritten digits) | "
                                   "ucf101 (TFDS)")
    frame_size: int = option(32, "side of the square frames the network sees (rendered at it, or resized to it; "
                                 ">= 8: the encoder pools 3 times)", at_least=8)
    min_frames: int = option(8, "digits: shortest rendered clip", at_least=1)
    max_frames: int = option(16, "longest training/evaluation clip (digits: longest rendered; ucf101: cut to it)")
    num_train: int = option(6000, "digits: training clips", at_least=1)
    num_validation: int = option(600, "digits: validation clips (early stopping)", at_least=1)
    num_test: int = option(1000, "digits: held-out test clips (held-out seeds and held-out digit images)",
                           at_least=1)
    clutter: int = option(2, "digits: at most this many faint drifting distractor digits per clip", at_least=0)
    noise: float = option(0.05, "digits: std of per-pixel Gaussian noise, as a fraction of full scale",
                          fraction=True)
    shake: int = option(1, "digits: largest camera-shake offset in pixels, drawn per frame", at_least=0)
    seed: int = option(0, "digits: generator seed; each clip draws from (seed, split, index)")
    frame_stride: int = option(4, "ucf101 and files: keep every n-th frame before cutting to max_frames", at_least=1)
    ucf101_config: str = option("ucf101_1_256", "ucf101: TFDS builder config (split 1-3, 256x256 frames)",
                                choices=("ucf101_1_256", "ucf101_1", "ucf101_2", "ucf101_3"))

    def __post_init__(self):
        super().__post_init__()
        require(self.max_frames >= self.min_frames, "max_frames", self.max_frames,
                f"must be >= data.min_frames ({self.min_frames})")
        require(self.shake < self.frame_size // 4, "shake", self.shake,
                f"must be < frame_size / 4 = {self.frame_size // 4}")


@dataclasses.dataclass
class ModelConfig(config.PooledRecurrentConfig):
    """The clip classifier: a per-frame CNN, then the pooled recurrent stack (or a ConvLSTM)."""

    encoder: str = option("cnn", "cnn (per-frame CNN, then the recurrent stack) | convlstm (CNN stem, then ConvLSTM2D)",
                          choices=("cnn", "convlstm"))
    filters: list[int] = option([16, 32, 64], "filters of the per-frame 3x3 conv blocks, each followed by 2x2 pooling "
                                              "(1 to 3 blocks: frames may be 8x8)", at_least=1)
    frame_features: int = option(128, "width of each frame's feature vector", at_least=1)
    convlstm_filters: int = option(32, "convlstm: filters of the ConvLSTM2D layer", at_least=1)

    def __post_init__(self):
        super().__post_init__()
        require(1 <= len(self.filters) <= 3, "filters", self.filters, "must hold 1 to 3 conv blocks")


@dataclasses.dataclass
class BaselinesConfig(config.Section):
    """The order-free baselines trained beside the model."""

    enabled: bool = option(True, "also train the frame-shuffled and single-frame baselines and report them")
    epochs: int = option(4, "epochs of each baseline (same network, same data, order or time removed)", at_least=1)


@dataclasses.dataclass
class ServingConfig(config.ServingConfig):
    """Bounds of ``serving_default(frames, lengths)``."""

    max_frames: int = option(64, "longest clip (time steps) the served signature accepts", at_least=1)
    max_side: int = option(1024, "largest frame height or width the served signature accepts", at_least=1)
    max_request_pixels: int = option(1 << 24, "most pixels in one request: clips × frames × height × width of the "
                                              "padded batch (a larger request is refused before any work)",
                                     at_least=1)


@dataclasses.dataclass
class VideoConfig(config.RecipeConfig):
    """Digit-activity clips, a per-frame CNN + GRU, last+max pooling; frame-shuffled and single-frame baselines."""

    data: DataConfig = section(DataConfig, "data source and clip rendering")
    model: ModelConfig = section(ModelConfig, "network", cell="gru", units=64, pooling=["last", "max"])
    baselines: BaselinesConfig = section(BaselinesConfig, "order-free baselines")
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature")
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", batch_size=32)

    def __post_init__(self):
        require(self.serving.max_frames >= self.data.max_frames, "serving.max_frames", self.serving.max_frames,
                f"must be >= data.max_frames ({self.data.max_frames})")
