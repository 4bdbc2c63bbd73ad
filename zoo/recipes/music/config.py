"""Settings of the music recipe; defaults live in ``recipes/music/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

# Corpora inside the music21 wheel. JSB: the Bach chorales (``corpus/bach``, public-domain works, encodings
# distributed with music21). Folk: O'Neill's "Music of Ireland" (1850, public domain) as ABC transcriptions
# (``corpus/oneills1850``). Essen folk songs are non-commercial only and are deliberately not offered.
SOURCES = ("jsb", "folk")
REPRESENTATIONS = ("roll", "events")


@dataclasses.dataclass
class DataConfig:
    source: str = option("jsb", "jsb (music21 corpus/bach chorales) | folk (music21 corpus/oneills1850 ABC tunes)")
    representation: str = option("roll", "roll (polyphonic piano roll, sigmoid per pitch) | events (melody tokens, "
                                         "softmax: note-on pitch / note-off / hold)")
    steps_per_quarter: int = option(1, "time grid: steps per quarter note (1 = the JSB benchmark's quarter notes)")
    low_pitch: int = option(21, "lowest MIDI pitch modelled (21 = A0, as the 88-key benchmark roll)")
    high_pitch: int = option(108, "highest MIDI pitch modelled (108 = C8)")
    key: str = option("c", "c (transpose every piece to C major / C minor, estimated with Krumhansl-Kessler "
                           "profiles, as the JSB benchmark data) | original")
    parts: int = option(0, "keep only pieces written in exactly this many parts (0 = all); 4 = the SATB chorales "
                           "of the benchmark, without the ones that add instrumental parts")
    transpose: int = option(5, "training-only augmentation: random transposition by up to ± this many semitones")
    max_pieces: int = option(0, "parse only the first N pieces of the corpus (0 = all); a separate cached dataset")
    max_steps: int = option(512, "pieces longer than this many steps are cut into chunks of at most this length")
    max_seed_steps: int = option(256, "longest seed the served signature accepts")
    max_generate_steps: int = option(1024, "largest num_steps the served signature accepts")
    max_batch_size: int = option(64, "largest batch of seeds the served signature accepts")
    num_buckets: int = option(4, "length buckets for batching (1 = no bucketing)")
    tfds_data_dir: str = option("", "TFDS data dir for the parsed corpus (empty: <zoo cache>/tfds)")

    def __post_init__(self):
        one_of("data.source", self.source, SOURCES)
        one_of("data.representation", self.representation, REPRESENTATIONS)
        one_of("data.key", self.key, ("c", "original"))
        require(0 <= self.low_pitch < self.high_pitch <= 127, "data.low_pitch..high_pitch",
                (self.low_pitch, self.high_pitch), "must satisfy 0 <= low_pitch < high_pitch <= 127")
        require(self.parts >= 0, "data.parts", self.parts, "must be >= 0 (0 = all)")
        require(self.transpose >= 0, "data.transpose", self.transpose, "must be >= 0")
        require(self.max_pieces >= 0, "data.max_pieces", self.max_pieces, "must be >= 0 (0 = all)")
        require_at_least("data", self, ("steps_per_quarter", "max_steps", "max_seed_steps", "max_generate_steps",
                                        "max_batch_size", "num_buckets"))
        require(self.max_steps >= 2, "data.max_steps", self.max_steps, "must be >= 2 (an input and a next step)")

    @property
    def num_pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1


@dataclasses.dataclass
class ModelConfig:
    embedding_dim: int = option(64, "event embedding width (events) / input projection width (roll; 0 = none)")
    input_dropout: float = option(0.0, "dropout on the (embedded) inputs")
    cell: str = option("lstm", "recurrent cell: lstm | gru | rnn")
    units: int = option(256, "units per recurrent layer")
    num_layers: int = option(1, "stacked recurrent layers (unidirectional: the model predicts the next step)")
    residual: bool = option(False, "residual connections between recurrent layers")
    dropout: float = option(0.3, "dropout between recurrent layers and before the output layer")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        require_at_least("model", self, ("units", "num_layers"))
        require(self.embedding_dim >= 0, "model.embedding_dim", self.embedding_dim, "must be >= 0")
        for name in ("input_dropout", "dropout"):
            require(0 <= getattr(self, name) < 1, f"model.{name}", getattr(self, name), "must be in [0, 1)")


@dataclasses.dataclass
class GenerateConfig:
    num_samples: int = option(4, "pieces generated after training (half from nothing, half from held-out seeds)")
    num_steps: int = option(64, "steps generated per piece")
    seed_steps: int = option(8, "steps of a held-out piece used as the seed of the seeded samples")
    temperature: float = option(1.0, "sampling temperature (0 = greedy)")
    top_k: int = option(0, "sample only among the k most likely pitches (roll) / events (events); 0 = all")
    random_seed: int = option(7, "seed of the stateless sampler: the same seed gives the same music")
    tempo_bpm: float = option(90.0, "tempo written into the MIDI files")

    def __post_init__(self):
        require_at_least("generate", self, ("num_samples", "num_steps"))
        require(self.seed_steps >= 0, "generate.seed_steps", self.seed_steps, "must be >= 0")
        require(self.temperature >= 0, "generate.temperature", self.temperature, "must be >= 0")
        require(self.top_k >= 0, "generate.top_k", self.top_k, "must be >= 0")
        require(self.tempo_bpm > 0, "generate.tempo_bpm", self.tempo_bpm, "must be > 0")


@dataclasses.dataclass
class MusicConfig:
    data: DataConfig = section(DataConfig, "corpus, grid and representation")
    model: ModelConfig = section(ModelConfig, "network")
    generate: GenerateConfig = section(GenerateConfig, "sampling after training")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")

    def __post_init__(self):
        require(self.generate.num_steps <= self.data.max_generate_steps, "generate.num_steps",
                self.generate.num_steps, f"must be <= data.max_generate_steps ({self.data.max_generate_steps})")
        require(self.generate.seed_steps <= self.data.max_seed_steps, "generate.seed_steps",
                self.generate.seed_steps, f"must be <= data.max_seed_steps ({self.data.max_seed_steps})")


RECIPE_CONFIG = MusicConfig
