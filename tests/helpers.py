"""Shared test helpers: serving a SavedModel from a process that cannot import zoo, and predicting with the Python
API from a fresh process that only did ``import zoo``."""

import os
import pickle
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVE_WITHOUT_ZOO = textwrap.dedent("""
    import pickle, sys
    sys.modules["zoo"] = None  # the zoo is installed in this venv: make sure the SavedModel does not need it
    try:
        import zoo
        raise SystemExit("zoo importable")
    except ImportError:
        pass
    import tensorflow as tf
    version, signature, path = sys.argv[1:]
    with open(path, "rb") as f:
        inputs = pickle.load(f)
    serve = tf.saved_model.load(version).signatures[signature]
    outputs = serve(**{k: tf.constant(v) for k, v in inputs.items()})
    with open(path, "wb") as f:
        pickle.dump({k: v.numpy() for k, v in outputs.items()}, f)
""")

PREDICT_AFTER_IMPORT_ZOO = textwrap.dedent("""
    import pickle, sys
    import keras
    import zoo  # registers every zoo layer: a plain load_model must work after it
    run_dir, path = sys.argv[1:]
    keras.models.load_model(f"{run_dir}/model.keras")
    with open(path, "rb") as f:
        inputs, options = pickle.load(f)
    with open(path, "wb") as f:
        pickle.dump(zoo.load(run_dir).predict(inputs, **options), f)
""")


def _run(script, args, path, payload):
    with open(path, "wb") as f:
        pickle.dump(payload, f)
    result = subprocess.run([sys.executable, "-I", "-c", script, *map(str, args), str(path)], capture_output=True,
                            text=True, cwd=os.path.dirname(path), timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    with open(path, "rb") as f:
        return pickle.load(f)


def serve_without_zoo(version, inputs: dict, tmp_path, signature: str = "serving_default") -> dict:
    """``inputs`` (NumPy arrays or lists) → the SavedModel's outputs as NumPy arrays, computed in a process where
    ``import zoo`` fails."""
    return _run(SERVE_WITHOUT_ZOO, [version, signature], tmp_path / "serve.pkl", inputs)


def predict_after_import_zoo(run_dir, inputs, tmp_path, **options) -> dict:
    """``zoo.load(run_dir).predict(inputs, **options)`` in a fresh process that first loads ``model.keras`` with
    plain ``keras.models.load_model`` after ``import zoo``."""
    return _run(PREDICT_AFTER_IMPORT_ZOO, [run_dir], tmp_path / "predict.pkl", (inputs, options))
