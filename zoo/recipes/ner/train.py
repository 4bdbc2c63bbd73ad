"""The ner recipe: learn word and character vocabularies, train the taggers, tune the O bias, score entities."""

from __future__ import annotations

import collections
import time

import keras
import numpy as np
import tensorflow as tf

from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.models import average_taggers
from zoo.recipe import Prepared, Recipe
from zoo.recipes.ner import data, model, peers
from zoo.recipes.ner.config import NerConfig
from zoo.report import table


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


def make_datasets(cfg: NerConfig, train_raw: tf.data.Dataset, val_raw: tf.data.Dataset):
    """Length-bucketed (tokens, tags) train/validation batches and the number of training texts."""
    train_ds = _pairs(train_raw, cfg.data.max_tokens)
    val_ds = _pairs(val_raw, cfg.data.max_tokens).cache()
    lengths = [int(n) for n in train_ds.map(lambda tokens, _: tf.size(tokens)).as_numpy_iterator()]
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    length_fn = lambda tokens, _: tf.size(tokens)  # noqa: E731
    train_ds = bucketed_batches(train_ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True),
                                length_fn, cfg.train.batch_size, boundaries)
    val_ds = bucketed_batches(val_ds, length_fn, cfg.train.batch_size, boundaries)
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds.prefetch(tf.data.AUTOTUNE), len(lengths)


def predict_tags(tagger: keras.Model, token_lists: list[list[bytes]], batch_size: int = 128) -> list[np.ndarray]:
    """Tag ids of every token of every (pre-tokenized) text."""
    predicted = []
    for i in range(0, len(token_lists), batch_size):
        chunk = token_lists[i:i + batch_size]
        tokens = tf.ragged.constant(chunk, dtype=tf.string).to_tensor(model.PAD)
        tags = tagger(tokens, training=False)["tags"].numpy()
        predicted.extend(row[:len(t)] for row, t in zip(tags, chunk))
    return predicted


def entity_metrics(gold: list[list[str]], guess: list[list[str]], name: str) -> dict:
    """Entity-level precision/recall/F1 (seqeval, CoNLL rules) per type and micro-averaged overall, in percent."""
    from seqeval.metrics import classification_report

    report = classification_report(gold, guess, output_dict=True, zero_division=0)
    metrics = {"split": name, "texts": len(gold), "tokens": sum(map(len, gold))}
    for kind, row in report.items():
        if kind in ("macro avg", "weighted avg"):
            continue
        metrics["overall" if kind == "micro avg" else kind] = {
            "precision": round(100 * float(row["precision"]), 2), "recall": round(100 * float(row["recall"]), 2),
            "f1": round(100 * float(row["f1-score"]), 2), "entities": int(row["support"])}
    return metrics


def gold_tags(cfg: NerConfig, split: tf.data.Dataset) -> tuple[list[list[bytes]], list[list[str]]]:
    """(token lists, tag-name lists) of a split, cut to ``data.max_tokens`` as the served model reads them."""
    names = data.tag_names(cfg.data)
    examples = list(split.as_numpy_iterator())
    return ([list(ex["tokens"][:cfg.data.max_tokens]) for ex in examples],
            [[names[t] for t in ex["tags"][:cfg.data.max_tokens]] for ex in examples])


def evaluate(tagger: keras.Model, cfg: NerConfig, split: tf.data.Dataset, name: str = "test",
             with_tags: bool = False):
    """``entity_metrics`` of ``tagger`` on ``split`` (and, ``with_tags``, the gold and predicted tag lists)."""
    names = data.tag_names(cfg.data)
    token_lists, gold = gold_tags(cfg, split)
    guess = [[names[t] for t in row] for row in predict_tags(tagger, token_lists)]
    metrics = entity_metrics(gold, guess, name)
    return (metrics, gold, guess) if with_tags else metrics


def fit_feature_crf(cfg: NerConfig, splits: dict, gazetteers) -> tuple[peers.FeatureCRF, float]:
    """The feature CRF fitted on the training split (tokens cut as the served model reads them), and its seconds."""
    tokens, tags = gold_tags(cfg, splits["train"])
    started = time.time()
    crf = peers.FeatureCRF(cfg.peers.c1, cfg.peers.c2, cfg.peers.max_iterations, gazetteers)
    crf.fit([[t.decode() for t in row] for row in tokens], tags)
    return crf, round(time.time() - started, 1)


def score_peer(cfg: NerConfig, splits: dict, gold: list[list[str]], guess: list[list[str]],
               crf: peers.FeatureCRF, seconds: float) -> dict:
    """The feature CRF alone on the test split, beside the zoo's ``guess``."""
    crf_guess = crf.predict([[t.decode() for t in row] for row in gold_tags(cfg, splits["test"])[0]])
    return {"feature_crf": {**entity_metrics(gold, crf_guess, "test"), "seconds": seconds,
                            **peers.paired_bootstrap(peers.entity_counts(gold, guess),
                                                     peers.entity_counts(gold, crf_guess))}}


def tune_feature_crf_weight(tagger, network, crf: peers.FeatureCRF, cfg: NerConfig,
                            validation: tf.data.Dataset) -> dict[float, float]:
    """Sets ``tagger`` (`model.with_feature_crf` of ``network``) to the weight of ``model.feature_crf_weight_grid``
    with the best validation entity F1 (the first on ties); returns every weight's validation F1."""
    _, state, transitions = crf.weights(data.tag_names(cfg.data))
    scores = {}
    for weight in cfg.model.feature_crf_weight_grid:
        model.weigh_feature_crf(tagger, network, state, transitions, weight)
        scores[weight] = evaluate(tagger, cfg, validation, "validation")["overall"]["f1"]
    model.weigh_feature_crf(tagger, network, state, transitions, max(scores, key=scores.get))
    return scores


def tune_background_bias(tagger: keras.Model, cfg: NerConfig, validation: tf.data.Dataset) -> dict[float, float]:
    """Sets ``tagger.background_bias`` to the value of ``model.background_bias_grid`` with the best validation
    entity F1 (the first on ties); returns every value's validation F1."""
    scores = {}
    for bias in cfg.model.background_bias_grid:
        tagger.background_bias = bias
        scores[bias] = evaluate(tagger, cfg, validation, "validation")["overall"]["f1"]
    tagger.background_bias = max(scores, key=scores.get)
    return scores


def format_metrics(metrics: dict) -> str:
    return table({"type": "", "entities": "d", "precision": ".2f", "recall": ".2f", "F1": ".2f"},
                 [(name, m["entities"], m["precision"], m["recall"], m["f1"])
                  for name, m in sorted(metrics.items(), key=lambda kv: (kv[0] == "overall", kv[0]))
                  if isinstance(m, dict)])


class NerRecipe(Recipe):
    """Named-entity recognition (sequence → sequence): text in, tokens, BIO tags and entity spans out."""

    name = "ner"
    config_class = NerConfig
    monitor = ("val_tag_f1", "max")

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        train_raw = splits["train"].cache()
        train_ds, val_ds, num_train = make_datasets(cfg, train_raw, splits["validation"])
        words, chars = vocabularies(train_raw, cfg.data.min_word_count, cfg.data.max_words)
        state = {"words": words, "chars": chars, "gazetteers": data.gazetteers() if cfg.model.gazetteers else None}
        if cfg.model.feature_crf_stage == "training":  # the members train on top of it
            state["crf"] = fit_feature_crf(cfg, splits, state["gazetteers"])
        return Prepared(train_ds, val_ds,
                        facts={"training_texts": num_train, "words": len(words), "characters": len(chars)},
                        state=state)

    def build(self, cfg, prepared, member):
        state = prepared.state
        tagger = model.build_tagger(cfg, state["words"], state["chars"], len(data.tag_names(cfg.data)),
                                    name=f"ner_tagger_{member}", gazetteers=state["gazetteers"])
        model.compile_tagger(tagger, cfg)
        if cfg.model.feature_crf_stage == "training":
            vocabulary, weights, transitions = state["crf"][0].weights(data.tag_names(cfg.data))
            network, tagger = tagger, model.with_feature_crf(tagger, state["gazetteers"], vocabulary,
                                                             name=f"ner_member_{member}")
            model.weigh_feature_crf(tagger, network, weights, transitions, 1.0)  # its state weights stay frozen
            model.compile_tagger(tagger, cfg)
        return tagger

    def finalize(self, cfg, prepared, members, splits):
        state = prepared.state
        state["members"] = members
        after = cfg.model.feature_crf_stage == "after"
        if "crf" not in state and (after or cfg.peers.enabled):  # one fit serves the graph and the peer
            state["crf"] = fit_feature_crf(cfg, splits, state["gazetteers"])
        tagger = average_taggers(members, name="ner_network" if after else "ner_tagger")
        if after:
            network, crf = tagger, state["crf"][0]
            tagger = model.with_feature_crf(network, state["gazetteers"], crf.weights(data.tag_names(cfg.data))[0])
            state["network"] = network
            state["weight_scores"] = tune_feature_crf_weight(tagger, network, crf, cfg, splits["validation"])
            print(f"validation entity F1 by feature CRF weight: {state['weight_scores']}; "
                  f"using {max(state['weight_scores'], key=state['weight_scores'].get)}")
        state["bias_scores"] = tune_background_bias(tagger, cfg, splits["validation"])
        print(f"validation entity F1 by O bias: {state['bias_scores']}; using {tagger.background_bias}")
        return tagger

    def evaluate(self, cfg, tagger, splits, prepared, run_dir):
        state = prepared.state
        metrics, gold, guess = evaluate(tagger, cfg, splits["test"], with_tags=True)
        report = {"metrics": metrics, "background_bias": tagger.background_bias,
                  "validation_f1_by_background_bias": state["bias_scores"]}
        if "network" in state:  # the network alone (no feature CRF, no O bias), to show what each half adds
            scores = state["weight_scores"]
            report["feature_crf_weight"] = max(scores, key=scores.get)
            report["validation_f1_by_feature_crf_weight"] = scores
            report["network_f1"] = {"validation": scores.get(0.0), "test": evaluate(
                state["network"], cfg, splits["test"])["overall"]["f1"]}
        if cfg.peers.enabled:
            report["peers"] = score_peer(cfg, splits, gold, guess, *state["crf"])
        members = state["members"]
        if len(members) > 1:  # what the ensemble adds over its members (each decoded without bias)
            report["member_f1"] = {split: [evaluate(m, cfg, splits[split], split)["overall"]["f1"] for m in members]
                                   for split in ("validation", "test")}
        return report

    def summary(self, report):
        metrics = report["metrics"]
        text = f"Held-out test split ({metrics['texts']} texts), entity-level:\n{format_metrics(metrics)}"
        if "network_f1" in report:
            text += (f"\nthe network alone: test F1 {report['network_f1']['test']:.2f}; feature CRF weight "
                     f"{report['feature_crf_weight']} chosen by validation F1 {report['validation_f1_by_feature_crf_weight']}")
        if "member_f1" in report:
            text += (f"\nmembers' entity F1, validation {report['member_f1']['validation']}, "
                     f"test {report['member_f1']['test']}")
        for name, peer in report.get("peers", {}).items():
            text += (f"\n\nClassical peer {name} on the same split (fitted in {peer['seconds']:.0f} s):\n"
                     f"{format_metrics(peer)}\nzoo − {name}: {peer['difference']:+.2f} F1 "
                     f"± {peer['difference_se']:.2f} (paired bootstrap se); zoo F1 se {peer['zoo_f1_se']:.2f}")
        return text

    def endpoints(self, cfg, tagger):
        return {"serving_default": model.make_serving_fn(tagger, cfg, data.tag_names(cfg.data))}

    def example_inputs(self, cfg):
        return ["Watching the Knicks game at Madison Square Garden tonight with @jimmy !", "Barack Obama visits London"]


RECIPE = NerRecipe()
