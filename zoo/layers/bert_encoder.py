"""BertEncoder: a BERT-style Transformer encoder that loads pretrained Hugging Face weights, for frozen features."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class BertEncoder(keras.layers.Layer):
    """Word-piece ids → contextual vectors: token + position + segment-0 embeddings, then ``num_layers`` post-norm
    Transformer blocks (self-attention, exact GELU feed-forward), as in BERT. Padded positions attend nowhere and
    come out as zeros, so the output of a right-padded batch is exactly the padded output of each row alone.

    Built to carry a pretrained checkpoint (``load_huggingface``), frozen by default: a sentence encoder such as
    all-MiniLM-L6-v2 gives a small labelled set the knowledge of a large unlabelled corpus.

    Args:
        vocabulary_size: int, number of word pieces.
        hidden_dim: int, width of every position's vector.
        num_layers: int, Transformer blocks.
        num_heads: int, attention heads (``hidden_dim`` divisible by it).
        intermediate_dim: int, width of the feed-forward layer.
        max_sequence_length: int, positions with an embedding (longer input is an error of the caller).
        padding_id: int, the id of padding (BERT's ``[PAD]`` is 0).
        epsilon: float, layer normalisation epsilon (BERT: 1e-12).

    Call args:
        ids: int tensor `(batch, length)`, right-padded with ``padding_id``; `length <= max_sequence_length`.

    Returns:
        Float tensor `(batch, length, hidden_dim)`, zeros at padded positions.
    """

    def __init__(self, vocabulary_size, hidden_dim=384, num_layers=6, num_heads=12, intermediate_dim=1536,
                 max_sequence_length=512, padding_id=0, epsilon=1e-12, trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        self.vocabulary_size, self.hidden_dim, self.num_layers = int(vocabulary_size), int(hidden_dim), int(num_layers)
        self.num_heads, self.intermediate_dim = int(num_heads), int(intermediate_dim)
        self.max_sequence_length, self.padding_id, self.epsilon = int(max_sequence_length), int(padding_id), epsilon
        self.token_embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(max_sequence_length, hidden_dim, name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(2, hidden_dim, name="segment_embedding")
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="embedding_norm")
        # One list per sublayer kind (Keras tracks lists of layers; block i is the i-th of each).
        self.attention = [keras.layers.MultiHeadAttention(num_heads, hidden_dim // num_heads, name=f"attention_{i}")
                          for i in range(num_layers)]
        self.attention_norm = [keras.layers.LayerNormalization(epsilon=epsilon, name=f"attention_norm_{i}")
                               for i in range(num_layers)]
        self.intermediate = [keras.layers.Dense(intermediate_dim, activation="gelu", name=f"intermediate_{i}")
                             for i in range(num_layers)]
        self.output_dense = [keras.layers.Dense(hidden_dim, name=f"output_{i}") for i in range(num_layers)]
        self.output_norm = [keras.layers.LayerNormalization(epsilon=epsilon, name=f"output_norm_{i}")
                            for i in range(num_layers)]

    def blocks(self):
        return zip(self.attention, self.attention_norm, self.intermediate, self.output_dense, self.output_norm)

    def build(self, ids_shape):
        width = (None, None, self.hidden_dim)
        for embedding in (self.token_embedding, self.position_embedding, self.segment_embedding):
            embedding.build((None, None))
        self.embedding_norm.build(width)
        for attention, attention_norm, intermediate, output, output_norm in self.blocks():
            attention.build(width, width)
            attention_norm.build(width)
            intermediate.build(width)
            output.build((None, None, self.intermediate_dim))
            output_norm.build(width)
        for layer in self._layers:  # freeze the new variables too (a model collects its nested layers' variables)
            layer.trainable = self.trainable

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        valid = ops.not_equal(ids, self.padding_id)
        positions = ops.arange(ops.shape(ids)[1], dtype="int32")
        x = (self.token_embedding(ids) + self.position_embedding(positions)[None]
             + self.segment_embedding(ops.zeros_like(ids)))
        x = self.embedding_norm(x)
        attend = ops.logical_and(valid[:, :, None], valid[:, None, :])
        for attention, attention_norm, intermediate, output, output_norm in self.blocks():
            x = attention_norm(x + attention(x, x, attention_mask=attend))
            x = output_norm(x + output(intermediate(x)))
        return ops.where(valid[:, :, None], x, ops.zeros_like(x))

    def compute_output_shape(self, ids_shape):
        return (*ids_shape, self.hidden_dim)

    def load_huggingface(self, weights: dict[str, np.ndarray]) -> None:
        """Sets every weight from a Hugging Face ``BertModel`` state dict (``model.safetensors`` names, with or
        without a ``bert.`` prefix; PyTorch `Linear` weights are `(out, in)`). A missing or misshapen tensor is an
        error that names it."""
        weights = {name.removeprefix("bert."): value for name, value in weights.items()}
        heads, head_dim = self.num_heads, self.hidden_dim // self.num_heads

        def get(name, shape=None):
            if name not in weights:
                raise ValueError(f"the checkpoint has no tensor {name!r}")
            value = np.asarray(weights[name], np.float32)
            if shape is not None:
                value = value.reshape(shape)
            return value

        def linear(prefix):  # PyTorch (out, in) → Keras (in, out)
            return [get(f"{prefix}.weight").T, get(f"{prefix}.bias")]

        def norm(prefix):
            return [get(f"{prefix}.weight"), get(f"{prefix}.bias")]

        self.token_embedding.set_weights([get("embeddings.word_embeddings.weight")])
        self.position_embedding.set_weights(
            [get("embeddings.position_embeddings.weight")[:self.max_sequence_length]])
        self.segment_embedding.set_weights([get("embeddings.token_type_embeddings.weight")])
        self.embedding_norm.set_weights(norm("embeddings.LayerNorm"))
        for i, (attention, attention_norm, intermediate, output, output_norm) in enumerate(self.blocks()):
            prefix = f"encoder.layer.{i}"
            attention_weights = []
            for part in ("query", "key", "value"):
                kernel, bias = linear(f"{prefix}.attention.self.{part}")
                attention_weights += [kernel.reshape(self.hidden_dim, heads, head_dim), bias.reshape(heads, head_dim)]
            kernel, bias = linear(f"{prefix}.attention.output.dense")
            attention.set_weights(attention_weights + [kernel.reshape(heads, head_dim, self.hidden_dim), bias])
            attention_norm.set_weights(norm(f"{prefix}.attention.output.LayerNorm"))
            intermediate.set_weights(linear(f"{prefix}.intermediate.dense"))
            output.set_weights(linear(f"{prefix}.output.dense"))
            output_norm.set_weights(norm(f"{prefix}.output.LayerNorm"))

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "max_sequence_length": self.max_sequence_length,
                "padding_id": self.padding_id, "epsilon": self.epsilon}
