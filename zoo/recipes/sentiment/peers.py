"""The classical models a user would train instead, fitted on the same training split in the same run.

- ``nbsvm_bi``: NBSVM with word uni+bigrams (Wang & Manning 2012): binarised counts scaled by the naive-Bayes
  log-count ratio, a linear SVM on them, its weights interpolated towards their mean magnitude (``beta``).
- ``tfidf_lr``: logistic regression on sublinear TF-IDF of word 1-2-grams and character 2-5-grams (within words).

Both predict the binary polarity (the examples that have one), or for the user's files their classes (NBSVM only
where there are two); their regularisation ``C`` is chosen on the validation split, never the test split.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

TOKENS = r"(?u)\b\w[\w']*\b|[^\w\s]"  # words (with apostrophes) and single punctuation marks such as "!"


class NBSVM(BaseEstimator, ClassifierMixin):
    """NBSVM's classifier on a binary feature matrix `(examples, features)` with labels 0/1 (a scikit-learn
    estimator; ``nbsvm_bi`` puts the word n-gram counts in front of it). After fitting, ``coef`` and ``bias`` score
    a binary feature row ``x`` as ``x · coef + bias`` (the wide model copies them into the graph:
    `zoo.recipes.sentiment.train.fit_wide`)."""

    def __init__(self, C: float = 1.0, beta: float = 0.25, alpha: float = 1.0):
        self.C, self.beta, self.alpha = C, beta, alpha

    def fit(self, x, labels) -> "NBSVM":
        from sklearn.svm import LinearSVC

        labels = np.asarray(labels)
        p = self.alpha + np.asarray(x[labels == 1].sum(axis=0)).ravel()
        q = self.alpha + np.asarray(x[labels == 0].sum(axis=0)).ravel()
        ratio = np.log((p / p.sum()) / (q / q.sum()))
        svm = LinearSVC(C=self.C, max_iter=5000).fit(x.multiply(ratio).tocsr(), labels)
        w = svm.coef_.ravel()
        # The SVM sees features scaled by the ratio: fold that scale into one weight per feature.
        self.coef = ratio * ((1 - self.beta) * np.abs(w).mean() + self.beta * w)
        self.bias = float(svm.intercept_[0])
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, x) -> np.ndarray:
        return np.asarray(x @ self.coef).ravel() + self.bias

    def predict(self, x) -> np.ndarray:
        return (self.decision_function(x) > 0).astype(np.int64)


def nbsvm_bi(C: float = 1.0, beta: float = 0.25):
    """NBSVM-bi: binarised word 1-2-gram counts → ``NBSVM`` (a scikit-learn pipeline)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import make_pipeline

    words = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=TOKENS, lowercase=True)
    return make_pipeline(words, NBSVM(C=C, beta=beta))


def tfidf_lr(C: float = 1.0):
    """The TF-IDF word + character n-gram logistic regression (a scikit-learn pipeline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKENS),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    return make_pipeline(features, LogisticRegression(C=C, max_iter=2000))


PEERS = {"nbsvm_bi": lambda C, cfg: nbsvm_bi(C, cfg.nbsvm_beta), "tfidf_lr": lambda C, cfg: tfidf_lr(C)}
BINARY_ONLY = ("nbsvm_bi",)


def best_c(classifier, c_grid: list[float], train: tuple, validation: tuple) -> tuple:
    """``classifier`` (a scikit-learn estimator with a ``C``) fitted on ``train`` = (features, labels) for each value
    of ``c_grid``; returns the one most accurate on ``validation``, its accuracy and its ``C``."""
    best = None
    for C in c_grid:
        fitted = clone(classifier).set_params(C=C).fit(*train)
        accuracy = float((fitted.predict(validation[0]) == validation[1]).mean())
        if best is None or accuracy > best[1]:
            best = (fitted, accuracy, C)
    return best


def fit_peers(cfg, train: tuple, validation: tuple) -> dict:
    """Each peer fitted on ``train`` = (texts, integer labels) for every ``cfg.c_grid`` value, the one most accurate
    on ``validation`` kept (NBSVM only for two classes); returns ``{name: (pipeline, facts)}`` and the seconds each
    peer's fitting took. A peer's features do not depend on ``C``: they are fitted once, the classifier per value."""
    fitted, seconds = {}, {}
    binary = set(np.unique(train[1])) <= {0, 1}
    for name, make in PEERS.items():
        if name in BINARY_ONLY and not binary:
            continue
        started = time.time()
        pipeline = make(cfg.c_grid[0], cfg)
        features, (step, classifier) = pipeline[:-1], pipeline.steps[-1]
        x_train, x_val = features.fit_transform(train[0]), features.transform(validation[0])
        classifier, accuracy, C = best_c(classifier, cfg.c_grid, (x_train, train[1]), (x_val, validation[1]))
        pipeline.steps[-1] = (step, classifier)
        fitted[name] = (pipeline, {"C": C, "validation_accuracy": round(accuracy, 4)})
        seconds[name] = round(time.time() - started, 1)
    return fitted, seconds


def paired_difference(zoo_correct: np.ndarray, peer_correct: np.ndarray) -> dict:
    """Accuracy difference zoo − peer on the same examples, with its standard error (of the paired differences)."""
    d = zoo_correct.astype(np.float64) - peer_correct.astype(np.float64)
    return {"difference": float(d.mean()), "difference_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1
            else float("nan")}
