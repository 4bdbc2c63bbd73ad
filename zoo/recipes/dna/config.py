"""Settings of the dna recipe; defaults live in ``recipes/dna/default.toml``."""

import dataclasses

from zoo.config import ExportConfig, TrainConfig, one_of, option, require, require_at_least, section

SOURCES = ("augustus", "genbank")


@dataclasses.dataclass
class DataConfig:
    source: str = option("augustus", "augustus (offline: the AUGUSTUS tutorial's fly genes from Debian's augustus-doc)"
                                     " | genbank (your own GenBank files with CDS features: data.train_path/test_path)")
    train_path: str = option("", "genbank source: GenBank file of the training records (plain or .gz)")
    test_path: str = option("", "genbank source: GenBank file of the held-out test records (plain or .gz)")
    validation_percent: int = option(10, "training records held out for early stopping (by a hash of the name)")
    window: int = option(2000, "bases per training window; served sequences run in windows of this size too")
    margin: int = option(200, "context bases on each side of a window's kept centre when stitching windows")
    reverse_complement: bool = option(True, "train on each record's reverse complement half the time (both strands)")
    max_input_bases: int = option(200000, "longest sequence the served signature accepts (longer: a clear error)")
    max_batch_size: int = option(64, "largest batch the served signature accepts")
    max_exons: int = option(256, "predicted exon intervals returned per served sequence")

    def __post_init__(self):
        one_of("data.source", self.source, SOURCES)
        if self.source == "genbank":
            require(bool(self.train_path and self.test_path), "data.train_path/test_path",
                    (self.train_path, self.test_path), "must both name GenBank files for source 'genbank'")
        require(0 <= self.validation_percent < 100, "data.validation_percent", self.validation_percent,
                "must be in [0, 100)")
        require_at_least("data", self, ("window", "max_input_bases", "max_batch_size", "max_exons"))
        require(0 <= 2 * self.margin < self.window, "data.margin", self.margin, "must be >= 0 and < window / 2")


@dataclasses.dataclass
class ModelConfig:
    conv_filters: int = option(128, "motif detectors (Conv1D filters) per convolution layer")
    conv_kernel: int = option(19, "width in bases of every convolution")
    conv_layers: int = option(2, "stacked convolution layers of the motif front end")
    pool_size: int = option(4, "max-pool factor between the motif front end and the recurrent stack (1 = none)")
    cell: str = option("lstm", "recurrent cell: lstm | gru | rnn")
    units: int = option(64, "units per recurrent layer and direction")
    num_layers: int = option(2, "stacked bidirectional recurrent layers")
    dropout: float = option(0.2, "dropout after the front end, between recurrent layers and before the head")
    head: str = option("crf", "output head: crf (Viterbi path, forward-backward probabilities) | softmax")

    def __post_init__(self):
        one_of("model.cell", self.cell, ("lstm", "gru", "rnn"))
        one_of("model.head", self.head, ("crf", "softmax"))
        require_at_least("model", self, ("conv_filters", "conv_kernel", "conv_layers", "pool_size", "units",
                                         "num_layers"))
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


@dataclasses.dataclass
class BaselineConfig:
    enabled: bool = option(True, "also fit and score the k-mer logistic-regression baseline")
    k: int = option(4, "longest k-mer counted (all k-mers of length 1..k)")
    context: int = option(48, "bases counted on each side of the labelled base")
    train_bases: int = option(200000, "training bases sampled to fit the baseline")

    def __post_init__(self):
        require_at_least("baseline", self, ("k", "context", "train_bases"))
        require(self.k <= 6, "baseline.k", self.k, "must be <= 6 (4^k features per length)")


@dataclasses.dataclass
class DnaConfig:
    data: DataConfig = section(DataConfig, "data source, windows and serving bounds")
    model: ModelConfig = section(ModelConfig, "network")
    baseline: BaselineConfig = section(BaselineConfig, "k-mer logistic-regression baseline")
    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


RECIPE_CONFIG = DnaConfig
