"""The sentiment recipe: learn the vocabulary, train the classifiers, evaluate per domain, serve strings."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from zoo import pretrained
from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.layers import BagLinear, WordPieces
from zoo.recipe import Prepared, Recipe
from zoo.recipes.sentiment import data, model, peers
from zoo.recipes.sentiment.config import VADER_DOMAINS, SentimentConfig
from zoo.report import table


def make_vectorizer(cfg: SentimentConfig, train: tf.data.Dataset):
    """The text vectorizer adapted on the training text (plus the lexicon's words), and the lexicon valence of its
    vocabulary (None without ``model.lexicon_feature``)."""
    vectorizer = model.make_vectorizer(cfg.data)
    vectorizer.adapt(train.map(lambda ex: ex["text"]).batch(512))
    if not cfg.model.lexicon_feature:
        return vectorizer, None
    lexicon = data.read_lexicon(data.fetch.pip_sdist(*data.VADER_SDIST))
    # Lexicon words unseen in training still get their valence at serving time.
    vocabulary = vectorizer.get_vocabulary()
    seen = set(vocabulary)
    extra = sorted(w for w in lexicon if w not in seen and " " not in w)
    vectorizer = model.make_vectorizer(cfg.data, vocabulary=vocabulary[2:] + extra)  # [2:]: padding, OOV implied
    return vectorizer, model.lexicon_valence(vectorizer.get_vocabulary(), lexicon)


def make_encoder(cfg: SentimentConfig, vectorizer) -> tuple:
    """The pretrained encoder's layers for ``vectorizer``'s word ids: ``(WordPieces, BertEncoder)``, the piece
    table computed by the encoder's own tokenizer; and ``vectorizer`` with the tokenizer's whole words added to its
    vocabulary (words unseen in training then still reach the encoder as themselves, not as ``[UNK]``)."""
    spec = pretrained.ENCODERS[cfg.model.encoder]
    tok = pretrained.tokenizer(spec)
    vocabulary = vectorizer.get_vocabulary()
    seen = set(vocabulary)
    vectorizer = model.make_vectorizer(
        cfg.data, vocabulary=vocabulary[2:] + [w for w in pretrained.whole_words(tok) if w not in seen])
    words = vectorizer.get_vocabulary()
    word_pieces = WordPieces(len(words), model.PIECES_PER_WORD, cfg.model.max_pieces, *pretrained.special_ids(tok),
                             name="word_pieces")
    word_pieces.build((None, None))
    word_pieces.set_weights([pretrained.piece_table(tok, words, model.PIECES_PER_WORD)])
    return vectorizer, (word_pieces, pretrained.build_encoder(spec, cfg.model.max_pieces))


def encoded(examples: tf.data.Dataset, encoder: tuple, batch_size: int = 64) -> tf.data.Dataset:
    """(word ids, targets, weights) examples → (features, targets, weights): the frozen encoder runs once per text
    (texts of similar length batched together), and its features are kept in memory as float16."""
    word_pieces, bert = encoder
    examples = list(examples.as_numpy_iterator())
    pieces = []
    for start in range(0, len(examples), 1024):
        ids = keras.utils.pad_sequences([ex[0] for ex in examples[start:start + 1024]], padding="post")
        pieces += [row[row != 0] for row in word_pieces(ids).numpy()]
    encode = tf.function(bert, reduce_retracing=True)
    features = [None] * len(pieces)
    order = np.argsort([len(p) for p in pieces], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = keras.utils.pad_sequences([pieces[i] for i in rows], padding="post")
        out = encode(tf.constant(batch)).numpy().astype(np.float16)
        for row, i in enumerate(rows):
            features[i] = out[row, :len(pieces[i])]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(features), [len(f) for f in features])
    targets = {head: np.array([ex[1][head] for ex in examples]) for head in examples[0][1]}
    weights = {head: np.array([ex[2][head] for ex in examples], np.float32) for head in examples[0][2]}
    # A ragged tensor's rows come out as rank-0 ragged tensors, which cannot be padded: the identity map makes
    # them plain tensors.
    return tf.data.Dataset.from_tensor_slices((ragged, targets, weights)).map(lambda x, y, w: (x, y, w))


def make_datasets(cfg: SentimentConfig, vectorizer, train: tf.data.Dataset, validation: tf.data.Dataset,
                  encoder: tuple = ()):
    """Length-bucketed train/validation datasets of (inputs, targets, weights) and the training size; the inputs
    are word ids, or the pretrained ``encoder``'s features of them (computed here, once)."""
    to_example = data.to_training_example(vectorizer, cfg.data.max_tokens, data.has_polarity(cfg.data))
    train_ds = train.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).cache()
    val_ds = validation.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if encoder:
        train_ds, val_ds = encoded(train_ds, encoder), encoded(val_ds, encoder)
    length_fn = lambda x, *_: tf.shape(x)[0]  # noqa: E731
    lengths = [int(n) for n in train_ds.map(length_fn).as_numpy_iterator()]
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    train_ds = bucketed_batches(train_ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True),
                                length_fn, cfg.train.batch_size, boundaries)
    val_ds = bucketed_batches(val_ds, length_fn, cfg.train.batch_size, boundaries)
    if encoder:  # float16 in memory, float32 into the network
        train_ds, val_ds = (ds.map(lambda x, y, w: (tf.cast(x, tf.float32), y, w)) for ds in (train_ds, val_ds))
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds.prefetch(tf.data.AUTOTUNE), len(lengths)


def predict_texts(text_model: keras.Model, texts: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    outputs = [text_model(tf.constant(texts[i:i + batch_size]), training=False)
               for i in range(0, len(texts), batch_size)]
    return {k: np.concatenate([np.asarray(o[k]) for o in outputs]) for k in outputs[0]}


def ngram_features(ngram_vectorizer, texts: np.ndarray, batch_size: int = 1024):
    """Binary `(len(texts), vocabulary)` SciPy matrix of the n-gram ids that ``ngram_vectorizer`` gives each text
    (padding and repeats dropped): the features `BagLinear` scores in the graph."""
    from scipy import sparse

    rows, cols = [], []
    for i in range(0, len(texts), batch_size):
        ids = ngram_vectorizer(tf.constant(texts[i:i + batch_size])).numpy()
        row, _ = np.nonzero(ids)
        rows.append(row + i)
        cols.append(ids[ids != 0])
    x = sparse.csr_matrix((np.ones(sum(map(len, rows)), np.float32), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(texts), ngram_vectorizer.vocabulary_size()))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def fit_wide(cfg: SentimentConfig, deep_model: keras.Model, splits: dict) -> tuple[tuple, dict]:
    """The wide model and its stacking with ``deep_model``'s polarity: NBSVM (``peers.NBSVM``, ``C`` from
    ``cfg.wide.c_grid`` by validation accuracy) on the n-gram ids of the training texts, then a logistic regression
    on ``model.stack_features`` (the network's polarity logit and rating log-odds, the NBSVM score) fitted on the
    validation split. Returns the layers for
    `model.build_text_model` and what was chosen, with each part's validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    train, validation = peer_examples(cfg, splits["train"]), peer_examples(cfg, splits["validation"])
    ngram_vectorizer = model.make_ngram_vectorizer(cfg.wide)
    ngram_vectorizer.adapt(tf.data.Dataset.from_tensor_slices(train[0].astype(str)).batch(1024))
    x_train, x_val = (ngram_features(ngram_vectorizer, texts) for texts, _ in (train, validation))
    nbsvm, wide_accuracy, C = peers.best_c(peers.NBSVM(beta=cfg.wide.beta), cfg.wide.c_grid, (x_train, train[1]),
                                           (x_val, validation[1]))
    deep = predict_texts(deep_model, validation[0])
    features = np.asarray(model.stack_features(deep["polarity"], deep["probabilities"],
                                               nbsvm.decision_function(x_val)[:, None]))
    stacker = LogisticRegression().fit(features, validation[1])
    bag = BagLinear(ngram_vectorizer.vocabulary_size(), name="wide_ngrams")
    bag.build((None, None))
    bag.set_weights([nbsvm.coef.astype(np.float32), np.float32(nbsvm.bias)])
    stack = keras.layers.Dense(1, activation="sigmoid", name="polarity_stack")
    stack.build((None, len(model.STACKED)))
    stack.set_weights([stacker.coef_.T.astype(np.float32), stacker.intercept_.astype(np.float32)])
    facts = {"ngrams": ngram_vectorizer.vocabulary_size(), "C": C,
             "stack_weights": {name: round(float(w), 4) for name, w in zip(model.STACKED, stacker.coef_[0])},
             "validation_binary_accuracy": {
                 "network": round(float(((deep["polarity"][:, 0] > 0.5) == validation[1]).mean()), 4),
                 "wide": round(wide_accuracy, 4),
                 "stacked": round(float((stacker.predict(features) == validation[1]).mean()), 4)}}
    return (ngram_vectorizer, bag, stack), facts


def peer_examples(cfg: SentimentConfig, split: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(texts, labels) of the examples of ``split`` that have the peers' target: the 0/1 polarity where the data
    has one, else the class."""
    target = "polarity" if data.has_polarity(cfg.data) else "rating"
    examples = [ex for ex in split.as_numpy_iterator() if ex[f"{target}_weight"] > 0]
    return (np.array([ex["text"].decode() for ex in examples], dtype=object),
            np.array([int(ex[target]) for ex in examples]))


def evaluate(text_model: keras.Model, cfg: SentimentConfig, splits: dict,
             name: str = "test") -> tuple[dict, dict[str, float]]:
    """Held-out metrics: class accuracy (5 ratings, or the classes of the user's files) and, for integer ratings,
    their MAE; where the data has polarity, binary accuracy; each overall and per VADER domain, accuracies with
    their standard error. With ``cfg.peers.enabled``, the classical peers fitted on the training split beside them
    (their accuracy on the peers' target, binary polarity or the class, and the zoo's lead over each, with the
    standard error of the paired difference). Returns the metrics and the seconds each peer's fitting took (kept
    apart: the metrics of a seed do not vary)."""
    examples = list(splits[name].as_numpy_iterator())
    texts = np.array([ex["text"] for ex in examples], dtype=object)
    pred = predict_texts(text_model, texts)
    polar = data.has_polarity(cfg.data)
    integer = data.integer_classes(data.class_names(cfg.data))
    rating_true = np.array([ex["rating"] for ex in examples])
    rating_pred = pred["probabilities"].argmax(-1)
    has_rating = np.array([ex["rating_weight"] for ex in examples]) > 0
    if polar:
        target_true = np.array([ex["polarity"] for ex in examples])
        correct = (pred["polarity"][:, 0] > 0.5).astype(np.float32) == target_true
        has_target = np.array([ex["polarity_weight"] for ex in examples]) > 0
    else:
        target_true, correct, has_target = rating_true, rating_pred == rating_true, has_rating
    target_metric = "binary_accuracy" if polar else "accuracy"
    domains = np.array([ex["domain"] for ex in examples])
    subsets = {"overall": np.ones(len(examples), bool)}
    if cfg.data.source == "vader":
        subsets.update({domain: domains == i for i, domain in enumerate(VADER_DOMAINS) if (domains == i).any()})

    def summary(select):
        chosen, rated = select & has_target, select & has_rating
        result = {"examples": int(select.sum()), target_metric: float(correct[chosen].mean()),
                  f"{target_metric}_se": float(correct[chosen].std() / np.sqrt(max(chosen.sum(), 1)))}
        if polar and rated.any():
            result["rating_accuracy"] = float((rating_pred[rated] == rating_true[rated]).mean())
        if integer and rated.any():
            result["rating_mae"] = float(np.abs(rating_pred[rated] - rating_true[rated]).mean())
        return result

    metrics = {"split": name, **{subset: summary(select) for subset, select in subsets.items()}}
    seconds = {}
    if cfg.peers.enabled:
        fitted, seconds = peers.fit_peers(cfg.peers, peer_examples(cfg, splits["train"]),
                                          peer_examples(cfg, splits["validation"]))
        decoded = np.array([t.decode() for t in texts], dtype=object)
        metrics["peers"] = {}
        for peer_name, (peer, facts) in fitted.items():
            peer_correct = peer.predict(decoded[has_target]) == target_true[has_target]
            rows = {}
            for subset, select in subsets.items():
                chosen = select[has_target]
                rows[subset] = {target_metric: float(peer_correct[chosen].mean()),
                                **peers.paired_difference(correct[has_target][chosen], peer_correct[chosen])}
            metrics["peers"][peer_name] = {**facts, **rows}
    return metrics, seconds


def format_metrics(metrics: dict) -> str:
    target = "binary_accuracy" if "binary_accuracy" in metrics["overall"] else "accuracy"
    title = {"binary_accuracy": "binary acc", "accuracy": "accuracy"}[target]
    lines = table({"subset": "", "n": "d", title: ".4f", "± se": ".4f", "5-class acc": ".4f", "rating MAE": ".4f"},
                  [(name, m["examples"], m[target], m.get(f"{target}_se"), m.get("rating_accuracy"),
                    m.get("rating_mae")) for name, m in metrics.items() if isinstance(m, dict) and name != "peers"])
    if "peers" in metrics:
        lines += (f"\n\nClassical peers on the same split ({title}; zoo − peer ± se of the paired "
                  f"difference):\n")
        lines += table({"peer": "", "subset": "", "peer acc": ".4f", "zoo − peer": "+.4f", "± se": ".4f"},
                       [(name, subset, row[target], row["difference"], row["difference_se"])
                        for name, peer in metrics["peers"].items() for subset, row in peer.items()
                        if isinstance(row, dict)])
    return lines


class SentimentRecipe(Recipe):
    """Sentiment (sequence → one): text in, a 1-5 rating and a positive/negative score out."""

    name = "sentiment"
    config_class = SentimentConfig

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        vectorizer, valence = make_vectorizer(cfg, splits["train"])
        started, encoder = time.time(), ()
        if cfg.model.encoder != "words":
            vectorizer, encoder = make_encoder(cfg, vectorizer)
        train_ds, val_ds, num_train = make_datasets(cfg, vectorizer, splits["train"], splits["validation"], encoder)
        facts = {"training_examples": num_train, "classes": data.class_names(cfg.data),
                 "vocabulary": vectorizer.vocabulary_size()}
        if encoder:
            facts["encoder"] = {"name": pretrained.ENCODERS[cfg.model.encoder].name,
                                "parameters": encoder[1].count_params(),
                                "feature_seconds": round(time.time() - started, 1)}
        return Prepared(train_ds, val_ds, facts=facts,
                        state={"vectorizer": vectorizer, "valence": valence, "encoder": encoder})

    def build(self, cfg, prepared, member):
        vectorizer, encoder = prepared.state["vectorizer"], prepared.state["encoder"]
        classifier = model.build_classifier(cfg.model, vectorizer.vocabulary_size(), prepared.state["valence"],
                                            name=f"classifier_{member}", num_classes=len(data.class_names(cfg.data)),
                                            polarity=data.has_polarity(cfg.data),
                                            feature_dim=encoder[1].hidden_dim if encoder else None)
        model.compile_classifier(classifier, cfg)
        return classifier

    def finalize(self, cfg, prepared, members, splits):
        vectorizer, classifier = prepared.state["vectorizer"], model.build_ensemble(members)
        encoder = prepared.state["encoder"]
        deep = model.build_text_model(vectorizer, classifier, cfg.data.max_tokens, encoder=encoder)
        if not (cfg.wide.ngrams and data.has_polarity(cfg.data)):
            return deep
        started = time.time()
        wide, prepared.state["wide"] = fit_wide(cfg, deep, splits)
        prepared.state["wide"]["seconds"] = round(time.time() - started, 1)
        return model.build_text_model(vectorizer, classifier, cfg.data.max_tokens, wide, encoder)

    def evaluate(self, cfg, text_model, splits, prepared, run_dir):
        metrics, peers_seconds = evaluate(text_model, cfg, splits)
        return {"metrics": metrics, "peers_seconds": peers_seconds,
                **({"wide": prepared.state["wide"]} if "wide" in prepared.state else {})}

    def summary(self, report):
        text = f"Held-out test split:\n{format_metrics(report['metrics'])}"
        if "wide" in report:
            wide = report["wide"]
            text += (f"\n\npolarity = the network stacked with NBSVM on {wide['ngrams']} n-grams (C {wide['C']}, "
                     f"weights {wide['stack_weights']}); validation accuracy {wide['validation_binary_accuracy']}")
        return text

    def endpoints(self, cfg, text_model):
        return {"serving_default": model.make_serving_fn(text_model, cfg.serving, data.class_names(cfg.data))}

    def example_inputs(self, cfg):
        return ["A gorgeous, witty film.", "dull and far too long"]


RECIPE = SentimentRecipe()
