"""Prepare data, train with CTC, evaluate CER/WER on held-out synthetic voices and real recordings, save, export."""

from __future__ import annotations

import time

import jiwer
import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches, take_first
from zoo.recipes.speech_ctc import data, model
from zoo.recipes.speech_ctc.config import SAMPLE_RATE, SpeechConfig

RECIPE = "speech_ctc"


def char_ids(alphabet: str):
    """Normalised text → label ids `(length,)` int32: alphabet[k] → k + 1 (0 is the CTC blank)."""
    keys = tf.lookup.KeyValueTensorInitializer(tf.constant(list(alphabet)), tf.range(1, len(alphabet) + 1))
    table = tf.lookup.StaticHashTable(keys, default_value=0)
    return lambda text: table.lookup(tf.strings.unicode_split(text, "UTF-8"))


def to_training_example(cfg: SpeechConfig):
    """Maps an example to ({"audio", "lengths"}, {"labels", "label_lengths"}, real) — the first two as
    ``CTCTrainer`` expects, the flag for mixing real and synthetic clips."""
    to_ids = char_ids(cfg.data.alphabet)

    def fn(ex):
        labels = to_ids(ex["text"])
        inputs = {"audio": ex["audio"], "lengths": tf.size(ex["audio"], out_type=tf.int32)}
        return inputs, {"labels": labels, "label_lengths": tf.size(labels, out_type=tf.int32)}, ex["real"]

    return fn


def trainable(cfg: SpeechConfig):
    """Keeps examples with a label, within ``data.max_train_seconds``, and with enough frames for a CTC path
    (one per label plus one blank between repeated labels); others would give an infinite loss."""

    def fn(inputs, targets, real):
        labels, n = targets["labels"], targets["label_lengths"]
        repeats = tf.reduce_sum(tf.cast(tf.equal(labels[1:], labels[:-1]), tf.int32))
        return ((n > 0) & (inputs["lengths"] <= int(cfg.data.max_train_seconds * SAMPLE_RATE))
                & (model.frame_count(inputs["lengths"], cfg.model) >= n + repeats))

    return fn


def training_split(cfg: SpeechConfig, split: str) -> tf.data.Dataset:
    """Trainable examples `(inputs, targets, real)` of one split."""
    ds = data.load_split(cfg.data, split)
    limit = cfg.train.max_train_examples if split == "train" else cfg.train.max_eval_examples
    return take_first(ds, limit).map(to_training_example(cfg), num_parallel_calls=tf.data.AUTOTUNE).filter(trainable(cfg))


def _drop_flag(ds: tf.data.Dataset) -> tf.data.Dataset:
    return ds.map(lambda inputs, targets, real: (inputs, targets))


def make_datasets(cfg: SpeechConfig):
    """Length-bucketed, silence-padded train/validation batches, the number of training clips per pass and the
    steps per epoch.

    Synthetic and real training clips are drawn at random in proportion (real ones ``data.real_train_repeats``
    times over) from an endless stream, without holding the audio in one big shuffle buffer. The stream is not cut
    into epochs: Keras would restart it every epoch, so short epochs would see only the first clips of the split.
    """
    train_ds = training_split(cfg, "train")
    stats = list(train_ds.map(lambda x, y, real: (x["lengths"], real)).as_numpy_iterator())
    lengths = [int(n) for n, _ in stats]
    num_real = sum(bool(real) for _, real in stats)
    counts = np.array([len(stats) - num_real, num_real * cfg.data.real_train_repeats], np.float64)
    if not counts.any():
        raise ValueError(f"no trainable clips in the {cfg.data.source} training split (see data.max_train_seconds)")
    # The few real clips are cached in memory: filtering them out of the synthetic-dominated split again on every
    # pass reads the whole split per pass of the real ones and starves training (half the steps at 30k clips).
    streams = [_drop_flag(train_ds.filter(lambda x, y, real: tf.logical_not(real))),
               _drop_flag(train_ds.filter(lambda x, y, real: real)).cache()]
    streams = [s.shuffle(1024, seed=cfg.train.seed + i).repeat() for i, s in enumerate(streams) if counts[i]]
    weights = list(counts[counts > 0] / counts.sum())
    stream = tf.data.Dataset.sample_from_datasets(streams, weights, seed=cfg.train.seed,
                                                  rerandomize_each_iteration=True)
    per_pass = int(counts.sum())
    steps = cfg.train.steps_per_epoch or -(-per_pass // cfg.train.batch_size)
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    length_fn = lambda x, y: x["lengths"]  # noqa: E731
    train_batches = bucketed_batches(stream, length_fn, cfg.train.batch_size, boundaries)
    val_batches = bucketed_batches(_drop_flag(training_split(cfg, "validation")).cache(), length_fn,
                                   cfg.train.batch_size, boundaries)
    return train_batches.prefetch(tf.data.AUTOTUNE), val_batches.prefetch(tf.data.AUTOTUNE), per_pass, steps


def evaluate(acoustic: keras.Model, cfg: SpeechConfig, split: str, batch_size: int = 32) -> dict:
    """CER and WER (jiwer) of greedy and beam-search decoding on one split, plus a few example transcripts."""
    examples = list(take_first(data.load_split(cfg.data, split), cfg.train.max_eval_examples).as_numpy_iterator())
    examples = [ex for ex in examples if ex["text"]]
    if not examples:
        return {"examples": 0}
    examples.sort(key=lambda ex: ex["audio"].size)  # less padding per batch
    refs, greedy, beam = [], [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        lengths = np.array([ex["audio"].size for ex in batch], np.int32)
        audio = np.zeros((len(batch), lengths.max()), np.float32)
        for row, ex in zip(audio, batch):
            row[: ex["audio"].size] = ex["audio"]
        out = model.transcribe(acoustic, tf.constant(audio), tf.constant(lengths), cfg.data.alphabet,
                               cfg.model.beam_width)
        refs += [ex["text"].decode() for ex in batch]
        greedy += [t.decode() for t in out["greedy_transcript"].numpy()]
        beam += [t.decode() for t in out["transcript"].numpy()]
    return {
        "examples": len(refs),
        "cer_greedy": float(jiwer.cer(refs, greedy)), "wer_greedy": float(jiwer.wer(refs, greedy)),
        "cer_beam": float(jiwer.cer(refs, beam)), "wer_beam": float(jiwer.wer(refs, beam)),
        "samples": [{"reference": r, "beam": b} for r, b in list(zip(refs, beam))[:: max(1, len(refs) // 8)]],
    }


def format_metrics(metrics: dict) -> str:
    rows = [f"{'split':16s} {'n':>5s} {'CER greedy':>11s} {'CER beam':>9s} {'WER greedy':>11s} {'WER beam':>9s}"]
    for split, m in metrics.items():
        if m.get("examples"):
            rows.append(f"{split:16s} {m['examples']:5d} {m['cer_greedy']:11.4f} {m['cer_beam']:9.4f} "
                        f"{m['wer_greedy']:11.4f} {m['wer_beam']:9.4f}")
    return "\n".join(rows)


def run(cfg: SpeechConfig) -> dict:
    """Prepares data (timed apart), trains, evaluates both test splits, saves ``model.keras``, exports."""
    run_dir, strategy = training.start_run(cfg.train, RECIPE)

    started = time.time()
    train_ds, val_ds, num_train, steps_per_epoch = make_datasets(cfg)
    prep_seconds = time.time() - started
    print(f"{num_train} training clips; data preparation {prep_seconds:.0f} s")

    started = time.time()
    with strategy.scope():
        acoustic = model.build_acoustic_model(cfg.model, len(cfg.data.alphabet) + 1)
        trainer = model.make_trainer(acoustic, cfg)
    plateau = ([keras.callbacks.ReduceLROnPlateau(factor=cfg.train.lr_plateau_factor,
                                                  patience=cfg.train.lr_plateau_patience, min_lr=1e-5, verbose=1)]
               if cfg.train.lr_plateau_patience else [])
    history = training.fit(trainer, train_ds, val_ds, cfg.train, run_dir, config=cfg, callbacks=plateau,
                           steps_per_epoch=steps_per_epoch)
    train_seconds = time.time() - started

    metrics = {split: evaluate(acoustic, cfg, split) for split in ("test_synthetic", "test_real")}
    print(f"\nHeld-out test splits ({cfg.data.source}):\n{format_metrics(metrics)}")
    report = {"metrics": metrics, "data_prep_seconds": round(prep_seconds, 1), "train_seconds": round(train_seconds, 1),
              "epochs_run": len(history.get("epoch", [])), "training_clips": num_train}
    return training.finish_run(RECIPE, acoustic, cfg, run_dir, report)
