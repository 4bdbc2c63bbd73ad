"""dna's gene-structure grammar: allowed paths by brute force, exact decoding of a hand-made gene, the scoring."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.layers.crf import crf_log_partition, crf_viterbi_decode
from zoo.recipes.dna import data, grammar, model
from zoo.recipes.dna.accuracy import gene_finder_accuracy
from zoo.recipes.dna.grammar import GeneStructure, state

K = grammar.NUM_STATES
CHUNKS = ["ATG", "GT", "AG", "TAA", "TGA", "A", "C", "G", "T", "N"]  # signal-rich random sequences

# flank | ATG AAA C | GT intron AG | CC TTT TAG-free codons | TAA | flank: a two-exon plus-strand gene.
FLANK = "CCCCACCCAC"
EXON_1 = "ATGAAAC"  # 7 coding bases: the intron falls after codon position 0 (phase 1)
INTRON = "GTAAGTTTTTTCAG"
EXON_2 = "CCTTTGCA"  # 8 coding bases: 7 + 8 = 15, whole codons
GENE = FLANK + EXON_1 + INTRON + EXON_2 + "TAA" + FLANK
EXONS = ((10, 17), (31, 39))


def _random_sequence(rng, length):
    pieces = "".join(rng.choice(CHUNKS) for _ in range(length))
    return pieces[:length]


def _allowed_paths(scores, length):
    """Every state path of `length` steps whose transitions the per-step scores allow (depth-first)."""
    allowed = scores > grammar.FORBIDDEN / 2
    paths = [[s] for s in range(K)]
    for t in range(1, length):
        paths = [p + [b] for p in paths for b in np.flatnonzero(allowed[t, p[-1]])]
    return paths


def test_every_transition_has_a_mirror_and_signals_mirror_to_reverse_complements():
    rules = grammar.transitions()
    assert len({(a, b) for a, b, _ in rules}) == len(rules)
    for a, b, signal in rules:
        twin = next(r for r in rules if r[:2] == (grammar.MIRROR[b], grammar.MIRROR[a]))
        assert (twin[2] is None) == (signal is None)
        if signal is not None:
            assert twin[2].mirrored() == signal  # mirroring twice is the identity
    acceptor = next(s for a, b, s in rules if (a, b) == (state("-E0"), state("-I0")))
    assert acceptor.offset == 0 and acceptor.patterns == ("CT",)  # AG read backwards on the other strand


@pytest.mark.parametrize("seed", range(3))
def test_viterbi_and_log_partition_match_brute_force_over_the_allowed_paths(seed):
    rng = np.random.default_rng(seed)
    length = 7
    ids = data.encode(_random_sequence(rng, length))[np.newaxis]
    steps = grammar.step_transitions(ids).numpy()
    emissions = rng.normal(size=(1, length, K)).astype(np.float32) * 2
    transitions, start, end = (rng.normal(size=s).astype(np.float32) for s in ((K, K), (K,), (K,)))
    paths = _allowed_paths(steps[0], length)
    scores = np.array([start[p[0]] + end[p[-1]] + emissions[0, range(length), p].sum()
                       + sum(transitions[a, b] for a, b in zip(p[:-1], p[1:])) for p in paths])
    decoded = crf_viterbi_decode(emissions, None, transitions, start, end, steps)[0].numpy()[0]
    assert decoded.tolist() == paths[int(scores.argmax())]
    log_z = crf_log_partition(emissions, None, transitions, start, end, steps).numpy()[0]
    np.testing.assert_allclose(log_z, np.logaddexp.reduce(scores), rtol=1e-5)


def test_no_decoded_path_breaks_the_grammar_on_random_emissions():
    rng = np.random.default_rng(0)
    ids = np.stack([data.encode(_random_sequence(rng, 400)) for _ in range(6)])
    emissions = rng.normal(size=(6, 400, K)).astype(np.float32) * 4
    transitions, start, end = (rng.normal(size=s).astype(np.float32) for s in ((K, K), (K,), (K,)))
    decoded = crf_viterbi_decode(emissions, None, transitions, start, end, grammar.step_transitions(ids))[0]
    assert len({s for row in decoded.numpy() for s in row}) > 5  # paths leave intergenic
    for row_ids, states in zip(ids, decoded.numpy()):
        assert grammar.path_violations(row_ids, states) == []


def test_annotated_states_follow_the_reading_frame_and_the_mirror():
    states = grammar.gene_states(len(GENE), [(list(EXONS), 1)])
    names = [grammar.STATES[s] for s in states]
    assert names[10:13] == ["+E0", "+E1", "+E2"] and names[16:18] == ["+E0", "+I1"]
    assert names[30:32] == ["+I1", "+E1"] and names[39:42] == ["+S0", "+S1", "+S2"] and names[42] == "IG"
    assert grammar.path_violations(data.encode(GENE), states) == []
    assert grammar.genes_of(states) == [GeneStructure(1, ((10, 17, 0), (31, 39, 2)))]
    # The same gene annotated on the reverse complement: the mirrored states, reversed.
    length = len(GENE)
    minus = grammar.gene_states(length, [([(length - e, length - s) for s, e in EXONS], -1)])
    np.testing.assert_array_equal(minus, grammar.MIRROR[states[::-1]])
    ids, mirrored = data.reverse_complement(tf.constant(data.encode(GENE)), tf.constant(states, tf.int32))
    np.testing.assert_array_equal(mirrored.numpy(), minus)
    assert grammar.path_violations(ids.numpy(), minus) == []
    assert grammar.genes_of(minus) == [GeneStructure(-1, ((length - 39, length - 31, 2), (length - 17, length - 10, 0)))]


def test_a_hand_made_two_exon_gene_is_decoded_exactly_on_either_strand():
    states = grammar.gene_states(len(GENE), [(list(EXONS), 1)])
    ids, minus = data.reverse_complement(tf.constant(data.encode(GENE)), tf.constant(states, tf.int32))
    ids = np.stack([data.encode(GENE), ids.numpy()])
    gold = np.stack([states, minus.numpy()])
    # Emissions that favour the gold path only weakly and blur its edges: the grammar must place them.
    rng = np.random.default_rng(0)
    emissions = np.eye(K, dtype=np.float32)[gold] * 1.0 + rng.normal(size=(2, len(GENE), K)).astype(np.float32) * 0.3
    zeros = [np.zeros(s, np.float32) for s in ((K, K), (K,), (K,))]
    decoded = crf_viterbi_decode(emissions, None, *zeros, grammar.step_transitions(ids))[0].numpy()
    np.testing.assert_array_equal(decoded, gold)
    served = model.gene_structures(tf.constant(decoded), max_exons=4)
    assert served["num_exons"].numpy().tolist() == [2, 2]
    assert served["exon_start"].numpy()[0].tolist()[:2] == [10, 31]
    assert served["exon_end"].numpy()[0].tolist()[:2] == [17, 39]
    assert served["exon_phase"].numpy()[0].tolist()[:2] == [0, 2]
    assert served["exon_strand"].numpy().tolist() == [[1, 1, 0, 0], [-1, -1, 0, 0]]
    for row in range(2):
        genes = grammar.genes_of(decoded[row])
        got = [(int(served["exon_start"][row, i]), int(served["exon_end"][row, i]), int(served["exon_phase"][row, i]))
               for i in range(2)]
        assert got == list(genes[0].exons)
        assert served["exon_gene"].numpy()[row].tolist()[:2] == [0, 0]


def test_the_decoder_keeps_introns_at_least_as_long_as_the_shortest_training_intron():
    states = grammar.gene_states(len(GENE), [(list(EXONS), 1)])
    intron = EXONS[1][0] - EXONS[0][1]
    assert grammar.shortest_intron([states, np.zeros(9, np.int8)]) == intron
    assert grammar.shortest_intron([np.zeros(9, np.int8)]) == 1
    ids = data.encode(GENE)[np.newaxis]
    emissions = np.eye(K, dtype=np.float32)[states[np.newaxis]] * 2.0
    zeros = [np.zeros(s, np.float32) for s in ((K, K), (K,), (K,))]
    steps = grammar.step_transitions(ids)
    exact = crf_viterbi_decode(emissions, None, *zeros, steps, grammar.min_durations(intron))[0].numpy()
    np.testing.assert_array_equal(exact[0], states)
    # One base more than the gene's intron: the decoder must find another path that the grammar allows.
    longer = crf_viterbi_decode(emissions, None, *zeros, steps, grammar.min_durations(intron + 1))[0].numpy()[0]
    assert grammar.path_violations(ids[0], longer) == []
    assert all(end - start > intron for s in grammar.INTRON_STATES for start, end in grammar.runs(longer == s))
    # Random emissions over random bases: still grammatical, no short intron inside a sequence.
    rng = np.random.default_rng(1)
    ids = np.stack([data.encode(_random_sequence(rng, 300)) for _ in range(4)])
    emissions = rng.normal(size=(4, 300, K)).astype(np.float32) * 4
    decoded = crf_viterbi_decode(emissions, None, *zeros, grammar.step_transitions(ids), grammar.min_durations(25))
    inner = []
    for row_ids, path in zip(ids, decoded[0].numpy()):
        assert grammar.path_violations(row_ids, path) == []
        inner += [end - start for s in grammar.INTRON_STATES for start, end in grammar.runs(path == s)
                  if 0 < start and end < len(path)]
    assert len(inner) > 5 and min(inner) >= 25  # (with no limit, these paths hold 1-base introns)


def test_served_structures_number_genes_and_skip_padding():
    plus = grammar.gene_states(len(GENE), [(list(EXONS), 1)])
    two = np.concatenate([plus, grammar.MIRROR[plus[::-1]], [-1] * 5]).astype(np.int32)
    served = model.gene_structures(tf.constant(two[np.newaxis]), max_exons=3)
    assert served["num_exons"].numpy().tolist() == [3]  # four exons, capped
    assert served["exon_gene"].numpy()[0].tolist() == [0, 0, 1]
    assert served["exon_strand"].numpy()[0].tolist() == [1, 1, -1]


def test_gene_finder_accuracy_on_a_hand_worked_example():
    annotated = [[GeneStructure(1, ((0, 10, 0), (20, 30, 1)))], [GeneStructure(-1, ((5, 8, 0),))]]
    predicted = [[GeneStructure(1, ((0, 10, 0), (21, 30, 0))), GeneStructure(1, ((40, 45, 0),))],
                 [GeneStructure(-1, ((5, 8, 0),))]]
    m = gene_finder_accuracy(annotated, predicted)
    # Coding bases: 23 annotated, 27 predicted, 22 shared. Exons: 3 annotated, 4 predicted, 2 exact.
    assert m["nucleotide"] == {"sensitivity": round(22 / 23, 4), "specificity": round(22 / 27, 4), "right": 22,
                               "annotated": 23, "predicted": 27}
    assert (m["exon"]["sensitivity"], m["exon"]["specificity"]) == (round(2 / 3, 4), 0.5)
    assert (m["gene"]["sensitivity"], m["gene"]["specificity"]) == (0.5, round(1 / 3, 4))
    wrong_strand = [[GeneStructure(1, ((0, 10, 0), (20, 30, 1)))], [GeneStructure(1, ((5, 8, 0),))]]
    m = gene_finder_accuracy(annotated, wrong_strand)
    assert m["exon"]["right"] == 2 and m["gene"]["right"] == 1 and m["nucleotide"]["right"] == 23
    with pytest.raises(ValueError, match="2 annotated sequences but 1 predicted"):
        gene_finder_accuracy(annotated, predicted[:1])


def test_log_frequencies_estimate_the_transitions_of_annotated_paths():
    states = grammar.gene_states(len(GENE), [(list(EXONS), 1)])
    transitions, start = grammar.log_frequencies([states])
    allowed = grammar.allowed_matrix()
    np.testing.assert_allclose(np.where(allowed, np.exp(transitions), 0).sum(axis=1), 1.0, rtol=1e-5)
    assert (transitions[~allowed] == 0).all() and np.exp(start).sum() == pytest.approx(1.0)
    # Intergenic → intergenic 18 times, → +E0 once; add-one over its 3 allowed successors (also → -S2).
    ig = state("IG")
    assert np.exp(transitions[ig, state("+E0")]) == pytest.approx(2 / 22)
    assert transitions[state("+E0"), state("+I1")] < transitions[state("+E0"), state("+E1")]
