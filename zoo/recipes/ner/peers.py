"""The model a user would train instead: a linear-chain feature CRF (sklearn-crfsuite), fitted on the same training
split in the same run, scored beside the network and, weighted, added to it in the served graph.

Token attributes (`model.TokenAttributes`, computed by TF string ops, so training here and serving there see the
same): the lower-cased word, its shape (``Xxxx``, ``dd``) and collapsed shape, prefixes and suffixes of 1-4
characters, upper / title / digit / punctuation flags, Twitter flags (``@user``, ``#tag``, URL), the same for the
words one and two to each side, the word bigrams with each neighbour, and — when the recipe uses them — **the zoo's
own gazetteer memberships** (the in-graph n-gram matching of ``model.gazetteer_features``) for the token and its
neighbours.
"""

from __future__ import annotations

import keras
import numpy as np

from zoo.recipes.ner import model


class AttributeLookup:
    """``model.token_attributes`` as a function of token lists: per sentence, per token, its attribute strings."""

    def __init__(self, gazetteers: dict[str, list[str]] | None):
        tokens = keras.Input(shape=(None,), dtype="string")
        self.net = keras.Model(tokens, model.token_attributes(tokens, gazetteers))

    def __call__(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[list[str]]]:
        import tensorflow as tf

        out = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i:i + batch_size]
            rows = self.net(tf.ragged.constant(chunk, dtype=tf.string).to_tensor(model.PAD)).numpy()
            out.extend([[a.decode() for a in token if a] for token in row[:len(s)]] for row, s in zip(rows, chunk))
        return out


class FeatureCRF:
    """``fit(sentences, tag_sequences)`` / ``predict(sentences)`` on lists of token strings and tag names;
    ``weights(tag_names)`` gives what `model.weigh_feature_crf` puts in the graph."""

    def __init__(self, c1: float, c2: float, max_iterations: int, gazetteers: dict[str, list[str]] | None = None):
        import sklearn_crfsuite

        self.crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=max_iterations,
                                        all_possible_transitions=True)
        self.attributes = AttributeLookup(gazetteers)

    def fit(self, sentences, tags) -> "FeatureCRF":
        self.crf.fit(self.attributes(sentences), tags)
        return self

    def predict(self, sentences) -> list[list[str]]:
        return [list(row) for row in self.crf.predict(self.attributes(sentences))]

    def weights(self, tag_names) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(attribute vocabulary, state weights `(len(vocabulary) + 2, K)` by `StringLookup` id — rows 0 (padding)
        and 1 (unknown) zero —, transition weights `(K, K)`); tags the CRF never saw score 0."""
        index = {name: k for k, name in enumerate(tag_names)}
        vocabulary = sorted({attribute for attribute, _ in self.crf.state_features_})
        row = {attribute: i + 2 for i, attribute in enumerate(vocabulary)}
        state = np.zeros((len(vocabulary) + 2, len(tag_names)), np.float32)
        for (attribute, tag), weight in self.crf.state_features_.items():
            state[row[attribute], index[tag]] = weight
        transitions = np.zeros((len(tag_names),) * 2, np.float32)
        for (before, after), weight in self.crf.transition_features_.items():
            transitions[index[before], index[after]] = weight
        return vocabulary, state, transitions


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
