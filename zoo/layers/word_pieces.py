"""WordPieces: word ids → the word-piece ids of a pretrained encoder, framed by its start and end tokens."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class WordPieces(keras.layers.Layer):
    """Looks each word id up in a frozen table of its pieces, joins the pieces of a row, cuts them to fit, and
    frames them: `[start] pieces… [end]`, right-padded with 0. The table is computed once, outside the graph, by
    the encoder's own tokenizer (``zoo.pretrained.piece_table``), so the served graph needs core TF ops only.

    Args:
        vocabulary_size: int, rows of the table (the word vocabulary, padding and OOV included).
        pieces_per_word: int, columns of the table (a word's pieces beyond it are dropped).
        max_length: int, most ids per row, start and end included (>= 3).
        start_id: int, the id put first in every row (BERT's ``[CLS]``).
        end_id: int, the id put last in every row (BERT's ``[SEP]``).

    Call args:
        word_ids: int tensor `(batch, words)`, 0 = padding.

    Returns:
        int32 tensor `(batch, length)`, `length <= max_length`; a row without words is `[start, end]`.
    """

    def __init__(self, vocabulary_size, pieces_per_word, max_length=512, start_id=101, end_id=102, **kwargs):
        super().__init__(**{"trainable": False, **kwargs})
        if int(max_length) < 3:
            raise ValueError(f"max_length must be >= 3 (start, one piece, end), got {max_length!r}")
        self.vocabulary_size, self.pieces_per_word = int(vocabulary_size), int(pieces_per_word)
        self.max_length, self.start_id, self.end_id = int(max_length), int(start_id), int(end_id)

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.vocabulary_size, self.pieces_per_word), dtype="int32",
                                     initializer="zeros", trainable=False, name="table")

    def call(self, word_ids):
        pieces = tf.gather(tf.convert_to_tensor(self.table), tf.cast(word_ids, tf.int32))
        pieces = tf.reshape(pieces, [tf.shape(pieces)[0], -1])
        pieces = tf.ragged.boolean_mask(pieces, tf.not_equal(pieces, 0))[:, :self.max_length - 2]
        rows = tf.shape(word_ids)[0]
        start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self.start_id))
        end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self.end_id))
        return tf.concat([start, pieces, end], axis=1).to_tensor(0)

    def compute_output_spec(self, word_ids):
        return keras.KerasTensor((word_ids.shape[0], None), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "pieces_per_word": self.pieces_per_word, "max_length": self.max_length, "start_id": self.start_id,
                "end_id": self.end_id}
