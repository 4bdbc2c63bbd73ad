"""SavedModel serving latency (p50/p99 at batch 1) and throughput (batch 64) through the serving signature.

Loads an exported sentiment SavedModel with plain TensorFlow (as TF Serving would) and sends real held-out texts.
Batch-64 throughput (texts in test-set order, and grouped by length) is printed as a ratio to the batch-1
throughput measured in the same run.

    python -m benchmarks.serving_latency saved_models/sentiment/1 [--requests 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from zoo import config
from zoo.recipes.sentiment import data
from zoo.recipes.sentiment.config import SentimentConfig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("saved_model", help="an exported version directory, e.g. saved_models/sentiment/1")
    parser.add_argument("--requests", type=int, default=500, help="batch-1 requests to time")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    cfg = config.from_dict(SentimentConfig)
    texts = np.array([ex["text"] for ex in data.load_split(cfg.data, "test").as_numpy_iterator()], dtype=object)
    serve = tf.saved_model.load(args.saved_model).signatures["serving_default"]
    for i in range(20):  # warm up
        serve(text=tf.constant(texts[i:i + 1]))

    latencies = []
    for i in range(args.requests):
        batch = tf.constant(texts[i % len(texts):i % len(texts) + 1])
        start = time.perf_counter()
        serve(text=batch)
        latencies.append(time.perf_counter() - start)
    latencies_ms = np.array(latencies) * 1000
    single_rate = 1.0 / np.mean(latencies)

    def throughput(ordered):
        batches = [ordered[i:i + args.batch_size] for i in range(0, len(ordered) - args.batch_size + 1,
                                                                  args.batch_size)]
        start = time.perf_counter()
        for batch in batches:
            serve(text=tf.constant(batch))
        return len(batches) * args.batch_size / (time.perf_counter() - start)

    # A batch costs as many recurrent steps as its longest text: mixed lengths (what a server's batcher sees) vs
    # batches of similar length (what a client sorting its texts would send).
    mixed = throughput(texts)
    grouped = throughput(texts[np.argsort([len(t) for t in texts], kind="stable")])

    print(f"batch 1:  p50 {np.percentile(latencies_ms, 50):.2f} ms, p99 {np.percentile(latencies_ms, 99):.2f} ms, "
          f"{single_rate:.0f} texts/s ({args.requests} requests)")
    for name, rate in (("mixed lengths", mixed), ("similar lengths", grouped)):
        print(f"batch {args.batch_size}, {name}: {rate:.0f} texts/s, {rate / single_rate:.2f}x batch 1")

if __name__ == "__main__":
    main()
