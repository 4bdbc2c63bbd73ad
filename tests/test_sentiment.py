"""The sentiment recipe: data, model invariants, and a real train → evaluate → export → serve run."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo import config, export
from zoo.recipes.sentiment import data, model, peers
from zoo.recipes.sentiment.config import SentimentConfig
from zoo.recipes.sentiment.train import RECIPE, ngram_features

from tests.helpers import predict_after_import_zoo, serve_without_zoo

TINY = dict(
    data={"vocab_size": 2000, "max_tokens": 40, "num_buckets": 3},
    model={"encoder": "words", "embedding_dim": 16, "units": 8, "ensemble_size": 2},
    serving={"max_batch_size": 64},
    train={"epochs": 2, "batch_size": 32, "max_train_examples": 600, "max_eval_examples": 300, "verbose": 0},
    peers={"c_grid": [0.3, 3.0]},
    wide={"c_grid": [0.1, 1.0]},
)


def tiny_config(tmp_path, **sections):
    values = {**TINY, "train": {**TINY["train"], "run_dir": str(tmp_path / "run")},
              "export": {"base_dir": str(tmp_path / "saved_models")}}
    return config.from_dict(SentimentConfig, values, **sections)


def test_vader_ground_truth_is_complete_and_split_deterministically():
    archive = data.fetch.pip_sdist(*data.VADER_SDIST)
    rows = list(data.read_ground_truth(archive))
    counts = {d: sum(r[0] == d for r in rows) for d in data.VADER_DOMAINS}
    assert counts == {"movie": 10605, "amazon": 3708, "nyt": 5190, "tweets": 4200}
    assert all(-4 <= r[2] <= 4 and r[3] for r in rows)
    splits = [data.split_of(f"{r[0]}/{r[1]}") for r in rows]
    assert 0.78 < splits.count("train") / len(rows) < 0.82 and 0.08 < splits.count("test") / len(rows) < 0.12
    assert data.split_of("movie/17") == data.split_of("movie/17")


def test_targets_bin_the_mean_rating():
    cfg = config.from_dict(SentimentConfig).data
    examples = list(data.load_split(cfg, "validation").take(500).as_numpy_iterator())
    for ex in examples:
        assert 0 <= ex["rating"] <= 4
        assert ex["polarity_weight"] in (0.0, 1.0)
    ratings = {ex["rating"] for ex in examples}
    assert ratings == {0, 1, 2, 3, 4}


def test_imdb_reviews_through_tfds(tmp_path):
    cfg = config.from_dict(SentimentConfig, data={"source": "imdb_reviews", "tfds_data_dir": str(tmp_path)}).data
    with tfds.testing.mock_data(num_examples=6):
        examples = list(data.load_split(cfg, "train").as_numpy_iterator())
    assert len(examples) == 6
    for ex in examples:
        assert isinstance(ex["text"], bytes) and ex["polarity"] in (0.0, 1.0)
        assert ex["rating_weight"] == 0.0 and ex["polarity_weight"] == 1.0


def test_ensemble_averages_its_members(tmp_path):
    cfg = tiny_config(tmp_path)
    members = [model.build_classifier(cfg.model, 10, name=f"m{i}") for i in range(3)]
    ids = np.array([[3, 1, 4, 0]], np.int32)
    expected = np.mean([m(ids)["rating"] for m in members], axis=0)
    np.testing.assert_allclose(model.build_ensemble(members)(ids)["rating"], expected, atol=1e-6)


def build_tiny_text_model(cfg):
    vectorizer = model.make_vectorizer(cfg.data, vocabulary=["good", "bad", "film", "!"])
    valence = model.lexicon_valence(vectorizer.get_vocabulary(), {"good": 1.9, "bad": -2.5})
    classifier = model.build_classifier(cfg.model, vectorizer.vocabulary_size(), valence)
    return model.build_text_model(vectorizer, classifier, cfg.data.max_tokens), classifier


def test_extra_padding_does_not_change_a_prediction(tmp_path):
    cfg = tiny_config(tmp_path)
    _, classifier = build_tiny_text_model(cfg)
    ids = np.array([[3, 1, 4, 0], [2, 2, 2, 5]], np.int32)
    more_padding = np.pad(ids, [(0, 0), (0, 9)])
    short, long = classifier(ids), classifier(more_padding)
    for head in ("rating", "polarity"):
        np.testing.assert_allclose(short[head], long[head], atol=1e-6)
    # A text alone and the same text batched with a longer one get the same answer.
    np.testing.assert_allclose(classifier(ids[:1, :3])["rating"], short["rating"][:1], atol=1e-6)


def test_lexicon_valence_is_a_frozen_weight_that_survives_save(tmp_path):
    cfg = tiny_config(tmp_path)
    text_model, classifier = build_tiny_text_model(cfg)
    lexicon = classifier.get_layer("lexicon_valence")
    assert not lexicon.trainable
    np.testing.assert_allclose(lexicon.get_weights()[0][2:4, 0], [1.9 / 4, -2.5 / 4])
    texts = tf.constant(["good film !", "bad", ""])
    text_model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(text_model(texts)["probabilities"], reloaded(texts)["probabilities"], atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sentiment")
    cfg = tiny_config(tmp_path)
    report = zoo.run(RECIPE, cfg).report
    return cfg, report, keras.models.load_model(report["model"])


@pytest.mark.slow
def test_end_to_end_run_reports_held_out_metrics(trained):
    cfg, report, _ = trained
    metrics = report["metrics"]
    assert metrics["split"] == "test" and metrics["overall"]["examples"] == cfg.train.max_eval_examples
    for name in ("binary_accuracy", "rating_accuracy"):
        assert 0.0 <= metrics["overall"][name] <= 1.0
    run_dir = os.path.dirname(report["model"])
    for artefact in ("report.json", "config.json", "model.keras"):
        assert os.path.exists(os.path.join(run_dir, artefact)), artefact
    for member in ("member_0", "member_1"):
        for artefact in ("history.csv", "curves.png", "best.weights.h5", "finished.weights.h5", "tensorboard"):
            assert os.path.exists(os.path.join(run_dir, member, artefact)), (member, artefact)
    assert len(report["epochs_run"]) == 2
    assert json.load(open(os.path.join(run_dir, "report.json")))["metrics"] == metrics
    for name in ("nbsvm_bi", "tfidf_lr"):  # the classical peers, fitted on the same training split
        peer = metrics["peers"][name]
        assert peer["C"] in (0.3, 3.0) and 0.5 < peer["overall"]["binary_accuracy"] <= 1.0
        assert set(peer) >= {"overall", "movie", "amazon", "nyt", "tweets"}
        zoo_lead = metrics["overall"]["binary_accuracy"] - peer["overall"]["binary_accuracy"]
        assert peer["overall"]["difference"] == pytest.approx(zoo_lead) and peer["overall"]["difference_se"] > 0
    assert "Classical peers" in RECIPE.summary(report) and "nbsvm_bi" in RECIPE.summary(report)
    wide = report["wide"]  # the wide half, its C and the stacking chosen on the validation split
    assert wide["C"] in (0.1, 1.0) and wide["ngrams"] > cfg.data.vocab_size // 2
    assert list(wide["stack_weights"]) == ["network", "wide", "rating"]
    accuracy = wide["validation_binary_accuracy"]
    assert set(accuracy) == {"network", "wide", "stacked"} and all(0 <= a <= 1 for a in accuracy.values())
    assert accuracy["wide"] > 0.5  # NBSVM learns something even from 600 snippets
    assert "stacked with NBSVM" in RECIPE.summary(report)


@pytest.mark.slow
def test_the_wide_model_in_the_graph_scores_what_was_fitted_and_is_stacked_into_the_polarity(trained):
    _, _, text_model = trained
    ngrams, bag = text_model.get_layer("ngram_vectorization"), text_model.get_layer("wide_ngrams")
    texts = np.array(TEXTS + ["good good good film", "not bad , not bad at all"], dtype=object)
    kernel, bias = bag.get_weights()
    in_graph = bag(ngrams(tf.constant(texts.astype(str)))).numpy()[:, 0]
    np.testing.assert_allclose(in_graph, ngram_features(ngrams, texts) @ kernel + bias, rtol=1e-5, atol=1e-5)
    # A text whose n-grams the wide model scores higher gets a higher polarity, all else equal: it is stacked.
    stack_weights = text_model.get_layer("polarity_stack").get_weights()[0][:, 0]
    assert stack_weights[1] > 0


def test_nbsvm_learns_which_words_carry_polarity_and_scores_pairs():
    texts = ["good film", "great good fun", "bad film", "awful bad plot", "good plot", "bad fun"] * 5
    labels = [1, 1, 0, 0, 1, 0] * 5
    nbsvm = peers.nbsvm_bi(1.0).fit(texts, labels)
    assert nbsvm.predict(["a good one", "a bad one", "great!", "awful."]).tolist() == [1, 0, 1, 0]
    assert peers.tfidf_lr(10.0).fit(texts, labels).predict(["so good", "so bad"]).tolist() == [1, 0]
    both = peers.paired_difference(np.array([1, 1, 0, 1]), np.array([1, 0, 0, 0]))
    assert both["difference"] == 0.5 and both["difference_se"] == pytest.approx(np.std([0, 1, 0, 1], ddof=1) / 2)


TEXTS = ["A gorgeous, witty, seductive movie.", "The plot is dull and the acting is worse!", "", "meh"]


@pytest.mark.slow
def test_saved_model_served_without_zoo_equals_in_memory_model_and_python_api(trained, tmp_path):
    cfg, report, text_model = trained
    version = report["saved_model"]
    assert os.path.basename(version) == "1"
    export.check_core_ops(version)
    served = serve_without_zoo(version, {"text": np.array(TEXTS, dtype=object)}, tmp_path)
    expected = model.make_serving_fn(text_model, cfg.serving, data.class_names(cfg.data))(tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(served["polarity"], expected["polarity"], atol=1e-5)
    assert served["rating"].tolist() == expected["rating"].numpy().tolist()
    assert all(1 <= r <= 5 for r in served["rating"])
    # The Python API, in a process that only imported zoo, gives the same names with the same meaning.
    predicted = predict_after_import_zoo(os.path.dirname(report["model"]), TEXTS, tmp_path)
    assert set(predicted) == set(served) and predicted["rating"].tolist() == served["rating"].tolist()
    np.testing.assert_allclose(predicted["probabilities"], served["probabilities"], atol=1e-6)


@pytest.fixture(scope="module")
def served(trained):
    return tf.saved_model.load(trained[1]["saved_model"]).signatures["serving_default"]


@pytest.mark.slow
@pytest.mark.parametrize("texts", [
    [""],
    ["great " * 200_000],  # 1.2 MB
    [b"caf\xc3\xa9 \xff\xfe broken utf-8 \xc3"],
    ["\x00\x01 control characters", "emoji 😀👍"],
], ids=["empty", "1MB", "invalid-utf8", "odd-characters"])
def test_bad_text_gets_an_answer(served, texts):
    out = served(text=tf.constant(texts))
    assert out["rating"].shape == (len(texts),)
    assert np.isfinite(out["probabilities"].numpy()).all()
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_empty_batch_and_oversized_batch(served, trained):
    out = served(text=tf.constant([], tf.string))
    assert out["rating"].shape == (0,) and out["probabilities"].shape == (0, 5)
    too_many = trained[0].serving.max_batch_size + 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch too large"):
        served(text=tf.constant(["ok"] * too_many))
    with pytest.raises(tf.errors.InvalidArgumentError, match="request too large: at most 4194304 bytes of text"):
        served(text=tf.constant(["great " * 200_000] * 4))  # each text is read (up to its bound), four are too many
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="string"):
        served(text=tf.constant([1, 2]))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="text"):
        served(text=tf.constant([["a", "b"]]))  # a signature call does not check the declared rank itself


@pytest.mark.slow
def test_rerun_reuses_trained_members_and_exports_next_version(trained):
    cfg, report, _ = trained
    again = zoo.run(RECIPE, cfg).report
    assert again["epochs_run"] == []  # nothing retrained: both members were finished
    assert again["metrics"] == report["metrics"]
    assert os.path.basename(again["saved_model"]) == "2"


@pytest.mark.slow
def test_trainer_that_sees_a_gpu_exports_from_a_cpu_only_subprocess(trained, monkeypatch):
    cfg, report, _ = trained
    monkeypatch.setattr(export, "gpus_visible", lambda: True)  # as in a GPU trainer: hand the export to a subprocess
    version = export.export_model(RECIPE, report["model"], cfg)
    assert version.is_dir() and int(version.name) > 1
    assert not any(op.startswith("Cudnn") for op in export.graph_ops(version))
    served = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(TEXTS))
    expected = tf.saved_model.load(report["saved_model"]).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-6)


REVIEWS = {"negative": ["awful, dull and far too long", "the worst film of the year", "boring plot, bad acting",
                        "I hated every minute"],
           "neutral": ["it is a film about a family", "the film runs two hours", "shot in Paris in the spring",
                       "a remake of an older film"],
           "positive": ["a gorgeous, witty delight", "the best film of the year", "great acting, lovely plot",
                        "I loved every minute"]}


def write_reviews(path, rows):
    """``rows`` of (text, label) as the suffix of ``path`` says: .csv, .tsv or .jsonl."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": label, "id": i}) + "\n"
                                for i, (t, label) in enumerate(rows)), encoding="utf-8")
    else:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerow(["id", "text", "label"])
            writer.writerows([i, t, label] for i, (t, label) in enumerate(rows))
    return path


def test_files_learn_their_classes_and_bad_rows_are_named(tmp_path):
    named = [(t, label) for label, texts in REVIEWS.items() for t in texts] * 3
    for suffix in (".csv", ".tsv", ".jsonl"):
        cfg = config.from_dict(SentimentConfig, data={"source": "files",
                                                      "train": str(write_reviews(tmp_path / f"r{suffix}", named))})
        assert data.class_names(cfg.data) == ("negative", "neutral", "positive")
        sizes = [len(list(data.load_split(cfg.data, split))) for split in ("train", "validation", "test")]
        assert sum(sizes) == len(named)
    stars = write_reviews(tmp_path / "stars.jsonl", [("ok", 2), ("great", 10), ("bad", 4)])
    cfg = config.from_dict(SentimentConfig, data={"source": "files", "train": str(stars)})
    assert data.class_names(cfg.data) == tuple(str(r) for r in range(2, 11))  # every rating from 2 to 10
    bad = tmp_path / "bad.csv"
    for text, message in [("text,stars\nok,1\n", r"bad\.csv:1: no 'label' column"),
                          ("text,label\nok,1\n,2\n", r"bad\.csv:3: empty 'text'"),
                          ('text,label\nok,1\n"multi\nline",\n', r"bad\.csv:4: empty 'label'")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            data.class_names(config.from_dict(SentimentConfig, data={"source": "files", "train": str(bad)}).data)
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\nnope\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: not a JSON object"):
        data.class_names(config.from_dict(SentimentConfig, data={"source": "files",
                                                                  "train": str(tmp_path / "bad.jsonl")}).data)
    test = write_reviews(tmp_path / "test.csv", [("fine", "positive"), ("so-so", "mixed")])
    cfg = config.from_dict(SentimentConfig, data={"source": "files", "train": str(tmp_path / "r.csv"),
                                                  "test": str(test)})
    with pytest.raises(ValueError, match=r"test\.csv:3: label 'mixed' never appears in the training file"):
        data.load_split(cfg.data, "test")


@pytest.mark.slow
def test_trained_on_three_named_classes_from_files_and_served_without_zoo(tmp_path):
    rng = np.random.default_rng(0)
    named = [(t, label) for label, texts in REVIEWS.items() for t in texts]
    train_rows = [named[i] for i in rng.integers(0, len(named), 240)]
    cfg = tiny_config(tmp_path, data={"source": "files", "train": str(write_reviews(tmp_path / "train.jsonl",
                                                                                     train_rows)),
                                      "validation": str(write_reviews(tmp_path / "dev.tsv", named)),
                                      "test": str(write_reviews(tmp_path / "test.csv", named))},
                      model={**TINY["model"], "ensemble_size": 1, "lexicon_feature": False},
                      train={**TINY["train"], "epochs": 8, "learning_rate": 0.01, "run_dir": str(tmp_path / "run")})
    report = zoo.run(RECIPE, cfg).report
    metrics = report["metrics"]
    assert metrics["overall"]["examples"] == 12 and metrics["overall"]["accuracy"] > 0.9
    assert "binary_accuracy" not in metrics["overall"] and set(metrics["peers"]) == {"tfidf_lr"}  # three classes
    served = serve_without_zoo(report["saved_model"], {"text": np.array([t for t, _ in named], dtype=object)},
                               tmp_path)
    assert set(served) == {"label", "probabilities"} and served["probabilities"].shape == (12, 3)
    assert [v.decode() if isinstance(v, bytes) else v for v in served["label"]] == [label for _, label in named]


@pytest.mark.slow
def test_default_encoder_trains_on_frozen_minilm_features_and_serves_without_zoo(tmp_path):
    # The default path: the pretrained MiniLM encoder's features (computed once, frozen) under a small head.
    assert config.from_dict(SentimentConfig).model.encoder == "minilm"
    cfg = tiny_config(tmp_path, model={"encoder": "minilm", "units": 8, "projection_dim": 16, "max_pieces": 48,
                                       "ensemble_size": 1},
                      serving={"max_batch_size": 64, "max_request_pieces": 64},
                      train={**TINY["train"], "epochs": 1, "run_dir": str(tmp_path / "run")})
    report = zoo.run(RECIPE, cfg).report
    encoder = report["data"]["encoder"]
    assert encoder["name"] == "all-MiniLM-L6-v2" and encoder["parameters"] > 20_000_000
    assert 0.5 < report["metrics"]["overall"]["binary_accuracy"] <= 1.0
    text_model = keras.models.load_model(report["model"])
    bert = [w for w in text_model.weights if w.path.startswith("pretrained_encoder/")]
    assert bert and not any(w.trainable for w in bert)  # frozen: only the head above it was trained
    trainable = sum(int(np.prod(w.shape)) for w in text_model.trainable_weights)
    assert trainable < encoder["parameters"] // 20
    version = report["saved_model"]
    export.check_core_ops(version)
    texts = TEXTS + ["Un film magnifique, très émouvant."]  # accented words reach the encoder's own pieces
    served = serve_without_zoo(version, {"text": np.array(texts, dtype=object)}, tmp_path)
    expected = model.make_serving_fn(text_model, cfg.serving, data.class_names(cfg.data))(tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-4)
    np.testing.assert_allclose(served["polarity"], expected["polarity"], atol=1e-4)
    # The encoder's cost is bounded per request: 48 pieces of "great" and the texts above are over 64 pieces.
    serve = tf.saved_model.load(version).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 64 word pieces.*max_request_pieces"):
        serve(text=tf.constant(["great " * 100] + texts))
