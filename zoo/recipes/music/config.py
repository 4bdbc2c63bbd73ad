"""Settings of the music recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section

# Corpora inside the music21 wheel. JSB: the Bach chorales (``corpus/bach``, public-domain works, encodings
# distributed with music21). Folk: O'Neill's "Music of Ireland" (1850, public domain) as ABC transcriptions
# (``corpus/oneills1850``). Essen folk songs are non-commercial only and are deliberately not offered.
REPRESENTATIONS = ("roll", "events")
CONDITIONS = ("mode", "none")


@dataclasses.dataclass
class DataConfig(config.SequenceDataConfig, config.FileSourceConfig,
                 files="your directories of .mid / .midi / .mxl / .musicxml / .xml / .abc / .krn files"):
    """Which corpus, on what time grid, in which representation."""

    SOURCES = ("jsb", "folk")
    source: str = option("jsb", "jsb (music21 corpus/bach chorales) | folk (music21 corpus/oneills1850 ABC tunes)")
    representation: str = option("roll", "roll (polyphonic piano roll, sigmoid per pitch) | events (melody tokens, "
                                         "softmax: note-on pitch / note-off / hold)", choices=REPRESENTATIONS)
    steps_per_quarter: int = option(1, "time grid: steps per quarter note (1 = the JSB benchmark's quarter notes)",
                                    at_least=1)
    low_pitch: int = option(21, "lowest MIDI pitch modelled (21 = A0, as the 88-key benchmark roll)")
    high_pitch: int = option(108, "highest MIDI pitch modelled (108 = C8)")
    key: str = option("c", "c (transpose every piece to C major / C minor, estimated with Krumhansl-Kessler "
                           "profiles, as the JSB benchmark data) | original", choices=("c", "original"))
    parts: int = option(4, "keep only pieces written in exactly this many parts (0 = all); 4 = the SATB chorales "
                           "of the benchmark, without the ones that add instrumental parts", at_least=0)
    transpose: int = option(0, "training-only augmentation: random transposition by up to ± this many semitones "
                               "(the default pieces are all in C already; a trial with 2 learnt slower: "
                               "validation NLL 10.60 vs 9.76 at epoch 6)", at_least=0)
    max_pieces: int = option(0, "parse only the first N pieces of the corpus (0 = all); a separate cached dataset",
                             at_least=0)
    condition: str = option("mode", "the class integer that generation is conditioned on: mode (0 = major, "
                                     "1 = minor, from the Krumhansl-Kessler key estimate of each piece) | none",
                            choices=CONDITIONS)
    max_steps: int = option(512, "pieces longer than this many steps are cut into chunks of at most this length "
                                 "(>= 2: an input and a next step)", at_least=2)

    def __post_init__(self):
        super().__post_init__()
        require(0 <= self.low_pitch < self.high_pitch <= 127, "low_pitch..high_pitch",
                (self.low_pitch, self.high_pitch), "must satisfy 0 <= low_pitch < high_pitch <= 127")

    @property
    def num_pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the condition's classes, by class integer (``condition`` none: no classes)."""
        return {"mode": ("major", "minor"), "none": ()}[self.condition]


@dataclasses.dataclass
class ModelConfig(config.RecurrentConfig):
    """The next-step network: an input embedding or projection, then the recurrent stack."""

    embedding_dim: int = option(0, "event embedding width (events) / input projection width (roll; 0 = none)",
                                at_least=0)
    input_dropout: float = option(0.0, "dropout on the (embedded) inputs", fraction=True)
    condition_dim: int = option(8, "width of the learned embedding of the class integer (data.condition), "
                                   "appended to every input step", at_least=1)


@dataclasses.dataclass
class GenerateConfig(config.Section):
    """The samples written after training (MIDI and piano-roll images)."""

    num_samples: int = option(8, "pieces generated after training per class of data.condition (half from nothing, "
                                 "half from held-out seeds of the class)", at_least=1)
    num_steps: int = option(64, "steps generated per piece", at_least=1)
    seed_steps: int = option(8, "steps of a held-out piece used as the seed of the seeded samples", at_least=0)
    temperature: float = option(1.0, "sampling temperature (0 = greedy)", at_least=0)
    top_k: int = option(0, "sample only among the k most likely pitches (roll) / events (events); 0 = all",
                        at_least=0)
    random_seed: int = option(7, "seed of the stateless sampler: the same seed gives the same music")
    tempo_bpm: float = option(90.0, "tempo of the MIDI and WAV files and of the served audio", at_least=1)


@dataclasses.dataclass
class ServingConfig(config.ServingConfig):
    """Bounds of ``serving_default(seed, num_steps, temperature, top_k, random_seed)`` and ``generate_audio``."""

    max_seed_steps: int = option(256, "longest seed the served signature accepts", at_least=0)
    max_generate_steps: int = option(1024, "largest num_steps the served signature accepts", at_least=1)
    max_request_steps: int = option(32768, "most steps in one request: seeds × (seed steps + num_steps) (a larger "
                                           "request is refused before any work)", at_least=1)
    max_request_audio_seconds: float = option(600.0, "most audio in one generate_audio request: pieces × their "
                                                     "length at generate.tempo_bpm, in seconds", at_least=1)


@dataclasses.dataclass
class MusicConfig(config.RecipeConfig):
    """JSB chorales as an 88-pitch piano roll on a quarter-note grid (the Boulanger-Lewandowski 2012 benchmark
    setting: four-part chorales, each in C major / C minor), one LSTM layer."""

    data: DataConfig = section(DataConfig, "corpus, grid and representation")
    model: ModelConfig = section(ModelConfig, "network", units=256)
    generate: GenerateConfig = section(GenerateConfig, "sampling after training")
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature")
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", epochs=100,
                                        batch_size=4, early_stopping_patience=8)

    def __post_init__(self):
        require(self.generate.num_steps <= self.serving.max_generate_steps, "generate.num_steps",
                self.generate.num_steps, f"must be <= serving.max_generate_steps ({self.serving.max_generate_steps})")
        require(self.generate.seed_steps <= self.serving.max_seed_steps, "generate.seed_steps",
                self.generate.seed_steps, f"must be <= serving.max_seed_steps ({self.serving.max_seed_steps})")
