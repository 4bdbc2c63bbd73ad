"""Train, evaluate on held-out clips beside order-free baselines, save and export the video model."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import export, training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.recipes.video import data, model
from zoo.recipes.video.config import VideoConfig

RECIPE = "video"


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


def load_clips(cfg: VideoConfig):
    """(train, validation, test) (frames, label) datasets, the bucket boundaries and the render seconds."""
    limits = {"train": cfg.train.max_train_examples, "validation": cfg.train.max_eval_examples,
              "test": cfg.train.max_eval_examples}
    splits, render_seconds = {}, 0.0
    for split, limit in limits.items():
        splits[split], seconds = data.load_split(cfg.data, split, limit)
        render_seconds += seconds
    if cfg.data.source == "digits":  # in memory: bucket at length quantiles
        lengths = [int(n) for n in splits["train"].map(_length).as_numpy_iterator()]
        boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    else:  # decoding all of UCF101 for its lengths costs more than it saves; most clips reach max_frames
        boundaries = []
    return splits["train"], splits["validation"], splits["test"], boundaries, render_seconds


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


def train_classifier(cfg: VideoConfig, train_ds, val_ds, num_classes: int, run_dir: Path, epochs: int):
    """Builds, compiles and fits one classifier with the zoo's standard callbacks; returns it and its epochs."""
    with training.make_strategy(cfg.train.strategy).scope():
        classifier = model.build_classifier(cfg.model, cfg.data.frame_size, num_classes)
        model.compile_classifier(classifier, cfg)
    history = training.fit(classifier, train_ds, val_ds, dataclasses.replace(cfg.train, epochs=epochs), run_dir,
                           config=cfg)
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
    rows = [f"{'model':34s} {'top-1':>7s}"]
    rows.append(f"{'recurrent (ordered frames)':34s} {report['metrics']['top1']:7.4f}")
    rows.append(f"{'  same model, test frames shuffled':34s} {report['order_check']['shuffled_test_top1']:7.4f}")
    for view, result in report.get("baselines", {}).items():
        rows.append(f"{'baseline: ' + view.replace('_', '-'):34s} {result['top1']:7.4f}")
    return "\n".join(rows)


def run(cfg: VideoConfig) -> dict:
    """Loads (or renders) clips, trains, evaluates with baselines, saves ``model.keras`` and exports."""
    keras.utils.set_random_seed(cfg.train.seed)
    run_dir = training.run_directory(cfg.train, RECIPE)
    names = data.class_names(cfg.data)

    started = time.time()
    train_clips, val_clips, test_clips, boundaries, render_seconds = load_clips(cfg)
    data_seconds = time.time() - started
    print(f"data ready in {data_seconds:.1f} s (rendering {render_seconds:.1f} s); {len(names)} classes")

    started = time.time()
    classifier, epochs = train_classifier(cfg, batches(train_clips, cfg, boundaries, shuffle=True),
                                          batches(val_clips, cfg, boundaries), len(names), run_dir,
                                          cfg.train.epochs)
    train_seconds = time.time() - started
    metrics = evaluate(classifier, batches(test_clips, cfg, boundaries), names)
    plot_confusion(np.array(metrics["confusion"]), names, run_dir / "confusion.png",
                   f"{RECIPE}/{cfg.data.source} held-out top-1 {metrics['top1']:.3f}")
    shuffled_test = data.order_free(test_clips, "shuffled", cfg.train.seed + 2)
    order_check = {"shuffled_test_top1": evaluate(classifier, batches(shuffled_test, cfg, boundaries), names)["top1"]}

    report = {"metrics": metrics, "order_check": order_check, "data_seconds": round(data_seconds, 1),
              "render_seconds": round(render_seconds, 1), "train_seconds": round(train_seconds, 1),
              "epochs_run": epochs}
    keras_path = run_dir / "model.keras"
    classifier.save(keras_path)
    if cfg.baselines.enabled:
        report["baselines"] = run_baselines(cfg, (train_clips, val_clips, test_clips), boundaries, names, run_dir)
    print(f"\nHeld-out test clips ({cfg.data.source}, {metrics['clips']}):\n{format_results(report)}")
    report["model"] = str(keras_path)
    if cfg.export.enabled:
        report["saved_model"] = str(export.export_model(RECIPE, keras_path, cfg))
        print(f"exported {report['saved_model']}")
    report["total_seconds"] = round(time.time() - started, 1)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
