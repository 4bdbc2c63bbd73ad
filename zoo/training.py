"""Training loop shared by the recipes: strategy, seeds, Keras callbacks, resumable runs and training curves."""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.python.data.ops import dataset_ops

from zoo.config import TrainConfig
from zoo.optimizers import LazyAdam


@functools.cache
def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named in ``train.strategy`` (one per process: collectives are set up once).

    ``multi_worker`` is the scale-out path: every worker runs the same command with its own ``TF_CONFIG`` (see the
    README); the datasets are sharded by example, each worker training on its part of every global batch.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _patch_keras_for_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def local_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for a model that one process trains alone (a baseline inside the chief's report): ``name``'s,
    except in multi-worker training, whose other workers do not take part in the report."""
    strategy = make_strategy(name)
    return tf.distribute.get_strategy() if is_multi_worker(strategy) else strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: always outside multi-worker training; there, the ``chief``
    task, or worker 0 of a cluster without one."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def _patch_keras_for_multi_worker():
    """Keras 3.15's ``fit`` under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585) averages each step's
    scalar logs across workers with ``axis=0``, which fails on a scalar: average them whole instead, so that every
    worker sees the same (global) losses and metrics, and its early-stopping and learning-rate decisions agree with
    the other workers' (a worker that stopped alone would leave the others waiting in the next all-reduce)."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "zoo_multi_worker", False):
        return
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.zoo_multi_worker = True
    trainer.reduce_per_replica = reduce_per_replica


def for_workers(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` set to be sharded by example across workers (each worker takes its slice of every global batch).

    TF's default policy shards by input file first, which gives a split held in one TFRecord file (a TFDS split, a
    small user file) to one worker only, and the others nothing to train on.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam with the run's learning rate, gradient clipping, (``train.ema_momentum``) weight averaging and
    (``train.sparse_updates``) row-wise updates of embedding tables."""
    averaging = {"use_ema": True, "ema_momentum": train.ema_momentum} if train.ema_momentum else {}
    adam = LazyAdam if train.sparse_updates else keras.optimizers.Adam
    return adam(train.learning_rate, clipnorm=train.clipnorm or None, **averaging)


def start_run(train: TrainConfig, recipe: str) -> tuple[Path, tf.distribute.Strategy]:
    """Seeds Python, NumPy and TensorFlow; returns the recipe's run directory and distribution strategy.

    In multi-worker training a worker other than the chief keeps its own training state (backups, history) in
    ``workers/<index>`` under the run directory, so that a restarted worker resumes from its own backup.
    """
    keras.utils.set_random_seed(train.seed)
    strategy = make_strategy(train.strategy)
    if is_multi_worker(strategy) and train.max_minutes:
        raise ValueError("train.max_minutes cannot be used with train.strategy = multi_worker: each worker would "
                         "judge the wall time alone, and one that stopped would leave the others waiting")
    path = run_directory(train, recipe)
    if not is_chief(strategy):
        path = path / WORKERS_DIR / str(strategy.cluster_resolver.task_id)
        path.mkdir(parents=True, exist_ok=True)
    return path, strategy


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


TIME_LIMIT_FILE = "time_limit.txt"


class TimeLimit(keras.callbacks.Callback):
    """Keeps training within ``minutes`` of wall time (the opt-in guard ``train.max_minutes``): an epoch is not
    started when the slowest epoch so far would overrun, and a batch that ends past the budget stops training. A run
    it cuts says so, in the log and in ``record`` (``time_limit.txt``, which the driver puts into the report): how
    far a cut run gets depends on the machine and its load."""

    def __init__(self, minutes: float, record: Path):
        super().__init__()
        self.minutes, self.record = minutes, record
        self.seconds = minutes * 60
        self.started = time.time()
        self.epoch_started = self.started
        self.longest_epoch = 0.0
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started, self.epoch = time.time(), epoch

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self.longest_epoch = max(self.longest_epoch, now - self.epoch_started)
        if now - self.started + self.longest_epoch > self.seconds and epoch + 1 < self.params["epochs"]:
            self._stop(f"after epoch {epoch + 1}: the next would pass the budget")

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.started > self.seconds:
            self._stop(f"in epoch {self.epoch + 1}, batch {batch + 1}")

    def _stop(self, where: str):
        if not self.model.stop_training:
            message = f"train.max_minutes = {self.minutes:g} cut training {where}"
            print(message, flush=True)
            self.record.write_text(message + "\n")
        self.model.stop_training = True


class CountedDataset(dataset_ops.UnaryUnchangedStructureDataset):
    """``dataset`` itself (the same graph), counting in ``count`` the iterators opened on it.

    Every iterator opened on a dataset that reshuffles each iteration draws the next shuffle order from a generator
    that the dataset owns, and how many the training loop opens per epoch is its own business (Keras opens one or
    two); the count lets a resumed run open as many as the interrupted one had before it trains on. Datasets that read
    one pipeline (the members of an ensemble, a stream and its ``skip``) share one count.
    """

    def __init__(self, dataset: tf.data.Dataset, count: list[int]):
        self.count = count
        super().__init__(dataset, dataset._variant_tensor)

    def __iter__(self):
        self.count[0] += 1
        return super().__iter__()

    def catch_up(self, opened: int) -> None:
        """Opens (and drops) iterators until ``opened`` have been opened on the pipeline."""
        while self.count[0] < opened:
            iter(self)


class ExactBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose resumed run ends bit-identical to a run that never stopped.

    At the end of every epoch it writes one backup directory, renamed into place so that a kill at any moment leaves
    the last complete one: the weights with the optimizer state (learning rate included), the state of every
    ``keras.random.SeedGenerator`` of the model (dropout, augmentation) and the logs of every finished epoch, from
    which the counters of the callbacks in ``replayed`` (EarlyStopping, ReduceLROnPlateau) are rebuilt. A run killed
    mid-epoch redoes that epoch from its start. The input pipeline goes on where it was too: the training set (a
    ``CountedDataset``) is opened as often as it had been, so its shuffle draws the same orders; the caller skips an
    endless stream (``fit(steps_per_epoch=)``) past the batches already read, and trims the CSV history
    (``trim_history``) to ``resume_epoch``.

    Args:
        backup_dir: str or Path, the directory this callback owns.
        replayed: callbacks whose ``on_epoch_end(epoch, logs)`` rebuilds their state from the logs.
        train_ds: the ``CountedDataset`` that training reads (set before training starts; None: no replay).
        endless: whether ``train_ds`` is an endless stream, whose one iterator serves every epoch.
        swap: the run's ``SwapEMAWeights`` callback, if any: the backup holds the raw weights as the model variables
            (swapping the averaged ones back out when they are in at the epoch's end).
        strategy: a multi-worker strategy, or None. Each worker keeps its own backups; a worker killed at an epoch's
            end may have written one epoch fewer than the others, so the last two are kept and a restart resumes
            every worker from the newest epoch that all of them have (agreed in one all-reduce).
    """

    STATE, WEIGHTS = "state.json", "model.weights.h5"

    def __init__(self, backup_dir, replayed=(), train_ds: CountedDataset | None = None, endless=False, swap=None,
                 strategy: tf.distribute.Strategy | None = None):
        super().__init__(str(backup_dir))
        self.replayed, self.train_ds, self.endless, self.swap = list(replayed), train_ds, endless, swap
        self.strategy = strategy
        self.keep = 2 if strategy is not None else 1
        self._opened = 0
        self.epoch_logs: list[dict] = []
        self._rebuild = False

    def _done(self) -> dict[int, Path]:
        """The complete backups by epoch."""
        return {int(p.name.split("_")[1]): p for p in Path(self.backup_dir).glob("epoch_*")
                if (p / self.STATE).is_file()}

    def _latest(self) -> Path | None:
        done = self._done()
        if self.strategy is None:
            return done[max(done)] if done else None
        # The newest epoch every worker has (0: some worker has none, and all start afresh).
        mine = tf.constant([max(done, default=0)])
        every = self.strategy.run(lambda: tf.distribute.get_replica_context().all_gather(mine, axis=0))
        epoch = int(tf.reduce_min(self.strategy.experimental_local_results(every)[0]))
        if epoch and epoch not in done:
            raise ValueError(f"{self.backup_dir} holds epochs {sorted(done)} but the other workers resume from epoch "
                             f"{epoch}: remove the run's backups (every worker's) to start afresh")
        return done.get(epoch)

    @property
    def resume_epoch(self) -> int:
        """The epoch a run started now goes on from (0 for a fresh run)."""
        latest = self._latest()
        return int(latest.name.split("_")[1]) if latest else 0

    def _seed_states(self) -> list:
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

    def _save_model(self):
        epoch, root = self._current_epoch, Path(self.backup_dir)
        staging, final = root / f".epoch_{epoch}.partial", root / f"epoch_{epoch}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        averaged_in = self.swap is not None and self.swap._ema_weights_in_model
        if averaged_in:
            self.swap._swap_variables()
        self.model.save_weights(staging / self.WEIGHTS)
        if averaged_in:
            self.swap._swap_variables()
        seeds = {f"{i}:{v.path}": keras.ops.convert_to_numpy(v).tolist() for i, v in enumerate(self._seed_states())}
        opened = self.train_ds.count[0] if self.train_ds is not None else 0
        (staging / self.STATE).write_text(json.dumps({"epoch": epoch, "seeds": seeds, "logs": self.epoch_logs,
                                                      "opened": opened}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for older in sorted(self._done())[:-self.keep]:
            shutil.rmtree(root / f"epoch_{older}")

    def _load_model(self):
        for partial in Path(self.backup_dir).glob(".epoch_*.partial"):
            shutil.rmtree(partial)  # a save the kill interrupted
        latest = self._latest()
        if latest is None:
            for stale in self._done().values():  # a worker's backups that the others do not have
                shutil.rmtree(stale)
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(latest / self.WEIGHTS)
        state = json.loads((latest / self.STATE).read_text())
        variables = self._seed_states()
        if [key.split(":", 1)[1] for key in state["seeds"]] != [v.path for v in variables]:
            raise ValueError(f"{latest} was saved from a model with other random layers; remove {self.backup_dir}")
        for variable, value in zip(variables, state["seeds"].values()):
            variable.assign(value)
        self.epoch_logs, self._opened, self._rebuild = state["logs"], state["opened"], True
        self.model._initial_epoch = self._current_epoch = state["epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        # The other callbacks reset their counters in on_train_begin, which may run after this one's: rebuild them at
        # the first epoch instead. Their replay must not change the restored learning rate.
        if self._rebuild:
            self._rebuild = False
            learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            for callback in self.replayed:
                verbose, callback.verbose = callback.verbose, 0
                for past, past_logs in enumerate(self.epoch_logs):
                    callback.on_epoch_end(past, dict(past_logs))
                callback.verbose = verbose
            self.model.optimizer.learning_rate.assign(learning_rate)
            # The loop opens an iterator right after this call: for a finite set the epoch's next one, for a stream
            # the one the interrupted run had open all along.
            if self.train_ds is not None:
                self.train_ds.catch_up(self._opened - (1 if self.endless else 0))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs.append({k: float(v) for k, v in (logs or {}).items()})
        super().on_epoch_end(epoch, logs)


def trim_history(history_csv: Path, epochs: int) -> None:
    """Drops the rows of epochs at or after ``epochs``: an epoch logged just before a kill, which its backup missed,
    is trained and logged again."""
    if not history_csv.is_file():
        return
    with open(history_csv, newline="") as f:
        rows = list(csv.reader(f))
    if rows:
        kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) < epochs]
        with open(history_csv, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.is_file():
        return {}
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if _is_number(r.get(k))] for k in (rows[0] if rows else {})}


def _is_number(text) -> bool:
    """CSVLogger writes "NA" where an epoch has no value (e.g. no validation metrics)."""
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


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


# What a run directory holds (see the README's layout).
CONFIG_FILE, REPORT_FILE, MODEL_FILE = "config.json", "report.json", "model.keras"
WORKERS_DIR = "workers"  # the training state of the other workers of a multi-worker run
RUN_STATE = ("backup", "best.weights.h5", "finished.weights.h5", "finished.json", "history.csv", "curves.png")


def claim(run_dir: Path, record: str) -> bool:
    """Makes ``run_dir`` the home of the run described by ``record`` (the text of its ``CONFIG_FILE``).

    A directory last used with the same record keeps its training state, so the run resumes (returns True);
    otherwise the state of the other run (``RUN_STATE`` files, at any depth: members, baselines) is removed first.
    """
    saved = run_dir / CONFIG_FILE
    if saved.is_file() and saved.read_text() == record:
        return True
    # Each worker of a multi-worker run claims its own directory: the chief leaves the others' alone.
    stale = [p for name in RUN_STATE for p in run_dir.rglob(name)
             if WORKERS_DIR not in p.relative_to(run_dir).parts]
    if any(p.name == "backup" or p.name == "finished.weights.h5" for p in stale):
        print(f"{run_dir} holds the state of a run with other settings; starting afresh")
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    saved.write_text(record)
    return False


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, train: TrainConfig,
        run_dir: Path, monitor: str = "val_loss", mode: str = "min",
        callbacks: list[keras.callbacks.Callback] = (), steps_per_epoch: int | None = None) -> dict:
    """Trains ``model`` (compiled by the caller) with the zoo's standard callbacks; returns the history dict.

    An endless ``train_ds`` needs ``steps_per_epoch``; its iterator then carries on from epoch to epoch (a finite
    dataset, ``.take(n)`` of an endless one included, is restarted from its first element every epoch).

    A run killed at any point resumes from its last finished epoch when started again with the same ``run_dir``
    and ends bit-identical to one that never stopped (``ExactBackupAndRestore``, ``replay_input``; ``claim`` clears
    the directory first when the settings changed). The weights of the best
    validation epoch are restored at the end. ``callbacks`` run after the standard ones.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    best_weights = run_dir / "best.weights.h5"
    backup_dir = run_dir / "backup"
    # With a weight-averaging optimizer, validation, the best checkpoint and the final weights use the averaged
    # weights; a resumed run continues from the raw ones.
    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if getattr(model.optimizer, "use_ema", False) else None
    stateful = [keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=train.early_stopping_patience),
                *([keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=train.lr_plateau_factor,
                                                     patience=train.lr_plateau_patience, min_lr=1e-5, verbose=1)]
                  if train.lr_plateau_patience else [])]
    strategy = model.distribute_strategy
    backup = ExactBackupAndRestore(backup_dir, replayed=stateful, endless=bool(steps_per_epoch), swap=swap,
                                   strategy=strategy if is_multi_worker(strategy) else None)
    start = backup.resume_epoch
    if start == 0:  # a fresh run: forget the history of a previous, finished run
        for stale in (history_csv, best_weights, run_dir / TIME_LIMIT_FILE):
            stale.unlink(missing_ok=True)
    trim_history(history_csv, start)
    count = train_ds.count if isinstance(train_ds, CountedDataset) else [0]
    if steps_per_epoch:
        train_ds = train_ds.skip(start * steps_per_epoch)
    multi_worker = is_multi_worker(strategy)
    if multi_worker:
        train_ds, val_ds = for_workers(train_ds), for_workers(val_ds)
    train_ds = backup.train_ds = CountedDataset(train_ds, count)
    # The backup comes last of what an epoch's end writes (its CSV row, the learning-rate and stopping decisions, the
    # best checkpoint, which sees the averaged weights), so a kill before it redoes the epoch and rewrites them alike.
    callbacks = [
        *stateful,
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        *([swap] if swap else []),
        keras.callbacks.ModelCheckpoint(str(best_weights), monitor=monitor, mode=mode, save_best_only=True,
                                        save_weights_only=True,
                                        initial_value_threshold=_best_so_far(history_csv, monitor, mode)),
        backup,
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        TrainingCurves(history_csv, run_dir / "curves.png"),
        *([TimeLimit(train.max_minutes, run_dir / TIME_LIMIT_FILE)] if train.max_minutes else []),
        *callbacks,
    ]
    model.jit_compile = train.jit_compile  # Keras' "auto" turns XLA on, which recompiles for every batch shape
    scope = contextlib.nullcontext()
    if multi_worker:
        # Keras' own build before fit fails under this strategy (keras-team/keras#20585): build the model, its loss,
        # metrics and optimizer from the batch spec here, and let fit take the strategy from the scope.
        with strategy.scope():
            model._symbolic_build(data_batch=train_ds.element_spec)
        model._distribute_strategy, scope = None, strategy.scope()
    with warnings.catch_warnings(), scope:
        # A bucketed dataset has no known length, so Keras warns at the end of its first epoch that it "ran out of
        # data": for a finite dataset that is just where the epoch ends.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        model.fit(train_ds, validation_data=val_ds, epochs=train.epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=train.verbose, shuffle=False)  # tf.data pipelines shuffle themselves
    if best_weights.is_file():
        model.load_weights(str(best_weights))
    return read_history(history_csv)


def fit_members(size: int, build, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, train: TrainConfig,
                run_dir: Path, strategy: tf.distribute.Strategy, monitor: str = "val_loss", mode: str = "min",
                steps_per_epoch: int | None = None) -> tuple[list[keras.Model], list[int]]:
    """Trains ``size`` independently seeded models (an ensemble, or one); returns them and the epochs each ran.

    ``build(k)`` returns member ``k`` compiled; it is called in ``strategy``'s scope after seeding with
    ``train.seed + k``. A single model trains in ``run_dir`` itself, member ``k`` of an ensemble in
    ``run_dir/member_k``. A member that finished (``finished.weights.h5``) is reloaded instead of retrained, so a
    resumed run loses none, and the training set is opened as often as that member's training had opened it, so the
    next member reads the same shuffle orders as in a run that never stopped; ``claim`` removes them when the
    settings change.
    """
    members, epochs_run = [], []
    train_ds = CountedDataset(train_ds, [0])  # members read one pipeline: each goes on with its shuffle orders
    for k in range(size):
        member_dir = run_dir if size == 1 else run_dir / f"member_{k}"
        member_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(train.seed + k)
        with strategy.scope():
            member = build(k)
        finished, opened = member_dir / "finished.weights.h5", member_dir / "finished.json"
        if finished.is_file():
            print(f"{member_dir}: already trained, reusing it")
            member.load_weights(finished)
            if opened.is_file():  # absent for a member finished by an older zoo: its shuffle count is unknown
                train_ds.catch_up(json.loads(opened.read_text())["opened"])
        else:
            history = fit(member, train_ds, val_ds, train, member_dir, monitor=monitor, mode=mode,
                          steps_per_epoch=steps_per_epoch)
            opened.write_text(json.dumps({"opened": train_ds.count[0]}))
            member.save_weights(member_dir / "finishing.weights.h5")
            os.replace(member_dir / "finishing.weights.h5", finished)  # whole or absent: it marks the member done
            epochs_run.append(len(history.get("epoch", [])))
        members.append(member)
    return members, epochs_run
