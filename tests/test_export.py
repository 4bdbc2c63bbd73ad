"""Export contract: integer versions, atomic writes, core ops only, warmup records, models.config."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from zoo import export


class Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": 2.0 * x}


def write_doubler(path):
    module = Doubler()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


WARMUP = [{"x": np.array([1.0, 2.0], np.float32)}]


def test_versions_are_consecutive_integers_and_listed_in_models_config(tmp_path):
    first = export.write_version("doubler", tmp_path, write_doubler, WARMUP, serving_base_path="/srv")
    second = export.write_version("doubler", tmp_path, write_doubler, WARMUP, serving_base_path="/srv")
    assert (first.name, second.name) == ("1", "2")
    assert sorted(os.listdir(tmp_path / "doubler")) == ["1", "2"]  # no staging leftovers
    models_config = (tmp_path / "models.config").read_text()
    assert "name: 'doubler'" in models_config and "base_path: '/srv/doubler'" in models_config
    loaded = tf.saved_model.load(str(second))
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=tf.constant([3.0]))["y"], [6.0])


def test_warmup_file_holds_prediction_logs(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    version = export.write_version("doubler", tmp_path, write_doubler, WARMUP)
    records = list(tf.data.TFRecordDataset(str(version / export.WARMUP_FILE)).as_numpy_iterator())
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(log.predict_log.request.inputs["x"]), [1.0, 2.0])


def test_failed_export_leaves_no_version(tmp_path):
    def broken(path):
        os.makedirs(path)
        open(os.path.join(path, "saved_model.pb"), "wb").write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        export.write_version("doubler", tmp_path, broken, WARMUP)
    assert os.listdir(tmp_path / "doubler") == []


def test_killed_export_process_leaves_no_version(tmp_path):
    script = textwrap.dedent(f"""
        import os
        from zoo import export
        from tests.test_export import write_doubler, WARMUP
        def dies_midway(path):
            write_doubler(path)
            os._exit(9)  # like SIGKILL: no cleanup handlers run
        export.write_version("doubler", {str(tmp_path)!r}, dies_midway, WARMUP)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 9
    assert export.versions(tmp_path / "doubler") == []  # only a hidden .staging-* dir, which TF Serving ignores
    (left,) = (tmp_path / "doubler").glob(".staging-*")
    # The next export removes what the killed one left, and exports version 1.
    assert export.write_version("doubler", tmp_path, write_doubler, WARMUP).name == "1"
    assert not left.exists() and list((tmp_path / "doubler").glob(".staging-*")) == []


def test_staging_of_a_running_export_is_left_alone(tmp_path):
    import fcntl

    model_dir = tmp_path / "doubler"
    running = model_dir / ".staging-running"
    running.mkdir(parents=True)
    lock = open(running / export.STAGING_LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # held by this process: like an export still writing
    script = textwrap.dedent(f"""
        from zoo import export
        print(export.remove_stale_staging(__import__("pathlib").Path({str(model_dir)!r})))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("[]") and running.is_dir()
    lock.close()
    assert export.remove_stale_staging(model_dir) == [running] and not running.exists()


def test_graph_ops_and_core_op_check(tmp_path, monkeypatch):
    write_doubler(str(tmp_path / "m"))
    assert "Mul" in export.graph_ops(tmp_path / "m")
    export.check_core_ops(tmp_path / "m")
    monkeypatch.setattr(export, "graph_ops", lambda _: {"Mul", "CudnnRNNV3", "WordpieceTokenizeWithOffsets"})
    with pytest.raises(export.ExportError, match="WordpieceTokenizeWithOffsets.*CudnnRNNV3"):
        export.check_core_ops(tmp_path / "m")
