"""The translation recipe: tokeniser, network, decoding, config, data paths and a train → export → serve smoke run."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo import config
from zoo.config import ConfigError
from zoo.recipes.translation import data, model, train
from zoo.recipes.translation.config import TranslationConfig

SOURCES = ["En el principio creó Dios los cielos y la tierra.", "Y dijo Dios: Sea la luz: y fué la luz.",
           "Jesús lloró.", "Y vió Dios que la luz era buena."]
TARGETS = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light: and there "
           "was light.", "Jesus wept.", "And God saw the light, that it was good."]
TINY = {"model": {"embedding_dim": 8, "units": 16, "attention_units": 8, "dropout": 0.0},
        "data": {"source_words": 10, "target_words": 10}}


def tiny_translator(attention="luong", cell="lstm", seed=0):
    keras.utils.set_random_seed(seed)
    cfg = config.from_dict(TranslationConfig, TINY, model={**TINY["model"], "attention": attention, "cell": cell})
    source_vocabulary = model.build_vocabulary(tf.data.Dataset.from_tensor_slices(SOURCES), 10, True)
    target_vocabulary = model.build_vocabulary(tf.data.Dataset.from_tensor_slices(TARGETS), 10, False)
    return model.build_translator(cfg, source_vocabulary, target_vocabulary)


@pytest.fixture(scope="module")
def translator():
    return tiny_translator()


def test_tokenizer_round_trip_spells_unknown_words():
    translator = tiny_translator()
    tokenizer = translator.target_tokenizer
    ids = tokenizer(tf.constant(TARGETS + ["Jehovah wept."]))
    assert isinstance(ids, tf.RaggedTensor)
    text = tokenizer.detokenize(ids.to_tensor())
    assert [t.decode() for t in text.numpy()] == TARGETS + ["Jehovah wept."]
    # a known word is one piece, an unknown one its characters
    assert tokenizer.vocabulary.index("the") in ids[0].numpy()
    assert len(tokenizer(tf.constant(["Jehovah"]))[0]) == len("Jehovah")
    assert tokenizer.detokenize(tf.constant([[5, model.EOS, 6]])).numpy()[0] == tokenizer.vocabulary[5].encode()


def test_source_is_lowercased_with_accents_kept(translator):
    ids = translator.source_tokenizer(tf.constant(["LA LUZ de DIOS"]))
    pieces = [translator.source_tokenizer.vocabulary[i] for i in ids[0].numpy()]
    assert pieces[:2] == ["la", "luz"] and pieces[-1] == "dios"
    assert "##ó" in translator.source_tokenizer.vocabulary  # accented letters are letters, not punctuation


def batch(translator, texts, targets, pad_source=0):
    source = translator.source_tokenizer(tf.constant(texts)).to_tensor()
    source = tf.pad(source, [[0, 0], [0, pad_source]])
    target = translator.target_tokenizer(tf.constant(targets))
    target_in = tf.concat([tf.fill([len(targets), 1], model.BOS), target.to_tensor()], axis=1)
    return source, target_in


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_shapes_and_source_padding_invariance(attention):
    translator = tiny_translator(attention)
    source, target_in = batch(translator, SOURCES[:2], TARGETS[:2])
    logits = translator((source, target_in))
    assert logits.shape == (2, target_in.shape[1], len(translator.target_tokenizer.vocabulary))
    padded, _ = batch(translator, SOURCES[:2], TARGETS[:2], pad_source=7)
    np.testing.assert_allclose(translator((padded, target_in)), logits, atol=1e-5)
    ids, scores, alignment = translator.greedy_search(source, 6)
    ids2, scores2, _ = translator.greedy_search(padded, 6)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_allclose(scores2, scores, atol=1e-5)
    assert alignment.shape == (2, 6, source.shape[1])
    np.testing.assert_array_equal(translator.beam_search(padded, 3, 6)[0], translator.beam_search(source, 3, 6)[0])


@pytest.mark.parametrize("attention, cell", [("luong", "lstm"), ("bahdanau", "gru")])
def test_beam_width_one_equals_greedy(attention, cell):
    translator = tiny_translator(attention, cell, seed=3)
    source = translator.source_tokenizer(tf.constant(SOURCES))
    greedy_ids, greedy_scores, _ = translator.greedy_search(source, 9)
    beam_ids, beam_scores = translator.beam_search(source, 1, 9)
    np.testing.assert_array_equal(beam_ids, greedy_ids)
    np.testing.assert_allclose(beam_scores, greedy_scores, rtol=1e-5)
    wide_ids, wide_scores = translator.beam_search(source, 4, 9)
    assert wide_ids.shape == greedy_ids.shape and np.isfinite(wide_scores).all()


def test_decoding_length_follows_the_source(translator):
    source = translator.source_tokenizer(tf.constant(["Jesús lloró.", " ".join(SOURCES)]))
    pieces = source.row_lengths().numpy()
    limits = translator.decode_lengths(source).numpy()
    assert limits.tolist() == [int(np.ceil(translator.length_ratio * n)) + translator.length_offset for n in pieces]
    for decoded in (translator.greedy_search(source)[0], translator.beam_search(source, 3)[0]):
        produced = (decoded.numpy() != model.PAD).sum(axis=1)
        assert decoded.shape[1] <= limits.max() and (produced <= limits).all()
    assert translator.decode_lengths(source, 5).numpy().tolist() == [min(5, n) for n in limits]
    # The encoder reads every piece: nothing is cut before decoding.
    assert translator.greedy_search(source)[2].shape[2] == pieces.max()


def test_keras_file_round_trip(translator, tmp_path):
    translator.save(tmp_path / "t.keras")
    reloaded = keras.models.load_model(tmp_path / "t.keras")
    source, target_in = batch(translator, SOURCES, TARGETS)
    np.testing.assert_allclose(reloaded((source, target_in)), translator((source, target_in)), atol=1e-6)
    text = tf.constant(SOURCES)
    for width in (1, 3):
        np.testing.assert_array_equal(reloaded.translate(text, width, 7)[0], translator.translate(text, width, 7)[0])


@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_sampled_softmax_estimates_the_full_loss_and_trains(tie_embeddings):
    keras.utils.set_random_seed(0)
    candidates = 50000
    cfg = config.from_dict(TranslationConfig, TINY, model={**TINY["model"], "sampled_softmax": candidates,
                                                           "tie_embeddings": tie_embeddings})
    translator = model.build_translator(
        cfg, model.build_vocabulary(tf.data.Dataset.from_tensor_slices(SOURCES), 10, True),
        model.build_vocabulary(tf.data.Dataset.from_tensor_slices(TARGETS), 10, False))
    vocab = translator.target_vocabulary_size
    proposal = np.random.default_rng(0).uniform(0.5, 2.0, vocab)
    translator.set_candidate_frequencies(proposal, distortion=1.0)
    source, target_in = batch(translator, SOURCES, TARGETS)
    target = translator.target_tokenizer(tf.constant(TARGETS))
    target = tf.concat([target, tf.fill([len(TARGETS), 1], model.EOS)], axis=1).to_tensor()
    weights = tf.cast(target > 0, tf.float32)

    def full_loss():
        per_token = keras.losses.sparse_categorical_crossentropy(target, translator((source, target_in)), True)
        return float(tf.reduce_sum(per_token * weights) / tf.reduce_sum(weights))

    # Each true logit is corrected by log(candidates * q(true piece)), as the sampled ones are: with many
    # candidates the sampled loss is the full cross-entropy plus the mean of that correction.
    q = proposal / proposal.sum()
    correction = np.log(candidates * q[target.numpy()[weights.numpy() > 0]]).mean()
    sampled = translator.sampled_loss(translator.features((source, target_in)), target, weights)
    assert float(sampled) - correction == pytest.approx(full_loss(), abs=0.05)

    model.compile_translator(translator, cfg)
    before = full_loss()
    history = translator.fit((source, target_in), target, sample_weight=weights, epochs=20, verbose=0)
    assert list(history.history) == ["loss"]  # the training accuracy would need the full softmax
    assert full_loss() < before - 0.1


@pytest.mark.parametrize("override, name", [
    ({"model": {"attention": "dot"}}, "model.attention"),
    ({"model": {"units": 15}}, "model.units"),
    ({"model": {"dropout": 1.0}}, "model.dropout"),
    ({"data": {"source": "europarl"}}, "data.source"),
    ({"data": {"max_source_tokens": 0}}, "data.max_source_tokens"),
    ({"decode": {"beam_width": 8}, "serving": {"max_beam_width": 4}}, "serving.max_beam_width"),
    ({"serving": {"max_source_pieces": 0}}, "serving.max_source_pieces"),
])
def test_config_names_the_bad_value(override, name):
    with pytest.raises(ConfigError, match=name):
        config.from_dict(TranslationConfig, override)


def test_command_line_loads_and_validates():
    cfg = config.parse_args(TranslationConfig, "translation", ["--decode.beam_width", "2"])
    assert cfg.decode.beam_width == 2 and cfg.data.source == "bible"
    with pytest.raises(SystemExit):
        config.parse_args(TranslationConfig, "translation", ["--model.cell", "transformer"])


def test_bible_split_is_by_whole_books():
    assert {data.split_of(b) for b in data.TEST_BOOKS} == {"test"}
    assert {data.split_of(b) for b in data.VALIDATION_BOOKS} == {"validation"}
    assert data.split_of("Gen") == data.split_of("Matt") == "train"
    assert not set(data.TEST_BOOKS) & set(data.VALIDATION_BOOKS)
    assert data.clean_verse("¶ And  God\nsaid, ") == "And God said,"


def test_tfds_translation_dataset_with_mock_data(translator):
    cfg = config.from_dict(TranslationConfig, TINY, data={**TINY["data"], "source": "tfds",
                                                           "tfds_name": "ted_hrlr_translate/pt_to_en"})
    with tfds.testing.mock_data(num_examples=6):
        examples = list(data.load_split(cfg.data, "validation").as_numpy_iterator())
        tokenizers = (translator.source_tokenizer, translator.target_tokenizer)
        ds, count, _, left_out = train.make_dataset(data.load_split(cfg.data, "train"), tokenizers, cfg,
                                                    shuffle=True)
        (source, target_in), target_out, weights = next(iter(ds))
    assert len(examples) == 6 and isinstance(examples[0]["source"], bytes) and isinstance(examples[0]["target"], bytes)
    assert 0 < count <= 6 and count + left_out == 6
    assert (target_in[:, 0].numpy() == model.BOS).all()
    np.testing.assert_array_equal(weights, tf.cast(target_out != 0, tf.float32))
    np.testing.assert_array_equal(target_in[:, 1:], tf.where(target_out[:, :-1] == model.EOS, 0, target_out[:, :-1]))


SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    assert "zoo" not in sys.modules
    model = tf.saved_model.load(sys.argv[1])
    texts = json.loads(sys.argv[2])
    out = model.signatures["serving_default"](text=tf.constant(texts))
    greedy = model.signatures["translate"](text=tf.constant(texts), beam_width=tf.constant(1),
                                           max_length=tf.constant(6))
    errors = {}
    for name, call in {
        "empty": lambda: model.signatures["serving_default"](text=tf.constant(["ok", "   "])),
        "beam_width": lambda: model.signatures["translate"](text=tf.constant(texts), beam_width=tf.constant(0),
                                                            max_length=tf.constant(6)),
        "max_length": lambda: model.signatures["translate"](text=tf.constant(texts), beam_width=tf.constant(2),
                                                            max_length=tf.constant(10 ** 6)),
    }.items():
        try:
            call()
            errors[name] = ""
        except tf.errors.InvalidArgumentError as e:
            errors[name] = e.message
    for name, text in {"blank": ["ok", "\u00a0\u3000\u200b\ufeff"], "bytes": [" ".join(["luz"] * 5000)],
                       "pieces": ["x" * 400], "steps": ["x" * 200] * 4}.items():
        try:
            model.signatures["serving_default"](text=tf.constant(text))
            errors[name] = ""
        except tf.errors.InvalidArgumentError as e:
            errors[name] = e.message
    whole, half = (float(model.signatures["serving_default"](text=tf.constant([t]))["score"].numpy()[0])
                   for t in (" ".join(["luz de Dios"] * 20), " ".join(["luz de Dios"] * 10)))
    print(json.dumps({"beam": [t.decode() for t in out["translation"].numpy()], "score": out["score"].numpy().tolist(),
                      "greedy": [t.decode() for t in greedy["translation"].numpy()], "errors": errors,
                      "whole": whole, "half": half}))
""")


def test_train_evaluate_export_and_serve_without_zoo(tmp_path):
    cfg = config.from_dict(TranslationConfig, TINY,
                           data={**TINY["data"], "source": "tfds"},
                           decode={"beam_width": 3, "length_ratio": 1.0, "length_offset": 2},
                           serving={"max_source_pieces": 300, "max_request_steps": 2000},
                           train={"epochs": 1, "batch_size": 4, "verbose": 0, "max_train_examples": 8,
                                  "max_eval_examples": 4, "run_dir": str(tmp_path / "run")},
                           export={"base_dir": str(tmp_path / "saved_models")})
    with tfds.testing.mock_data(num_examples=8):
        report = zoo.run(train.RECIPE, cfg).report
    run_dir = tmp_path / "run"
    for name in ("model.keras", "history.csv", "curves.png", "attention.png", "report.json"):
        assert (run_dir / name).is_file(), name
    metrics = report["metrics"]
    assert {"greedy", "beam3"} <= set(metrics) and metrics["sentences"] == 4  # every test sentence is scored
    assert 0 <= metrics["beam3"]["bleu"] <= 100 and metrics["beam3"]["median_length_ratio"] >= 0
    assert sum(m["sentences"] for m in metrics["beam3"]["by_source_length"].values()) == 4
    assert report["saved_model"].endswith("/translation/1")

    texts = ["Y dijo Dios: Sea la luz.", "Jesús lloró."]
    translator = keras.models.load_model(run_dir / "model.keras")
    expected_beam, expected_score = translator.translate(tf.constant(texts), 3, cfg.serving.max_length_limit)
    expected_greedy, _ = translator.translate(tf.constant(texts), 1, 6)
    result = subprocess.run([sys.executable, "-I", "-c", SERVE, report["saved_model"], json.dumps(texts)],
                            cwd="/tmp", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["beam"] == [t.decode() for t in expected_beam.numpy()]
    assert served["greedy"] == [t.decode() for t in expected_greedy.numpy()]
    np.testing.assert_allclose(served["score"], expected_score, rtol=1e-4)
    assert "empty input" in served["errors"]["empty"]
    assert "beam_width must be >= 1" in served["errors"]["beam_width"]
    assert "max_length must be <=" in served["errors"]["max_length"]
    assert "empty input" in served["errors"]["blank"]  # Unicode blanks are blank too
    assert f"at most {cfg.serving.max_input_bytes} bytes" in served["errors"]["bytes"]  # never silently cut
    assert "at most 300 pieces" in served["errors"]["pieces"]
    assert "request too large: at most 2000 decoder steps" in served["errors"]["steps"]  # the decoding budget
    # A text of 60 words (twice the old cap of 30 pieces) is read whole: what the model makes of it differs from what
    # it makes of its first half (a model that cut the input at 30 pieces would score both alike).
    assert served["whole"] != served["half"]


FRENCH = [("le chat dort", "the cat sleeps"), ("le chien mange", "the dog eats"), ("un chat mange", "a cat eats"),
          ("un chien dort", "a dog sleeps"), ("le garçon lit", "the boy reads"), ("une fille écrit", "a girl writes"),
          ("le chat mange du pain", "the cat eats bread"), ("la fille dort", "the girl sleeps")]


def write_tsv(path, pairs):
    path.write_text("".join(f"{source}\t{target}\n" for source, target in pairs), encoding="utf-8")
    return path


def test_tsv_files_are_read_and_bad_lines_are_named(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", FRENCH[:2])
    assert data.read_pairs(path) == FRENCH[:2]
    for text, message in [("a\tb\nno tab here\n", r"bad\.tsv:2: expected 'source<TAB>target', found 1"),
                          ("a\tb\tc\n", r"bad\.tsv:1: .*found 3"), ("a\tb\n\t x\n", r"bad\.tsv:2: empty source"),
                          ("\n\n", r"bad\.tsv: no sentence pairs")]:
        (tmp_path / "bad.tsv").write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            data.read_pairs(tmp_path / "bad.tsv")
    (tmp_path / "bad.tsv").write_bytes(b"a\tb\nd\xe9j\xe0\tx\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:2: not UTF-8"):
        data.read_pairs(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("")
    cfg = config.from_dict(TranslationConfig, data={"source": "files", "train": str(tmp_path / "empty.tsv")})
    with pytest.raises(ValueError, match=r"empty\.tsv: the train file is empty"):
        data.load_split(cfg.data, "train")


def test_trained_on_user_files_and_served_without_zoo(tmp_path):
    train_path = write_tsv(tmp_path / "train.tsv", FRENCH * 4)
    cfg = config.from_dict(TranslationConfig, TINY,
                           data={**TINY["data"], "source": "files", "train": str(train_path),
                                 "validation": str(write_tsv(tmp_path / "dev.tsv", FRENCH[:3])),
                                 "test": str(write_tsv(tmp_path / "test.tsv", FRENCH[3:6]))},
                           train={"epochs": 1, "batch_size": 4, "verbose": 0, "run_dir": str(tmp_path / "run")},
                           export={"base_dir": str(tmp_path / "saved_models")})
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["sentences"] == 3
    script = textwrap.dedent("""
        import json, sys
        sys.modules["zoo"] = None  # the served model must not need the zoo
        import tensorflow as tf
        out = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](text=tf.constant(["le garçon écrit"]))
        print(json.dumps([t.decode() for t in out["translation"].numpy()]))
    """)
    result = subprocess.run([sys.executable, "-I", "-c", script, report["saved_model"]], cwd="/tmp",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    translator = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert served == [t.decode() for t in translator.translate(tf.constant(["le garçon écrit"]), cfg.decode.beam_width,
                                                               cfg.serving.max_length_limit)[0].numpy()]


def test_a_bad_user_file_ends_the_command_with_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nbroken line\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "zoo.recipes.translation", "--data.source", "files",
                             "--data.train", str(bad), "--train.run_dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"translation: error: {bad}:2: expected 'source<TAB>target', "
                                                      f"found 1 tab-separated fields")
