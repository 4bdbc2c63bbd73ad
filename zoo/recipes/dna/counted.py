"""A classical gene finder's scores, counted from the training genes: content and splice-site models.

What makes an HMM gene finder (AUGUSTUS, GENSCAN) place exon edges base-exactly on a few hundred genes is not a
large network but two counted models that its state path sums:

- **Content**: an order-`k` Markov chain per region — coding bases by codon position (3-periodic), intron,
  intergenic — giving each base log P(base | the k bases before it, region). Summed along a path, a candidate exon
  is scored by how codon-like all of its bases are in the frame the path gives it.
- **Signals**: position weight matrices around the donor (GT), the acceptor (AG) and the start codon, as log-odds
  against the same consensus at positions that are not sites, added to the grammar's transition into the site.

Both are fitted here by counting (add-one smoothed) on the training state paths, read on both strands, and served
as fixed tables of `ContentScores` and `ScoredGrammar`, each scaled by one trained weight, so the network under the
CRF learns what they miss.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from zoo.recipes.dna import data, grammar

# Content classes of the plus-strand states: coding by codon position, intron, everything else.
CODING, INTRON_CLASS, OTHER = (0, 1, 2), 3, 4
NUM_CLASSES = 5


def _class_of_plus_state() -> np.ndarray:
    classes = np.full(grammar.NUM_STATES, -1, np.int32)  # -1: a minus-strand state
    classes[grammar.IG] = OTHER
    for c in range(3):
        classes[grammar.exon_state(1, c)] = CODING[c]
        classes[grammar.intron_state(1, c)] = INTRON_CLASS
        classes[grammar.stop_state(1, c)] = OTHER
    return classes


CLASS_OF_PLUS_STATE = _class_of_plus_state()
# The counted scores enter the CRF through trained weights, one per content class and per site model (counted
# log-odds are right for an HMM, not for the discriminative CRF: the sites are worth about 1.5 times their counted
# log-odds there). Adam moves a weight by about the learning rate per step, and these few must move by tenths
# within an epoch, so each is kept as log(weight) / SCALE_SPEED.
SCALE_SPEED = 25.0


@dataclasses.dataclass(frozen=True)
class SiteModel:
    """A position weight matrix over bases `[t + offset, t + offset + width)` around the transition into step `t`
    gated by `signal` (a plus-strand ``grammar.Signal``)."""

    name: str
    signal: grammar.Signal
    offset: int
    width: int


SITES = (
    # Window sizes chosen on the validation genes (acceptor -22..+3 → -40..+3: exon Sn/Sp 0.63/0.69 → 0.66/0.72).
    SiteModel("donor", grammar.Signal(0, ("GT", "GC")), -4, 12),  # last 4 exon bases, GT, 6 intron bases
    SiteModel("acceptor", grammar.Signal(-2, ("AG",)), -40, 43),  # branch point, pyrimidine tract, AG, 3 exon bases
    SiteModel("start", grammar.Signal(0, ("ATG",)), -8, 14),  # Kozak context, ATG, the next codon
)


def _is_site(site: SiteModel, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """bool: plus-strand transitions `before → after` into each step that this site gates."""
    rules = [(a, b) for a, b, signal in grammar.transitions() if signal == site.signal]
    return np.any([(before == a) & (after == b) for a, b in rules], axis=0)


def _readings(records):
    """(ids, states) of each record on both strands: a minus-strand gene is a plus-strand one on the reverse
    complement."""
    for record in records:
        ids, states = data.encode(record.sequence), np.asarray(record.states, np.int32)
        yield ids, states
        yield tuple(t.numpy() for t in data.reverse_complement(ids, states))


def kmer_codes(ids: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (0..4^size-1, first base most significant) of the `size`-mers starting at each of the first
    `len(ids) - size + 1` base ids (1..4 ACGT, 5 N), and whether each holds only ACGT."""
    count = max(len(ids) - size + 1, 0)
    codes, valid = np.zeros(count, np.int64), np.ones(count, bool)
    for offset in range(size):
        part = ids[offset:offset + count].astype(np.int64) - 1
        codes, valid = codes * 4 + np.clip(part, 0, 3), valid & (part >= 0) & (part <= 3)
    return codes, valid


def kmer_index(ids: np.ndarray, size: int) -> np.ndarray:
    """Index (0..4^size-1) of the `size`-mer ending at each base, -1 where it would hold N or run past the start."""
    codes, valid = kmer_codes(ids, size)
    index = np.full(len(ids), -1, np.int64)
    index[size - 1:] = np.where(valid, codes, -1)
    return index


def kmer_ids(ids, k: int):
    """int32 `(batch, time)`: 1 + the index among the 4^k k-mers over ACGT (first base most significant) of the
    k-mer starting at each base of base ids `(batch, time)`, or 0 when it runs past the end or holds N or padding."""
    ids = tf.cast(ids, tf.int32)
    padded = tf.pad(ids, [[0, 0], [0, k - 1]])
    time = tf.shape(ids)[1]
    index, valid = tf.zeros_like(ids), tf.ones_like(ids, tf.bool)
    for offset in range(k):
        base = padded[:, offset:offset + time]
        valid = valid & (base >= 1) & (base <= 4)
        index = index * 4 + tf.clip_by_value(base - 1, 0, 3)
    return tf.where(valid, index + 1, 0)


def fit_content(records, order: int) -> np.ndarray:
    """float32 `(NUM_CLASSES, 4^(order+1))`: log P(last base | the `order` before it, class) of each (order+1)-mer,
    counted on the plus-strand readings of the training paths (add-one smoothed)."""
    counts = np.ones((NUM_CLASSES, 4 ** (order + 1)))
    for ids, states in _readings(records):
        index, classes = kmer_index(ids, order + 1), CLASS_OF_PLUS_STATE[states]
        keep = (index >= 0) & (classes >= 0)
        np.add.at(counts, (classes[keep], index[keep]), 1)
    contexts = counts.reshape(NUM_CLASSES, -1, 4)
    return np.log(contexts / contexts.sum(axis=-1, keepdims=True)).reshape(NUM_CLASSES, -1).astype(np.float32)


def reverse_complement_table(table: np.ndarray, size: int) -> np.ndarray:
    """The table re-indexed so that entry `i` holds the value of the reverse complement of `size`-mer `i`: read
    on the minus strand, the (order+1)-mer *starting* at a base is the plus table's one ending there."""
    digits = (np.arange(4 ** size)[:, None] // 4 ** np.arange(size)) % 4  # digit j: base j from the end
    rc_index = ((3 - digits[:, ::-1]) * 4 ** np.arange(size)).sum(axis=1)
    return table[..., rc_index]


def fit_sites(records) -> dict[str, np.ndarray]:
    """float32 `(width, 4)` log-odds per site: base frequencies at true sites over those at the same consensus
    elsewhere (add-one smoothed)."""
    counts = {site.name: (np.ones((site.width, 4)), np.ones((site.width, 4))) for site in SITES}  # true, other
    for ids, states in _readings(records):
        for site in SITES:
            holds = grammar.signal_matches(ids[np.newaxis], site.signal).numpy()[0]
            is_site = np.zeros(len(ids), bool)
            is_site[1:] = _is_site(site, states[:-1], states[1:])
            for site_counts, chosen in zip(counts[site.name], (is_site, holds & ~is_site)):
                positions = np.flatnonzero(chosen & (np.arange(len(ids)) > 0))
                window = positions[:, None] + site.offset + np.arange(site.width)
                inside = (window >= 0) & (window < len(ids))
                bases = np.where(inside, ids[np.clip(window, 0, len(ids) - 1)], 0)
                known = (bases >= 1) & (bases <= 4)
                np.add.at(site_counts, (np.broadcast_to(np.arange(site.width), bases.shape)[known], bases[known] - 1),
                          1)
    return {name: (np.log(true / true.sum(1, keepdims=True)) - np.log(other / other.sum(1, keepdims=True))).astype(
        np.float32) for name, (true, other) in counts.items()}


def window_scores(ids, table, offset: int):
    """float32 `(batch, time)`: sum of `table[k, base at t + offset + k]` (unknown bases and beyond the ends add 0),
    a 'valid' convolution of the one-hot bases with the table."""
    width = table.shape[0]
    one_hot = tf.one_hot(tf.cast(ids, tf.int32) - 1, 4)  # pad (-1) and N (4) are all zeros
    left, right = max(-offset, 0), max(offset + width, 0)
    padded = tf.pad(one_hot, [[0, 0], [left, right], [0, 0]])
    scores = tf.nn.conv1d(padded, tf.reshape(tf.cast(table, tf.float32), [width, 4, 1]), 1, "VALID")[..., 0]
    start = offset + left
    return scores[:, start:start + tf.shape(ids)[1]]


def site_scores(ids, tables: dict):
    """{grammar.Signal: float32 `(batch, time)`} log-odds of each site model, for its plus-strand signal and the
    minus-strand mirror (the reverse-complemented table over the mirrored window), for ``step_transitions``."""
    scores = {}
    for site in SITES:
        table = tables[site.name]
        scores[site.signal] = window_scores(ids, table, site.offset)
        rc_table = tf.reverse(tf.reverse(table, [0]), [1])  # bases reversed; A↔T, C↔G is the column order reversed
        scores[site.signal.mirrored()] = window_scores(ids, rc_table, -site.offset - site.width)
    return scores


@keras.saving.register_keras_serializable(package="zoo")
class ContentScores(keras.layers.Layer):
    """Base ids `(batch, time)` → float32 `(batch, time, K)`: per state, the log-probability of each base under its
    region's counted Markov chain (`fit_content`) times a trained weight per region (1 at first), 0 where the
    (order+1)-mer holds N or padding. Plus-strand states read the (order+1)-mer ending at the base, minus-strand ones
    the reverse complement of the one starting there. The tables are fixed (set from counts), not trained.

    Args:
        order: int. Bases of context of each Markov chain.
    """

    def __init__(self, order=4, **kwargs):
        super().__init__(**kwargs)
        self.order = order

    def build(self, input_shape):
        size = 4 ** (self.order + 1)
        self.plus = self.add_weight(name="plus", shape=(NUM_CLASSES, size), initializer="zeros", trainable=False)
        self.minus = self.add_weight(name="minus", shape=(NUM_CLASSES, size), initializer="zeros", trainable=False)
        self.log_weights = self.add_weight(name="log_weights", shape=(NUM_CLASSES,), initializer="zeros")

    def set_tables(self, table: np.ndarray) -> None:
        self.plus.assign(table)
        self.minus.assign(reverse_complement_table(table, self.order + 1))

    def call(self, ids):
        starting = kmer_ids(ids, self.order + 1)  # 1 + index, 0 where unknown: the minus strand's
        ending = tf.pad(starting, [[0, 0], [self.order, 0]])[:, :tf.shape(ids)[1]]  # the plus strand's
        weights = tf.exp(SCALE_SPEED * self.log_weights)

        def scores(table, kmers):
            return tf.gather(tf.transpose(table), tf.maximum(kmers - 1, 0)) * tf.cast(kmers > 0, tf.float32)[
                ..., tf.newaxis] * weights

        plus, minus = scores(self.plus, ending), scores(self.minus, starting)
        classes = CLASS_OF_PLUS_STATE
        mirrored = CLASS_OF_PLUS_STATE[grammar.MIRROR]
        columns = [plus[..., classes[s]] if classes[s] >= 0 else minus[..., mirrored[s]]
                   for s in range(grammar.NUM_STATES)]
        return tf.stack(columns, axis=-1)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(tuple(ids.shape) + (grammar.NUM_STATES,), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "order": self.order}


@keras.saving.register_keras_serializable(package="zoo")
class ScoredGrammar(keras.layers.Layer):
    """``grammar.GeneGrammar`` with the counted site models: base ids `(batch, time)` → per-step transition scores
    `(batch, time, K, K)`, -1e9 where the grammar forbids, else the log-odds of the donor, acceptor or start site
    the transition enters, times a trained weight per site (1 at first; both strands; 0 for ungated ones). The
    tables are fixed (set from counts by `set_tables`)."""

    def build(self, input_shape):
        self.tables = {site.name: self.add_weight(name=site.name, shape=(site.width, 4), initializer="zeros",
                                                  trainable=False) for site in SITES}
        self.log_weights = self.add_weight(name="log_weights", shape=(len(SITES),), initializer="zeros")

    def set_tables(self, tables: dict[str, np.ndarray]) -> None:
        for name, table in tables.items():
            self.tables[name].assign(table)

    def call(self, ids):
        weights = tf.exp(SCALE_SPEED * self.log_weights)
        return grammar.step_transitions(ids, site_scores(ids, {site.name: self.tables[site.name] * weights[i]
                                                               for i, site in enumerate(SITES)}))

    def compute_output_spec(self, ids):
        return keras.KerasTensor(tuple(ids.shape) + (grammar.NUM_STATES, grammar.NUM_STATES), dtype="float32")
