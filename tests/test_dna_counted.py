"""dna's counted content and site models: the in-graph scores equal the counted tables, both strands alike, and
the counts find what the annotation holds."""

import keras
import numpy as np

from zoo.recipes.dna import counted, data, grammar, model
from zoo.recipes.dna.grammar import state

from tests.test_dna import tiny_config

K = grammar.NUM_STATES
ORDER = 2
FLANK = 150  # bases of random sequence on each side of a planted gene


def _random_tables(rng):
    content = np.log(rng.dirichlet(np.ones(4), (counted.NUM_CLASSES, 4 ** ORDER))).reshape(
        counted.NUM_CLASSES, -1).astype(np.float32)
    sites = {site.name: rng.normal(size=(site.width, 4)).astype(np.float32) for site in counted.SITES}
    return content, sites


def _reverse_complement(ids):
    return data.COMPLEMENT_IDS[ids[::-1]]


def _content_layer(table):
    layer = counted.ContentScores(ORDER)
    layer.build((None, None))
    layer.set_tables(table)
    return layer


def test_content_scores_read_the_counted_table_and_mirror_on_the_other_strand():
    rng = np.random.default_rng(0)
    table, _ = _random_tables(rng)
    layer = _content_layer(table)
    ids = rng.integers(1, 6, 40).astype(np.int32)  # N (5) included
    scores = layer(ids[np.newaxis]).numpy()[0]
    index = counted.kmer_index(ids, ORDER + 1)
    for t in range(len(ids)):
        for s in (state("IG"), state("+E0"), state("+E2"), state("+I1"), state("+S0")):
            expected = table[counted.CLASS_OF_PLUS_STATE[s], index[t]] if index[t] >= 0 else 0.0
            np.testing.assert_allclose(scores[t, s], expected, rtol=1e-6)
    # A gene's state scores a base as its mirror scores that base on the reverse complement (intergenic is read
    # on the plus strand only).
    mirrored = layer(_reverse_complement(ids)[np.newaxis]).numpy()[0][::-1]
    np.testing.assert_allclose(scores[:, 1:], mirrored[:, grammar.MIRROR][:, 1:], rtol=1e-6)
    padded = layer(np.pad(ids, (0, 7))[np.newaxis]).numpy()[0]
    np.testing.assert_allclose(padded[:len(ids)], scores, rtol=1e-6)


def test_site_scores_sum_the_table_over_the_window_and_mirror_on_the_other_strand():
    rng = np.random.default_rng(1)
    _, sites = _random_tables(rng)
    ids = rng.integers(1, 6, 60).astype(np.int32)
    for site in counted.SITES:
        scores = counted.window_scores(ids[np.newaxis], sites[site.name], site.offset).numpy()[0]
        for t in (0, 5, 30, 59):
            expected = sum(sites[site.name][k, ids[t + site.offset + k] - 1]
                           for k in range(site.width)
                           if 0 <= t + site.offset + k < len(ids) and ids[t + site.offset + k] <= 4)
            np.testing.assert_allclose(scores[t], expected, rtol=1e-5, atol=1e-5)
    # Every scored transition a → b into step t on one strand is mirror(b) → mirror(a) into T - t on the other.
    grammar_layer = counted.ScoredGrammar()
    grammar_layer.build((None, None))
    grammar_layer.set_tables(sites)
    forward = grammar_layer(ids[np.newaxis]).numpy()[0]
    backward = grammar_layer(_reverse_complement(ids)[np.newaxis]).numpy()[0]
    length = len(ids)
    for t in range(1, length):
        np.testing.assert_allclose(forward[t], backward[length - t][np.ix_(grammar.MIRROR, grammar.MIRROR)].T,
                                   rtol=1e-5, atol=1e-4)
    plain = grammar.step_transitions(ids[np.newaxis]).numpy()[0]
    assert ((forward < grammar.FORBIDDEN / 2) == (plain < grammar.FORBIDDEN / 2)).all()  # same grammar
    assert np.abs(forward - plain)[plain > grammar.FORBIDDEN / 2].max() > 0.1  # plus the sites' log-odds


def _planted_records(rng, count):
    """Random sequences, each with one two-exon gene whose donor is always GTAAGT and acceptor TTTCAG, on either
    strand."""
    records = []
    for i in range(count):
        flank = "".join(rng.choice(list("ACGT"), FLANK))
        coding = "".join(rng.choice(["GCC", "AAA", "GGC", "CTG", "CCA"], 10))
        sequence = flank + "ATG" + coding[:7] + "GTAAGT" + "".join(rng.choice(list("ACT"), 20)) + "TTTCAG" + \
            coding[7:] + "TAA" + flank
        exons = [(FLANK, FLANK + 10), (FLANK + 42, FLANK + 42 + len(coding) - 7)]
        strand = 1 if i % 2 == 0 else -1
        if strand < 0:
            sequence = "".join("TGCA"["ACGT".index(b)] for b in reversed(sequence))
            exons = [(len(sequence) - end, len(sequence) - start) for start, end in exons]
        records.append(data.labelled(f"r{i}", sequence, [(exons, strand)]))
    return records


def test_counted_models_learn_the_planted_sites_and_codons():
    rng = np.random.default_rng(2)
    records = _planted_records(rng, 20)
    assert all(not grammar.path_violations(data.encode(r.sequence), r.states) for r in records)
    sites = counted.fit_sites(records)
    donor = next(site for site in counted.SITES if site.name == "donor")
    # The planted donor's 4 intron bases after GT (AAGT) stand out against other GT/GCs.
    for k, base in enumerate("AAGT"):
        row = sites["donor"][-donor.offset + 2 + k]
        assert row.argmax() == "ACGT".index(base)
    content = counted.fit_content(records, ORDER)
    # Codon position 0 of GCC / AAA / GGC / CTG / CCA never sees a T: its log-probability is the lowest.
    position_0 = content[counted.CODING[0]].reshape(-1, 4).mean(axis=0)
    assert position_0.argmin() == "ACGT".index("T")


def _counted_tagger(records):
    """A tiny tagger whose network still outputs zeros (its last layer starts at zero), on counted models alone."""
    keras.utils.set_random_seed(0)
    cfg = tiny_config()
    tagger = model.build_tagger(cfg)
    transitions, start = grammar.log_frequencies([r.states for r in records])
    tagger.crf.set_weights([transitions, start, np.zeros_like(start)])
    model.fit_counted(tagger, records, cfg.model)
    return tagger, cfg


def test_the_counted_models_alone_find_unseen_planted_genes_on_either_strand():
    records = _planted_records(np.random.default_rng(3), 40)
    tagger, cfg = _counted_tagger(records[:30])
    held_out = records[30:]
    ids = np.zeros((len(held_out), max(len(r.sequence) for r in held_out)), np.int32)
    for row, record in enumerate(held_out):
        ids[row, :len(record.sequence)] = data.encode(record.sequence)
    states = model.predict(tagger, ids, cfg.data)[0].numpy()
    # Each planted gene comes out exactly (random flanks may hold an extra short gene: they are random sequence).
    found = [r.genes()[0] in grammar.genes_of(states[row, :len(r.sequence)]) for row, r in enumerate(held_out)]
    assert all(found), found


def test_counted_tables_are_fixed_their_weights_trained_and_both_saved(tmp_path):
    records = _planted_records(np.random.default_rng(4), 10)
    tagger, _ = _counted_tagger(records)
    trainable = {v.path for v in tagger.trainable_weights}
    for layer in ("content_scores", "gene_grammar"):
        weights = tagger.encoder.get_layer(layer).weights
        assert [v.path for v in weights if v.path in trainable] == [f"{layer}/log_weights"]
    tagger.encoder.get_layer("gene_grammar").log_weights.assign([0.01, -0.02, 0.03])
    ids = data.encode(records[0].sequence)[np.newaxis]
    tagger.save(tmp_path / "m.keras")
    clone = keras.models.load_model(tmp_path / "m.keras")
    for key in ("tags", "emissions", "step_transitions"):
        np.testing.assert_allclose(clone(ids)[key].numpy(), tagger(ids)[key].numpy(), atol=1e-5)
    assert np.abs(tagger(ids)["emissions"].numpy()).max() > 0.5  # the counted scores, not zeros
