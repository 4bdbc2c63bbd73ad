"""Versioned, atomic SavedModel export for TF Serving.

Layout: ``<base_dir>/<recipe>/<N>/`` with integer versions. A version is written to a hidden temporary directory
beside the final one (TF Serving only watches integer-named directories) and renamed into place once complete, so a
watching server never loads a half-written model, and a killed export leaves no version directory behind.

Every export:
- has a ``serving_default`` signature with named inputs and outputs that takes raw input and returns decoded answers;
- is traced in a process that sees no GPU, so no ``CudnnRNN*`` op lands in the served graph (``export_model`` hides
  the GPUs from a subprocess when the calling process has them);
- holds only ops registered in core TensorFlow (checked by ``check_core_ops``), so stock TF Serving loads it;
- carries ``assets.extra/tf_serving_warmup_requests`` (PredictionLog records) so the first request is not slow.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


class ExportError(RuntimeError):
    """The exported graph breaks the serving contract."""


def versions(model_dir: Path) -> list[int]:
    """Integer versions present under ``model_dir`` (what TF Serving would load)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def graph_ops(saved_model_dir: Path) -> set[str]:
    """Every op type in a SavedModel's graph, including the bodies of its functions (calls to them excluded)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def check_core_ops(saved_model_dir: Path) -> None:
    """Raises ``ExportError`` if the graph uses a non-core op (e.g. tensorflow-text) or a cuDNN-only kernel."""
    ops = graph_ops(saved_model_dir)
    non_core = sorted(ops - set(dir(tf.raw_ops)))
    cudnn = sorted(op for op in ops if op.startswith("Cudnn"))
    if non_core or cudnn:
        raise ExportError(f"served graph must hold only core, device-independent ops; found non-core {non_core}, "
                          f"cuDNN-only {cudnn}")


def write_warmup(saved_model_dir: Path, model_name: str, requests: list[dict]) -> Path:
    """Writes TF Serving warmup records: one PredictionLog per dict of named input arrays."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def write_models_config(base_dir: Path, serving_base_path: str = "/models") -> Path:
    """Writes ``<base_dir>/models.config`` listing every exported recipe for ``tensorflow_model_server``."""
    base_dir = Path(base_dir)
    names = sorted(p.name for p in base_dir.iterdir() if p.is_dir() and versions(p)) if base_dir.is_dir() else []
    entries = "".join(
        f"  config {{\n    name: '{name}'\n    base_path: '{serving_base_path.rstrip('/')}/{name}'\n"
        f"    model_platform: 'tensorflow'\n  }}\n" for name in names)
    path = base_dir / "models.config"
    tmp = path.with_suffix(".config.tmp")
    tmp.write_text(f"model_config_list {{\n{entries}}}\n")
    os.replace(tmp, path)
    return path


STAGING_PREFIX = ".staging-"
STAGING_LOCK = "exporting.lock"


def remove_stale_staging(model_dir: Path) -> list[Path]:
    """Removes the staging directories that killed exports left in ``model_dir``; returns them.

    A running export holds an exclusive lock on ``<staging>/exporting.lock`` until it ends; a staging directory
    whose lock can be taken (or that has none) belongs to no live export. A directory whose lock another process
    holds is never touched.
    """
    removed = []
    for staging in sorted(model_dir.glob(STAGING_PREFIX + "*")):
        lock_path = staging / STAGING_LOCK
        try:
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(staging, ignore_errors=True)
        except BlockingIOError:
            continue  # a live export
        except FileNotFoundError:  # removed meanwhile, or not a directory any more
            shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    return removed


def write_version(recipe: str, base_dir: Path, write_fn, warmup_requests: list[dict],
                  serving_base_path: str = "/models") -> Path:
    """Writes the next version of ``recipe`` atomically and returns its directory.

    ``write_fn(path)`` writes a SavedModel into ``path`` (a fresh, hidden temporary directory, locked while the
    export runs). The result is checked for core ops, given warmup requests, and renamed to
    ``<base_dir>/<recipe>/<N>``. Staging directories of earlier, killed exports are removed first.
    """
    model_dir = Path(base_dir) / recipe
    model_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_staging(model_dir):
        print(f"removed {stale}, left by an export that did not finish")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))
    lock = open(staging / STAGING_LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
    try:
        write_fn(str(staging / "model"))
        check_core_ops(staging / "model")
        write_warmup(staging / "model", recipe, warmup_requests)
        while True:  # another exporter may take a number between our listing and our rename
            final = model_dir / str((versions(model_dir) or [0])[-1] + 1)
            try:
                os.rename(staging / "model", final)
                break
            except OSError:
                if not final.exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.close()
    write_models_config(base_dir, serving_base_path)
    return final


def gpus_visible() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def run_cpu_only(module: str, args: list[str]) -> Path:
    """Runs ``python -m module args`` with every GPU hidden and returns the path it prints last.

    Used when the training process sees GPUs: Keras traces its RNNs with cuDNN kernels there, which stock CPU
    serving cannot run.
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"CPU-only export failed:\n{result.stderr[-4000:]}")
    match = re.findall(r"^EXPORTED (.+)$", result.stdout, flags=re.M)
    if not match:
        raise ExportError(f"CPU-only export printed no path:\n{result.stdout[-2000:]}")
    return Path(match[-1])


def write_saved_model(endpoints: dict, model, path: str) -> None:
    """Writes ``model``'s variables and its ``endpoints`` (``{signature name: tf.function}``) as a SavedModel."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn)
    archive.write_out(path, verbose=False)


def export_model(recipe, keras_path: Path, cfg) -> Path:
    """Exports the saved end-to-end Keras model of ``recipe`` (a `zoo.recipe.Recipe`) as its next SavedModel
    version and returns the path.

    The recipe hands the serving signatures (``recipe.endpoints``) and warmup requests. When this process sees a
    GPU, the export runs in a subprocess with the GPUs hidden (``python -m zoo.recipes export``).
    """
    import keras

    if gpus_visible():
        config_json = Path(keras_path).with_suffix(".export-config.json")
        config_json.write_text(recipe.record(cfg))
        return run_cpu_only("zoo.recipes", ["export", str(keras_path), str(config_json)])
    model = keras.models.load_model(keras_path)
    return write_version(recipe.name, Path(cfg.export.base_dir),
                         lambda path: write_saved_model(recipe.endpoints(cfg, model), model, path),
                         recipe.warmup_requests(cfg), cfg.export.serving_base_path)
