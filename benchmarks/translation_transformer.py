"""The translation recipe beside the model a user would pick instead: a small Transformer encoder-decoder.

    python -m benchmarks.translation_transformer [--minutes 11] [--seed 1234]

Both models train on the recipe's own data, tokenisation and batches (the default settings: every training verse,
words-or-characters pieces), for the same wall-time budget on this machine, one after the other in one process, and
are scored on every held-out test verse with the same code (sacrebleu BLEU / chrF, greedy decoding for both, beam
search for the recurrent model as it serves). The Transformer (Vaswani et al. 2017, pre-layer-norm) is built from
Keras' ``MultiHeadAttention`` with learned positions, sized to a parameter count close to the recurrent model's.
Prints both rows and their BLEU ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo import training
from zoo.recipe import load_splits
from zoo.recipes.translation import model, train

PAD, BOS, EOS = model.PAD, model.BOS, model.EOS


class Transformer(keras.Model):
    """Pre-LN Transformer encoder-decoder over the recipe's piece ids (inputs as the recipe's batches:
    ``(source ids, <s> + target ids)`` → logits)."""

    def __init__(self, source_vocab, target_vocab, dim=128, heads=4, ff=512, layers=3, dropout=0.1, max_len=1024,
                 **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.source_embedding = keras.layers.Embedding(source_vocab, dim)
        self.target_embedding = keras.layers.Embedding(target_vocab, dim)
        self.source_position = keras.layers.Embedding(max_len, dim)
        self.target_position = keras.layers.Embedding(max_len, dim)
        self.dropout = keras.layers.Dropout(dropout)

        def block(cross):
            return {"self": keras.layers.MultiHeadAttention(heads, dim // heads, dropout=dropout),
                    "cross": keras.layers.MultiHeadAttention(heads, dim // heads, dropout=dropout) if cross else None,
                    "ff": keras.Sequential([keras.layers.Dense(ff, activation="relu"), keras.layers.Dense(dim)]),
                    "norms": [keras.layers.LayerNormalization() for _ in range(3 if cross else 2)]}

        self.encoder_blocks = [block(False) for _ in range(layers)]
        self.decoder_blocks = [block(True) for _ in range(layers)]
        self.encoder_norm, self.decoder_norm = keras.layers.LayerNormalization(), keras.layers.LayerNormalization()
        self.projection = keras.layers.Dense(target_vocab)

    def embed(self, ids, embedding, position, training):
        positions = tf.range(tf.shape(ids)[1])[tf.newaxis]
        return self.dropout(embedding(ids) * self.dim ** 0.5 + position(positions), training=training)

    def encode(self, source, training=False):
        mask = tf.not_equal(source, PAD)
        x = self.embed(source, self.source_embedding, self.source_position, training)
        attention_mask = mask[:, tf.newaxis, :]
        for b in self.encoder_blocks:
            h = b["norms"][0](x)
            x = x + b["self"](h, h, attention_mask=attention_mask, training=training)
            x = x + self.dropout(b["ff"](b["norms"][1](x)), training=training)
        return self.encoder_norm(x), mask

    def decode(self, target_in, memory, source_mask, training=False):
        x = self.embed(target_in, self.target_embedding, self.target_position, training)
        cross_mask = source_mask[:, tf.newaxis, :]
        for b in self.decoder_blocks:
            h = b["norms"][0](x)
            x = x + b["self"](h, h, use_causal_mask=True, training=training)
            x = x + b["cross"](b["norms"][1](x), memory, attention_mask=cross_mask, training=training)
            x = x + self.dropout(b["ff"](b["norms"][2](x)), training=training)
        return self.projection(self.decoder_norm(x))

    def call(self, inputs, training=False):
        source, target_in = inputs
        memory, mask = self.encode(source, training)
        return self.decode(target_in, memory, mask, training)

    def greedy(self, source, limits):
        """Greedy decoding (the whole prefix re-decoded each step), each row stopping at ``</s>`` or its limit."""
        memory, mask = self.encode(source)
        batch, steps = tf.shape(source)[0], tf.reduce_max(limits)
        ids = tf.fill([batch, 1], BOS)

        def body(t, ids, finished):
            logits = self.decode(ids, memory, mask)[:, -1]
            token = tf.where(finished, PAD, tf.argmax(logits, axis=-1, output_type=tf.int32))
            finished = finished | (token == EOS) | (t + 1 >= limits)
            return t + 1, tf.concat([ids, token[:, tf.newaxis]], axis=1), finished

        _, ids, _ = tf.while_loop(lambda t, ids, f: (t < steps) & ~tf.reduce_all(f), body,
                                  (0, ids, tf.zeros([batch], tf.bool)),
                                  shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                                                    tf.TensorShape([None])))
        return ids[:, 1:]


def parameters(net) -> int:
    return int(sum(np.prod(w.shape) for w in net.trainable_weights))


def fit_for(net, prepared, minutes, run_dir, cfg):
    """Trains on the recipe's batches until the wall-time budget is spent (the best validation epoch is kept)."""
    budget = training.TrainConfig(epochs=1000, max_minutes=minutes, early_stopping_patience=1000, verbose=2,
                                  seed=cfg.train.seed)
    started = time.time()
    history = training.fit(net, prepared.train, prepared.validation, budget, run_dir)
    return time.time() - started, len(history.get("epoch", []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=11.0, help="training wall time of each model")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--run-dir", default="runs/benchmarks/translation_transformer")
    parser.add_argument("--max-test", type=int, default=0, help="score only the first N test verses (0 = all)")
    args = parser.parse_args(argv)

    recipe = zoo.recipes.get("translation")
    cfg = recipe.configure(overrides={"train": {"seed": args.seed, "max_eval_examples": args.max_test}})
    keras.utils.set_random_seed(args.seed)
    splits = load_splits(recipe, cfg)
    prepared = recipe.prepare(cfg, splits)
    source_vocab, target_vocab = (len(v) for v in prepared.state["vocabularies"])
    test = splits["test"]
    results = {}

    keras.utils.set_random_seed(args.seed)
    recurrent = recipe.build(cfg, prepared, 0)
    seconds, epochs = fit_for(recurrent, prepared, args.minutes, Path(args.run_dir) / "recurrent", cfg)
    metrics = train.evaluate(recurrent, cfg, test)
    beam = f"beam{cfg.decode.beam_width}"
    results["recurrent"] = {"parameters": parameters(recurrent), "epochs": epochs, "train_seconds": round(seconds),
                            "greedy": metrics["greedy"], beam: metrics[beam]}

    keras.utils.set_random_seed(args.seed)
    transformer = Transformer(source_vocab, target_vocab)
    transformer((tf.ones([1, 2], tf.int32), tf.ones([1, 2], tf.int32)))
    # Warm-up, then cosine decay sized to the budget: the recurrent model fits about 5 epochs (2,325 steps) in
    # 11 minutes here. A 1,000-step warm-up to 5e-4 left the Transformer still warming up when its budget ran out.
    transformer.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                            0.0, 2325, alpha=0.1, warmup_target=1e-3, warmup_steps=400), clipnorm=1.0),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
                        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    seconds, epochs = fit_for(transformer, prepared, args.minutes, Path(args.run_dir) / "transformer", cfg)
    raw = list(test.as_numpy_iterator())
    sources = [ex["source"].decode() for ex in raw]
    references = [ex["target"].decode() for ex in raw]
    tokenizer, detokenizer = model.Tokenizer(prepared.state["vocabularies"][0], lowercase=True), \
        model.Tokenizer(prepared.state["vocabularies"][1])

    def decode(text):  # the recipe's length policy: ratio * source pieces + offset
        ids = tokenizer(text)
        limits = tf.cast(tf.math.ceil(cfg.decode.length_ratio * tf.cast(ids.row_lengths(), tf.float32)), tf.int32)
        return detokenizer.detokenize(transformer.greedy(ids.to_tensor(), limits + cfg.decode.length_offset))

    decode = tf.function(decode, reduce_retracing=True)
    order = np.argsort([len(s) for s in sources], kind="stable")
    hypotheses = [""] * len(sources)
    for i in range(0, len(order), 64):
        chunk = order[i:i + 64]
        for j, t in zip(chunk, decode(tf.constant([sources[j] for j in chunk])).numpy()):
            hypotheses[j] = t.decode()
    results["transformer"] = {"parameters": parameters(transformer), "epochs": epochs, "train_seconds": round(seconds),
                              "greedy": train.scores(hypotheses, references, bootstrap=1000)}

    print(f"\n{len(sources)} test verses, {args.minutes:g} minutes of training each on this machine")
    print(f"{'model':12s} {'params':>9s} {'epochs':>6s} {'train s':>7s} {'BLEU greedy':>11s} {'chrF greedy':>11s} "
          f"{'BLEU beam':>9s}")
    for name, r in results.items():
        beam_bleu = f"{r[beam]['bleu']:9.2f}" if beam in r else " " * 9
        print(f"{name:12s} {r['parameters']:9,d} {r['epochs']:6d} {r['train_seconds']:7d} {r['greedy']['bleu']:11.2f} "
              f"{r['greedy']['chrf']:11.2f} {beam_bleu}")
    ratio = results["recurrent"]["greedy"]["bleu"] / max(results["transformer"]["greedy"]["bleu"], 1e-9)
    print(f"recurrent / Transformer BLEU (greedy): {ratio:.2f}")
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.run_dir) / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
