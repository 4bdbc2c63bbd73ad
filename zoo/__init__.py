"""zoo: recurrent sequence models for Keras 3 / TensorFlow that train offline and export to TF Serving.

Importing ``zoo`` registers every zoo layer and model with Keras (so ``keras.models.load_model`` reads any zoo
``.keras`` file) and offers the Python API: `configure`, `run`, `load` (see ``zoo.api``). TensorFlow's C++ start-up
logging is silenced unless ``TF_CPP_MIN_LOG_LEVEL`` is set (``TF_CPP_MIN_LOG_LEVEL=0`` shows everything).
"""

import contextlib
import os
import sys

__version__ = "0.2.0"


@contextlib.contextmanager
def _quiet_native_stderr():
    """Sends the C++ standard error to /dev/null while TensorFlow loads: its CUDA probes log before TensorFlow's
    log level applies ("Could not find cuda drivers", absl's "written to STDERR" notice). Python errors are raised
    (and shown) after it is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # the user asked for TensorFlow's own logging otherwise
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # errors that matter reach Python as exceptions
    with _quiet_native_stderr():
        import tensorflow  # noqa: F401

from zoo import layers, models  # noqa: E402  (registers the shared layers)
from zoo.api import configure, load, run  # noqa: E402
from zoo.predictor import Predictor  # noqa: E402
from zoo.recipe import Recipe, Run  # noqa: E402
from zoo.recipes import register_custom_objects  # noqa: E402

register_custom_objects()

__all__ = ["Predictor", "Recipe", "Run", "configure", "layers", "load", "models", "run"]
