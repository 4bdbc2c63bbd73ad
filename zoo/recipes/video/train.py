"""The video recipe: train on length-bucketed clips, evaluate beside order-free baselines, serve frames."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.recipe import Prepared, Recipe
from zoo.recipes.video import data, model
from zoo.recipes.video.config import VideoConfig
from zoo.report import table


def _length(frames, label):
    return tf.shape(frames)[0]


def batches(clips: tf.data.Dataset, cfg: VideoConfig, boundaries: list[int], shuffle: bool = False):
    """Length-bucketed, right-padded batches of ``({"frames", "lengths"}, label)`` from (frames, label) clips."""
    if shuffle:
        clips = clips.shuffle(4096, seed=cfg.train.seed, reshuffle_each_iteration=True)
    clips = clips.map(lambda frames, label: (frames, _length(frames, label), label))
    ds = bucketed_batches(clips, lambda frames, length, label: length, cfg.train.batch_size, boundaries)
    ds = ds.map(lambda frames, length, label: ({"frames": frames, "lengths": length}, label))
    return ds.prefetch(tf.data.AUTOTUNE)


def clips_of(split: tf.data.Dataset) -> tf.data.Dataset:
    """A split's examples as (frames, label) clips."""
    return split.map(lambda ex: (ex["frames"], ex["label"]))


def boundaries_of(cfg: VideoConfig, train_clips: tf.data.Dataset) -> list[int]:
    """Bucket boundaries at the quantiles of the training clip lengths (digits, in memory); none for UCF101, where
    decoding every clip for its length costs more than it saves (most clips reach max_frames)."""
    if cfg.data.source != "digits":
        return []
    return bucket_boundaries([int(n) for n in train_clips.map(_length).as_numpy_iterator()], cfg.data.num_buckets)


def predict(classifier: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, probabilities) over a batched dataset."""
    labels, probabilities = [], []
    for inputs, label in ds:
        probabilities.append(np.asarray(classifier(inputs, training=False)))
        labels.append(label.numpy())
    return np.concatenate(labels), np.concatenate(probabilities)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def plot_confusion(matrix: np.ndarray, names: list[str], png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = max(5.0, 0.45 * len(names))
    fig, ax = plt.subplots(figsize=(side + 1, side))
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def evaluate(classifier: keras.Model, test_ds: tf.data.Dataset, names: list[str]) -> dict:
    """Top-1 accuracy, per-class accuracy and the confusion matrix on batched held-out clips."""
    labels, probabilities = predict(classifier, test_ds)
    predictions = probabilities.argmax(-1)
    matrix = confusion_matrix(labels, predictions, len(names))
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {"clips": int(len(labels)), "top1": float((predictions == labels).mean()),
            "per_class": {n: round(float(per_class[i]), 4) for i, n in enumerate(names) if matrix[i].sum()},
            "confusion": matrix.tolist()}


def build_classifier(cfg: VideoConfig, num_classes: int) -> keras.Model:
    classifier = model.build_classifier(cfg.model, cfg.data.frame_size, num_classes)
    model.compile_classifier(classifier, cfg)
    return classifier


def train_classifier(cfg: VideoConfig, train_ds, val_ds, num_classes: int, run_dir: Path, epochs: int):
    """Builds, compiles and fits one classifier with the zoo's standard callbacks; returns it and its epochs."""
    with training.local_strategy(cfg.train.strategy).scope():
        classifier = build_classifier(cfg, num_classes)
    history = training.fit(classifier, train_ds, val_ds, dataclasses.replace(cfg.train, epochs=epochs), run_dir)
    return classifier, len(history.get("epoch", []))


def run_baselines(cfg: VideoConfig, clips, boundaries, names, run_dir: Path) -> dict:
    """The same network trained and tested on order-free views of the same clips: shuffled frames, one frame."""
    results = {}
    for view in ("shuffled", "single_frame"):
        started = time.time()
        train_ds, val_ds, test_ds = (data.order_free(ds, view, cfg.train.seed + i) for i, ds in enumerate(clips))
        view_boundaries = boundaries if view == "shuffled" else []
        classifier, epochs = train_classifier(
            cfg, batches(train_ds, cfg, view_boundaries, shuffle=True), batches(val_ds, cfg, view_boundaries),
            len(names), run_dir / "baselines" / view, cfg.baselines.epochs)
        metrics = evaluate(classifier, batches(test_ds, cfg, view_boundaries), names)
        results[view] = {"top1": metrics["top1"], "clips": metrics["clips"], "epochs_run": epochs,
                         "seconds": round(time.time() - started, 1)}
        print(f"baseline {view}: top-1 {metrics['top1']:.4f} ({results[view]['seconds']} s)")
    return results


def format_results(report: dict) -> str:
    return table({"model": "", "top-1": ".4f"},
                 [("recurrent (ordered frames)", report["metrics"]["top1"]),
                  ("  same model, test frames shuffled", report["order_check"]["shuffled_test_top1"]),
                  *[("baseline: " + view.replace("_", "-"), result["top1"])
                    for view, result in report.get("baselines", {}).items()]])


class VideoRecipe(Recipe):
    """Video (sequence → one): a variable-length clip of frames in, an activity label out."""

    name = "video"
    config_class = VideoConfig

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        names = data.class_names(cfg.data)
        train_clips, val_clips = clips_of(splits["train"]), clips_of(splits["validation"])
        boundaries = boundaries_of(cfg, train_clips)
        return Prepared(batches(train_clips, cfg, boundaries, shuffle=True), batches(val_clips, cfg, boundaries),
                        facts={"classes": len(names)}, state={"names": names, "boundaries": boundaries})

    def build(self, cfg, prepared, member):
        return build_classifier(cfg, len(prepared.state["names"]))

    def evaluate(self, cfg, classifier, splits, prepared, run_dir):
        names, boundaries = prepared.state["names"], prepared.state["boundaries"]
        test_clips = clips_of(splits["test"])
        metrics = evaluate(classifier, batches(test_clips, cfg, boundaries), names)
        plot_confusion(np.array(metrics["confusion"]), names, run_dir / "confusion.png",
                       f"{self.name}/{cfg.data.source} held-out top-1 {metrics['top1']:.3f}")
        shuffled_test = data.order_free(test_clips, "shuffled", cfg.train.seed + 2)
        report = {"metrics": metrics, "order_check": {
            "shuffled_test_top1": evaluate(classifier, batches(shuffled_test, cfg, boundaries), names)["top1"]}}
        if cfg.baselines.enabled:
            clips = [clips_of(splits[s]) for s in ("train", "validation", "test")]
            report["baselines"] = run_baselines(cfg, clips, boundaries, names, run_dir)
        return report

    def summary(self, report):
        return f"Held-out test clips ({report['metrics']['clips']}):\n{format_results(report)}"

    def endpoints(self, cfg, classifier):
        return {"serving_default": model.make_serving_fn(classifier, cfg, data.class_names(cfg.data))}

    def request(self, cfg, clips):
        """``clips``: a list of uint8 arrays `(time, height, width, 3)` of one frame size, any lengths."""
        clips = [np.asarray(c, np.uint8) for c in clips]
        lengths = np.array([len(c) for c in clips], np.int32)
        shape = clips[0].shape[1:] if clips else (1, 1, 3)
        frames = np.zeros((len(clips), max(lengths, default=1), *shape), np.uint8)
        for row, clip in zip(frames, clips):
            row[:len(clip)] = clip
        return {"frames": tf.constant(frames), "lengths": tf.constant(lengths)}

    def example_inputs(self, cfg):
        rng, size, time = np.random.default_rng(0), cfg.data.frame_size, cfg.data.max_frames
        return [rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8) for length in (time, max(1, time // 2))]


RECIPE = VideoRecipe()
