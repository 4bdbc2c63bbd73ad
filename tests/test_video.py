"""Tests of the video recipe: rendering, config, network invariances, UCF101 via TFDS mocks, end to end to serving."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import config
from zoo.layers import TimeFolded
from zoo.recipe import load_splits
from zoo.recipes.video import data, model, train
from zoo.recipes.video.config import VideoConfig

TINY = {
    "data": {"frame_size": 16, "min_frames": 3, "max_frames": 6, "num_train": 60, "num_validation": 20,
             "num_test": 20, "clutter": 1, "num_buckets": 2},
    "serving": {"max_frames": 8, "max_batch_size": 8, "max_request_pixels": 20000},
    "model": {"filters": [8, 8], "frame_features": 16, "units": 8, "convlstm_filters": 4},
    "baselines": {"epochs": 1},
    "train": {"epochs": 1, "batch_size": 16, "verbose": 0},
}
ENCODERS = ("cnn", "convlstm")


def tiny_config(**overrides) -> VideoConfig:
    return config.from_dict(VideoConfig, TINY, **overrides)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture(autouse=True)
def isolated_cache(cache_root, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(cache_root))


@pytest.fixture(scope="module", params=ENCODERS)
def classifier(request):
    keras.utils.set_random_seed(0)
    cfg = tiny_config(model={"encoder": request.param})
    return model.build_classifier(cfg.model, cfg.data.frame_size, len(data.DIGIT_CLASSES))


def random_clips(lengths, size=16, seed=0):
    """A right-padded uint8 batch `(len(lengths), max(lengths), size, size, 3)` with zeros past each length."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((len(lengths), max(lengths), size, size, 3), np.uint8)
    for i, n in enumerate(lengths):
        frames[i, :n] = rng.integers(0, 256, (n, size, size, 3))
    return frames, np.asarray(lengths, np.int32)


def predict(classifier, frames, lengths=None):
    inputs = {"frames": tf.constant(frames), "lengths": None if lengths is None else tf.constant(lengths, tf.int32)}
    return np.asarray(classifier(inputs, training=False))


# --- config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("section, key, value", [
    ("data", "source", "kinetics"),
    ("data", "frame_size", 4),
    ("data", "max_frames", 2),  # below min_frames
    ("serving", "max_frames", 4),  # below data.max_frames
    ("data", "shake", 8),
    ("data", "noise", 1.5),
    ("data", "ucf101_config", "ucf101_9"),
    ("model", "encoder", "transformer"),
    ("model", "cell", "tcn"),
    ("model", "filters", []),
    ("model", "filters", [8, 8, 8, 8]),
    ("model", "dropout", 1.0),
    ("model", "pooling", ["median"]),
    ("baselines", "epochs", 0),
    ("train", "batch_size", 0),
])
def test_config_rejects_bad_values_and_names_them(section, key, value):
    with pytest.raises(config.ConfigError, match=rf"{section}\.{key}="):
        tiny_config(**{section: {key: value}})


def test_config_rejects_unknown_keys_and_loads_the_default_preset():
    with pytest.raises(config.ConfigError, match="data.fps"):
        tiny_config(data={"fps": 25})
    cfg = config.parse_args(VideoConfig, "video", ["--model.encoder", "convlstm", "--data.num_train", "10"])
    assert (cfg.model.encoder, cfg.data.num_train, cfg.data.source) == ("convlstm", 10, "digits")


# --- data -----------------------------------------------------------------------------------------------------


def test_rendered_clips_are_seeded_bounded_and_varied():
    cfg = tiny_config().data
    sprites = data.digit_sprites("train")
    first = data.render_clip(np.random.default_rng((0, 0, 1)), 3, sprites, cfg)
    again = data.render_clip(np.random.default_rng((0, 0, 1)), 3, sprites, cfg)
    other = data.render_clip(np.random.default_rng((0, 0, 2)), 3, sprites, cfg)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.uint8 and first.shape[1:] == (16, 16, 3)
    assert not np.array_equal(first[:len(other)], other[:len(first)])
    frames, lengths, labels = data.render_split(cfg, "validation", 30, progress=False)
    assert lengths.min() >= cfg.min_frames and lengths.max() <= cfg.max_frames and len(set(lengths)) > 1
    assert frames.shape == (lengths.sum(), 16, 16, 3)
    assert sorted(set(labels)) == list(range(len(data.DIGIT_CLASSES)))


def test_each_odd_class_is_the_time_reversal_of_its_pair():
    for label in range(0, len(data.DIGIT_CLASSES), 2):
        forward = data._target_trajectory(np.random.default_rng(7), label, 9, 32)
        backward = data._target_trajectory(np.random.default_rng(7), label + 1, 9, 32)
        changing = [k for k in forward if np.ptp(forward[k]) > 0]
        assert changing, f"class {data.DIGIT_CLASSES[label]} does not change over time"
        for k in forward:
            np.testing.assert_allclose(backward[k], forward[k][::-1])


def test_test_split_uses_held_out_digit_images():
    train_sprites, test_sprites = data.digit_sprites("train"), data.digit_sprites("test")
    train_set = {s.tobytes() for s in train_sprites}
    assert len(train_sprites) + len(test_sprites) == 1797
    assert sum(s.tobytes() in train_set for s in test_sprites) < 0.02 * len(test_sprites)  # a few exact duplicates


def test_rendered_split_is_cached_and_keyed_by_its_settings():
    cfg = tiny_config(data={"num_validation": 12}).data
    frames, lengths, labels = data.load_digit_split(cfg, "validation", progress=False)
    assert data.cache_path(cfg, "validation").is_file()
    cached = data.load_digit_split(cfg, "validation", progress=False)
    for a, b in zip((frames, lengths, labels), cached):
        np.testing.assert_array_equal(a, b)
    assert data.cache_path(tiny_config(data={"num_validation": 12, "noise": 0.1}).data, "validation") != \
        data.cache_path(cfg, "validation")


def test_a_damaged_rendered_split_is_rendered_again(capsys):
    cfg = tiny_config(data={"num_validation": 12}).data
    frames, _, _ = data.load_digit_split(cfg, "validation", progress=False)
    path = data.cache_path(cfg, "validation")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside the frames array
    path.write_bytes(bytes(raw))
    again, _, _ = data.load_digit_split(cfg, "validation", progress=False)
    np.testing.assert_array_equal(again, frames)
    assert f"zoo cache: {path} is damaged" in capsys.readouterr().err
    np.testing.assert_array_equal(data.load_digit_split(cfg, "validation", progress=False)[0], frames)  # repaired


def test_order_free_views_keep_the_frames_but_not_their_order():
    split = train.clips_of(data.load_split(tiny_config().data, "train", progress=False).take(6))
    clips = list(split.as_numpy_iterator())
    shuffled = list(data.order_free(split, "shuffled", 0).as_numpy_iterator())
    single = list(data.order_free(split, "single_frame", 0).as_numpy_iterator())
    reordered = 0
    for (clip, label), (mixed, mixed_label), (one, one_label) in zip(clips, shuffled, single):
        assert label == mixed_label == one_label and mixed.shape == clip.shape and one.shape == (1, *clip.shape[1:])
        assert sorted(map(bytes, clip)) == sorted(map(bytes, mixed))
        assert any(np.array_equal(one[0], f) for f in clip)
        reordered += not np.array_equal(clip, mixed)
    assert reordered >= 5


def test_ucf101_loads_through_tfds(tmp_path):
    import tensorflow_datasets as tfds

    cfg = tiny_config(data={"source": "ucf101", "tfds_data_dir": str(tmp_path)})
    assert len(data.class_names(cfg.data)) == 101
    with tfds.testing.mock_data(num_examples=3):
        splits = load_splits(train.RECIPE, cfg)
        train_clips, test_clips = train.clips_of(splits["train"]), train.clips_of(splits["test"])
        boundaries = train.boundaries_of(cfg, train_clips)
        clips = list(train_clips.as_numpy_iterator())
        (inputs, labels), = list(train.batches(test_clips, cfg, boundaries).as_numpy_iterator())
    assert len(clips) == 3
    for frames, label in clips:
        assert frames.dtype == np.uint8 and 1 <= len(frames) <= cfg.data.max_frames
        assert frames.shape[1:] == (16, 16, 3) and 0 <= label < 101
    assert inputs["frames"].shape[0] == 3 and inputs["frames"].shape[2:] == (16, 16, 3)
    keras.utils.set_random_seed(0)
    net = model.build_classifier(cfg.model, cfg.data.frame_size, 101)
    assert predict(net, inputs["frames"], inputs["lengths"]).shape == (3, 101)


# --- layers and network ---------------------------------------------------------------------------------------


def test_time_folded_handles_dynamic_time_longer_and_shorter_than_the_batch():
    layer = TimeFolded(keras.layers.Dense(3, name="step"))
    layer.build((None, None, 4))
    run = tf.function(layer, input_signature=[tf.TensorSpec([None, None, 4])])
    rng = np.random.default_rng(0)
    for batch, time in ((2, 7), (7, 2)):  # Keras' TimeDistributed truncates the first and fails on the second
        x = rng.normal(size=(batch, time, 4)).astype(np.float32)
        expected = np.stack([layer.layer(x[:, t]) for t in range(time)], axis=1)
        np.testing.assert_allclose(run(x), expected, atol=1e-6)
    clone = TimeFolded.from_config(layer.get_config())
    assert clone.layer.units == 3 and clone.compute_output_shape((None, None, 4)) == (None, None, 3)


def test_output_shapes_and_probabilities(classifier):
    frames, lengths = random_clips([5, 2, 3])
    probabilities = predict(classifier, frames, lengths)
    assert probabilities.shape == (3, len(data.DIGIT_CLASSES))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_frames_past_the_length_do_not_change_the_prediction(classifier):
    frames, lengths = random_clips([4])
    alone = predict(classifier, frames)
    blank = np.concatenate([frames, np.zeros((1, 5, 16, 16, 3), np.uint8)], axis=1)
    noise = np.concatenate([frames, np.random.default_rng(1).integers(0, 256, (1, 5, 16, 16, 3), np.uint8)], 1)
    np.testing.assert_allclose(predict(classifier, blank, lengths), alone, atol=1e-6)
    np.testing.assert_allclose(predict(classifier, noise, lengths), alone, atol=1e-6)
    # ...while a change inside the clip does change it (the comparison above can fail).
    changed = frames.copy()
    changed[0, 3] = 255 - changed[0, 3]
    assert np.abs(predict(classifier, changed, lengths) - alone).max() > 1e-5
    # and so does counting the blank frames as part of the clip.
    assert np.abs(predict(classifier, blank) - alone).max() > 1e-5


def test_ragged_and_padded_batches_agree(classifier):
    frames, lengths = random_clips([5, 2, 3, 1])
    ragged = tf.RaggedTensor.from_tensor(frames, lengths=lengths)
    padded = predict(classifier, frames, lengths)
    from_ragged = np.asarray(classifier({"frames": ragged, "lengths": None}, training=False))
    np.testing.assert_allclose(from_ragged, padded, atol=1e-6)
    for i, n in enumerate(lengths):  # and each row equals the clip classified on its own
        np.testing.assert_allclose(predict(classifier, frames[i:i + 1, :n]), padded[i:i + 1], atol=1e-6)


def test_zero_length_clip_gets_a_finite_answer(classifier):
    frames, _ = random_clips([3, 3])
    probabilities = predict(classifier, frames, [3, 0])
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities[1].sum(), 1.0, atol=1e-5)


def test_keras_file_round_trip(classifier, tmp_path):
    frames, lengths = random_clips([4, 2])
    path = tmp_path / "video.keras"
    classifier.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(predict(reloaded, frames, lengths), predict(classifier, frames, lengths), atol=1e-6)


# --- end to end -----------------------------------------------------------------------------------------------

SERVE_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    sys.path.append(sys.argv[1])  # the venv's packages, without its .pth files: zoo itself is not importable
    assert importlib.util.find_spec("zoo") is None, "the serving process must not see zoo"
    import numpy as np
    import tensorflow as tf

    serve = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
    inputs = np.load(sys.argv[3])
    out = serve(frames=tf.constant(inputs["frames"]), lengths=tf.constant(inputs["lengths"]))
    big = serve(frames=tf.constant(inputs["frames"].repeat(2, axis=2).repeat(2, axis=3)),
                lengths=tf.constant(inputs["lengths"]))
    empty = serve(frames=tf.zeros([0, 4, 16, 16, 3], tf.uint8), lengths=tf.zeros([0], tf.int32))
    np.savez(sys.argv[4], label=out["label"].numpy().astype(str), label_id=out["label_id"].numpy(),
             probabilities=out["probabilities"].numpy(), resized_probabilities=big["probabilities"].numpy(),
             empty_probabilities=empty["probabilities"].numpy(), empty_labels=empty["label"].numpy().astype(str))

    def frames(shape, dtype=tf.uint8):
        return tf.zeros(shape, dtype)

    errors = {}
    for name, (f, n) in {
        "float_frames": (frames([1, 4, 16, 16, 3], tf.float32), tf.constant([4])),
        "float_lengths": (frames([1, 4, 16, 16, 3]), tf.constant([4.0])),
        "rank_4_frames": (frames([4, 16, 16, 3]), tf.constant([4])),
        "grey_frames": (frames([1, 4, 16, 16, 1]), tf.constant([4])),
        "rank_2_lengths": (frames([1, 4, 16, 16, 3]), tf.constant([[4]])),
        "negative_length": (frames([2, 4, 16, 16, 3]), tf.constant([4, -1])),
        "length_past_time": (frames([2, 4, 16, 16, 3]), tf.constant([5, 1])),
        "too_many_frames": (frames([1, 9, 16, 16, 3]), tf.constant([9])),
        "no_frames": (frames([1, 0, 16, 16, 3]), tf.constant([0])),
        "lengths_count": (frames([2, 4, 16, 16, 3]), tf.constant([4])),
        "batch_too_large": (frames([9, 1, 16, 16, 3]), tf.ones([9], tf.int32)),
        "too_many_pixels": (frames([4, 8, 32, 32, 3]), tf.fill([4], 8)),
    }.items():
        try:
            serve(frames=f, lengths=n)
            errors[name] = ["no error", ""]
        except Exception as e:  # reported to the test, which checks type and message
            errors[name] = [type(e).__name__, str(e)]
    print("ERRORS " + json.dumps(errors))
""")

EXPECTED_ERRORS = {
    "float_frames": "expected to be a uint8 tensor",
    "float_lengths": "expected to be a int32 tensor",
    "rank_4_frames": "not compatible with expected shape [?,?,?,?,3]",
    "grey_frames": "not compatible with expected shape [?,?,?,?,3]",
    "rank_2_lengths": "not compatible with expected shape [?]",
    "negative_length": "lengths must be >= 0",
    "length_past_time": "lengths must be <= frames.shape[1]",
    "too_many_frames": "clip too long: frames.shape[1] must be <= 8",
    "no_frames": "frames.shape[1] must be >= 1",
    "lengths_count": "lengths must hold one entry per clip",
    "batch_too_large": "batch too large: at most 8 clips",
    "too_many_pixels": "request too large: at most 20000 pixels",
}


@pytest.mark.slow
def test_train_evaluate_export_and_serve_without_zoo(tmp_path):
    cfg = tiny_config(train={**TINY["train"], "run_dir": str(tmp_path / "run")},
                      export={"base_dir": str(tmp_path / "saved_models")})
    report = zoo.run(train.RECIPE, cfg).report

    run_dir = tmp_path / "run"
    for name in ("model.keras", "confusion.png", "curves.png", "history.csv", "report.json",
                 "baselines/shuffled/history.csv", "baselines/single_frame/history.csv"):
        assert (run_dir / name).is_file(), name
    assert report["metrics"]["clips"] == cfg.data.num_test
    assert 0 <= report["metrics"]["top1"] <= 1 and set(report["baselines"]) == {"shuffled", "single_frame"}
    assert np.array(report["metrics"]["confusion"]).sum() == cfg.data.num_test
    assert report["saved_model"] == str(tmp_path / "saved_models" / "video" / "1")

    frames, lengths = random_clips([6, 3, 0], seed=3)
    np.savez(tmp_path / "inputs.npz", frames=frames, lengths=lengths)
    expected = predict(keras.models.load_model(run_dir / "model.keras"), frames, lengths)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SERVE_SCRIPT, sysconfig.get_paths()["purelib"], report["saved_model"],
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        cwd="/tmp", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

    served = np.load(tmp_path / "outputs.npz")
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(served["label_id"], expected.argmax(-1))
    assert list(served["label"]) == [data.DIGIT_CLASSES[i] for i in expected.argmax(-1)]
    assert served["resized_probabilities"].shape == expected.shape  # 32x32 frames resized in the graph
    assert served["empty_probabilities"].shape == (0, len(data.DIGIT_CLASSES)) and served["empty_labels"].shape == (0,)

    errors = json.loads(result.stdout.split("ERRORS ", 1)[1])
    for name, fragment in EXPECTED_ERRORS.items():
        kind, message = errors[name]
        assert kind == "InvalidArgumentError" and fragment in message, (name, kind, message[-500:])


def moving_square(direction: int, frames: int = 8, size: int = 24) -> np.ndarray:
    """uint8 `(frames, size, size, 3)`: a bright square moving down (direction 1) or up (-1) over a dark field."""
    clip = np.full((frames, size, size, 3), 20, np.uint8)
    for t in range(frames):
        row = 2 + (t if direction > 0 else frames - 1 - t) * 2
        clip[t, row:row + 6, 8:14] = 230
    return clip


def write_clip(path, clip):
    """A clip as an MPEG-4 video (PyAV), an animated GIF (PIL) or a directory of PNG frames, by ``path``'s suffix."""
    from PIL import Image

    if path.suffix == ".mp4":
        import av

        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = clip.shape[2], clip.shape[1], "yuv420p"
            for frame in clip:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
    elif path.suffix == ".gif":
        images = [Image.fromarray(frame) for frame in clip]
        images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    else:
        path.mkdir(parents=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame).save(path / f"{t:03d}.png")


def write_clip_dirs(root, per_class: int):
    for name, direction in (("falling", 1), ("rising", -1)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_clip(root / name / f"clip{i}{('.mp4', '.gif', '')[i % 3]}", moving_square(direction))
    return root


def test_user_clip_directories_decode_every_format_and_bad_clips_are_named(tmp_path):
    root = write_clip_dirs(tmp_path / "clips", 3)
    cfg = tiny_config(data={**TINY["data"], "source": "files", "train": str(root), "test": str(root),
                            "frame_stride": 1, "max_frames": 6})
    assert data.class_names(cfg.data) == ["falling", "rising"]
    clips = list(data.load_split(cfg.data, "test").as_numpy_iterator())
    assert len(clips) == 6 and {c["frames"].shape for c in clips} == {(6, 16, 16, 3)}
    for clip in clips:  # every format gives the same motion: the square's row moves with the class' direction
        rows = clip["frames"][..., 0].astype(float).mean(axis=2).argmax(axis=1)
        assert (np.diff(rows) >= 0).all() if clip["label"] == 0 else (np.diff(rows) <= 0).all()
        assert rows[-1] != rows[0]
    (root / "falling" / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"broken\.mp4: does not decode as video"):
        data.load_split(cfg.data, "test")
    (root / "falling" / "broken.mp4").unlink()
    (root / "falling" / "empty_dir").mkdir()
    with pytest.raises(ValueError, match=r"empty_dir: a frame directory without images"):
        data.load_split(cfg.data, "test")
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    write_clip(one / "only" / "a.gif", moving_square(1))
    with pytest.raises(ValueError, match="needs at least two class directories, found 1"):
        data.class_names(tiny_config(data={"source": "files", "train": str(one)}).data)


def test_trained_on_user_clips_and_served_without_zoo(tmp_path):
    root = write_clip_dirs(tmp_path / "clips", 9)
    cfg = tiny_config(data={**TINY["data"], "source": "files", "train": str(root), "frame_stride": 1,
                            "max_frames": 6},
                      train={**TINY["train"], "epochs": 6, "batch_size": 4, "run_dir": str(tmp_path / "run")},
                      export={"base_dir": str(tmp_path / "saved_models")})
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["clips"] > 0
    frames = np.stack([moving_square(1)[:6], moving_square(-1)[:6]])
    np.savez(tmp_path / "inputs.npz", frames=frames, lengths=np.array([6, 6], np.int32))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["zoo"] = None
        import numpy as np, tensorflow as tf
        batch = np.load({str(tmp_path / 'inputs.npz')!r})
        out = tf.saved_model.load({report['saved_model']!r}).signatures["serving_default"](
            frames=tf.constant(batch["frames"]), lengths=tf.constant(batch["lengths"]))
        print([label.decode() for label in out["label"].numpy()], out["probabilities"].shape)
    """)
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd="/tmp", capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['falling', 'rising'] (2, 2)"
