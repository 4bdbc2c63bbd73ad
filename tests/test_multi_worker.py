"""Multi-worker training: two local worker processes with their own TF_CONFIG train one tiny recipe together.

The workers (`multi_worker_worker.py`) run `sentiment` on small user files with `MultiWorkerMirroredStrategy` over
127.0.0.1. The first launch kills worker 1 (a hard exit) right after its epoch-2 backup, and the chief is killed
while it waits for it, as when a machine dies; the second launch of both resumes and finishes.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT

EPOCHS, BATCH = 4, 16
WORDS = {"positive": ["great", "lovely", "superb", "moving"], "negative": ["awful", "dull", "boring", "bad"],
         "neutral": ["average", "ordinary", "fine", "plain"]}


def write_reviews(path, count, offset=0):
    """``count`` distinct reviews (each has its own number), so that the examples a worker trains on are known."""
    names = sorted(WORDS)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(offset, offset + count):
            label = names[i % 3]
            writer.writerow([f"review {i}: a {WORDS[label][i % 4]} film, {WORDS[label][(i // 4) % 4]} acting",
                             label])
    return path


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(tmp_path, tag, crash_after_epoch=(0, 0)):
    """Starts both workers; returns their processes and the paths of their logs and results."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    args = ["sentiment", "--train.strategy", "multi_worker", "--data.source", "files",
            "--data.train", str(tmp_path / "train.csv"), "--data.validation", str(tmp_path / "dev.csv"),
            "--data.test", str(tmp_path / "test.csv"), "--data.max_tokens", "16", "--data.num_buckets", "2",
            "--model.embedding_dim", "8", "--model.units", "8", "--model.ensemble_size", "1",
            "--model.lexicon_feature", "false", "--train.epochs", str(EPOCHS), "--train.batch_size", str(BATCH),
            "--train.learning_rate", "0.01", "--train.early_stopping_patience", "10", "--train.verbose", "0",
            "--train.run_dir", str(tmp_path / "run"), "--export.base_dir", str(tmp_path / "saved"),
            "--peers.c_grid", "1.0"]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
        out, log = tmp_path / f"{tag}_{index}.json", tmp_path / f"{tag}_{index}.log"
        with open(log, "w") as f:
            process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "multi_worker_worker.py"),
                                        str(out), str(crash_after_epoch[index]), *args],
                                       stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        workers.append((process, out, log))
    return workers


def wait(process, log, seconds=150):
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"worker still running after {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_two_workers_shard_the_data_agree_resume_after_a_kill_and_only_the_chief_writes(tmp_path):
    write_reviews(tmp_path / "train.csv", 160)
    write_reviews(tmp_path / "dev.csv", 24, offset=1000)
    write_reviews(tmp_path / "test.csv", 24, offset=2000)
    run_dir = tmp_path / "run"

    # Launch 1: worker 1 dies right after its epoch-2 backup; the chief, waiting for it in the next all-reduce, is
    # killed once its own epoch-2 backup is written (or it fails by itself when it notices the lost peer).
    (chief, _, chief_log), (worker, _, worker_log) = launch(tmp_path, "first", crash_after_epoch=(0, 2))
    assert wait(worker, worker_log) == 17, worker_log.read_text()[-3000:]
    deadline = time.time() + 60
    while not (run_dir / "backup" / "epoch_2" / "state.json").is_file() and chief.poll() is None:
        assert time.time() < deadline, chief_log.read_text()[-3000:]
        time.sleep(0.2)
    chief.kill()
    chief.wait()
    assert (run_dir / "backup" / "epoch_2").is_dir() and (run_dir / "workers" / "1" / "backup" / "epoch_2").is_dir()
    assert not (run_dir / "model.keras").exists()

    # Launch 2: both resume from epoch 2 and finish.
    workers = launch(tmp_path, "second")
    for process, _, log in workers:
        assert wait(process, log) == 0, log.read_text()[-3000:]
    (chief, worker) = (json.loads(out.read_text()) for _, out, _ in workers)
    for _, _, log in workers:
        assert "resuming the unfinished run" in log.read_text()

    # Each worker got its own half of every global batch, and together all of the training set.
    assert chief["chief"] and not worker["chief"]
    assert len(chief["steps"]) == len(worker["steps"])
    assert {len(a) + len(b) for a, b in zip(chief["steps"], worker["steps"])} <= {BATCH, 160 % BATCH or BATCH}
    assert max(len(step) for step in chief["steps"]) == BATCH // 2
    mine, theirs = ({h for step in w["steps"] for h in step} for w in (chief, worker))
    assert not mine & theirs and len(mine | theirs) == 160

    # The all-reduce kept the two copies of the network identical, and both saw the same (global) losses.
    assert chief["weights"] == worker["weights"]
    history = [(run_dir / d / "history.csv").read_text().splitlines() for d in (".", "workers/1")]
    assert history[0] == history[1] and len(history[0]) == 1 + EPOCHS  # the header, then each epoch once

    # Only the chief wrote the model, the report and the export.
    assert (run_dir / "model.keras").is_file() and (run_dir / "report.json").is_file()
    assert json.loads((run_dir / "report.json").read_text())["metrics"]["overall"]["examples"] == 24
    assert os.listdir(tmp_path / "saved" / "sentiment") == ["1"]
    worker_dir = run_dir / "workers" / "1"
    assert not any((worker_dir / name).exists() for name in ("model.keras", "report.json"))
    assert worker["report"]["worker"] == 1 and worker["report"]["epochs_run"] == chief["report"]["epochs_run"]
