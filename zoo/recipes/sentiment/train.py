"""Train, evaluate on the held-out test split, save and export the sentiment model."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches, take_first
from zoo.recipes.sentiment import data, model
from zoo.recipes.sentiment.config import VADER_DOMAINS, SentimentConfig

RECIPE = "sentiment"



def make_datasets(cfg: SentimentConfig, vectorizer):
    """Vectorised, length-bucketed train/validation datasets of (ids, targets, weights)."""
    train_raw = take_first(data.load_split(cfg.data, "train", train_only_domains=True), cfg.train.max_train_examples)
    val_raw = take_first(data.load_split(cfg.data, "validation"), cfg.train.max_eval_examples)
    to_example = data.to_training_example(vectorizer, cfg.data.max_tokens)
    train_ds = train_raw.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).cache()
    val_ds = val_raw.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).cache()
    lengths = [int(n) for n in train_ds.map(lambda ids, *_: tf.size(ids)).as_numpy_iterator()]
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    length_fn = lambda ids, *_: tf.size(ids)  # noqa: E731
    train_ds = bucketed_batches(train_ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True),
                                length_fn, cfg.train.batch_size, boundaries)
    val_ds = bucketed_batches(val_ds, length_fn, cfg.train.batch_size, boundaries)
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds.prefetch(tf.data.AUTOTUNE), len(lengths)


def predict_texts(text_model: keras.Model, texts: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    outputs = [text_model(tf.constant(texts[i:i + batch_size]), training=False)
               for i in range(0, len(texts), batch_size)]
    return {k: np.concatenate([np.asarray(o[k]) for o in outputs]) for k in ("rating", "polarity")}


def evaluate(text_model: keras.Model, cfg: SentimentConfig, split: str = "test") -> dict:
    """Held-out metrics: binary accuracy (overall and per VADER domain), 5-class accuracy and rating MAE."""
    examples = list(take_first(data.load_split(cfg.data, split), cfg.train.max_eval_examples).as_numpy_iterator())
    texts = np.array([ex["text"] for ex in examples], dtype=object)
    pred = predict_texts(text_model, texts)
    rating_true = np.array([ex["rating"] for ex in examples])
    rating_pred = pred["rating"].argmax(-1)
    polarity_true = np.array([ex["polarity"] for ex in examples])
    polarity_pred = (pred["polarity"][:, 0] > 0.5).astype(np.float32)
    has_polarity = np.array([ex["polarity_weight"] for ex in examples]) > 0
    has_rating = np.array([ex["rating_weight"] for ex in examples]) > 0
    domains = np.array([ex["domain"] for ex in examples])

    def summary(select):
        polar, rated = select & has_polarity, select & has_rating
        result = {"examples": int(select.sum()),
                  "binary_accuracy": float((polarity_pred[polar] == polarity_true[polar]).mean())}
        if rated.any():
            result["rating_accuracy"] = float((rating_pred[rated] == rating_true[rated]).mean())
            result["rating_mae"] = float(np.abs(rating_pred[rated] - rating_true[rated]).mean())
        return result

    metrics = {"split": split, "overall": summary(np.ones(len(examples), bool))}
    if cfg.data.source == "vader":
        for i, name in enumerate(VADER_DOMAINS):
            if (domains == i).any():
                metrics[name] = summary(domains == i)
    return metrics


def format_metrics(metrics: dict) -> str:
    rows = [f"{'subset':10s} {'n':>6s} {'binary acc':>11s} {'5-class acc':>12s} {'rating MAE':>11s}"]
    for name, m in metrics.items():
        if isinstance(m, dict):
            rows.append(f"{name:10s} {m['examples']:6d} {m['binary_accuracy']:11.4f} "
                        f"{m.get('rating_accuracy', float('nan')):12.4f} {m.get('rating_mae', float('nan')):11.4f}")
    return "\n".join(rows)


def run(cfg: SentimentConfig) -> dict:
    """Trains, evaluates on the held-out test split, saves ``model.keras`` and exports; returns the report."""
    run_dir, strategy = training.start_run(cfg.train, RECIPE)
    started = time.time()

    vectorizer = model.make_vectorizer(cfg.data)
    train_texts = take_first(data.load_split(cfg.data, "train", train_only_domains=True), cfg.train.max_train_examples)
    vectorizer.adapt(train_texts.map(lambda ex: ex["text"]).batch(512))
    valence = None
    if cfg.model.lexicon_feature:
        lexicon = data.read_lexicon(data.fetch.pip_sdist(*data.VADER_SDIST))
        # Lexicon words unseen in training still get their valence at serving time.
        vocabulary = vectorizer.get_vocabulary()
        seen = set(vocabulary)
        extra = sorted(w for w in lexicon if w not in seen and " " not in w)
        vectorizer = model.make_vectorizer(cfg.data, vocabulary=vocabulary[2:] + extra)  # [2:]: the padding and OOV tokens are implied
        valence = model.lexicon_valence(vectorizer.get_vocabulary(), lexicon)
    train_ds, val_ds, num_train = make_datasets(cfg, vectorizer)
    print(f"{num_train} training examples, vocabulary {vectorizer.vocabulary_size()}")

    def build(k):
        classifier = model.build_classifier(cfg.model, vectorizer.vocabulary_size(), valence, name=f"classifier_{k}")
        model.compile_classifier(classifier, cfg)
        return classifier

    members, epochs_run = training.fit_members(cfg.model.ensemble_size, build, train_ds, val_ds, cfg.train, run_dir,
                                               strategy, cfg)
    train_seconds = time.time() - started

    text_model = model.build_text_model(vectorizer, model.build_ensemble(members), cfg.data.max_tokens)
    metrics = evaluate(text_model, cfg)
    print(f"\nHeld-out test split ({cfg.data.source}):\n{format_metrics(metrics)}")
    report = {"metrics": metrics, "train_seconds": round(train_seconds, 1), "epochs_run": epochs_run}
    return training.finish_run(RECIPE, text_model, cfg, run_dir, report)
