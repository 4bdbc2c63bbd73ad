"""The gene-structure grammar: reading-frame-aware states, the transitions the bases allow, and gene structures.

States (19): intergenic; on the plus strand coding bases `E0 E1 E2` (the base's position in its codon), introns
`I0 I1 I2` (the phase: the codon position of the next coding base) and the stop codon `S0 S1 S2` (outside the CDS,
as GenBank and GFF3 annotate it); the minus strand mirrors them. Plus-strand grammar, a transition into position `t`:

    intergenic → E0        bases[t:t+3] is ATG (the start codon)
    E0 → E1 → E2 → E0      (codons; E1 → E2 is forbidden when bases[t-2:t+1] is an in-frame stop)
    Ec → I(c+1)            bases[t:t+2] is GT or GC (donor)
    Ip → Ip, Ip → Ep       bases[t-2:t] is AG (acceptor)
    E2 → S0 → S1 → S2      bases[t:t+3] is TAA, TAG or TGA
    S2 → intergenic

A minus-strand gene is a plus-strand one read on the reverse complement: its transitions and signals are derived
from the plus ones (``mirror_transition``), never written by hand. Bases that are unknown (N, padding, beyond a
window's ends) satisfy every required signal and trigger no forbidden one, so a window cut through a gene keeps its
annotated path possible. A path the grammar allows is a valid gene structure; ``GeneGrammar`` turns base ids into
the per-step transition scores (0 allowed, -1e9 forbidden) that the CRF adds to its learned ones.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

LABELS = ("intergenic", "exon", "intron")  # the per-base labels a state path reads as
INTERGENIC, EXON, INTRON = range(len(LABELS))
BASES = "ACGTN"  # base ids 1..5; 0 is padding
PAD_ID = 0

PLUS = ("E0", "E1", "E2", "I0", "I1", "I2", "S0", "S1", "S2")
STATES = ("IG",) + tuple(f"+{s}" for s in PLUS) + tuple(f"-{s}" for s in PLUS)
IG = 0
NUM_STATES = len(STATES)
MIRROR = np.array([0] + [1 + len(PLUS) + i for i in range(len(PLUS))] + [1 + i for i in range(len(PLUS))])
LABEL_OF_STATE = np.array([INTERGENIC] + 2 * ([EXON] * 3 + [INTRON] * 3 + [INTERGENIC] * 3), np.int32)
INTRON_STATES = tuple(np.flatnonzero(LABEL_OF_STATE == INTRON).tolist())
FORBIDDEN = -1e9  # finite, so that no inf - inf reaches a gradient; far below any path's score

BASE_CODES = {base: BASES.index(base) + 1 for base in "ACGT"}  # 0 (padding) and N are unknown
UNKNOWN_N = BASES.index("N") + 1
STOPS = ("TAA", "TAG", "TGA")


def state(name: str) -> int:
    return STATES.index(name)


def exon_state(strand: int, codon_position: int) -> int:
    return 1 + (0 if strand > 0 else len(PLUS)) + codon_position


def intron_state(strand: int, phase: int) -> int:
    return 4 + (0 if strand > 0 else len(PLUS)) + phase


def stop_state(strand: int, position: int) -> int:
    return 7 + (0 if strand > 0 else len(PLUS)) + position


@dataclasses.dataclass(frozen=True)
class Signal:
    """Bases `[t + offset, t + offset + len)` spell one of `patterns`; `required` (else: forbidden when they do)."""

    offset: int
    patterns: tuple[str, ...]
    required: bool = True

    def mirrored(self) -> Signal:
        complement = str.maketrans("ACGT", "TGCA")
        size = len(self.patterns[0])
        return Signal(-self.offset - size, tuple(p.translate(complement)[::-1] for p in self.patterns),
                      self.required)


def _plus_transitions() -> list[tuple[int, int, Signal | None]]:
    e, i, s = (lambda c: exon_state(1, c)), (lambda p: intron_state(1, p)), (lambda c: stop_state(1, c))
    rules = [(IG, IG, None), (IG, e(0), Signal(0, ("ATG",))),
             (e(0), e(1), None), (e(1), e(2), Signal(-2, STOPS, required=False)), (e(2), e(0), None),
             (e(2), s(0), Signal(0, STOPS)), (s(0), s(1), None), (s(1), s(2), None), (s(2), IG, None)]
    for c in range(3):
        rules.append((e(c), i((c + 1) % 3), Signal(0, ("GT", "GC"))))
        rules.append((i(c), i(c), None))
        rules.append((i(c), e(c), Signal(-2, ("AG",))))
    return rules


def mirror_transition(rule):
    """The minus-strand twin of a plus-strand rule: read on the reverse complement, `a → b` becomes
    `mirror(b) → mirror(a)` and a signal at `[t + o, t + o + n)` becomes its reverse complement at `[t - o - n, t - o)`."""
    a, b, signal = rule
    return int(MIRROR[b]), int(MIRROR[a]), None if signal is None else signal.mirrored()


def transitions() -> list[tuple[int, int, Signal | None]]:
    """Every allowed transition `(from, to, signal or None)`, both strands (intergenic → intergenic once)."""
    plus = _plus_transitions()
    return plus + [mirror_transition(rule) for rule in plus if rule[:2] != (IG, IG)]


def allowed_matrix() -> np.ndarray:
    """bool `(K, K)`: transitions the grammar has at all, whatever the bases."""
    allowed = np.zeros((NUM_STATES, NUM_STATES), bool)
    for a, b, _ in transitions():
        allowed[a, b] = True
    return allowed


def signal_matches(ids, signal: Signal):
    """bool `(batch, time)`: does the signal hold at each step of base ids `(batch, time)`? Unknown bases (padding,
    N, beyond the ends) match any required pattern and no forbidden one."""
    ids = tf.cast(ids, tf.int32)
    size = len(signal.patterns[0])
    before, after = max(-signal.offset, 0), max(signal.offset + size, 0)
    padded = tf.pad(ids, [[0, 0], [before, after]])  # 0: unknown
    time = tf.shape(ids)[1]
    shifted = tf.stack([padded[:, before + signal.offset + k:before + signal.offset + k + time]
                        for k in range(size)], axis=-1)  # (batch, time, size)
    codes = tf.constant([[BASE_CODES[c] for c in p] for p in signal.patterns], tf.int32)  # (patterns, size)
    equal = tf.equal(shifted[:, :, tf.newaxis, :], codes)
    if signal.required:
        unknown = tf.logical_or(tf.equal(shifted, PAD_ID), tf.equal(shifted, UNKNOWN_N))[:, :, tf.newaxis, :]
        equal = tf.logical_or(equal, unknown)
    return tf.reduce_any(tf.reduce_all(equal, axis=-1), axis=-1)


def step_transitions(ids, signal_scores=None):
    """float32 `(batch, time, K, K)`: 0 where the grammar and the bases allow `from → to` into step `t`, else
    `FORBIDDEN` (step 0's entry is unused: nothing transitions into the first step). `signal_scores`, optional
    {Signal: float32 `(batch, time)`}, adds a score to every transition that signal gates (a splice-site model's
    log-odds)."""
    rules = [rule for rule in transitions() if rule[2] is not None]
    # A signal gates several transitions (a donor: one per phase); match each distinct one once.
    matched = {signal: signal_matches(ids, signal) for signal in dict.fromkeys(signal for _, _, signal in rules)}
    holds = tf.stack([matched[signal] if signal.required else tf.logical_not(matched[signal])
                      for _, _, signal in rules], axis=-1)
    placement = np.zeros((len(rules), NUM_STATES * NUM_STATES), np.float32)
    for row, (a, b, _) in enumerate(rules):
        placement[row, a * NUM_STATES + b] = 1.0
    static = np.where(allowed_matrix(), 0.0, FORBIDDEN).astype(np.float32).reshape(-1)
    blocked = tf.linalg.matmul(1.0 - tf.cast(holds, tf.float32), placement)  # 1 where a signal fails
    scores = static + FORBIDDEN * blocked
    if signal_scores:
        scored = [row for row, (_, _, signal) in enumerate(rules) if signal in signal_scores]
        extra = tf.stack([signal_scores[rules[row][2]] for row in scored], axis=-1)
        scores += tf.linalg.matmul(extra, placement[scored])
    return tf.reshape(scores, tf.concat([tf.shape(ids), [NUM_STATES, NUM_STATES]], axis=0))


@keras.saving.register_keras_serializable(package="zoo")
class GeneGrammar(keras.layers.Layer):
    """Base ids `(batch, time)` → per-step transition scores `(batch, time, K, K)` of the gene grammar (0 allowed,
    -1e9 forbidden), for a CRF over `STATES`. No weights."""

    def call(self, ids):
        return step_transitions(ids)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(tuple(ids.shape) + (NUM_STATES, NUM_STATES), dtype="float32")


def gene_states(length: int, coding: list[tuple[list[tuple[int, int]], int]]) -> np.ndarray:
    """int8 states `(length,)` of annotated coding sequences, each ``(parts, strand)`` with 0-based half-open parts
    of one CDS (stop codon excluded, as annotated). The 3 bases after a CDS (in its direction) are its stop codon.
    A CDS overlapping one placed before it is skipped."""
    states = np.zeros(length, np.int8)
    for parts, strand in coding:
        strand = -1 if strand < 0 else 1
        parts = sorted(parts)
        if strand < 0:  # plus-strand logic on the reverse complement's coordinates
            parts = sorted((length - end, length - start) for start, end in parts)
        path = np.zeros(length, np.int8)
        coded = 0
        for number, (start, end) in enumerate(parts):
            if number:
                path[parts[number - 1][1]:start] = intron_state(1, coded % 3)
            path[start:end] = [exon_state(1, (coded + k) % 3) for k in range(end - start)]
            coded += end - start
        stop = parts[-1][1]
        path[stop:stop + 3] = [stop_state(1, k) for k in range(min(3, length - stop))]
        if strand < 0:
            path = MIRROR[path[::-1]].astype(np.int8)
        if np.any((states != IG) & (path != IG)):
            continue
        states = np.where(path != IG, path, states).astype(np.int8)
    return states


def log_frequencies(paths: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """An HMM's estimate from annotated state paths: `(K, K)` log P(next state | state) over the allowed transitions
    (add-one smoothed; 0 where the grammar forbids, as the gates mask those) and `(K,)` log P(state).

    The CRF starts from these: a gene-structure change costs what its rarity says (exon → intron about -5 nats)
    from the first step, where learning that scale from zero-initialised scores at a small learning rate would
    take thousands of steps, and Viterbi meanwhile cuts exons into fragments."""
    allowed = allowed_matrix()
    counts = allowed.astype(np.float64)
    states = np.ones(NUM_STATES)
    for path in paths:
        path = np.asarray(path, np.int64)
        np.add.at(counts, (path[:-1], path[1:]), allowed[path[:-1], path[1:]])
        states += np.bincount(path, minlength=NUM_STATES)
    transitions = np.log(np.where(allowed, counts, 1.0) / counts.sum(axis=1, keepdims=True)) * allowed
    return transitions.astype(np.float32), np.log(states / states.sum()).astype(np.float32)


def shortest_intron(paths: list[np.ndarray]) -> int:
    """The shortest annotated intron (a run of one intron state inside a path, not cut by its ends) of the state
    paths; 1 when they hold none."""
    lengths = [end - start for path in paths for state in INTRON_STATES
               for start, end in runs(np.asarray(path) == state) if start > 0 and end < len(path)]
    return min(lengths, default=1)


def min_durations(min_intron: int) -> tuple[int, ...]:
    """The decoder's shortest run of each state (`CRF(min_durations=...)`): `min_intron` bases for the intron
    states, 1 for the others (exon and stop states advance every base by construction)."""
    return tuple(min_intron if s in INTRON_STATES else 1 for s in range(NUM_STATES))


def path_violations(ids: np.ndarray, states: np.ndarray) -> list[int]:
    """Steps `t` whose transition `states[t-1] → states[t]` the grammar forbids on these base ids."""
    ids, states = np.asarray(ids, np.int32)[np.newaxis], np.asarray(states)
    before, after = states[:-1], states[1:]
    bad = set((np.flatnonzero(~allowed_matrix()[before, after]) + 1).tolist())
    for a, b, signal in transitions():
        steps = np.flatnonzero((before == a) & (after == b)) + 1
        if signal is not None and steps.size:
            holds = signal_matches(ids, signal).numpy()[0]
            bad.update(steps[holds[steps] != signal.required].tolist())
    return sorted(bad)


@dataclasses.dataclass(frozen=True)
class GeneStructure:
    """One gene of a state path: its strand (+1 / -1) and coding exons `(start, end, phase)`, 0-based half-open,
    in sequence order; phase as in GFF3 (bases before the first whole codon, read in the gene's direction)."""

    strand: int
    exons: tuple[tuple[int, int, int], ...]

    def intervals(self) -> tuple[tuple[int, int], ...]:
        return tuple((start, end) for start, end, _ in self.exons)


def genes_of(states: np.ndarray) -> list[GeneStructure]:
    """The gene structures of a state path: maximal stretches of one strand's states (a gene cut by the sequence's
    end counts as a partial gene)."""
    states = np.asarray(states)
    strand = np.where(states == IG, 0, np.where(states <= len(PLUS), 1, -1))
    genes = []
    t = 0
    while t < len(states):
        if strand[t] == 0:
            t += 1
            continue
        end = t
        while end < len(states) and strand[end] == strand[t]:
            end += 1
        exons = []
        for start, stop in runs(LABEL_OF_STATE[states[t:end]] == EXON):
            first = states[t + start] if strand[t] > 0 else states[t + stop - 1]
            codon_position = (int(first) - 1) % len(PLUS)
            exons.append((t + start, t + stop, (3 - codon_position) % 3))
        if exons:
            genes.append(GeneStructure(int(strand[t]), tuple(exons)))
        t = end
    return genes


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal `[start, end)` runs of True in a bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
