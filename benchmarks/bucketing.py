"""Training throughput: length bucketing vs padding every batch to the longest example (the keras-io style).

Both variants train the default sentiment classifier on the same real VADER training texts for the same number of
examples; rounds alternate between them so machine noise hits both alike. Throughput counts real (non-padding)
tokens per second.

    python -m benchmarks.bucketing [--examples 4096] [--rounds 3] [--jit]

With ``--jit`` the train step is XLA-compiled (Keras' "auto" default on TensorFlow), which recompiles for every new
batch shape and so turns bucketing from a gain into a loss; the zoo trains with ``train.jit_compile = false``. The
``to-boundary`` variant pads every batch of a bucket to the bucket's bound, so that XLA sees a fixed set of shapes.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import config
from zoo.data.pipeline import bucket_boundaries, bucketed_batches, fixed_length_batches
from zoo.recipes.sentiment import data, model
from zoo.recipes.sentiment.config import SentimentConfig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4096, help="training examples per measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    args = parser.parse_args(argv)

    cfg = config.from_dict(SentimentConfig, model={"ensemble_size": 1})
    keras.utils.set_random_seed(cfg.train.seed)
    train = data.load_split(cfg.data, "train").take(args.examples)
    vectorizer = model.make_vectorizer(cfg.data)
    vectorizer.adapt(train.map(lambda ex: ex["text"]).batch(512))
    examples = train.map(data.to_training_example(vectorizer, cfg.data.max_tokens)).cache()
    lengths = np.array([len(ids) for ids, *_ in examples.as_numpy_iterator()])
    real_tokens = int(lengths.sum())
    longest = int(lengths.max())
    print(f"{len(lengths)} examples, lengths mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"max {longest} tokens")

    length_fn = lambda ids, *_: tf.size(ids)  # noqa: E731
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    variants = {
        "fixed-length": fixed_length_batches(examples.shuffle(4096, seed=0), cfg.train.batch_size, longest),
        "bucketed": bucketed_batches(examples.shuffle(4096, seed=0), length_fn, cfg.train.batch_size, boundaries),
        # Every batch of a bucket padded to the bucket's bound: a fixed set of shapes, which XLA compiles once each.
        "to-boundary": examples.shuffle(4096, seed=0).bucket_by_sequence_length(
            length_fn, boundaries + [longest + 1], [cfg.train.batch_size] * (len(boundaries) + 2),
            pad_to_bucket_boundary=True),
    }
    classifier = model.build_classifier(cfg.model, vectorizer.vocabulary_size())
    model.compile_classifier(classifier, cfg)
    classifier.jit_compile = args.jit  # training.fit uses train.jit_compile (default false)
    for ds in variants.values():  # warm up: trace every batch shape once, fill the caches
        classifier.fit(ds.prefetch(2), epochs=1, verbose=0)
    seconds = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, ds in variants.items():
            start = time.perf_counter()
            classifier.fit(ds.prefetch(2), epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    rates = {name: real_tokens / np.median(s) for name, s in seconds.items()}
    for name, rate in rates.items():
        print(f"{name:13s} {rate:10.0f} real tokens/s  (median of {args.rounds} rounds: "
              f"{np.median(seconds[name]):.2f} s per {len(lengths)} examples)")
    print(f"bucketed / fixed-length throughput: {rates['bucketed'] / rates['fixed-length']:.2f}x; "
          f"padded to the bucket boundary / fixed-length: {rates['to-boundary'] / rates['fixed-length']:.2f}x")


if __name__ == "__main__":
    main()
