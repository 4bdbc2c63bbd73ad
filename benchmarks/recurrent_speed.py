"""Training speed side by side: zoo vs plain Keras vs PyTorch, on the same batches, against the machine's matmul peak.

One architecture (word embedding 128 → bidirectional GRU 128 → mean over the real steps → 5-way softmax, Adam with
clipping at norm 1) trained several ways on the same batches: the sentiment recipe's first epoch of length-bucketed
VADER training batches (its own pipeline, materialised once):

- ``zoo``: zoo's blocks (``RecurrentStack``, ``MaskedPooling``), the recipe's optimiser (Keras' Adam), ``model.fit``,
  XLA off;
- ``zoo_sparse``: the same with ``train.sparse_updates`` (``LazyAdam``: the embedding table's touched rows only);
- ``zoo_sparse_budget``: ``zoo_sparse`` on the same examples re-batched by a token budget (each bucket's batches
  hold about the average padded tokens of a fixed-size batch: short texts in bigger batches, long ones in smaller);
- ``keras``: plain Keras ``Embedding(mask_zero=True)`` → ``Bidirectional(GRU)`` → ``GlobalAveragePooling1D``;
- ``torch_padded``: PyTorch ``nn.GRU`` on the padded batch (the mask only in the pooling);
- ``torch_packed``: PyTorch ``nn.GRU`` on ``pack_padded_sequence`` (what a PyTorch user writes for variable length).

Rounds alternate the variants (these machines are noisy) and each round measures the fp32 matmul peak first
(``tf.matmul`` and ``torch.mm`` of 2048² matrices, the better of the two). Throughput is real (non-padding) tokens per
second; the fraction of peak counts the bidirectional GRU's matmul work per real token (forward and backward, 3x the
forward's 2 x 3 x 2 x H x (E + H) FLOPs: 1.18 MFLOP at E = H = 128).

    pip install torch            # optional: the benchmark-only extra `pip install -e .[bench]`
    python -m benchmarks.recurrent_speed [--batches 302] [--rounds 3] [--threads 2]

Without PyTorch the two PyTorch rows are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import recipe, training
from zoo.data.pipeline import bucket_boundaries
from zoo.layers import MaskedPooling, RecurrentStack
from zoo.recipes.sentiment.train import RECIPE

EMBEDDING, UNITS, CLASSES = 128, 128, 5


def recipe_batches(limit: int):
    """The sentiment recipe's first epoch of training batches as (ids `(batch, time)`, lengths, rating) arrays."""
    # The word model's batches (token ids): the default sentiment model reads pretrained encoder features instead.
    cfg = RECIPE.configure(preset="words", overrides={"model": {"ensemble_size": 1}})
    keras.utils.set_random_seed(cfg.train.seed)
    prepared = RECIPE.prepare(cfg, recipe.load_splits(RECIPE, cfg))
    batches = []
    for ids, targets, _ in prepared.train.take(limit).as_numpy_iterator():
        batches.append((ids.astype(np.int32), (ids != 0).sum(axis=1).astype(np.int64),
                        targets["rating"].astype(np.int64)))
    return batches, prepared.state["vectorizer"].vocabulary_size(), cfg


def token_budget_batches(batches, num_buckets: int, seed: int = 0):
    """The same examples in the same length buckets, re-batched so that every batch holds about as many padded
    tokens as the fixed-size batches hold on average (short buckets get more examples per batch, long ones fewer);
    batches of all buckets interleaved in a seeded random order."""
    examples = [(ids[i, :n], n, y[i]) for ids, lengths, y in batches for i, n in enumerate(lengths)]
    budget = sum(ids.size for ids, _, _ in batches) / len(batches)
    bounds = bucket_boundaries([n for _, n, _ in examples], num_buckets) + [max(n for _, n, _ in examples) + 1]
    out = []
    for low, high in zip([0] + bounds[:-1], bounds):
        members = [e for e in examples if low <= e[1] < high]
        size = max(1, int(budget // (high - 1)))
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            ids = np.zeros((len(chunk), max(n for _, n, _ in chunk)), np.int32)
            for row, (seq, n, _) in enumerate(chunk):
                ids[row, :n] = seq
            out.append((ids, np.array([n for _, n, _ in chunk], np.int64), np.array([y for *_, y in chunk])))
    return [out[i] for i in np.random.default_rng(seed).permutation(len(out))]


def gru_flops_per_token() -> float:
    return 3 * 2 * (3 * 2 * UNITS * (EMBEDDING + UNITS))


def zoo_model(vocab: int) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32")
    mask = keras.ops.not_equal(ids, 0)
    x = keras.layers.Embedding(vocab, EMBEDDING)(ids)
    x = RecurrentStack("gru", UNITS, bidirectional=True, return_sequences=True)(x, mask=mask)
    x = MaskedPooling(["mean"])(x, mask=mask)
    return keras.Model(ids, keras.layers.Dense(CLASSES, activation="softmax")(x))


def keras_model(vocab: int) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(vocab, EMBEDDING, mask_zero=True)(ids)
    x = keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True))(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(ids, keras.layers.Dense(CLASSES, activation="softmax")(x))


class KerasVariant:
    def __init__(self, net: keras.Model, cfg, batches):
        self.net = net
        net.compile(training.optimizer(cfg.train), "sparse_categorical_crossentropy")
        net.jit_compile = False
        signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.int64))
        self.ds = tf.data.Dataset.from_generator(lambda: ((ids, y) for ids, _, y in batches),
                                                 output_signature=signature).cache().prefetch(2)

    def epoch(self):
        self.net.fit(self.ds, epochs=1, verbose=0)


class TorchVariant:
    def __init__(self, vocab: int, batches, packed: bool):
        import torch

        self.torch, self.packed = torch, packed
        self.embedding = torch.nn.Embedding(vocab, EMBEDDING, padding_idx=0)
        self.gru = torch.nn.GRU(EMBEDDING, UNITS, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(2 * UNITS, CLASSES)
        self.params = [*self.embedding.parameters(), *self.gru.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=1e-3)
        self.batches = [tuple(torch.from_numpy(a.astype(np.int64)) for a in b) for b in batches]

    def forward(self, ids, lengths):
        torch = self.torch
        x = self.embedding(ids)
        if self.packed:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True,
                                                             enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        else:
            out, _ = self.gru(x)
        mask = (ids != 0).unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled)

    def epoch(self):
        torch = self.torch
        for ids, lengths, y in self.batches:
            self.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.forward(ids, lengths), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.optimizer.step()


def profile_step(variant: KerasVariant, batch, repeats: int = 30) -> dict[str, float]:
    """Milliseconds per step of one batch, part by part: forward, forward + backward, the optimiser's update, the
    whole ``train_on_batch``, and ``fit``'s time per step over the epoch (``fit_step``)."""
    net, optimizer = variant.net, variant.net.optimizer
    ids, _, y = (tf.constant(a) for a in batch)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def forward():
        return loss_fn(y, net(ids, training=True))

    @tf.function(reduce_retracing=True)
    def gradients():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, net(ids, training=True))
        return tape.gradient(loss, net.trainable_variables)

    grads = gradients()

    @tf.function(reduce_retracing=True)
    def update():
        optimizer.apply_gradients(zip(grads, net.trainable_variables))

    parts = {"forward": forward, "forward_backward": gradients, "optimizer_update": update,
             "train_on_batch": lambda: net.train_on_batch(ids, y)}
    result = {}
    for name, fn in parts.items():
        fn()
        result[name] = 1e3 * min(_timed(fn) for _ in range(repeats))
    return result


def matmul_peak(torch=None, n: int = 2048) -> float:
    """The better of tf.matmul and torch.mm on fp32 n x n matrices, in FLOP/s (best of 3 each)."""
    a = tf.random.normal((n, n))
    tf.matmul(a, a).numpy()
    best = min(_timed(lambda: tf.matmul(a, a).numpy()) for _ in range(3))
    if torch is not None:
        t = torch.randn(n, n)
        torch.mm(t, t)
        best = min(best, *(_timed(lambda: torch.mm(t, t)) for _ in range(3)))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=302, help="batches of the recipe's first epoch to train on")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads (TensorFlow: its default)")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
    except ImportError:
        torch = None
        print("PyTorch is not installed: its rows are skipped (pip install torch)")

    batches, vocab, cfg = recipe_batches(args.batches)
    real = sum(int(lengths.sum()) for _, lengths, _ in batches)
    padded = sum(ids.size for ids, _, _ in batches)
    print(f"{len(batches)} batches, {real:,} real tokens, {1 - real / padded:.0%} padding; vocabulary {vocab:,}")
    budget_batches = token_budget_batches(batches, cfg.data.num_buckets)
    print(f"by a token budget: {len(budget_batches)} batches of "
          f"{min(len(y) for *_, y in budget_batches)}-{max(len(y) for *_, y in budget_batches)} examples, "
          f"{1 - real / sum(ids.size for ids, _, _ in budget_batches):.0%} padding")
    dense, sparse = (dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, sparse_updates=flag))
                     for flag in (False, True))
    variants = {"zoo": KerasVariant(zoo_model(vocab), dense, batches),
                "zoo_sparse": KerasVariant(zoo_model(vocab), sparse, batches),
                "zoo_sparse_budget": KerasVariant(zoo_model(vocab), sparse, budget_batches),
                "keras": KerasVariant(keras_model(vocab), dense, batches)}
    if torch is not None:
        variants.update(torch_padded=TorchVariant(vocab, batches, packed=False),
                        torch_packed=TorchVariant(vocab, batches, packed=True))
    for variant in variants.values():  # warm up: trace every batch shape, fill caches
        variant.epoch()

    typical = min(batches, key=lambda b: abs(b[0].shape[0] * b[0].shape[1] - np.median(
        [ids.size for ids, _, _ in batches])))
    print(f"\nOne typical batch ({typical[0].shape[0]} x {typical[0].shape[1]} tokens), ms (best of 30):")
    for name in ("zoo", "zoo_sparse"):
        print(f"  {name:11s} " + ", ".join(f"{part} {ms:.1f}" for part, ms in profile_step(variants[name],
                                                                                         typical).items()))

    seconds, peaks = {name: [] for name in variants}, []
    for r in range(args.rounds):
        peaks.append(matmul_peak(torch))
        for name, variant in variants.items():
            seconds[name].append(_timed(variant.epoch))
        print(f"round {r + 1}: peak {peaks[-1] / 1e9:.0f} GFLOP/s, "
              + ", ".join(f"{n} {real / s[-1] / 1e3:.1f} k tokens/s" for n, s in seconds.items()), flush=True)

    peak = float(np.median(peaks))
    rates = {name: real / float(np.median(s)) for name, s in seconds.items()}
    print(f"\nfp32 matmul peak (median of {args.rounds} rounds): {peak / 1e9:.0f} GFLOP/s; "
          f"GRU work {gru_flops_per_token() / 1e6:.2f} MFLOP per real token")
    print(f"{'variant':14s} {'tokens/s':>10s} {'of peak':>8s} {'zoo / it':>9s}")
    for name, rate in rates.items():
        print(f"{name:14s} {rate:10.0f} {rate * gru_flops_per_token() / peak:8.1%} {rates['zoo'] / rate:8.2f}x")
    print("fit's time per step of the zoo variants: " + ", ".join(
        f"{name} {1e3 * float(np.median(seconds[name])) / len(batches):.1f} ms" for name in ("zoo", "zoo_sparse")))


if __name__ == "__main__":
    main()
