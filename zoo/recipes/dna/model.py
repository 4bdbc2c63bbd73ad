"""The gene-structure network (DanQ style), window stitching, the in-graph base encoder and the serving signature.

Forward pass, one window of base ids `(batch, window)` (0 = padding): one-hot bases (N = ¼ each) ⊕ an embedding
of the k-mer starting at each base (codon usage) → `conv_layers` ×
Conv1D motif detectors (padding zeroed after each, so a padded batch computes what an unpadded one does) → max-pool
by `pool_size` → the shared ``RecurrentStack`` (BiLSTM) for long-range context (codon phase, splice-site pairing) at
1/`pool_size` of the base rate → repeated back to every base ⊕ the motif features (base-exact boundaries) → a
per-base hidden layer → emission scores of the 19 gene-grammar states (`grammar.STATES`: reading frame, strand,
stop codons), added to the counted Markov chains' content scores (`counted.ContentScores`) → ``SequenceTagger``'s
CRF, whose transitions the bases gate (`grammar.GeneGrammar`: start and stop codons, GT/GC…AG introns, no in-frame
stop) and the counted splice-site and start-codon models score (`counted.ScoredGrammar`), so every decoded path is
a valid gene structure.

Sequences of any length run as overlapping windows: each window keeps its centre, `margin` bases away from a cut,
and the CRF decodes the stitched scores of the whole sequence at once.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import PaddingMask, RecurrentStack
from zoo.models import SequenceTagger
from zoo.recipes.dna import counted, grammar
from zoo.recipes.dna.config import DataConfig, DnaConfig, ModelConfig, ServingConfig
from zoo.recipes.dna.data import BASE_IDS, EXON, LABELS, PAD_ID
from zoo.serving import at_most, gated, within_budget

ANNOTATION_LETTERS = ".EI"  # one letter per base in the served annotation string: intergenic, exon, intron


@keras.saving.register_keras_serializable(package="zoo")
class BaseOneHot(keras.layers.Layer):
    """Base ids `(batch, time)` (0 pad, 1..4 ACGT, 5 N) → float32 `(batch, time, 4)`: one-hot, N = 0.25 each,
    padding all zeros."""

    def call(self, ids):
        table = tf.constant([[0.0] * 4, *np.eye(4).tolist(), [0.25] * 4], tf.float32)
        return tf.gather(table, tf.cast(ids, tf.int32))

    def compute_output_spec(self, ids):
        return keras.KerasTensor(tuple(ids.shape) + (4,), dtype="float32")


@keras.saving.register_keras_serializable(package="zoo")
class KmerIds(keras.layers.Layer):
    """Base ids `(batch, time)` → int32 `(batch, time)` id of the k-mer starting at each base: 1 + its index among
    the 4^k k-mers over ACGT, or 0 when it runs past the end or holds N or padding. Codon usage, the signal a gene
    finder's coding model reads, is a k-mer statistic; an embedding of these ids hands it to the network directly.

    Args:
        k: int. Bases per k-mer.
    """

    def __init__(self, k=6, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def call(self, ids):
        return counted.kmer_ids(ids, self.k)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="zoo")
class ZeroPadded(keras.layers.Layer):
    """Features `(batch, time, d)` with padded steps set to zero, as 'same' convolutions see beyond the ends."""

    def call(self, x, mask):
        return x * tf.cast(mask, x.dtype)[:, :, tf.newaxis]

    def compute_output_spec(self, x, mask):
        return keras.KerasTensor(x.shape, dtype=x.dtype)


@keras.saving.register_keras_serializable(package="zoo")
class PooledSteps(keras.layers.Layer):
    """Max-pools `(batch, time, d)` by `pool_size` along time (the last pool may be partial) and returns the pooled
    mask: a pooled step is valid when any of its steps is. Inputs must be zero (and ≥ 0) at padded steps.

    Args:
        pool_size: int. Steps per pooled step.
    """

    def __init__(self, pool_size=4, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size

    def call(self, x, mask):
        time = tf.shape(x)[1]
        pooled_time = (time + self.pool_size - 1) // self.pool_size
        x = tf.pad(x, [[0, 0], [0, pooled_time * self.pool_size - time], [0, 0]])
        pooled = tf.nn.max_pool1d(x, self.pool_size, self.pool_size, "VALID")
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        pooled_mask = tf.sequence_mask((lengths + self.pool_size - 1) // self.pool_size, pooled_time)
        return pooled, pooled_mask

    def compute_output_spec(self, x, mask):
        time = None if x.shape[1] is None else -(-x.shape[1] // self.pool_size)
        return (keras.KerasTensor((x.shape[0], time, x.shape[2]), dtype=x.dtype),
                keras.KerasTensor((x.shape[0], time), dtype="bool"))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="zoo")
class RepeatedSteps(keras.layers.Layer):
    """Undoes `PooledSteps`' time scale: repeats each step `pool_size` times and crops to the length of `like`.

    Args:
        pool_size: int. Repeats per step.
    """

    def __init__(self, pool_size=4, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.supports_masking = True

    def call(self, x, like):
        return tf.repeat(x, self.pool_size, axis=1)[:, :tf.shape(like)[1]]

    def compute_mask(self, x, like, mask=None):
        return None  # the pooled mask does not fit the base rate; the tagger carries the base mask itself

    def compute_output_spec(self, x, like):
        return keras.KerasTensor((x.shape[0], like.shape[1], x.shape[2]), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


def build_encoder(cfg: ModelConfig) -> keras.Model:
    """Base ids `(batch, time)` → `[emissions (batch, time, K), mask (batch, time), step transitions (batch,
    time, K, K)]` over the K gene-grammar states."""
    ids = keras.Input(shape=(None,), dtype="int32", name="bases")
    mask = PaddingMask(PAD_ID, name="base_mask")(ids)
    x = BaseOneHot(name="one_hot")(ids)
    if cfg.kmer_dim:
        kmers = keras.layers.Embedding(4 ** cfg.kmer_size + 1, cfg.kmer_dim, name="kmer_embedding")(
            KmerIds(cfg.kmer_size, name="kmer_ids")(ids))
        kmers = ZeroPadded(name="kmer_zero_padded")(kmers, mask)  # as the one-hot: zeros beyond the end
        x = keras.layers.Concatenate(name="base_and_kmer")([x, kmers])
    for i in range(cfg.conv_layers):
        x = keras.layers.Conv1D(cfg.conv_filters, cfg.conv_kernel, padding="same", activation="relu",
                                name=f"motif_conv_{i}")(x)
        x = ZeroPadded(name=f"motif_zero_padded_{i}")(x, mask)
    motifs = x
    context, context_mask = x, mask
    if cfg.pool_size > 1:
        context, context_mask = PooledSteps(cfg.pool_size, name="pool")(x, mask)
    context = keras.layers.Dropout(cfg.dropout, name="motif_dropout")(context)
    context = RecurrentStack(cfg.cell, cfg.units, cfg.num_layers, bidirectional=True, dropout=cfg.dropout,
                             residual=cfg.residual, return_sequences=True,
                             name="recurrent_stack")(context, mask=context_mask)
    if cfg.pool_size > 1:
        context = RepeatedSteps(cfg.pool_size, name="unpool")(context, motifs)
    x = keras.layers.Concatenate(name="base_features")([motifs, context])
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    x = keras.layers.Dense(2 * cfg.units, activation="relu", name="hidden")(x)
    # With the counted models beneath it, the network starts at zero: training begins from the classical gene
    # finder's own scores and moves only where the likelihood says it helps.
    emissions = keras.layers.Dense(grammar.NUM_STATES, kernel_initializer="zeros" if cfg.content_order else
                                   "glorot_uniform", name="emissions")(x)
    if cfg.content_order:  # the network adds what the counted Markov chains miss
        content = counted.ContentScores(cfg.content_order, name="content_scores")(ids)
        emissions = keras.layers.Add(name="emissions_and_content")([emissions, content])
    gate = counted.ScoredGrammar if cfg.site_models else grammar.GeneGrammar
    return keras.Model(ids, [emissions, mask, gate(name="gene_grammar")(ids)], name="dna_encoder")


def fit_counted(tagger: SequenceTagger, records, cfg: ModelConfig) -> None:
    """Sets the counted content and site models of a built tagger from the training records' state paths."""
    if cfg.content_order:
        tagger.encoder.get_layer("content_scores").set_tables(counted.fit_content(records, cfg.content_order))
    if cfg.site_models:
        tagger.encoder.get_layer("gene_grammar").set_tables(counted.fit_sites(records))


def build_tagger(cfg: DnaConfig, min_intron: int = 1) -> SequenceTagger:
    """The network under the gene-grammar CRF, whose Viterbi path has no intron shorter than `min_intron` bases."""
    tagger = SequenceTagger(build_encoder(cfg.model), emission_loss_weight=cfg.model.emission_loss_weight,
                            min_durations=grammar.min_durations(min_intron), name="dna_tagger")
    tagger(tf.ones((1, 2), tf.int32))  # builds the head's weights before compile and save
    return tagger


def compile_tagger(tagger: SequenceTagger, cfg: DnaConfig) -> None:
    tagger.compile(optimizer=training.optimizer(cfg.train))


def windowed_emissions(encoder: keras.Model, ids, window: int, margin: int):
    """Emission scores `(batch, time, K)` of sequences of any length, computed window by window.

    Windows of `window` bases start every `window - 2 * margin` bases; each contributes its centre (bases at least
    `margin` from its cuts), the first also its head. Every window is right-padded, as the recurrent stack needs.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    batch, time = tf.shape(ids)[0], tf.shape(ids)[1]
    ids = tf.pad(ids, [[0, tf.maximum(1 - batch, 0)], [0, 0]])  # convolutions fail on an empty batch
    stride = window - 2 * margin
    count = tf.maximum((time - margin + stride - 1) // stride, 1)
    padded = tf.pad(ids, [[0, 0], [0, (count - 1) * stride + window - time]])
    windows = tf.reshape(tf.signal.frame(padded, window, stride, axis=1), [-1, window])
    emissions = encoder(windows, training=False)[0]
    emissions = tf.reshape(emissions, [tf.shape(ids)[0], count, window, -1])
    centres = tf.reshape(emissions[:, :, margin:margin + stride], [tf.shape(ids)[0], count * stride, -1])
    return tf.concat([emissions[:, 0, :margin], centres], axis=1)[:batch, :time]


def predict(tagger: SequenceTagger, ids, cfg: DataConfig):
    """Grammar states `(batch, time)` int32 (the Viterbi path; -1 at padding) and per-label probabilities `(batch,
    time, len(LABELS))` (posterior marginals summed over each label's states) of right-padded base ids."""
    ids = tf.convert_to_tensor(ids, tf.int32)
    emissions = windowed_emissions(tagger.encoder, ids, cfg.window, cfg.margin)
    mask = tf.not_equal(ids, PAD_ID)
    steps = tagger.encoder.get_layer("gene_grammar")(ids)  # on the whole sequence, with its site models
    states = tf.where(mask, tagger.decode(emissions, mask, steps), -1)
    label_of_state = tf.one_hot(grammar.LABEL_OF_STATE, len(LABELS))
    return states, tf.einsum("btk,kl->btl", tagger.probabilities(emissions, mask, steps), label_of_state)


def encode_bases(sequence, cfg: ServingConfig):
    """Strings `(batch,)` → right-padded base ids `(batch, time)` and lengths, in the graph; rejects any character
    but A, C, G, T, N (either case; lower case is soft-masking and reads like upper case), and bounds the input."""
    lengths = tf.strings.length(sequence)
    sequence, lengths = gated([
        at_most(tf.size(sequence), cfg.max_batch_size,
                f"batch too large: at most {cfg.max_batch_size} sequences per request"),
        at_most(tf.reduce_max(tf.concat([lengths, [0]], axis=0)), cfg.max_input_bases,
                f"sequence too long: at most {cfg.max_input_bases} bases per sequence (split longer ones)"),
        within_budget(tf.reduce_sum(tf.cast(lengths, tf.int64)), cfg.max_request_bases, "bases",
                      "max_request_bases"),
    ], sequence, lengths)
    valid = tf.strings.regex_full_match(sequence, "[ACGTNacgtn]*")
    # The offending characters go into the error, repaired to valid UTF-8 so that clients can decode it.
    bad = tf.strings.unicode_transcode(tf.boolean_mask(sequence, tf.logical_not(valid)), "UTF-8", "UTF-8",
                                       errors="replace", replacement_char=0xFFFD)
    bad = tf.strings.substr(tf.strings.regex_replace(bad, "[ACGTNacgtn]", ""), 0, 20, unit="UTF8_CHAR")
    with tf.control_dependencies([tf.debugging.Assert(
            tf.reduce_all(valid), ["sequence holds characters other than A, C, G, T, N (either case):", bad])]):
        codes = tf.strings.unicode_decode(sequence, "UTF-8", errors="replace").to_tensor(0)
    ids = tf.gather(tf.constant(BASE_IDS), tf.minimum(codes, len(BASE_IDS) - 1))
    return ids, lengths


def gene_structures(states, max_exons: int):
    """The exons of a state path `(batch, time)` (-1 at padding), in the graph: dict of `(batch, max_exons)`
    int32 tensors `exon_start`, `exon_end` (0-based half-open), `exon_strand` (+1 / -1), `exon_phase` (GFF3: bases
    before the first whole codon in the gene's direction), `exon_gene` (0-based number of the exon's gene in its
    sequence; a gene is a run of one strand's states) and `num_exons` `(batch,)`; as `grammar.genes_of`."""
    labels = tf.gather(tf.constant(grammar.LABEL_OF_STATE), tf.maximum(states, 0))
    exon = tf.pad(tf.cast(tf.equal(labels, EXON) & (states >= 0), tf.int32), [[0, 0], [1, 1]])
    change = exon[:, 1:] - exon[:, :-1]  # +1 where a run starts, -1 one past where it ends
    starts, ends = tf.where(tf.equal(change, 1)), tf.where(tf.equal(change, -1))
    half = len(grammar.PLUS)
    strand = tf.where(states <= 0, 0, tf.where(states <= half, 1, -1))
    previous = tf.pad(strand, [[0, 0], [1, 0]])[:, :-1]
    gene_number = tf.cumsum(tf.cast((strand != 0) & (strand != previous), tf.int32), axis=1) - 1
    batch = tf.shape(states, out_type=tf.int64)[0]

    def padded(values):
        ragged = tf.RaggedTensor.from_value_rowids(values, starts[:, 0], nrows=batch)
        return ragged[:, :max_exons].to_tensor(0, shape=[batch, max_exons])

    exon_strand = tf.gather_nd(strand, starts)
    first_base = tf.where(exon_strand[:, tf.newaxis] > 0, starts, tf.stack([ends[:, 0], ends[:, 1] - 1], axis=1))
    codon_position = (tf.gather_nd(states, first_base) - 1) % half
    counts = tf.math.bincount(tf.cast(starts[:, 0], tf.int32), minlength=tf.cast(batch, tf.int32),
                              maxlength=tf.cast(batch, tf.int32))
    return {"exon_start": padded(tf.cast(starts[:, 1], tf.int32)), "exon_end": padded(tf.cast(ends[:, 1], tf.int32)),
            "exon_strand": padded(exon_strand), "exon_phase": padded((3 - codon_position) % 3),
            "exon_gene": padded(tf.gather_nd(gene_number, starts)), "num_exons": tf.minimum(counts, max_exons)}


def make_serving_fn(tagger: SequenceTagger, cfg: DnaConfig):
    """The ``serving_default`` function: base strings in; per-base labels, probabilities and gene structures out."""
    letters = tf.constant(list(ANNOTATION_LETTERS))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sequence")])
    def serve(sequence):
        ids, lengths = encode_bases(sequence, cfg.serving)
        states, probabilities = predict(tagger, ids, cfg.data)
        labels = tf.where(states >= 0, tf.gather(tf.constant(grammar.LABEL_OF_STATE), tf.maximum(states, 0)), -1)
        annotation = tf.strings.reduce_join(
            tf.where(labels >= 0, tf.gather(letters, tf.maximum(labels, 0)), ""), axis=1)
        return {"labels": labels, "probabilities": probabilities, "lengths": lengths, "annotation": annotation,
                **gene_structures(states, cfg.serving.max_exons)}

    return serve
