"""dna recipe: GenBank labels, training windows, the windowed tagger, the serving signature, the baseline."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from Bio.Seq import Seq

import zoo
from zoo.config import ConfigError, from_dict
from zoo.recipes.dna import baseline, data, grammar, model, train
from zoo.recipes.dna.config import DnaConfig

TINY_MODEL = {"conv_filters": 8, "conv_kernel": 5, "conv_layers": 2, "pool_size": 3, "units": 6, "num_layers": 1}
TINY_DATA = {"window": 60, "margin": 10}
TINY_SERVING = {"max_input_bases": 5000, "max_batch_size": 4, "max_exons": 5}

# Two records: a plus-strand gene with two exons, a minus-strand one with three, and an ambiguity code (R).
GENBANK = """\
LOCUS       plus_gene                 40 bp    DNA              UNK 01-JAN-1980
FEATURES             Location/Qualifiers
     source          1..40
     CDS             join(6..12,21..30)
                     /gene="1"
ORIGIN
        1 acgtacgtac gtacgtacgt acgtacgtac gtacgtrcgt
//
LOCUS       minus_gene                30 bp    DNA              UNK 01-JAN-1980
FEATURES             Location/Qualifiers
     source          1..30
     CDS             complement(join(2..4,8..10,20..25))
                     /gene="2"
ORIGIN
        1 ttttttgggg ccccaaaaac gtacgtacgt
//
"""


def tiny_config(tmp_path=None, **sections):
    values = {"model": dict(TINY_MODEL), "data": dict(TINY_DATA), "serving": dict(TINY_SERVING)}
    for name, extra in sections.items():
        values.setdefault(name, {}).update(extra)
    return from_dict(DnaConfig, values)


def tiny_tagger():
    keras.utils.set_random_seed(0)
    return model.build_tagger(tiny_config())


@pytest.fixture
def genbank_file(tmp_path):
    path = tmp_path / "genes.gb"
    path.write_text(GENBANK)
    return path


def test_genbank_records_get_strand_aware_per_base_labels(genbank_file):
    plus, minus = data.read_genbank(genbank_file)
    E, I, G = data.EXON, data.INTRON, data.INTERGENIC
    assert plus.labels.tolist() == [G] * 5 + [E] * 7 + [I] * 8 + [E] * 10 + [G] * 10
    assert plus.exons == [(5, 12), (20, 30)] and plus.strand == 1
    assert plus.sequence[36] == "N" and set(plus.sequence) == set("ACGTN")  # R is ambiguous: N
    assert minus.labels.tolist() == [G] + [E] * 3 + [I] * 3 + [E] * 3 + [I] * 9 + [E] * 6 + [G] * 5
    assert minus.exons == [(1, 4), (7, 10), (19, 25)] and minus.strand == -1


def test_bad_genbank_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.read_genbank(tmp_path / "missing.gb")
    (tmp_path / "empty.gb").write_text("")
    with pytest.raises(ValueError, match="no GenBank record"):
        data.read_genbank(tmp_path / "empty.gb")
    (tmp_path / "corrupt.gb").write_text(GENBANK[:300])
    with pytest.raises(ValueError, match="not a readable GenBank file"):
        data.read_genbank(tmp_path / "corrupt.gb")
    for name, text, message in (
            ("letters.gb", GENBANK.replace("gtacgtrcgt", "gtacgtxcgt"), r"record plus_gene: base 37 is 'X'"),
            ("location.gb", GENBANK.replace("join(6..12,21..30)", "join(6..@,21..30)"),
             "record plus_gene: the location of CDS feature 1 could not be read"),
            ("outside.gb", GENBANK.replace("21..30", "21..90"), "record plus_gene: CDS feature 1 .* lies outside")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{tmp_path / name}: .*{message}"):
            data.read_genbank(tmp_path / name)


def test_encode_and_reverse_complement():
    assert data.encode("ACGTNacgtn").tolist() == [1, 2, 3, 4, 5] * 2
    with pytest.raises(ValueError, match="'X'"):
        data.encode("ACXG")
    plus = [grammar.state(s) for s in ("IG", "+E0", "+I1", "+S0")]
    ids, states = data.reverse_complement(tf.constant([1, 1, 2, 5]), tf.constant(plus))
    assert ids.numpy().tolist() == [5, 3, 4, 4]
    assert states.numpy().tolist() == [grammar.state(s) for s in ("-S0", "-I1", "-E0", "IG")]


@pytest.mark.parametrize("offset", [0, 1, 7, 9])
def test_tiles_are_right_padded_and_cover_every_base_once(offset):
    ids = tf.range(1, 24)
    pieces, labels = (t.numpy() for t in data.tile(ids, ids * 10, 10, tf.constant(offset)))
    assert pieces.shape[1] == 10 and (labels == pieces * 10).all()
    real = pieces[pieces != 0]
    assert real.tolist() == list(range(1, 24))
    for row in pieces:  # padding only at the end of a piece
        n = int((row != 0).sum())
        assert (row[:n] != 0).all() and (row[n:] == 0).all()
    assert (pieces[0] != 0).sum() == min(10 - offset, 23)


def test_training_windows_cover_each_record(genbank_file):
    records = data.read_genbank(genbank_file)
    cfg = tiny_config().data
    batches = list(data.training_windows(records, cfg, 2, shuffle=False, seed=0))
    ids = np.concatenate([b[0].numpy() for b in batches])
    states = np.concatenate([b[1].numpy() for b in batches])
    assert ids.shape[1] == cfg.window and (ids != 0).sum() == 70
    assert states[ids != 0].tolist() == np.concatenate([r.states for r in records]).tolist()
    shuffled = list(data.training_windows(records, cfg, 2, shuffle=True, seed=3))
    assert sum(int((b[0].numpy() != 0).sum()) for b in shuffled) == 70


def test_shared_layers_keep_masked_steps_out():
    x = tf.constant([[[1.0], [5.0], [2.0], [0.0], [0.0]]])
    mask = tf.constant([[True, True, True, False, False]])
    pooled, pooled_mask = model.PooledSteps(2)(x, mask)
    assert pooled.numpy().ravel().tolist() == [5.0, 2.0, 0.0] and pooled_mask.numpy().tolist() == [[1, 1, 0]]
    assert model.RepeatedSteps(2)(pooled, x).numpy().ravel().tolist() == [5, 5, 2, 2, 0]


def test_shapes_and_masking_invariance_across_windows():
    tagger = tiny_tagger()
    cfg = tiny_config().data
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 6, (3, 170)).astype(np.int32)
    ids[1, 95:] = 0
    ids[2, 4:] = 0
    labels, probabilities = (t.numpy() for t in model.predict(tagger, ids, cfg))
    assert labels.shape == (3, 170) and probabilities.shape == (3, 170, 3)
    assert (labels[1, 95:] == -1).all() and (labels[1, :95] >= 0).all()
    np.testing.assert_allclose(probabilities[:, :4].sum(-1), 1.0, rtol=1e-5)
    assert (probabilities[1, 95:] == 0).all()
    padded_labels, padded_probabilities = (t.numpy() for t in model.predict(tagger, np.pad(ids, [(0, 0), (0, 77)]),
                                                                            cfg))
    np.testing.assert_array_equal(padded_labels[:, :170], labels)
    np.testing.assert_allclose(padded_probabilities[:, :170], probabilities, atol=1e-5)
    alone_labels, alone_probabilities = (t.numpy() for t in model.predict(tagger, ids[1:2, :95], cfg))
    np.testing.assert_array_equal(alone_labels[0], labels[1, :95])
    np.testing.assert_allclose(alone_probabilities[0], probabilities[1, :95], atol=1e-5)


def test_one_window_equals_the_plain_encoder():
    tagger = tiny_tagger()
    ids = np.random.default_rng(1).integers(1, 6, (2, 45)).astype(np.int32)
    windowed = model.windowed_emissions(tagger.encoder, ids, 60, 10).numpy()
    direct = tagger.encoder(ids)[0].numpy()
    np.testing.assert_allclose(windowed, direct, atol=1e-5)


def test_serving_fn_validates_and_bounds_its_input():
    tagger = tiny_tagger()
    serve = model.make_serving_fn(tagger, tiny_config())
    out = serve(tf.constant([b"ACGTNACGTA" * 13, b"acgtnacgta" * 13, b"", b"A"]))
    assert out["labels"].shape == (4, 130) and out["lengths"].numpy().tolist() == [130, 130, 0, 1]
    np.testing.assert_array_equal(out["labels"][0], out["labels"][1])  # soft-masking reads like upper case
    assert [len(a) for a in out["annotation"].numpy()] == [130, 130, 0, 1]
    assert out["exon_start"].shape == (4, 5) and (out["num_exons"].numpy() <= 5).all()
    assert serve(tf.constant([], tf.string))["labels"].shape == (0, 0)
    for bad, message in ((["ACGU"], "other than A, C, G, T, N"), (["A" * 5001], "too long"),
                         (["A"] * 5, "batch too large"), (["ACG\xff".encode("latin-1")], "other than")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(tf.constant(bad))
    # The cost budget counts the whole batch: each sequence is legal, the three together are not.
    budgeted = model.make_serving_fn(tagger, tiny_config(serving={"max_request_bases": 250}))
    assert budgeted(tf.constant(["ACGT" * 25] * 2))["lengths"].numpy().tolist() == [100, 100]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"request too large: at most 250 bases .*max_request_b"):
        budgeted(tf.constant(["ACGT" * 25] * 3))


def test_runs_of_labels():
    labels = np.array([0, 1, 1, 2, 1, -1], np.int32)
    assert data.runs_of(labels, data.EXON) == [(1, 3), (4, 5)] and data.runs_of(labels, 7) == []


def test_keras_save_and_reload_give_equal_outputs(tmp_path):
    tagger = tiny_tagger()
    ids = np.random.default_rng(2).integers(1, 6, (2, 50)).astype(np.int32)
    tagger.save(tmp_path / "m.keras")
    clone = keras.models.load_model(tmp_path / "m.keras")
    for key in ("tags", "emissions"):
        np.testing.assert_allclose(clone(ids)[key].numpy(), tagger(ids)[key].numpy(), atol=1e-6)


def test_kmer_features_count_windows():
    seq = "ACGTNAC"
    features = baseline.kmer_features(seq, 2, 1)
    assert features.shape == (7, 4 + 16)
    # Base 1 (C): 1-mers starting at 0..2 = A, C, G; 2-mers starting there: AC, CG, GT.
    np.testing.assert_allclose(features[1, :4], [1 / 3, 1 / 3, 1 / 3, 0])
    assert features[1, 4 + 1] == features[1, 4 + 6] == features[1, 4 + 11] == pytest.approx(1 / 3)
    assert features[4, 4:].sum() == pytest.approx(1 / 3)  # only GT: TN and NA hold N


def test_score_of_perfect_and_shifted_predictions(genbank_file):
    records = data.read_genbank(genbank_file)
    perfect = [(r.labels.astype(np.int32), np.eye(3)[r.labels]) for r in records]
    metrics = train.score(records, perfect, [r.genes() for r in records])
    assert metrics["exon"]["f1"] == metrics["exon_auroc"] == 1.0
    assert all(metrics["gene_finder"][level]["sensitivity"] == metrics["gene_finder"][level]["specificity"] == 1.0
               for level in ("nucleotide", "exon", "gene"))
    assert metrics["exon_f1_minus_strand"] == 1.0 and metrics["bases"] == 70
    shifted = [(np.roll(labels, 1), probs) for labels, probs in perfect]
    metrics = train.score(records, shifted, [grammar.genes_of(np.roll(r.states, 1)) for r in records])
    assert metrics["gene_finder"]["gene"]["sensitivity"] == metrics["gene_finder"]["exon"]["sensitivity"] == 0.0
    assert 0.5 < metrics["exon"]["f1"] < 1.0 and "gene_finder" not in train.score(records, shifted)


@pytest.mark.parametrize("bad, name", [({"data": {"margin": 30}}, "data.margin"),
                                       ({"data": {"source": "files"}}, "data.train"),
                                       ({"model": {"pool_size": 0}}, "model.pool_size"),
                                       ({"baseline": {"k": 9}}, "baseline.k")])
def test_config_validation_names_the_bad_value(bad, name):
    values = {**bad, "data": {**TINY_DATA, **bad.get("data", {})}}
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        from_dict(DnaConfig, values)


SERVE_IN_SUBPROCESS = r"""
import json, sys
sys.modules["zoo"] = None  # the served model must not need the zoo package
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = {}
for name, sequences in json.loads(sys.argv[2]).items():
    try:
        result = fn(sequence=tf.constant([s.encode("latin-1") for s in sequences], tf.string))
        out[name] = {k: v.numpy().tolist() for k, v in result.items() if k != "annotation"}
        out[name]["annotation"] = [a.decode() for a in result["annotation"].numpy()]
    except tf.errors.InvalidArgumentError as e:
        out[name] = {"error": e.message}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_end_to_end_train_export_and_serve_without_zoo(tmp_path):
    cfg = tiny_config(
        data={"window": 400, "margin": 50}, serving={"max_input_bases": 20000},
        baseline={"train_bases": 3000, "k": 2},
        train={"epochs": 1, "batch_size": 8, "max_train_examples": 6, "max_eval_examples": 3,
               "run_dir": str(tmp_path / "run"), "verbose": 0},
        export={"base_dir": str(tmp_path / "saved_models")},
    )
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["genes"] == 3 and 0 <= report["metrics"]["exon"]["f1"] <= 1
    assert report["baseline"]["genes"] == 3 and 0 <= report["baseline"]["exon_auroc"] <= 1
    saved = report["saved_model"]
    assert saved.endswith("/dna/1")

    test_records = sorted(data.load_records(cfg.data, "test"), key=lambda r: len(r.sequence))[:2]
    requests = {
        "genes": [r.sequence for r in test_records] + ["acgtn" * 30],
        "empty": ["", ""],
        "invalid": ["ACGTU"],
        "too_long": ["A" * 20001],
        "empty_batch": [],
    }
    served = subprocess.run([sys.executable, "-I", "-c", SERVE_IN_SUBPROCESS, saved, json.dumps(requests)],
                            cwd="/tmp", capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])

    in_memory = model.make_serving_fn(keras.models.load_model(report["model"]), cfg)
    expected = in_memory(tf.constant([s.encode() for s in requests["genes"]]))
    assert out["genes"]["labels"] == expected["labels"].numpy().tolist()
    for key in ("exon_start", "exon_end", "exon_strand", "exon_phase", "exon_gene", "num_exons"):
        assert out["genes"][key] == expected[key].numpy().tolist(), key
    np.testing.assert_allclose(out["genes"]["probabilities"], expected["probabilities"].numpy(), atol=1e-5)
    assert out["genes"]["lengths"] == [len(s) for s in requests["genes"]]
    assert [len(a) for a in out["genes"]["annotation"]] == out["genes"]["lengths"]
    assert out["empty"]["lengths"] == [0, 0] and out["empty_batch"]["labels"] == []
    assert "other than A, C, G, T, N" in out["invalid"]["error"]
    assert "too long" in out["too_long"]["error"]


# The same two genes as GENBANK, as GFF3: the minus-strand gene's three CDS parts share one Parent.
GFF3 = """##gff-version 3
plus_gene\tzoo\tgene\t6\t30\t.\t+\t.\tID=g1
plus_gene\tzoo\tCDS\t6\t12\t.\t+\t0\tID=c1;Parent=t1
plus_gene\tzoo\tCDS\t21\t30\t.\t+\t2\tID=c1;Parent=t1
minus_gene\tzoo\tCDS\t2\t4\t.\t-\t0\tParent=t2
minus_gene\tzoo\tCDS\t8\t10\t.\t-\t0\tParent=t2
minus_gene\tzoo\tCDS\t20\t25\t.\t-\t0\tParent=t2
"""
FASTA = """>plus_gene
acgtacgtacgtacgtacgtacgtacgtacgtacgtrcgt
>minus_gene
ttttttggggccccaaaaacgtacgtacgt
"""


def test_gff3_with_embedded_or_sibling_fasta_labels_like_genbank(genbank_file, tmp_path):
    expected = [(r.name, r.sequence, r.labels.tolist(), r.exons, r.strand) for r in data.read_genbank(genbank_file)]
    (tmp_path / "embedded.gff3").write_text(GFF3 + "##FASTA\n" + FASTA)
    (tmp_path / "genes.gff").write_text(GFF3)
    (tmp_path / "genes.fa").write_text(FASTA)
    for name in ("embedded.gff3", "genes.gff"):
        got = [(r.name, r.sequence, r.labels.tolist(), r.exons, r.strand) for r in data.read_records(tmp_path / name)]
        assert got == expected, name
    for text, message in [
            (GFF3.replace("\t.\t+\t0\tID=c1", "\t+\t0\tID=c1", 1), r"bad\.gff3:3: expected 9 tab-separated"),
            (GFF3.replace("\t21\t30\t", "\t21\t90\t"), r"bad\.gff3:4: CDS 21\.\.90 lies outside sequence "
                                                        r"'plus_gene' of 40 bases"),
            (GFF3.replace("\t8\t10\t", "\t8\tten\t"), r"bad\.gff3:6: start '8' and end 'ten'"),
            (GFF3 + "chr9\tzoo\tCDS\t1\t3\t.\t+\t0\tParent=t9\n", r"bad\.gff3:8: no sequence 'chr9'")]:
        (tmp_path / "bad.gff3").write_text(text + "##FASTA\n" + FASTA)
        with pytest.raises(ValueError, match=message):
            data.read_records(tmp_path / "bad.gff3")
    (tmp_path / "alone.gff3").write_text(GFF3)
    with pytest.raises(ValueError, match=r"alone\.gff3:3: no sequence 'plus_gene'"):
        data.read_records(tmp_path / "alone.gff3")


# A real two-exon gene structure (ATG, GT...AG intron, TAA after the CDS; see test_dna_grammar) on either strand.
GENE = "CCCCACCCAC" "ATGAAAC" "GTAAGTTTTTTCAG" "CCTTTGCA" "TAA" "CCCCACCCAC"
GRAMMATICAL_GFF3 = f"""##gff-version 3
plus\tzoo\tCDS\t11\t17\t.\t+\t0\tParent=t1
plus\tzoo\tCDS\t32\t39\t.\t+\t2\tParent=t1
minus\tzoo\tCDS\t14\t21\t.\t-\t2\tParent=t2
minus\tzoo\tCDS\t36\t42\t.\t-\t0\tParent=t2
##FASTA
>plus
{GENE}
>minus
{str(Seq(GENE).reverse_complement())}
"""


def test_records_off_the_grammar_are_left_out_of_training(genbank_file, tmp_path):
    (tmp_path / "genes.gff3").write_text(GRAMMATICAL_GFF3)
    records = data.read_records(tmp_path / "genes.gff3")
    assert [r.genes()[0].strand for r in records] == [1, -1]
    kept, dropped = train.grammatical(records + data.read_genbank(genbank_file))
    assert kept == records and dropped == 2
    with pytest.raises(ValueError, match="none of the 2 records .*'plus_gene'.* grammar allows"):
        train.grammatical(data.read_genbank(genbank_file))


def test_a_cds_that_ends_with_its_stop_codon_reads_like_one_without(tmp_path):
    (tmp_path / "without.gff3").write_text(GRAMMATICAL_GFF3)
    with_stops = GRAMMATICAL_GFF3.replace("\t32\t39\t", "\t32\t42\t").replace("\t14\t21\t", "\t11\t21\t")
    (tmp_path / "with.gff3").write_text(with_stops)
    expected, got = (data.read_records(tmp_path / name) for name in ("without.gff3", "with.gff3"))
    for a, b in zip(expected, got):
        assert a.exons == b.exons and a.labels.tolist() == b.labels.tolist() and a.states.tolist() == b.states.tolist()
    assert data.without_stop_codon("ATGAAATAGCCC", [(0, 9)], 1) == [(0, 6)]
    assert data.without_stop_codon("GGGCTATTTCAT", [(3, 12)], -1) == [(6, 12)]
    # A stop codon split by an intron; CDS parts that end in a sense codon or in part of a codon stay as they are.
    assert data.without_stop_codon("ATGAAAT" "GTTTAG" "AACCC", [(13, 15), (0, 7)], 1) == [(0, 6)]
    assert data.without_stop_codon("ATGAAACCC", [(0, 9)], 1) == [(0, 9)]
    assert data.without_stop_codon("ATGAAATAAC", [(0, 10)], 1) == [(0, 10)]


def test_trained_on_user_gff3_and_genbank_files_and_served_without_zoo(genbank_file, tmp_path):
    (tmp_path / "train.gff3").write_text(GFF3)
    (tmp_path / "train.fa").write_text(FASTA)
    records = data.records_of(data.load_split(tiny_config(data={"source": "files", "train": str(tmp_path / "train.gff3"),
                                                                "test": str(genbank_file)}).data, "train"))
    assert [(r.name, r.exons, r.strand) for r in records] == [(r.name, r.exons, r.strand)
                                                               for r in data.read_genbank(genbank_file)]
    (tmp_path / "genes.gff3").write_text(GRAMMATICAL_GFF3)
    cfg = tiny_config(data={"source": "files", "train": str(tmp_path / "genes.gff3"),
                            "validation": str(tmp_path / "genes.gff3"), "test": str(genbank_file)},
                      baseline={"train_bases": 60, "k": 2},
                      train={"epochs": 2, "batch_size": 2, "run_dir": str(tmp_path / "run"), "verbose": 0},
                      export={"base_dir": str(tmp_path / "saved_models")})
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["genes"] == 2
    sequences = [r.sequence for r in records]
    served = subprocess.run([sys.executable, "-I", "-c", SERVE_IN_SUBPROCESS, report["saved_model"],
                             json.dumps({"genes": sequences})], cwd="/tmp", capture_output=True, text=True,
                            timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])["genes"]
    expected = model.make_serving_fn(keras.models.load_model(report["model"]), cfg)(tf.constant(sequences))
    assert out["labels"] == expected["labels"].numpy().tolist() and out["lengths"] == [40, 30]


def test_an_empty_validation_split_is_a_clear_error_before_training(genbank_file, tmp_path):
    cfg = tiny_config(data={"source": "files", "train": str(genbank_file), "test": str(genbank_file)},
                      train={"run_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match="genes.gb: no example left for the validation split"):
        zoo.run(train.RECIPE, cfg)
    assert not (tmp_path / "run" / "history.csv").exists()


def test_kmer_ids_index_each_kmer_and_mark_n_padding_and_the_end():
    ids = tf.constant([[1, 2, 3, 4, 5, 1, 0]])  # A C G T N A pad
    kmers = model.KmerIds(2)(ids).numpy()[0].tolist()
    # AC = 0*4+1, CG = 1*4+2, GT = 2*4+3, then TN, NA (N), A+pad and pad: 0; ids are index + 1.
    assert kmers == [2, 7, 12, 0, 0, 0, 0]
    assert model.KmerIds(1)(ids).numpy()[0].tolist() == [1, 2, 3, 4, 0, 1, 0]
