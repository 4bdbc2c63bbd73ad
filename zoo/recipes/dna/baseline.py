"""The k-mer baseline: multinomial logistic regression on the k-mer composition around each base.

Coding sequence differs from intron and intergenic DNA in its k-mer statistics (codon usage, GC content); this is
the classic signal a per-base classifier can read without any sequence model. Features of a base: the frequency of
every k-mer (k = 1..`k`, k-mers holding N skipped) starting within `context` bases on either side.
"""

from __future__ import annotations

import numpy as np

from zoo.recipes.dna.config import BaselineConfig
from zoo.recipes.dna.counted import kmer_codes
from zoo.recipes.dna.data import LABELS, GeneRecord, encode


def kmer_features(sequence: str, k: int, context: int) -> np.ndarray:
    """float32 `(len(sequence), sum(4^j for j in 1..k))` windowed k-mer frequencies."""
    ids = encode(sequence)
    length = len(ids)
    features = []
    for size in range(1, k + 1):
        codes, valid = kmer_codes(ids, size)
        one_hot = np.zeros((length + 1, 4 ** size), np.float32)
        one_hot[1 + np.flatnonzero(valid), codes[valid]] = 1.0
        cumulative = np.cumsum(one_hot, axis=0)
        positions = np.arange(length)
        high = np.minimum(positions + context + 1, length)
        low = np.maximum(positions - context, 0)
        features.append((cumulative[high] - cumulative[low]) / (high - low)[:, None])
    return np.concatenate(features, axis=1) if features else np.zeros((length, 0), np.float32)


class KmerBaseline:
    """Fits on a random sample of training bases; predicts labels and probabilities of every base of a record."""

    def __init__(self, cfg: BaselineConfig, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))

    def fit(self, records: list[GeneRecord]) -> "KmerBaseline":
        total = sum(len(r.sequence) for r in records)
        rate = min(1.0, self.cfg.train_bases / max(total, 1))
        xs, ys = [], []
        for record in records:
            chosen = np.flatnonzero(self.rng.random(len(record.sequence)) < rate)
            xs.append(kmer_features(record.sequence, self.cfg.k, self.cfg.context)[chosen])
            ys.append(record.labels[chosen])
        self.classifier.fit(np.concatenate(xs), np.concatenate(ys))
        return self

    def predict(self, record: GeneRecord) -> tuple[np.ndarray, np.ndarray]:
        """Labels `(length,)` and probabilities `(length, num_labels)` over all labels seen in training."""
        probabilities = self.classifier.predict_proba(kmer_features(record.sequence, self.cfg.k, self.cfg.context))
        full = np.zeros((len(probabilities), len(LABELS)), np.float32)
        full[:, self.classifier.classes_] = probabilities
        return full.argmax(axis=1), full
