"""Train, evaluate on the held-out test split, save and export the NER tagger."""

from __future__ import annotations

import collections
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches, take_first
from zoo.models import average_taggers
from zoo.recipes.ner import data, model
from zoo.recipes.ner.config import NerConfig

RECIPE = "ner"



def _pairs(ds: tf.data.Dataset, max_tokens: int) -> tf.data.Dataset:
    return ds.map(lambda ex: (ex["tokens"][:max_tokens], ex["tags"][:max_tokens]))


def vocabularies(train_raw: tf.data.Dataset, min_count: int, max_words: int) -> tuple[list[str], list[str]]:
    """Word keys and characters seen at least ``min_count`` times in training, most frequent first."""
    words, chars = collections.Counter(), collections.Counter()
    for tokens in train_raw.map(lambda ex: model.word_key(ex["tokens"])).as_numpy_iterator():
        words.update(t.decode("utf-8") for t in tokens)
    for tokens in train_raw.map(lambda ex: ex["tokens"]).as_numpy_iterator():
        chars.update(c for t in tokens for c in t.decode("utf-8", errors="replace"))

    def frequent(counts, limit):
        return [k for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count and k][:limit]

    return frequent(words, max_words - 2), frequent(chars, None)


def make_datasets(cfg: NerConfig):
    """Length-bucketed (tokens, tags) train/validation batches, the raw train split and its size."""
    train_raw = take_first(data.load_split(cfg.data, "train"), cfg.train.max_train_examples).cache()
    val_raw = take_first(data.load_split(cfg.data, "validation"), cfg.train.max_eval_examples)
    train_ds = _pairs(train_raw, cfg.data.max_tokens)
    val_ds = _pairs(val_raw, cfg.data.max_tokens).cache()
    lengths = [int(n) for n in train_ds.map(lambda tokens, _: tf.size(tokens)).as_numpy_iterator()]
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    length_fn = lambda tokens, _: tf.size(tokens)  # noqa: E731
    train_ds = bucketed_batches(train_ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True),
                                length_fn, cfg.train.batch_size, boundaries)
    val_ds = bucketed_batches(val_ds, length_fn, cfg.train.batch_size, boundaries)
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds.prefetch(tf.data.AUTOTUNE), train_raw, len(lengths)


def predict_tags(tagger: keras.Model, token_lists: list[list[bytes]], batch_size: int = 128) -> list[np.ndarray]:
    """Tag ids of every token of every (pre-tokenized) text."""
    predicted = []
    for i in range(0, len(token_lists), batch_size):
        chunk = token_lists[i:i + batch_size]
        tokens = tf.ragged.constant(chunk, dtype=tf.string).to_tensor(model.PAD)
        tags = tagger(tokens, training=False)["tags"].numpy()
        predicted.extend(row[:len(t)] for row, t in zip(tags, chunk))
    return predicted


def evaluate(tagger: keras.Model, cfg: NerConfig, split: str = "test") -> dict:
    """Entity-level precision/recall/F1 (seqeval, CoNLL rules) per type and micro-averaged overall, in percent."""
    from seqeval.metrics import classification_report

    names = data.tag_names(cfg.data)
    examples = list(take_first(data.load_split(cfg.data, split), cfg.train.max_eval_examples).as_numpy_iterator())
    token_lists = [list(ex["tokens"][:cfg.data.max_tokens]) for ex in examples]
    predicted = predict_tags(tagger, token_lists)
    gold = [[names[t] for t in ex["tags"][:cfg.data.max_tokens]] for ex in examples]
    guess = [[names[t] for t in row] for row in predicted]
    report = classification_report(gold, guess, output_dict=True, zero_division=0)
    metrics = {"split": split, "texts": len(examples), "tokens": sum(map(len, gold))}
    for name, row in report.items():
        if name in ("macro avg", "weighted avg"):
            continue
        metrics["overall" if name == "micro avg" else name] = {
            "precision": round(100 * float(row["precision"]), 2), "recall": round(100 * float(row["recall"]), 2),
            "f1": round(100 * float(row["f1-score"]), 2), "entities": int(row["support"])}
    return metrics


def tune_background_bias(tagger: keras.Model, cfg: NerConfig) -> dict[float, float]:
    """Sets ``tagger.background_bias`` to the value of ``model.background_bias_grid`` with the best validation
    entity F1 (the first on ties); returns every value's validation F1."""
    scores = {}
    for bias in cfg.model.background_bias_grid:
        tagger.background_bias = bias
        scores[bias] = evaluate(tagger, cfg, "validation")["overall"]["f1"]
    tagger.background_bias = max(scores, key=scores.get)
    return scores


def format_metrics(metrics: dict) -> str:
    rows = [f"{'type':12s} {'entities':>8s} {'precision':>9s} {'recall':>7s} {'F1':>6s}"]
    for name, m in sorted(metrics.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        if isinstance(m, dict):
            rows.append(f"{name:12s} {m['entities']:8d} {m['precision']:9.2f} {m['recall']:7.2f} {m['f1']:6.2f}")
    return "\n".join(rows)


def run(cfg: NerConfig) -> dict:
    """Trains, evaluates on the held-out test split, saves ``model.keras`` and exports; returns the report."""
    run_dir, strategy = training.start_run(cfg.train, RECIPE)
    started = time.time()

    train_ds, val_ds, train_raw, num_train = make_datasets(cfg)
    words, chars = vocabularies(train_raw, cfg.data.min_word_count, cfg.data.max_words)
    print(f"{num_train} training texts, {len(words)} words and {len(chars)} characters in the vocabularies")

    gazetteers = data.gazetteers() if cfg.model.gazetteers else None

    def build(k):
        tagger = model.build_tagger(cfg, words, chars, len(data.tag_names(cfg.data)), name=f"ner_tagger_{k}",
                                    gazetteers=gazetteers)
        model.compile_tagger(tagger, cfg)
        return tagger

    members, epochs_run = training.fit_members(cfg.model.ensemble_size, build, train_ds, val_ds, cfg.train, run_dir,
                                               strategy, cfg, monitor="val_tag_f1", mode="max")
    tagger = average_taggers(members, name="ner_tagger")
    bias_scores = tune_background_bias(tagger, cfg)
    print(f"validation entity F1 by O bias: {bias_scores}; using {tagger.background_bias}")
    train_seconds = time.time() - started

    metrics = evaluate(tagger, cfg)
    print(f"\nHeld-out test split ({cfg.data.source}, {metrics['texts']} texts), entity-level:\n"
          f"{format_metrics(metrics)}")
    report = {"metrics": metrics, "train_seconds": round(train_seconds, 1), "epochs_run": epochs_run,
              "background_bias": tagger.background_bias, "validation_f1_by_background_bias": bias_scores}
    if len(members) > 1:  # what the ensemble adds over its members (each decoded without bias)
        report["member_f1"] = {split: [evaluate(m, cfg, split)["overall"]["f1"] for m in members]
                               for split in ("validation", "test")}
        print(f"members' entity F1, validation {report['member_f1']['validation']}, "
              f"test {report['member_f1']['test']}")
    return training.finish_run(RECIPE, tagger, cfg, run_dir, report)
