"""zoo: recurrent sequence models for Keras 3 / TensorFlow that train offline and export to TF Serving.

Importing ``zoo`` is cheap: TensorFlow is only imported by the modules that need it.
"""

__version__ = "0.1.0"
