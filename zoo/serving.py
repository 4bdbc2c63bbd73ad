"""In-graph request checks shared by the served signatures.

A served signature checks every bound of a request, its per-request cost budget included, before it does any other
work: a request that is too large fails fast with an ``InvalidArgument`` that names the bound and its setting, and
costs next to nothing to refuse.
"""

from __future__ import annotations

import tensorflow as tf


def at_most(value, limit: int, message: str):
    """An assert that ``value <= limit`` (compared as int64, so sums of large shapes cannot wrap around)."""
    return tf.debugging.assert_less_equal(tf.cast(value, tf.int64), tf.constant(limit, tf.int64), message=message)


def within_budget(total, limit: int, what: str, key: str):
    """The per-request cost check: ``total`` (``what`` summed over the whole batch) must be at most ``limit``, the
    value of the setting ``serving.<key>``."""
    return at_most(total, limit, f"request too large: at most {limit} {what} in one request, counting every item of "
                                 f"the batch (serving.{key}); send fewer or shorter items per request")


def gated(checks, *tensors):
    """``tensors``, made to wait for ``checks``: nothing that reads them runs before every check has passed.

    TensorFlow's automatic control dependencies only order stateful ops, so a failing assert beside the work would
    still let the work run (and allocate) before the request is refused.
    """
    with tf.control_dependencies(checks):
        out = tuple(tf.identity(t) for t in tensors)
    return out[0] if len(out) == 1 else out


def nonempty_batch(*tensors):
    """``tensors`` (one batch, the same leading size) with one all-zero row added when the batch is empty, and the
    batch's true size.

    Networks that need a row to run (convolutions, recurrent layers on cuDNN's path) then answer an empty request with
    an empty answer, as the text signatures do: slice every output back to ``[:batch]``.
    """
    batch = tf.shape(tensors[0])[0]
    missing = tf.maximum(1 - batch, 0)
    padded = tuple(tf.pad(t, [[0, missing]] + [[0, 0]] * (t.shape.rank - 1)) for t in tensors)
    return padded, batch


def checked_strings(text, limits):
    """A served batch of strings, gated on the shared text bounds (a ``zoo.config.TextServingConfig``): at most
    ``max_batch_size`` strings and ``max_request_bytes`` bytes of text in all, checked before anything reads them.
    A signature call does not check the declared rank itself, so a batch that is not a vector fails here, by name."""
    text = tf.ensure_shape(text, [None], name="text_must_be_a_vector_of_strings")
    return gated([
        at_most(tf.size(text), limits.max_batch_size,
                f"batch too large: at most {limits.max_batch_size} strings per request (serving.max_batch_size)"),
        within_budget(tf.reduce_sum(tf.strings.length(text)), limits.max_request_bytes, "bytes of text",
                      "max_request_bytes"),
    ], text)
