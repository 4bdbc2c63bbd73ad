"""The shared training loop: a killed run resumes where it stopped; run artefacts are written."""

import csv
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import training
from zoo.config import TrainConfig

SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import keras, numpy as np, tensorflow as tf
    from zoo import training
    from zoo.config import TrainConfig

    run_dir, kill_at, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    stream = mode == "endless"

    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            print("EPOCH", epoch, flush=True)

        def on_train_batch_end(self, batch, logs=None):
            if f"{self.epoch}:{batch}" == kill_at and "member_0" not in str(self.model.run_dir):
                os._exit(9)  # like SIGKILL or a pre-empted machine: nothing gets cleaned up

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32")
    y = (x.sum(1) > 0).astype("float32")
    # Every source of randomness a recipe has: a reshuffled training set, random ops in the input pipeline, dropout;
    # and stateful callbacks (a learning rate that is cut on plateaus, early stopping), weight averaging.
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(96, seed=1, reshuffle_each_iteration=True)
    ds = ds.map(lambda a, b: (a + tf.random.uniform([4], seed=3), b)).batch(8)
    ds, steps = (ds.repeat(), 5) if stream else (ds, None)
    val = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(16)

    def build(member):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dropout(0.5), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.Adam(0.3, **({"use_ema": True, "ema_momentum": 0.9} if stream else {})),
                      "binary_crossentropy")
        model.run_dir = run_dir / f"member_{member}" if mode == "ensemble" else run_dir
        return model

    settings = TrainConfig(epochs=6, verbose=0, early_stopping_patience=4, lr_plateau_patience=1)
    if mode == "ensemble":
        real_fit = training.fit
        training.fit = lambda *args, **kwargs: real_fit(*args, callbacks=[Killer()], **kwargs)
        models, _ = training.fit_members(2, build, ds, val, settings, run_dir, tf.distribute.get_strategy())
    else:
        models = [build(0)]
        training.fit(models[0], ds, val, settings, run_dir, callbacks=[Killer()], steps_per_epoch=steps)
    np.save(run_dir / "final.npy", np.concatenate([w.numpy().ravel() for m in models for w in m.weights]))
""")


def run_script(run_dir, kill_at="-", mode="finite"):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), kill_at, mode], cwd=root,
                          capture_output=True, text=True, timeout=300)


def epochs_started(stdout: str) -> list[int]:
    return [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("EPOCH ")]


@pytest.mark.slow
@pytest.mark.parametrize("mode, kill_at, run", [
    ("finite", "3:2", "."), ("endless", "3:2", "."),
    ("ensemble", "0:3", "member_1"),  # killed before the second member's first backup: it starts again, in step
])
def test_a_run_killed_mid_epoch_resumes_bit_identical_to_one_that_never_stopped(tmp_path, mode, kill_at, run):
    whole = run_script(tmp_path / "whole", mode=mode)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = run_script(tmp_path / "killed", kill_at, mode)
    assert killed.returncode == 9, killed.stderr[-2000:]
    epoch = int(kill_at.split(":")[0])
    assert epochs_started(killed.stdout)[-1] == epoch
    resumed = run_script(tmp_path / "killed", mode=mode)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert epochs_started(resumed.stdout)[0] == epoch  # the killed epoch is redone from its start
    np.testing.assert_array_equal(np.load(tmp_path / "killed/final.npy"), np.load(tmp_path / "whole/final.npy"))
    history = [(tmp_path / name / run / "history.csv").read_text() for name in ("whole", "killed")]
    assert history[0] == history[1]
    rates = [float(r["learning_rate"]) for r in csv.DictReader(history[0].splitlines())]
    assert min(rates) < rates[0]  # the plateau cut happened, so its state went through the resume
    for artefact in ("curves.png", "best.weights.h5", "tensorboard"):
        assert (tmp_path / "killed" / run / artefact).exists(), artefact
    assert not (tmp_path / "killed" / run / "backup").exists()  # a finished run removes its backup


def test_a_backup_is_written_whole_or_not_at_all(tmp_path):
    """A save interrupted half way leaves the previous backup the one to resume from (and its debris is removed)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = training.ExactBackupAndRestore(tmp_path)
    backup.set_model(model)
    backup._current_epoch = 2
    backup._save_model()
    (tmp_path / ".epoch_3.partial").mkdir()  # a kill while epoch 3's backup was being written
    assert backup.resume_epoch == 2
    backup._load_model()
    assert model._initial_epoch == 2 and not (tmp_path / ".epoch_3.partial").exists()


def test_the_history_keeps_only_the_epochs_a_backup_holds(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.25\n")
    training.trim_history(history, 2)
    assert history.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.5"]


def test_weight_averaging_optimizer_validates_and_keeps_the_averaged_weights(tmp_path):
    """With ``use_ema``, training steps see the raw weights and the model ends with their moving average."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, x @ np.arange(1.0, 5.0, dtype="float32"))).batch(16)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05, use_ema=True, ema_momentum=0.5), "mse")
    raw, epoch_starts = [], []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epoch_starts.append(model.layers[0].kernel.numpy().copy())

        def on_train_batch_end(self, batch, logs=None):
            raw.append(model.layers[0].kernel.numpy().copy())

    training.fit(model, ds, ds, TrainConfig(epochs=3, verbose=0, early_stopping_patience=10), tmp_path,
                 callbacks=[Recorder()])
    average = raw[0]
    for weights in raw[1:]:
        average = 0.5 * average + 0.5 * weights
    np.testing.assert_allclose(epoch_starts[1], raw[3], rtol=1e-6)  # training resumes from the raw weights
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), average, rtol=1e-5)  # best = last epoch here
    assert not np.allclose(average, raw[-1])


def test_endless_training_stream_carries_on_across_epochs(tmp_path):
    """Epochs of an endless dataset continue where the last one stopped instead of restarting the stream."""
    produced = []

    def record(i):
        produced.append(int(i))
        return i

    stream = tf.data.Dataset.range(10**6).map(lambda i: tf.py_function(record, [i], tf.int64))
    stream = stream.map(lambda i: (tf.fill([4], tf.cast(i, tf.float32)), 0.0)).batch(4)
    val = tf.data.Dataset.from_tensor_slices((np.zeros((8, 4), "float32"), np.zeros(8, "float32"))).batch(4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    training.fit(model, stream, val, TrainConfig(epochs=3, verbose=0), tmp_path, steps_per_epoch=2)
    assert len(produced) >= 24 and len(set(produced)) == len(produced)  # 3 epochs × 2 batches × 4, none twice


def test_a_run_directory_holds_one_run(tmp_path):
    """The same settings resume (their state is kept); other settings start afresh (the old state is removed)."""
    assert not training.claim(tmp_path, "settings A")
    for path in ("backup/x", "member_1/finished.weights.h5", "history.csv", "baselines/shuffled/backup/y"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("state")
    (tmp_path / "notes.txt").write_text("the user's own file")
    assert training.claim(tmp_path, "settings A") and (tmp_path / "backup" / "x").is_file()
    assert not training.claim(tmp_path, "settings B")
    assert not any((tmp_path / p).exists() for p in ("backup", "member_1/finished.weights.h5", "history.csv",
                                                      "baselines/shuffled/backup"))
    assert (tmp_path / "notes.txt").is_file() and (tmp_path / "config.json").read_text() == "settings B"


def test_history_without_validation_values_reads(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.5,NA\n1,1.25,0.5\n")
    assert training.read_history(tmp_path / "history.csv") == {"epoch": [0.0, 1.0], "loss": [1.5, 1.25],
                                                              "val_loss": [0.5]}


def test_a_run_cut_by_the_time_limit_says_so(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, x.sum(1))).batch(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    history = training.fit(model, ds, ds, TrainConfig(epochs=50, verbose=0, max_minutes=1e-4), tmp_path)
    assert len(history["epoch"]) < 50
    assert (tmp_path / training.TIME_LIMIT_FILE).read_text().startswith("train.max_minutes = 0.0001 cut training")
    history = training.fit(model, ds, ds, TrainConfig(epochs=2, verbose=0), tmp_path / "uncut")
    assert len(history["epoch"]) == 2 and not (tmp_path / "uncut" / training.TIME_LIMIT_FILE).exists()
