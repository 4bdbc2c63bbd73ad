"""Training loop shared by the recipes: strategy, seeds, Keras callbacks, resumable runs and training curves."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from zoo import export
from zoo.config import TrainConfig, to_dict


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named in ``train.strategy``.

    ``multi_worker`` is the scale-out path: every worker runs the same command with its own ``TF_CONFIG``.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def start_run(train: TrainConfig, recipe: str) -> tuple[Path, tf.distribute.Strategy]:
    """Seeds Python, NumPy and TensorFlow; returns the recipe's run directory and distribution strategy."""
    keras.utils.set_random_seed(train.seed)
    return run_directory(train, recipe), make_strategy(train.strategy)


def run_directory(train: TrainConfig, recipe: str) -> Path:
    path = Path(train.run_dir.format(recipe=recipe))
    path.mkdir(parents=True, exist_ok=True)
    return path


class TrainingCurves(keras.callbacks.Callback):
    """Redraws ``curves.png`` from ``history.csv`` after every epoch, so a killed run still leaves its curves."""

    def __init__(self, history_csv: Path, png: Path):
        super().__init__()
        self.history_csv, self.png = history_csv, png

    def on_epoch_end(self, epoch, logs=None):
        plot_history(self.history_csv, self.png)


class TimeLimit(keras.callbacks.Callback):
    """Keeps training within ``minutes`` of wall time: an epoch is not started when the slowest epoch so far would
    overrun, and a batch that ends past the budget stops training."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60
        self.started = time.time()
        self.epoch_started = self.started
        self.longest_epoch = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self.longest_epoch = max(self.longest_epoch, now - self.epoch_started)
        if now - self.started + self.longest_epoch > self.seconds:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.started > self.seconds:
            self.model.stop_training = True


def read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.is_file():
        return {}
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in (rows[0] if rows else {})}


def plot_history(history_csv: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(history_csv)
    names = sorted(k for k in history if k != "epoch" and not k.startswith("val_") and k != "learning_rate")
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(history[f"val_{name}"], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def _best_so_far(history_csv: Path, monitor: str, mode: str):
    """Best monitored value of a resumed run, so the best checkpoint is not overwritten by a worse epoch."""
    values = read_history(history_csv).get(monitor)
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def config_json(config) -> str:
    return json.dumps(to_dict(config), indent=2)


def same_config(run_dir: Path, config) -> bool:
    """Whether ``run_dir`` was last used with exactly ``config`` (so its saved state may be resumed)."""
    saved = run_dir / "config.json"
    return saved.is_file() and saved.read_text() == config_json(config)


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, train: TrainConfig,
        run_dir: Path, monitor: str = "val_loss", mode: str = "min", config=None,
        callbacks: list[keras.callbacks.Callback] = (), steps_per_epoch: int | None = None) -> dict:
    """Trains ``model`` (compiled by the caller) with the zoo's standard callbacks; returns the history dict.

    An endless ``train_ds`` needs ``steps_per_epoch``; its iterator then carries on from epoch to epoch (a finite
    dataset, ``.take(n)`` of an endless one included, is restarted from its first element every epoch).

    A run killed at any point resumes from its last finished epoch when started again with the same ``run_dir``
    (``BackupAndRestore``). The weights of the best validation epoch are restored at the end. ``callbacks`` run
    after the standard ones.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    best_weights = run_dir / "best.weights.h5"
    backup_dir = run_dir / "backup"
    if config is not None:
        if backup_dir.exists() and not same_config(run_dir, config):
            print(f"{run_dir} holds an unfinished run with other settings; starting afresh")
            shutil.rmtree(backup_dir)
        (run_dir / "config.json").write_text(config_json(config))
    if not backup_dir.exists():  # a fresh run: forget the history of a previous, finished run
        history_csv.unlink(missing_ok=True)
        best_weights.unlink(missing_ok=True)
    # With a weight-averaging optimizer, validation, the best checkpoint and the final weights use the averaged
    # weights; they are swapped in after the backup, so a resumed run continues from the raw weights.
    averaging = getattr(model.optimizer, "use_ema", False)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if averaging else []),
        keras.callbacks.ModelCheckpoint(str(best_weights), monitor=monitor, mode=mode, save_best_only=True,
                                        save_weights_only=True,
                                        initial_value_threshold=_best_so_far(history_csv, monitor, mode)),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=train.early_stopping_patience),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        TrainingCurves(history_csv, run_dir / "curves.png"),
        *([TimeLimit(train.max_minutes)] if train.max_minutes else []),
        *callbacks,
    ]
    model.jit_compile = train.jit_compile  # Keras' "auto" turns XLA on, which recompiles for every batch shape
    model.fit(train_ds, validation_data=val_ds, epochs=train.epochs, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks, verbose=train.verbose, shuffle=False)  # tf.data pipelines shuffle themselves
    if best_weights.is_file():
        model.load_weights(str(best_weights))
    return read_history(history_csv)


def fit_members(size: int, build, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, train: TrainConfig,
                run_dir: Path, strategy: tf.distribute.Strategy, config, monitor: str = "val_loss",
                mode: str = "min") -> tuple[list[keras.Model], list[int]]:
    """Trains ``size`` independently seeded models for an ensemble; returns them and the epochs each ran.

    ``build(k)`` returns member ``k`` compiled. Member ``k`` trains in ``run_dir/member_k`` with seed
    ``train.seed + k``; a member that finished under the same config is reloaded, so a resumed run loses none.
    """
    members, epochs_run = [], []
    for k in range(size):
        member_dir = run_dir / f"member_{k}"
        keras.utils.set_random_seed(train.seed + k)
        with strategy.scope():
            member = build(k)
        finished = member_dir / "finished.weights.h5"
        if finished.is_file() and same_config(member_dir, config):
            print(f"member {k}: already trained in {member_dir}, reusing it")
            member.load_weights(finished)
        else:
            finished.unlink(missing_ok=True)
            history = fit(member, train_ds, val_ds, train, member_dir, monitor=monitor, mode=mode, config=config)
            member.save_weights(finished)
            epochs_run.append(len(history.get("epoch", [])))
        members.append(member)
    return members, epochs_run


def finish_run(recipe: str, model: keras.Model, cfg, run_dir: Path, report: dict) -> dict:
    """Saves ``model.keras``, exports it when ``cfg.export.enabled`` and writes ``report.json``; returns the report."""
    keras_path = run_dir / "model.keras"
    model.save(keras_path)
    report["model"] = str(keras_path)
    if cfg.export.enabled:
        report["saved_model"] = str(export.export_model(recipe, keras_path, cfg))
        print(f"exported {report['saved_model']}")
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
