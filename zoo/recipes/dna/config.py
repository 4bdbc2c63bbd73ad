"""Settings of the dna recipe. The defaults here are the default run; ``--help`` prints them."""

import dataclasses

from zoo import config
from zoo.config import option, require, section


@dataclasses.dataclass
class DataConfig(config.FileSourceConfig, files="your GenBank or GFF3 files with CDS features, plain or .gz"):
    """Where the annotated genes come from, and the windows the network reads."""

    SOURCES = ("augustus",)
    source: str = option("augustus", "augustus (offline: the AUGUSTUS tutorial's fly genes from Debian's "
                                     "augustus-doc)")
    validation_percent: int = option(10, "augustus: training records held out for early stopping (by a hash of the "
                                         "name)", at_least=0)
    window: int = option(2000, "bases per training window; served sequences run in windows of this size too",
                         at_least=1)
    margin: int = option(200, "context bases on each side of a window's kept centre when stitching windows",
                         at_least=0)
    reverse_complement: bool = option(True, "train on each record's reverse complement half the time (both strands)")

    def __post_init__(self):
        super().__post_init__()
        require(self.validation_percent < 100, "validation_percent", self.validation_percent, "must be < 100")
        require(2 * self.margin < self.window, "margin", self.margin, "must be < window / 2")


@dataclasses.dataclass
class ModelConfig(config.RecurrentConfig):
    """Counted content and site models and the DanQ-style network (Conv1D motif detectors, the recurrent stack)
    under the gene-structure CRF."""

    conv_filters: int = option(64, "motif detectors (Conv1D filters) per convolution layer", at_least=1)
    conv_kernel: int = option(19, "width in bases of every convolution", at_least=1)
    conv_layers: int = option(2, "stacked convolution layers of the motif front end", at_least=1)
    pool_size: int = option(4, "max-pool factor between the motif front end and the recurrent stack (1 = none)",
                            at_least=1)
    kmer_size: int = option(6, "bases per k-mer (codon usage: 6 = two codons) whose embedding joins each base's "
                               "one-hot input", choices=range(1, 9))
    kmer_dim: int = option(16, "size of the k-mer embedding (0: one-hot bases only)", at_least=0)
    content_order: int = option(4, "context bases of the counted Markov chains (coding by codon position, intron, "
                                   "intergenic) whose log-probabilities join the emission scores (0: none)",
                                choices=range(0, 7))
    site_models: bool = option(True, "add counted donor, acceptor and start-codon weight matrices' log-odds to the "
                                     "grammar's transitions")
    emission_loss_weight: float = option(0.0, "weight of the per-base cross-entropy of the emission scores added to "
                                              "the CRF loss (without the counted models it keeps early training off "
                                              "the all-intergenic path; with them it distorts their likelihoods)",
                                         at_least=0.0)
    min_intron_length: int = option(0, "shortest intron the decoder allows, in bases (0: the shortest intron of the "
                                       "training annotation; 1: no limit)", at_least=0)


@dataclasses.dataclass
class BaselineConfig(config.PeerConfig):
    """The k-mer logistic-regression baseline scored beside the model."""

    k: int = option(4, "longest k-mer counted (all k-mers of length 1..k; 4^k features per length)",
                    choices=range(1, 7))
    context: int = option(48, "bases counted on each side of the labelled base", at_least=1)
    train_bases: int = option(200000, "training bases sampled to fit the baseline", at_least=1)


@dataclasses.dataclass
class ServingConfig(config.ServingConfig):
    """Bounds of ``serving_default(sequence)``."""

    max_input_bases: int = option(15_000, "longest sequence the served signature accepts (longer: a clear error)",
                                  at_least=1)
    max_exons: int = option(256, "predicted exon intervals returned per served sequence", at_least=1)
    max_request_bases: int = option(15_000, "most bases in one request, all sequences together (a larger request "
                                             "is refused before any work)", at_least=1)


@dataclasses.dataclass
class DnaConfig(config.RecipeConfig):
    """AUGUSTUS tutorial fly genes, counted gene-finder scores + Conv1D motifs → BiLSTM → gene-structure CRF, a
    k-mer baseline beside it."""

    data: DataConfig = section(DataConfig, "data source and windows")
    model: ModelConfig = section(ModelConfig, "network", units=64, num_layers=2)
    baseline: BaselineConfig = section(BaselineConfig, "k-mer logistic-regression baseline")
    serving: ServingConfig = section(ServingConfig, "bounds of the served signature")
    train: config.TrainConfig = section(config.TrainConfig, "optimisation and run directory", epochs=3,
                                        batch_size=32, learning_rate=0.0003, early_stopping_patience=4)
