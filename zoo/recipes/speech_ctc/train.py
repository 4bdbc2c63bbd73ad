"""The speech_ctc recipe: a random mix of synthetic and real clips, CTC training, CER/WER on held-out synthetic
voices and real recordings."""

from __future__ import annotations

import jiwer
import keras
import numpy as np
import tensorflow as tf

from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.recipe import Prepared, Recipe
from zoo.recipes.speech_ctc import data, model
from zoo.recipes.speech_ctc.config import SAMPLE_RATE, SpeechConfig
from zoo.report import table


def char_ids(alphabet: str):
    """Normalised text → label ids `(length,)` int32: alphabet[k] → k + 1 (0 is the CTC blank)."""
    keys = tf.lookup.KeyValueTensorInitializer(tf.constant(list(alphabet)), tf.range(1, len(alphabet) + 1))
    table = tf.lookup.StaticHashTable(keys, default_value=0)
    return lambda text: table.lookup(tf.strings.unicode_split(text, "UTF-8"))


def to_training_example(cfg: SpeechConfig):
    """Maps an example to ({"audio", "lengths"}, {"labels", "label_lengths"}, real) — the first two as
    ``CTCTrainer`` expects, the flag for mixing real and synthetic clips."""
    to_ids = char_ids(data.alphabet_of(cfg.data))

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


def training_examples(cfg: SpeechConfig, split: tf.data.Dataset) -> tf.data.Dataset:
    """Trainable examples `(inputs, targets, real)` of one split."""
    return split.map(to_training_example(cfg), num_parallel_calls=tf.data.AUTOTUNE).filter(trainable(cfg))


def _drop_flag(ds: tf.data.Dataset) -> tf.data.Dataset:
    return ds.map(lambda inputs, targets, real: (inputs, targets))


def make_datasets(cfg: SpeechConfig, splits: dict[str, tf.data.Dataset]):
    """Length-bucketed, silence-padded train/validation batches, the number of training clips per pass and the
    steps per epoch.

    Synthetic and real training clips are drawn at random in proportion (real ones ``data.real_train_repeats``
    times over) from an endless stream, without holding the audio in one big shuffle buffer. The stream is not cut
    into epochs: Keras would restart it every epoch, so short epochs would see only the first clips of the split.
    """
    train_ds = training_examples(cfg, splits["train"])
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
    # The repeats weigh real clips against synthetic ones; with real clips only (user files) a pass reads each once.
    per_pass = int(counts.sum()) if counts[0] else num_real
    steps = cfg.train.steps_per_epoch or -(-per_pass // cfg.train.batch_size)
    boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    length_fn = lambda x, y: x["lengths"]  # noqa: E731
    train_batches = bucketed_batches(stream, length_fn, cfg.train.batch_size, boundaries)
    val_batches = bucketed_batches(_drop_flag(training_examples(cfg, splits["validation"])).cache(), length_fn,
                                   cfg.train.batch_size, boundaries)
    return train_batches.prefetch(tf.data.AUTOTUNE), val_batches.prefetch(tf.data.AUTOTUNE), per_pass, steps


def evaluate(acoustic: keras.Model, cfg: SpeechConfig, split: tf.data.Dataset, batch_size: int = 32) -> dict:
    """CER and WER (jiwer) of greedy and beam-search decoding on one split, plus a few example transcripts."""
    examples = list(split.as_numpy_iterator())
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
        out = model.transcribe(acoustic, tf.constant(audio), tf.constant(lengths), data.alphabet_of(cfg.data),
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
    return table({"split": "", "n": "d", "CER greedy": ".4f", "CER beam": ".4f", "WER greedy": ".4f",
                  "WER beam": ".4f"},
                 [(split, m["examples"], m["cer_greedy"], m["cer_beam"], m["wer_greedy"], m["wer_beam"])
                  for split, m in metrics.items() if m.get("examples")])


class SpeechRecipe(Recipe):
    """Speech recognition (sequence → sequence, unaligned): 16 kHz waveform in, text out, trained with CTC."""

    name = "speech_ctc"
    config_class = SpeechConfig
    splits = data.SPLITS

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        train_ds, val_ds, num_train, steps_per_epoch = make_datasets(cfg, splits)
        return Prepared(train_ds, val_ds, facts={"training_clips_per_pass": num_train},
                        steps_per_epoch=steps_per_epoch)

    def build(self, cfg, prepared, member):
        return model.make_trainer(model.build_acoustic_model(cfg.model, len(data.alphabet_of(cfg.data)) + 1), cfg)

    def finalize(self, cfg, prepared, members, splits):
        (trainer,) = members
        return trainer.acoustic

    def evaluate(self, cfg, acoustic, splits, prepared, run_dir):
        return {"metrics": {split: evaluate(acoustic, cfg, splits[split]) for split in ("test_synthetic", "test_real")}}

    def summary(self, report):
        return f"Held-out test splits:\n{format_metrics(report['metrics'])}"

    def endpoints(self, cfg, acoustic):
        return {"serving_default": model.make_serving_fn(acoustic, cfg, data.alphabet_of(cfg.data))}

    def request(self, cfg, clips):
        """``clips``: a list of 16 kHz mono float waveforms (1-D arrays in [-1, 1]) of any lengths."""
        clips = [np.asarray(c, np.float32).reshape(-1) for c in clips]
        lengths = np.array([len(c) for c in clips], np.int32)
        audio = np.zeros((len(clips), max(lengths, default=0)), np.float32)
        for row, clip in zip(audio, clips):
            row[:len(clip)] = clip
        return {"audio": tf.constant(audio), "lengths": tf.constant(lengths)}

    def example_inputs(self, cfg):
        noise = 0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)
        return [noise, noise[:SAMPLE_RATE // 2]]


RECIPE = SpeechRecipe()
