"""The zoo as users install it: a wheel (not an editable checkout) that runs every recipe from anywhere."""

import os
import subprocess
import sys
import sysconfig

import pytest

from tests.helpers import ROOT


def run(cmd, cwd, **kwargs):
    """The command's standard output; it must succeed. Its standard error is kept in ``run.stderr``."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    run.stderr = result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory):
    """The Python of a fresh venv with the zoo wheel installed (its dependencies come from this environment's
    site-packages, added as a plain path: the editable zoo of this checkout is not on it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), ROOT], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("zoo-*.whl")
    run([sys.executable, "-m", "venv", str(tmp / "venv")], cwd=tmp)
    python = str(tmp / "venv" / "bin" / "python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    with open(os.path.join(site, "zoo_test_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=tmp)
    return python, tmp


@pytest.mark.slow
def test_wheel_ships_the_presets_and_runs_a_recipe(wheel_python):
    python, tmp = wheel_python
    where = run([python, "-I", "-c", "import zoo, os; print(os.path.dirname(zoo.__file__))"], cwd=tmp).strip()
    assert where.startswith(str(tmp / "venv")) and not where.startswith(ROOT), where
    help_text = run([python, "-I", "-m", "zoo.recipes.music", "--preset", "folk", "--help"], cwd=tmp)
    assert "--data.source" in help_text and "(default: folk)" in help_text
    assert "presets: default, folk" not in help_text  # the preset exists: no error
    out = run([python, "-I", "-m", "zoo.recipes.sentiment", "--data.vocab_size", "500", "--data.max_tokens", "20",
               "--model.units", "4", "--model.embedding_dim", "4", "--model.ensemble_size", "1",
               "--train.epochs", "1", "--train.max_train_examples", "64", "--train.max_eval_examples", "32",
               "--train.verbose", "0", "--train.run_dir", "run", "--export.base_dir", "exported"], cwd=tmp,
              env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})  # as a user runs it
    assert (tmp / "run" / "model.keras").is_file()
    assert (tmp / "exported" / "sentiment" / "1" / "saved_model.pb").is_file()
    assert "run directory run" in out and "SavedModel: exported/sentiment/1" in out
    # TensorFlow's start-up logging (CUDA probes, oneDNN notices) is kept out of a normal run.
    assert "cuda" not in (out + run.stderr).lower() and "onednn" not in (out + run.stderr).lower(), run.stderr
