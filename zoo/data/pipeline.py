"""tf.data batching for variable-length sequences: length bucketing with right padding."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def take_first(ds: tf.data.Dataset, n: int) -> tf.data.Dataset:
    """The first ``n`` examples of ``ds``, or all of them for ``n = 0`` (``train.max_*_examples``)."""
    return ds.take(n) if n else ds


def bucket_boundaries(lengths, num_buckets: int) -> list[int]:
    """Bucket upper bounds at quantiles of the observed lengths, so buckets hold similar numbers of examples."""
    lengths = np.asarray(lengths)
    if num_buckets <= 1 or lengths.size == 0:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles})


def bucketed_batches(ds: tf.data.Dataset, length_fn, batch_size: int, boundaries: list[int]) -> tf.data.Dataset:
    """Groups examples of similar length and right-pads each batch only to its own longest example.

    Compared with padding everything to the longest example in the data, far fewer padded steps go through the
    recurrent layers (see ``benchmarks/bucketing.py``). Padding uses each component's zero value (0 for ids).
    """
    return ds.bucket_by_sequence_length(
        element_length_func=length_fn,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        drop_remainder=False,
    )


def fixed_length_batches(ds: tf.data.Dataset, batch_size: int, length: int) -> tf.data.Dataset:
    """The keras-io style baseline: every batch padded to one fixed length (the longest example in the data)."""
    return ds.padded_batch(batch_size, padded_shapes=_pad_first_to(ds.element_spec, length))


def _pad_first_to(spec, length):
    """Padded shapes where the first component (the sequence) gets ``length`` steps and the rest keep theirs."""
    flat = tf.nest.flatten(spec)
    shapes = [s.shape for s in flat]
    shapes[0] = tf.TensorShape([length]).concatenate(shapes[0][1:])
    return tf.nest.pack_sequence_as(spec, shapes)
