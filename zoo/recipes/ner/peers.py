"""The model a user would train instead: a linear-chain feature CRF (sklearn-crfsuite), fitted on the same training
split in the same run and scored beside the network.

Token features: the lower-cased word, its shape (``Xxxx``, ``dd``) and short shape, prefixes and suffixes of 1-4
characters, upper / title / digit / punctuation flags, Twitter flags (``@user``, ``#tag``, URL), the same for the
words one and two to each side, the word bigrams with each neighbour, and — when the recipe uses them — **the zoo's
own gazetteer memberships** (the n-gram list coverage of ``model.gazetteer_features``, computed by the same graph) for
the token and its neighbours.
"""

from __future__ import annotations

import re
import time

import keras
import numpy as np

from zoo.recipes.ner import model


def shape(word: str) -> str:
    return re.sub(r"[a-z]", "x", re.sub(r"[A-Z]", "X", re.sub(r"\d", "d", word)))


def _word_features(word: str, prefix: str) -> dict:
    lower = word.lower()
    short = re.sub(r"(.)\1+", r"\1", shape(word))
    return {f"{prefix}lower": lower, f"{prefix}short_shape": short, f"{prefix}upper": word.isupper(),
            f"{prefix}title": word.istitle(), f"{prefix}digit": word.isdigit(),
            f"{prefix}mention": word.startswith("@"), f"{prefix}hashtag": word.startswith("#"),
            f"{prefix}url": lower.startswith(("http", "www."))}


def sentence_features(tokens: list[str], gazetteer_rows: np.ndarray | None, names: list[str]) -> list[dict]:
    """One feature dict per token; ``gazetteer_rows`` `(tokens, lists)` 0/1 memberships or None."""
    rows = []
    for i, word in enumerate(tokens):
        f = {"bias": 1.0, "shape": shape(word), "punct": not any(c.isalnum() for c in word),
             **_word_features(word, "")}
        for k in range(1, 5):
            f[f"prefix{k}"], f[f"suffix{k}"] = word[:k].lower(), word[-k:].lower()
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(tokens):
                f.update(_word_features(tokens[j], f"{offset:+d}:"))
            else:
                f[f"{offset:+d}:edge"] = True
        if i > 0:
            f["bigram-1"] = f"{tokens[i - 1].lower()} {word.lower()}"
        if i + 1 < len(tokens):
            f["bigram+1"] = f"{word.lower()} {tokens[i + 1].lower()}"
        if gazetteer_rows is not None:
            for offset in (-1, 0, 1):
                j = i + offset
                if 0 <= j < len(tokens):
                    for name, member in zip(names, gazetteer_rows[j]):
                        if member:
                            f[f"{offset:+d}:in_{name}"] = True
        rows.append(f)
    return rows


class GazetteerLookup:
    """The recipe's in-graph gazetteer features as a function of token lists (the same lists and matching)."""

    def __init__(self, gazetteers: dict[str, list[str]]):
        tokens = keras.Input(shape=(None,), dtype="string")
        features = model.gazetteer_features(tokens, model.WordKeys()(tokens), gazetteers)
        self.net = keras.Model(tokens, features)
        lower = [k for k, v in gazetteers.items() if all(e == e.lower() for e in v)]
        self.names = lower + [k for k in gazetteers if k not in lower]  # the column order of gazetteer_features

    def __call__(self, sentences: list[list[str]], batch_size: int = 256) -> list[np.ndarray]:
        import tensorflow as tf

        out = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i:i + batch_size]
            padded = tf.ragged.constant(chunk, dtype=tf.string).to_tensor(model.PAD)
            rows = self.net(padded).numpy()
            out.extend(row[:len(s)] for row, s in zip(rows, chunk))
        return out


class FeatureCRF:
    """``fit(sentences, tag_sequences)`` / ``predict(sentences)`` on lists of token strings and tag names."""

    def __init__(self, c1: float, c2: float, max_iterations: int, gazetteers: dict[str, list[str]] | None = None):
        import sklearn_crfsuite

        self.crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=max_iterations,
                                        all_possible_transitions=True)
        self.lookup = GazetteerLookup(gazetteers) if gazetteers else None

    def _features(self, sentences):
        rows = self.lookup(sentences) if self.lookup else [None] * len(sentences)
        names = self.lookup.names if self.lookup else []
        return [sentence_features(s, r, names) for s, r in zip(sentences, rows)]

    def fit(self, sentences, tags) -> "FeatureCRF":
        self.crf.fit(self._features(sentences), tags)
        return self

    def predict(self, sentences) -> list[list[str]]:
        return [list(row) for row in self.crf.predict(self._features(sentences))]


def fit_crf(cfg, sentences, tags, gazetteers) -> tuple[FeatureCRF, float]:
    started = time.time()
    crf = FeatureCRF(cfg.c1, cfg.c2, cfg.max_iterations, gazetteers).fit(sentences, tags)
    return crf, round(time.time() - started, 1)


def entity_counts(gold: list[list[str]], guess: list[list[str]]) -> np.ndarray:
    """Per sentence ``(true positives, predicted, gold)`` entities (CoNLL rules, as seqeval counts them)."""
    from seqeval.metrics.sequence_labeling import get_entities

    counts = []
    for g, p in zip(gold, guess):
        gold_set, guess_set = set(get_entities(g)), set(get_entities(p))
        counts.append((len(gold_set & guess_set), len(guess_set), len(gold_set)))
    return np.array(counts, np.float64).reshape(-1, 3)


def f1(counts: np.ndarray) -> float:
    tp, predicted, gold = counts.sum(axis=0) if counts.ndim == 2 else counts
    return float(200 * tp / (predicted + gold)) if predicted + gold else 0.0


def paired_bootstrap(zoo: np.ndarray, peer: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict:
    """Entity F1 difference zoo − peer and its bootstrap standard error, resampling sentences (paired)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(zoo), (resamples, len(zoo)))
    differences = [f1(zoo[p]) - f1(peer[p]) for p in picks]
    return {"difference": round(f1(zoo) - f1(peer), 2), "difference_se": round(float(np.std(differences)), 2),
            "zoo_f1_se": round(float(np.std([f1(zoo[p]) for p in picks])), 2)}
