"""speech_ctc: config validation, model shapes and padding invariance, `.keras` round trip, the TFDS path, and an
end-to-end smoke run (espeak-ng clips + real Tux Paint clips → train → evaluate → export → load without zoo).

The end-to-end test needs the Debian packages ``espeak-ng`` (installed) and network access to a Debian mirror for
``tuxpaint-stamps-default`` / ``sword-text-sparv`` (fetched into the zoo cache).
"""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo import config
from zoo.config import ConfigError
from zoo.recipes.speech_ctc import data, model, train
from zoo.recipes.speech_ctc.config import SAMPLE_RATE, SpeechConfig

TINY_MODEL = {"num_mels": 20, "conv_filters": [4], "conv_time_strides": [2], "units": 16, "num_layers": 1,
              "beam_width": 4}


def tiny_config(tmp_path, **sections):
    values = {"model": TINY_MODEL, "train": {"run_dir": str(tmp_path / "run"), "verbose": 0},
              "export": {"base_dir": str(tmp_path / "saved_models")}}
    for name, extra in sections.items():
        values[name] = {**values.get(name, {}), **extra}
    return config.from_dict(SpeechConfig, values)


def tone_batch(lengths, seed=0):
    """Right-padded batch of random chirps with silence (zeros) after each row's length."""
    rng = np.random.default_rng(seed)
    audio = np.zeros((len(lengths), max(lengths)), np.float32)
    for row, n in zip(audio, lengths):
        t = np.arange(n) / SAMPLE_RATE
        row[:n] = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(n)
    return audio, np.array(lengths, np.int32)


@pytest.mark.parametrize("section,key,value", [
    ("data", "source", "timit"), ("data", "alphabet", "abc"), ("data", "speech_rate", [300, 100]),
    ("data", "real_train_percent", 95), ("model", "conv_time_strides", [2, 2, 2]), ("model", "cell", "transformer"),
    ("model", "freq_mask_width", 80), ("model", "vtlp_max_factor", 0.9), ("train", "max_minutes", -1),
    ("train", "lr_plateau_factor", 1.0),
])
def test_config_rejects_bad_values_naming_them(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        config.from_dict(SpeechConfig, {section: {key: value}})


def test_default_settings_load():
    cfg = config.parse_args(SpeechConfig, "speech_ctc", [])
    assert cfg.data.source == "tuxpaint_espeak" and (cfg.train.epochs, cfg.train.max_minutes) == (35, 0)
    assert (cfg.train.steps_per_epoch, cfg.train.ema_momentum, cfg.train.lr_plateau_patience) == (50, 0.99, 2)


def test_shapes_and_frame_count(tmp_path):
    cfg = tiny_config(tmp_path)
    acoustic = model.build_acoustic_model(cfg.model, len(cfg.data.alphabet) + 1)
    audio, lengths = tone_batch([8000, 3001, 0])
    out = acoustic({"audio": audio, "lengths": lengths})
    frames = int(model.frame_count(8000, cfg.model))
    assert out["logits"].shape == (3, frames, len(cfg.data.alphabet) + 1)
    assert np.asarray(out["frame_lengths"]).tolist() == [frames, int(model.frame_count(3001, cfg.model)), 0]


def test_padding_with_silence_does_not_change_the_shorter_transcript(tmp_path):
    cfg = tiny_config(tmp_path)
    acoustic = model.build_acoustic_model(cfg.model, len(cfg.data.alphabet) + 1)
    audio, lengths = tone_batch([4000, 9000])
    alone = model.transcribe(acoustic, audio[:1, :4000], lengths[:1], cfg.data.alphabet, 4)
    padded = model.transcribe(acoustic, audio, lengths, cfg.data.alphabet, 4)
    assert alone["greedy_transcript"].numpy()[0] == padded["greedy_transcript"].numpy()[0]
    assert alone["transcript"].numpy()[0] == padded["transcript"].numpy()[0]
    a = acoustic({"audio": audio[:1, :4000], "lengths": lengths[:1]})["logits"][0]
    b = acoustic({"audio": audio, "lengths": lengths})["logits"][0, : a.shape[0]]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_keras_round_trip(tmp_path):
    cfg = tiny_config(tmp_path, model={"spec_augment": True})
    acoustic = model.build_acoustic_model(cfg.model, len(cfg.data.alphabet) + 1)
    path = tmp_path / "m.keras"
    acoustic.save(path)
    reloaded = keras.models.load_model(path)
    audio, lengths = tone_batch([5000, 2000])
    np.testing.assert_allclose(acoustic({"audio": audio, "lengths": lengths})["logits"],
                               reloaded({"audio": audio, "lengths": lengths})["logits"], atol=1e-5)


def test_spec_augment_masks_only_in_training():
    layer = model.SpecAugment(freq_masks=2, freq_mask_width=5, time_masks=2, time_mask_width=5)
    x = tf.ones((4, 30, 20))
    np.testing.assert_array_equal(layer(x, training=False), x)
    masked = np.asarray(layer(x, mask=tf.ones((4, 30), tf.bool), training=True))
    assert 0 < (masked == 0).mean() < 0.9


def test_vocal_tract_warp_scales_each_utterances_frequency_axis_by_one_factor():
    layer = model.VocalTractWarp(SAMPLE_RATE, num_mels=40, max_factor=1.3)
    band_index = tf.tile(tf.range(40, dtype=tf.float32)[tf.newaxis, tf.newaxis], [8, 3, 1])
    np.testing.assert_array_equal(layer(band_index, training=False), band_index)
    # On a ramp the warped value is the (fractional) band each output band reads: its frequency is centre / alpha.
    read = np.asarray(layer(band_index, training=True))
    centres = model.mel_band_centers_hz(SAMPLE_RATE, 40)
    mel = 1127.0 * np.log1p(centres / 700.0)
    read_hz = 700.0 * np.expm1(np.interp(read, np.arange(40), mel) / 1127.0)
    interior = slice(10, 30)  # away from the clamped edges
    alpha = centres[interior] / read_hz[:, :, interior]
    # One factor per utterance, the same at every frame and band.
    np.testing.assert_allclose(alpha, np.broadcast_to(alpha[:, :1, :1], alpha.shape), rtol=1e-3)
    assert (1 / 1.3 - 1e-3 <= alpha).all() and (alpha <= 1.3 + 1e-3).all() and alpha.std() > 0.01
    assert (np.diff(read, axis=2) >= 0).all()


def test_text_normalisation():
    out = data.normalize_text(tf.constant(["¡Una moneda «dime» ($0,10), é Isaac!"]), SpeechConfig().data.alphabet)
    assert out.numpy()[0].decode() == "una moneda dime e isaac"


@pytest.mark.parametrize("source", ["librispeech", "ljspeech"])
def test_tfds_corpora_with_mock_data(tmp_path, source):
    cfg = tiny_config(tmp_path, data={"source": source})
    with tfds.testing.mock_data(num_examples=3):
        ds = train.training_examples(cfg, data.load_split(cfg.data, "train"))
        examples = list(ds.as_numpy_iterator())
        assert len(list(data.load_split(cfg.data, "test_synthetic"))) == 0
    for inputs, targets, real in examples:
        assert real
        assert inputs["audio"].dtype == np.float32 and inputs["audio"].ndim == 1
        assert inputs["lengths"] == inputs["audio"].size
        assert (targets["labels"] >= 1).all() and targets["label_lengths"] == targets["labels"].size


def test_a_crashing_espeak_call_skips_the_clip(monkeypatch):
    def crash(text, voice, rate, pitch, espeak_path=None):
        raise subprocess.CalledProcessError(-11, ["espeak-ng", "-v", voice, text])

    monkeypatch.setattr(data, "synthesize", crash)
    audio, error = data._synthetic_job(("hola", "es+m1", 150, 50, 0, SpeechConfig().data, None))
    assert audio is None and "es+m1: 'hola': exit status -11" in error


def test_espeak_failing_on_many_clips_stops_generation(tmp_path, monkeypatch):
    def missing_voice(text, voice, rate, pitch, espeak_path=None):
        raise subprocess.CalledProcessError(1, ["espeak-ng"], stderr=b"Error: voice does not exist.")

    monkeypatch.setattr(data, "synthesize", missing_voice)
    builder = data.TuxpaintEspeakSpeech(settings=tiny_config(tmp_path).data, data_dir=str(tmp_path))
    jobs = builder._synthetic_examples("train", ["hola mundo"], ["m1"], 20, None)
    with pytest.raises(RuntimeError, match="failed on 11 of the first 11 clips.*voice does not exist"):
        list(jobs)


def test_scaled_variant_scales_formants_and_pitch_and_writes_out_defaults():
    variant = "name Test\npitch 100 150\nformant 1 90 100 110\nformant 4 10 20 20 -50\nflutter 5\n"
    lines = data.scale_variant(variant, 1.5, 2.0).splitlines()
    assert "pitch 200 300" in lines and "formant 1 135 100 110" in lines and "formant 4 15 20 20 -50" in lines
    assert "flutter 5" in lines and "formant 0 150 100 100" in lines and "formant 8 150 100 100" in lines
    assert "pitch 164 236" in data.scale_variant("name Bare\n", 1.0, 2.0).splitlines()  # espeak-ng's default pitch


def test_bad_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="split"):
        data.load_split(tiny_config(tmp_path).data, "dev")


SERVE_WITHOUT_ZOO = """
import json, sys
import numpy as np, tensorflow as tf
assert "zoo" not in sys.modules
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
batch = np.load(sys.argv[2])
out = served(audio=tf.constant(batch["audio"]), lengths=tf.constant(batch["lengths"]))
print(json.dumps({k: [t.decode() for t in out[k].numpy()] for k in ("transcript", "greedy_transcript")}))
"""


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    tmp_path = tmp_path_factory.mktemp("speech_ctc")
    cfg = tiny_config(tmp_path, data={"synthetic_clips": 24, "synthetic_eval_clips": 6, "max_real_clips": 24,
                                      "perturbed_variants": 60,
                                      "bible_books": ["Jude"], "tfds_data_dir": str(tmp_path / "tfds")},
                      train={"epochs": 1, "batch_size": 8})
    return cfg, zoo.run(train.RECIPE, cfg).report


def test_end_to_end_smoke_run(smoke_run, tmp_path):
    cfg, report = smoke_run
    for split in ("test_synthetic", "test_real"):
        metrics = report["metrics"][split]
        assert metrics["examples"] > 0 and 0 <= metrics["cer_greedy"] and 0 <= metrics["cer_beam"]
    assert report["data"]["training_clips_per_pass"] > 24  # synthetic + repeated real clips
    builder = data.TuxpaintEspeakSpeech(settings=cfg.data, data_dir=cfg.data.tfds_data_dir)
    voices = {ex["voice"].decode() for ex in builder.as_dataset(split="train").as_numpy_iterator()}
    assert any("+zoo" in v for v in voices) and any("+zoo" not in v for v in voices - {"human"})
    acoustic = keras.models.load_model(report["model"])
    audio, lengths = tone_batch([SAMPLE_RATE, SAMPLE_RATE // 3])
    expected = model.transcribe(acoustic, audio, lengths, cfg.data.alphabet, cfg.model.beam_width)
    np.savez(tmp_path / "batch.npz", audio=audio, lengths=lengths)
    result = subprocess.run([sys.executable, "-I", "-c", SERVE_WITHOUT_ZOO, report["saved_model"],
                             str(tmp_path / "batch.npz")], cwd="/tmp", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("transcript", "greedy_transcript"):
        assert served[key] == [t.decode() for t in expected[key].numpy()]


def test_served_model_handles_bad_inputs(smoke_run):
    cfg, report = smoke_run
    served = tf.saved_model.load(report["saved_model"]).signatures["serving_default"]

    def answer(audio, lengths):
        return served(audio=tf.constant(audio, tf.float32), lengths=tf.constant(lengths, tf.int32))

    audio = np.zeros((5, SAMPLE_RATE), np.float32)  # silence
    audio[1, ::7] = np.nan
    audio[1, ::11] = np.inf
    audio[2] = np.clip(10 * np.sin(np.arange(SAMPLE_RATE) / 5), -1, 1)  # clipped
    audio[3] = 1e30  # absurd gain
    out = answer(audio, [SAMPLE_RATE, SAMPLE_RATE, SAMPLE_RATE, SAMPLE_RATE, 0])
    assert out["transcript"].shape == (5,) and out["transcript"].numpy()[4] == b""
    assert np.isfinite(out["score"].numpy()[:4]).all()
    assert answer(np.zeros((1, 0)), [0])["transcript"].numpy().tolist() == [b""]
    empty = answer(np.zeros((0, SAMPLE_RATE)), np.zeros(0, np.int32))  # an empty batch: an empty answer
    assert {k: v.shape[0] for k, v in empty.items()} == {"transcript": 0, "greedy_transcript": 0, "score": 0}
    too_long = int(cfg.serving.max_input_seconds * SAMPLE_RATE) + 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="audio too long"):
        answer(np.zeros((1, too_long)), [too_long])
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths must not exceed"):
        answer(np.zeros((1, 100)), [101])
    longest = int(cfg.serving.max_input_seconds * SAMPLE_RATE)
    clips = cfg.serving.max_request_samples // longest + 1  # each clip legal, the batch over the budget
    budget = cfg.serving.max_request_samples
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"request too large: at most {budget} audio samples"):
        answer(np.zeros((clips, longest), np.float32), [longest] * clips)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per row"):
        answer(np.zeros((2, 100)), [100])


FRENCH = ["ça va bien", "un café au lait", "le garçon est là", "une élève française", "où est la gare",
          "il fait très beau", "merci beaucoup", "à demain"]


def write_clips(tmp_path, texts, subdir="clips"):
    """espeak-ng French clips in varied formats (16 kHz mono WAV, 8 kHz stereo FLAC, 22.05 kHz Ogg) and a manifest
    ``.csv`` beside them with paths relative to it."""
    from scipy.signal import resample_poly

    (tmp_path / subdir).mkdir(exist_ok=True)
    rows = ["path,text"]
    for i, text in enumerate(texts):
        audio = data.synthesize(text, "fr", 160, 50)
        if i % 3 == 1:
            name, audio, rate = f"{i}.flac", np.stack([resample_poly(audio, 1, 2)] * 2, axis=1), 8000
        elif i % 3 == 2:
            name, audio, rate = f"{i}.ogg", resample_poly(audio, 441, 320), 22050
        else:
            name, rate = f"{i}.wav", SAMPLE_RATE
        import soundfile

        soundfile.write(tmp_path / subdir / name, audio, rate)
        rows.append(f'{subdir}/{name},"{text}"')
    manifest = tmp_path / f"{subdir}.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def test_manifest_files_give_their_alphabet_and_bad_clips_are_named(tmp_path):
    manifest = write_clips(tmp_path, FRENCH[:3])
    cfg = config.from_dict(SpeechConfig, data={"source": "files", "train": str(manifest), "test": str(manifest)})
    assert data.alphabet_of(cfg.data) == " abcefgilnorstuvàçé"  # a space and the letters of the transcripts
    clips = list(data.load_split(cfg.data, "test_real").as_numpy_iterator())
    assert [c["text"].decode() for c in clips] == FRENCH[:3] and all(c["real"] for c in clips)
    durations = [c["audio"].size / SAMPLE_RATE for c in clips]  # every clip at 16 kHz, mono, about as long
    assert all(c["audio"].ndim == 1 for c in clips) and max(durations) < 2 * min(durations)
    assert list(data.load_split(cfg.data, "test_synthetic")) == []
    (tmp_path / "clips" / "broken.wav").write_text("not audio")
    import soundfile

    soundfile.write(tmp_path / "clips" / "empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    for row, message in [("clips/missing.wav,hola", r"bad\.csv:3: clips/missing\.wav: cannot be read as audio"),
                         ("clips/broken.wav,hola", r"bad\.csv:3: clips/broken\.wav: cannot be read as audio"),
                         ("clips/empty.wav,hola", r"bad\.csv:3: clips/empty\.wav: the audio is empty"),
                         ("clips/0.wav,", r"bad\.csv:3: empty 'text'")]:
        (tmp_path / "bad.csv").write_text(f"path,text\nclips/0.wav,ça va\n{row}\n", encoding="utf-8")
        bad = config.from_dict(SpeechConfig, data={"source": "files", "train": str(tmp_path / "bad.csv")})
        with pytest.raises(ValueError, match=message):
            data.load_split(bad.data, "train")


def test_trained_on_user_files_and_served_without_zoo(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    train_manifest = write_clips(tmp_path, FRENCH * 2, "train")
    test_manifest = write_clips(tmp_path, FRENCH[:4], "test")
    cfg = tiny_config(tmp_path, data={"source": "files", "train": str(train_manifest), "test": str(test_manifest),
                                      "validation": str(test_manifest)},
                      train={"epochs": 1, "batch_size": 4})
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["test_real"]["examples"] == 4
    assert report["data"]["training_clips_per_pass"] == 2 * len(FRENCH)  # real clips only: each once a pass
    alphabet = data.alphabet_of(cfg.data)
    assert {"ç", "é", "à", "è"} <= set(alphabet)
    acoustic = keras.models.load_model(report["model"])
    audio, lengths = tone_batch([SAMPLE_RATE, SAMPLE_RATE // 2])
    expected = model.transcribe(acoustic, audio, lengths, alphabet, cfg.model.beam_width)
    np.savez(tmp_path / "batch.npz", audio=audio, lengths=lengths)
    result = subprocess.run([sys.executable, "-I", "-c", SERVE_WITHOUT_ZOO, report["saved_model"],
                             str(tmp_path / "batch.npz")], cwd="/tmp", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["transcript"] == [t.decode() for t in expected["transcript"].numpy()]
    assert set("".join(served["transcript"])) <= set(alphabet)
