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
    import keras, numpy as np, tensorflow as tf
    from zoo import training
    from zoo.config import TrainConfig

    run_dir, kill_after = sys.argv[1], int(sys.argv[2])

    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            print("EPOCH", epoch, flush=True)

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_after:
                os._exit(9)  # like SIGKILL or a pre-empted machine: nothing gets cleaned up

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(1) > 0).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    training.fit(model, ds, ds, TrainConfig(epochs=5, verbose=0, early_stopping_patience=10),
                 __import__("pathlib").Path(run_dir), callbacks=[Killer()])
""")


def run_script(run_dir, kill_after):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), str(kill_after)], cwd=root,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_run_resumes_from_last_finished_epoch(tmp_path):
    killed = run_script(tmp_path, kill_after=2)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert "EPOCH 1" in killed.stdout and "EPOCH 2" not in killed.stdout
    resumed = run_script(tmp_path, kill_after=0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "EPOCH 0" not in resumed.stdout and "EPOCH 2" in resumed.stdout and "EPOCH 4" in resumed.stdout
    with open(tmp_path / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4]
    for artefact in ("curves.png", "best.weights.h5", "tensorboard"):
        assert (tmp_path / artefact).exists(), artefact
    assert not (tmp_path / "backup").exists()  # a finished run removes its backup, so the next run starts fresh


def test_strategies():
    assert training.make_strategy("default").num_replicas_in_sync == 1
    assert training.make_strategy("mirrored").num_replicas_in_sync >= 1


def test_run_directory_is_per_recipe(tmp_path):
    path = training.run_directory(TrainConfig(run_dir=str(tmp_path / "runs/{recipe}")), "sentiment")
    assert path == tmp_path / "runs" / "sentiment" and path.is_dir()


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
