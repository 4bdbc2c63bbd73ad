"""The music recipe: encodings, model contract, in-graph sampling, MIDI files and a real end-to-end run."""

import dataclasses
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import config
from zoo.config import ConfigError
from zoo.data import files
from zoo.recipes.music import data, model, synth, train
from zoo.recipes.music.config import MusicConfig

TINY = {"data": {"max_pieces": 8, "parts": 0},
        "serving": {"max_generate_steps": 32, "max_seed_steps": 16, "max_batch_size": 4, "max_request_steps": 100},
        "model": {"units": 16, "embedding_dim": 8, "dropout": 0.0},
        "generate": {"num_samples": 2, "num_steps": 12, "seed_steps": 4},
        "train": {"epochs": 1, "batch_size": 4, "verbose": 0}}


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A few chorales parsed once for the whole session."""
    return str(tmp_path_factory.mktemp("music_tfds"))


def tiny_cfg(tfds_dir, representation="roll", **sections):
    values = {k: dict(v) for k, v in TINY.items()}
    values["data"].update(tfds_data_dir=tfds_dir, representation=representation)
    for name, overrides in sections.items():
        values.setdefault(name, {}).update(overrides)
    return config.from_dict(MusicConfig, values)


@pytest.fixture(scope="session")
def nets(tfds_dir):
    """An untrained model and its generate function per representation (tracing is the slow part)."""
    keras.utils.set_random_seed(0)
    result = {}
    variants = {"roll": ("roll", {}), "events": ("events", {}),
                "roll_gru_residual": ("roll", {"cell": "gru", "num_layers": 2, "residual": True, "embedding_dim": 16})}
    for name, (representation, model_overrides) in variants.items():
        cfg = tiny_cfg(tfds_dir, representation, model=model_overrides)
        net = model.build_model(cfg)
        result[name] = (cfg, net, model.make_generate_fn(net, cfg))
    cfg, net, _ = result["roll"]
    result["roll_audio"] = (cfg, net, model.make_generate_fn(net, cfg, audio=True))
    return result


def arguments(fn, seed, num_steps=8, temperature=1.0, top_k=0, random_seed=1, condition=0):
    """The positional arguments of a generate function; ``condition`` (one class for all seeds, or one per seed)
    only where the function takes one."""
    args = [tf.constant(seed, tf.int32), tf.constant(num_steps, tf.int32), tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32), tf.constant(random_seed, tf.int64)]
    if len(fn.input_signature) > len(args):
        args.append(tf.constant(np.broadcast_to(np.asarray(condition, np.int32), [len(seed)])))
    return args


def call(fn, seed, **kwargs):
    return next(iter(fn(*arguments(fn, seed, **kwargs)).values())).numpy()


def empty_seed(cfg, batch=2):
    return np.zeros((batch, 0, cfg.data.num_pitches) if cfg.data.representation == "roll" else (batch, 0), np.int32)


@pytest.mark.parametrize("overrides, field", [
    ({"data": {"representation": "midi"}}, "data.representation"),
    ({"data": {"source": "nottingham"}}, "data.source"),
    ({"data": {"low_pitch": 90, "high_pitch": 60}}, "low_pitch"),
    ({"data": {"max_steps": 1}}, "data.max_steps"),
    ({"model": {"cell": "transformer"}}, "model.cell"),
    ({"generate": {"temperature": -1.0}}, "generate.temperature"),
    ({"generate": {"num_steps": 5000}}, "generate.num_steps"),
])
def test_config_rejects_bad_values_by_name(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config.from_dict(MusicConfig, overrides)


def test_default_preset_loads():
    cfg = config.parse_args(MusicConfig, "music", [])
    assert (cfg.data.source, cfg.data.representation, cfg.data.num_pitches) == ("jsb", "roll", 88)


def test_encodings_and_their_inverses():
    cfg = config.from_dict(MusicConfig, data={"steps_per_quarter": 2, "low_pitch": 48, "high_pitch": 84}).data
    # (pitch, start, end, part) in quarters: a C-E chord in part 0 over a G in part 1, a rest, then a short D.
    # A passing F between two grid instants and a note below the range are dropped.
    notes = np.array([[60, 0, 1, 0], [64, 0, 1.5, 0], [55, 0, 2, 1], [62, 2.5, 2.75, 0], [30, 0, 1, 1],
                      [65, 1.6, 1.9, 1]], np.float32)
    roll = data.to_roll(notes, cfg)
    assert roll.shape == (6, 37) and roll.dtype == np.uint8
    assert roll[:, 60 - 48].tolist() == [1, 1, 0, 0, 0, 0] and roll[:, 55 - 48].tolist() == [1, 1, 1, 1, 0, 0]
    assert roll[5, 62 - 48] == 1 and roll.sum() == 2 + 3 + 4 + 1  # a short note on an instant keeps its step
    events = data.to_events(notes, cfg)  # top part, highest note of the chord
    on = lambda p: data.FIRST_PITCH_TOKEN + p - 48  # noqa: E731
    assert events.tolist() == [on(64), data.HOLD, data.HOLD, data.NOTE_OFF, data.HOLD, on(62), data.NOTE_OFF]
    back = data.events_to_roll(events, cfg)
    assert back[:3, 64 - 48].tolist() == [1, 1, 1] and back[3:5].sum() == 0 and back[5, 62 - 48] == 1
    assert data.roll_notes(back, cfg, data.event_onsets(events, cfg)) == [(64, 0, 3), (62, 5, 6)]


def test_split_is_by_piece_deterministic_and_disjoint():
    ids = [f"bwv{i}" for i in range(50)]
    first, again = data.assign_splits(ids), data.assign_splits(list(reversed(ids)))
    assert first == again
    counts = {s: sum(v == s for v in first.values()) for s in data.SPLITS}
    assert counts == {"train": 40, "validation": 5, "test": 5}


def test_key_normalisation_moves_a_g_major_scale_to_c():
    scale = [67, 69, 71, 72, 74, 76, 78, 79, 74, 71, 67]
    notes = np.array([[p, i, i + 1, 0] for i, p in enumerate(scale)], np.float32)
    assert sorted({int(p) % 12 for p in data.to_c(notes)[:, 0]}) == [0, 2, 4, 5, 7, 9, 11]


@pytest.mark.parametrize("representation", ["roll", "events"])
def test_transposition_only_in_training_and_keeps_notes_in_range(tfds_dir, representation):
    cfg = tiny_cfg(tfds_dir, representation, data={"transpose": 6})
    sequence, cls = data.sequences(cfg.data, "train")[0]
    evaluation = data.to_example(cfg.data, training=False)(tf.constant(sequence), tf.constant(cls))
    np.testing.assert_array_equal(evaluation[1], sequence)
    shifted = [data.to_example(cfg.data, training=True)(tf.constant(sequence), tf.constant(cls))[1].numpy()
               for _ in range(8)]
    if representation == "roll":
        assert all(s.sum() == sequence.sum() for s in shifted)  # nothing wrapped around or fell off
    else:
        assert all(((s >= data.FIRST_PITCH_TOKEN) == (sequence >= data.FIRST_PITCH_TOKEN)).all() for s in shifted)
    assert any((s != sequence).any() for s in shifted)


@pytest.mark.parametrize("representation", ["roll", "events"])
def test_shapes_and_masking_invariance(nets, representation):
    cfg, net, _ = nets[representation]
    example = data.to_example(cfg.data, training=False)
    rng = np.random.default_rng(0)
    if representation == "roll":
        sequence = (rng.random((7, cfg.data.num_pitches)) < 0.05).astype(np.uint8)
    else:
        sequence = rng.integers(data.NOTE_OFF, data.vocab_size(cfg.data), 7).astype(np.int32)
    inputs = example(tf.constant(sequence), tf.constant(1))[0]["inputs"]
    alone = net({"inputs": inputs[None], "lengths": tf.constant([7]), "condition": tf.constant([1])}).numpy()
    assert alone.shape == (1, 7, model.output_width(cfg))
    padded = tf.concat([inputs, tf.ones_like(inputs)[:5] * (2 if representation == "events" else 1)], 0)[None]
    in_batch = net({"inputs": tf.concat([padded, padded], 0), "lengths": tf.constant([7, 12]),
                    "condition": tf.constant([1, 0])}).numpy()
    np.testing.assert_allclose(in_batch[0, :7], alone[0], atol=1e-5)  # padding content cannot leak in


def test_keras_round_trip(nets, tmp_path):
    cfg, net, _ = nets["roll"]
    inputs = {"inputs": tf.random.uniform((2, 5, model.input_width(cfg))), "lengths": tf.constant([5, 3]),
              "condition": tf.constant([0, 1])}
    net.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(inputs).numpy(), net(inputs).numpy(), atol=1e-6)


@pytest.mark.parametrize("representation", ["roll", "events"])
def test_sampling_is_reproducible_and_seed_dependent(nets, representation):
    cfg, _, fn = nets[representation]
    a, b = call(fn, empty_seed(cfg), random_seed=3), call(fn, empty_seed(cfg), random_seed=3)
    np.testing.assert_array_equal(a, b)
    assert (call(fn, empty_seed(cfg), random_seed=4) != a).any()
    assert a.shape[:2] == (2, 8)


@pytest.mark.parametrize("variant", ["roll", "events", "roll_gru_residual"])
def test_low_temperature_is_greedy_and_matches_teacher_forcing(nets, variant):
    """Sampling at temperature → 0 gives the greedy continuation, and stepping the cells inside the loop agrees
    with the full-sequence forward pass on it (residuals and stacked layers included)."""
    cfg, net, fn = nets[variant]
    representation = cfg.data.representation
    greedy = call(fn, empty_seed(cfg, 1), num_steps=10, temperature=0.0, condition=1)
    np.testing.assert_array_equal(
        call(fn, empty_seed(cfg, 1), num_steps=10, temperature=1e-6, random_seed=9, condition=1), greedy)
    inputs = data.to_example(cfg.data, training=False)(tf.constant(greedy[0]), tf.constant(1))[0]
    logits = net({name: tensor[None] for name, tensor in inputs.items()}).numpy()[0]
    if representation == "roll":
        np.testing.assert_array_equal((logits > 0).astype(np.int32), greedy[0])
    else:
        logits[:, :data.NOTE_OFF] = -np.inf
        np.testing.assert_array_equal(logits.argmax(-1), greedy[0])


def test_top_k_limits_the_pitches_of_a_frame(nets):
    cfg, _, fn = nets["roll"]
    roll = call(fn, empty_seed(cfg), num_steps=6, temperature=50.0, top_k=2)  # near-uniform, so many would sound
    assert roll.sum(axis=-1).max() <= 2


@pytest.mark.parametrize("kwargs, message", [
    ({"num_steps": 33}, "num_steps must be <= 32"),
    ({"num_steps": -1}, "num_steps must be >= 0"),
    ({"temperature": -0.5}, "temperature must be finite and >= 0"),
    ({"temperature": float("nan")}, "temperature must be finite and >= 0"),
    ({"temperature": float("inf")}, "temperature must be finite and >= 0"),
    ({"top_k": -2}, "top_k must be >= 0"),
])
def test_bad_requests_are_invalid_arguments(nets, kwargs, message):
    cfg, _, fn = nets["roll"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(fn, empty_seed(cfg, 1), **kwargs)


@pytest.mark.parametrize("representation, seed, message", [
    ("roll", np.full((1, 2, 88), 2), "seed: values must be in"),
    ("roll", np.zeros((1, 17, 88)), "seed: at most 16 steps"),
    ("roll", np.zeros((5, 1, 88)), "seed: at most 4 seeds"),
    ("roll", np.zeros((0, 1, 88)), "at least one seed"),
    ("events", np.full((1, 3), data.START), "seed: values must be in"),
])
def test_bad_seeds_are_invalid_arguments(nets, representation, seed, message):
    _, _, fn = nets[representation]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(fn, seed.astype(np.int32))


@pytest.mark.parametrize("condition, message", [
    ([2, 0], "condition: classes are 0 = major, 1 = minor"),
    ([-1, 0], "condition: classes are"),
    ([0], "condition: one class per seed"),
    ([0, 1, 1], "condition: one class per seed"),
])
def test_bad_conditions_are_invalid_arguments(nets, condition, message):
    cfg, _, fn = nets["roll"]
    args = arguments(fn, empty_seed(cfg, 2))
    args[-1] = tf.constant(condition, tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(*args)


def test_the_condition_reaches_the_network_and_only_its_own_piece(nets):
    cfg, net, fn = nets["events"]
    inputs = {"inputs": tf.constant([[data.START, 9, 9]]), "lengths": tf.constant([3])}
    by_class = [net({**inputs, "condition": tf.constant([c])}).numpy() for c in (0, 1)]
    assert np.abs(by_class[0] - by_class[1]).max() > 1e-4
    seed = empty_seed(cfg, 2)
    np.testing.assert_array_equal(call(fn, seed, condition=[1, 1])[0], call(fn, seed, condition=[1, 0])[0])


def test_the_whole_batch_is_within_the_cost_budget(nets):
    cfg, _, fn = nets["roll"]
    assert call(fn, np.zeros((4, 16, 88), np.int32), num_steps=9).shape[0] == 4  # 4 × 25 steps: the budget of 100
    with pytest.raises(tf.errors.InvalidArgumentError, match="request too large: at most 100 steps"):
        call(fn, np.zeros((4, 16, 88), np.int32), num_steps=10)  # each seed and num_steps legal, the batch is not


def spectrum_peaks(audio, count=1):
    """The ``count`` strongest frequencies (Hz) of ``audio``, at least a semitone apart."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    frequencies = np.fft.rfftfreq(len(audio), 1 / synth.SAMPLE_RATE)
    peaks = []
    for i in np.argsort(spectrum)[::-1]:
        if all(abs(12 * np.log2(frequencies[i] / p)) > 1 for p in peaks) and frequencies[i] > 0:
            peaks.append(frequencies[i])
        if len(peaks) == count:
            return sorted(peaks)


@pytest.mark.parametrize("pitches", [[69], [60], [48, 67]])  # A4, middle C, a fifth (C3 + G4)
def test_synthesis_sounds_the_pitches_of_the_roll(pitches):
    roll = np.zeros((1, 3, 88), np.float32)
    roll[0, :, [p - 21 for p in pitches]] = 1
    audio = synth.synthesize(roll, None, 21, synth.samples_per_step(1, 120)).numpy()
    assert audio.shape == (1, 3 * 8000) and np.isfinite(audio).all() and 0.1 < np.abs(audio).max() <= 1
    expected = synth.pitch_hz(pitches)
    np.testing.assert_allclose(spectrum_peaks(audio[0], len(pitches)), expected, rtol=0.01)
    assert np.abs(audio[0, :40]).max() < np.abs(audio[0, 400:800]).max()  # the attack ramps up from silence


def test_a_repeated_note_is_struck_again_and_silence_is_silent():
    roll = np.zeros((1, 4, 88), np.float32)
    roll[0, :2, 48] = 1  # one note held two steps, one rest, one more step
    roll[0, 3, 48] = 1
    onsets = np.zeros_like(roll)
    onsets[0, 1, 48] = 1  # ... or struck again at step 1
    step = synth.samples_per_step(4, 120)
    held, struck = (synth.synthesize(roll, o, 21, step).numpy()[0] for o in (None, onsets))
    assert np.abs(held[2 * step:3 * step]).max() == 0  # the rest
    assert np.abs(struck[step:step + 20]).max() < 0.5 * np.abs(held[step:step + 20]).max()  # a new attack
    assert np.abs(held[3 * step:3 * step + 5]).max() < np.abs(held[3 * step + 300:3 * step + 400]).max()


def test_in_graph_events_decoding_matches_the_python_one(tfds_dir):
    cfg = tiny_cfg(tfds_dir, "events")
    tokens = np.array([data.START, 10, data.HOLD, data.HOLD, 10, data.NOTE_OFF, data.HOLD, 20, 30, data.HOLD])
    roll, onsets = synth.events_to_roll(tokens[None], cfg.data.num_pitches, data.FIRST_PITCH_TOKEN, data.HOLD)
    np.testing.assert_array_equal(roll.numpy()[0], data.events_to_roll(tokens, cfg.data))
    np.testing.assert_array_equal(onsets.numpy()[0], data.event_onsets(tokens, cfg.data))


def test_generate_audio_returns_the_synthesis_of_the_generated_roll_within_its_budget(nets):
    cfg, _, fn = nets["roll_audio"]
    step = synth.samples_per_step(cfg.data.steps_per_quarter, cfg.generate.tempo_bpm)
    out = fn(*arguments(fn, empty_seed(cfg, 2), num_steps=5, random_seed=3))
    assert out["audio"].shape == (2, 5 * step) and np.isfinite(out["audio"].numpy()).all()
    np.testing.assert_allclose(out["audio"].numpy(), synth.synthesize(out["roll"], None, 21, step).numpy(), atol=1e-6)
    np.testing.assert_array_equal(out["roll"].numpy(),
                                  call(nets["roll"][2], empty_seed(cfg, 2), num_steps=5, random_seed=3))
    small = dataclasses.replace(cfg, serving=dataclasses.replace(cfg.serving, max_request_audio_seconds=3.0))
    tight = model.make_generate_fn(nets["roll_audio"][1], small, audio=True)
    seconds = step / synth.SAMPLE_RATE
    fits = int(3.0 // seconds)
    assert tight(*arguments(tight, empty_seed(cfg, 1), num_steps=fits))["audio"].shape[1] == fits * step
    with pytest.raises(tf.errors.InvalidArgumentError, match="samples of audio .*max_request_audio_seconds"):
        tight(*arguments(tight, empty_seed(cfg, 2), num_steps=fits))  # each piece fits, the two do not


def test_a_trained_model_follows_its_condition(tfds_dir):
    """Trained on a corpus where class 0 pieces use E (C major's third) and class 1 pieces E-flat (C minor's),
    generation with each class plays that class' third: the conditioning is learnt, not only wired."""
    keras.utils.set_random_seed(3)
    cfg = tiny_cfg(tfds_dir, "events", model={"units": 24})
    rng = np.random.default_rng(3)
    c, e, e_flat, g = (data.FIRST_PITCH_TOKEN + p - cfg.data.low_pitch for p in (60, 64, 63, 67))
    examples = [(rng.choice([c, g, [e, e_flat][cls]], 24).astype(np.int32), cls) for cls in (0, 1) * 32]
    train_ds, _ = train.make_datasets(cfg, examples, examples[:2])
    net = model.build_model(cfg)
    net.compile(optimizer=keras.optimizers.Adam(0.02),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(train_ds, epochs=20, verbose=0)
    fn = model.make_generate_fn(net, cfg)
    for cls, own, other in ((0, e, e_flat), (1, e_flat, e)):
        tokens = call(fn, empty_seed(cfg, 4), num_steps=24, condition=cls)
        assert (tokens == own).sum() > 10 * max(1, (tokens == other).sum()), (cls, np.bincount(tokens.ravel()))


def test_midi_round_trip_of_a_corpus_piece(tfds_dir, tmp_path):
    import music21
    import pretty_midi

    cfg = tiny_cfg(tfds_dir, data={"steps_per_quarter": 4})
    _, notes = data.load_pieces(cfg.data, "train")[0]
    roll = data.to_roll(notes, cfg.data)
    path = data.write_midi(data.roll_notes(roll, cfg.data), tmp_path / "piece.mid", cfg.data, tempo_bpm=100)
    reread = pretty_midi.PrettyMIDI(str(path))
    steps_per_second = 100 / 60 * cfg.data.steps_per_quarter
    np.testing.assert_array_equal(
        (reread.get_piano_roll(fs=steps_per_second)[cfg.data.low_pitch:cfg.data.high_pitch + 1].T > 0)[:len(roll)],
        roll.astype(bool))
    np.testing.assert_array_equal(data.to_roll(data.score_notes(music21.converter.parse(path)), cfg.data), roll)


def test_end_to_end_train_evaluate_generate_export(tfds_dir, tmp_path):
    import music21
    import pretty_midi
    import soundfile

    cfg = tiny_cfg(tfds_dir, train={"run_dir": str(tmp_path / "run")}, export={"base_dir": str(tmp_path / "export")})
    run = zoo.run(train.RECIPE, cfg)
    report = run.report
    assert run.predict(None, count=2, condition="minor", num_steps=5)["roll"].shape == (2, 5, cfg.data.num_pitches)
    with pytest.raises(ValueError, match="unknown class"):
        run.predict(None, condition="dorian")
    assert 0 < report["metrics"]["nll"] < cfg.data.num_pitches  # better than nothing-learnt log 2 per pitch
    assert 0 <= report["samples"]["pitch_class_distance"] <= 1
    files = report["samples"]["files"]
    assert len(files) == 3 * 2 * cfg.generate.num_samples  # .mid, .wav and .png of each sample of both classes
    assert sum("/minor_" in f for f in files) == 3 * cfg.generate.num_samples
    per_class = report["samples"]["per_class"]
    assert set(per_class) == {"major", "minor"} == set(report["metrics"]["per_class"])
    assert set(per_class["minor"]["pitch_class_distance_to"]) == {"major", "minor"}
    assert per_class["minor"]["pitch_class_distance_to"]["minor"] == per_class["minor"]["pitch_class_distance"]
    step = synth.samples_per_step(cfg.data.steps_per_quarter, cfg.generate.tempo_bpm)
    for mid in (f for f in files if f.endswith(".mid")):
        assert pretty_midi.PrettyMIDI(mid).instruments and music21.converter.parse(mid).highestTime > 0
        assert mid.replace(".mid", ".png") in files and mid.replace(".mid", ".wav") in files
        audio, rate = soundfile.read(mid.replace(".mid", ".wav"))
        assert rate == synth.SAMPLE_RATE and np.isfinite(audio).all() and np.abs(audio).max() > 0
        if report["samples"]["audio_renderer"].startswith("additive"):
            steps = cfg.generate.num_steps + (cfg.generate.seed_steps if "seeded" in mid else 0)
            assert len(audio) == steps * step

    seed = np.zeros((2, 3, cfg.data.num_pitches), np.int32)
    seed[:, :, 39] = 1
    np.save(tmp_path / "seed.npy", seed)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["zoo"] = None  # the served model must not need the zoo
        try:
            import zoo
            raise SystemExit("zoo importable")
        except ImportError:
            pass
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({report['saved_model']!r}).signatures["serving_default"]
        out = serve(seed=tf.constant(np.load({str(tmp_path / 'seed.npy')!r})), num_steps=tf.constant(9),
                    temperature=tf.constant(0.8), top_k=tf.constant(5), random_seed=tf.constant(11, tf.int64),
                    condition=tf.constant([0, 1]))
        np.save({str(tmp_path / 'served.npy')!r}, out["roll"].numpy())
        sound = tf.saved_model.load({report['saved_model']!r}).signatures["generate_audio"](
            seed=tf.constant(np.load({str(tmp_path / 'seed.npy')!r})), num_steps=tf.constant(9),
            temperature=tf.constant(0.8), top_k=tf.constant(5), random_seed=tf.constant(11, tf.int64),
            condition=tf.constant([0, 1]))
        np.save({str(tmp_path / 'sound.npy')!r}, sound["audio"].numpy())
        assert (sound["roll"].numpy() == out["roll"].numpy()).all()
        try:
            serve(seed=tf.constant(np.load({str(tmp_path / 'seed.npy')!r})), num_steps=tf.constant(10**6),
                  temperature=tf.constant(1.0), top_k=tf.constant(0), random_seed=tf.constant(1, tf.int64),
                  condition=tf.constant([0, 1]))
        except tf.errors.InvalidArgumentError as e:
            print("REJECTED", "num_steps must be <=" in str(e))
    """)
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd="/tmp", capture_output=True, text=True,
                            env={"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REJECTED True" in result.stdout
    in_memory = train.generate(keras.models.load_model(report["model"]), cfg, seed, 9, 0.8, 5, 11, [0, 1])
    np.testing.assert_array_equal(np.load(tmp_path / "served.npy"), in_memory)
    sound = np.load(tmp_path / "sound.npy")  # served from the process without zoo
    assert sound.shape == (2, 9 * step) and np.isfinite(sound).all()
    np.testing.assert_allclose(sound, synth.synthesize(in_memory, None, cfg.data.low_pitch, step).numpy(), atol=1e-5)
    assert json.loads((tmp_path / "run" / "report.json").read_text())["saved_model"] == report["saved_model"]


def write_pieces(directory, count, rng, mode_of=lambda i: i % 2):
    """``count`` short two-voice pieces as MIDI (pretty_midi), alternately in C major and C minor, and one ABC tune."""
    import pretty_midi

    directory.mkdir(parents=True, exist_ok=True)
    scales = {0: [60, 62, 64, 65, 67, 69, 71, 72], 1: [60, 62, 63, 65, 67, 68, 70, 72]}
    for i in range(count):
        midi = pretty_midi.PrettyMIDI(initial_tempo=120)
        for voice, octave in enumerate((0, -12)):
            instrument = pretty_midi.Instrument(program=0)
            for step in range(16):
                pitch = int(rng.choice(scales[mode_of(i)][::2] if step % 4 == 0 else scales[mode_of(i)])) + octave
                instrument.notes.append(pretty_midi.Note(80, pitch, step * 0.5, step * 0.5 + 0.5))
            midi.instruments.append(instrument)
        midi.write(str(directory / f"piece{i:02d}.mid"))
    (directory / "tunes.abc").write_text("X:1\nT:one\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|\n\nX:2\nT:two\nM:4/4\nL:1/4\n"
                                         "K:C\ncBAG|FEDC|\n")


def test_a_directory_of_midi_and_abc_files_is_read_and_cached(tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    write_pieces(tmp_path / "music", 4, np.random.default_rng(0))
    cfg = tiny_cfg(tfds_dir, data={"source": "files", "train": str(tmp_path / "music"), "parts": 0,
                                   "tfds_data_dir": ""})
    pieces = data.read_music_dir(tmp_path / "music")
    assert [p[0] for p in pieces] == [f"piece0{i}.mid" for i in range(4)] + ["tunes.abc#1", "tunes.abc#2"]
    assert int(pieces[0][1][:, 3].max()) == 1  # two voices
    assert len(list((tmp_path / "cache" / "music_files").glob("*.npz"))) == 5  # one cache entry per file
    again = data.read_music_dir(tmp_path / "music")
    assert all(a[0] == b[0] and (a[1] == b[1]).all() for a, b in zip(pieces, again))
    split_of = {piece_id: files.hashed_split(piece_id, ("validation", "test")) for piece_id, _ in pieces}
    for split in data.SPLITS:  # pieces of a directory are split by their ids, whatever the directory's location
        if split in split_of.values():
            assert len(data.sequences(cfg.data, split)) == list(split_of.values()).count(split)
    (tmp_path / "music" / "broken.mid").write_bytes(b"MThd not really")
    with pytest.raises(ValueError, match=r"broken\.mid: cannot be read as music"):
        data.read_music_dir(tmp_path / "music")
    with pytest.raises(ValueError, match="holds no music files"):
        data.read_music_dir(tmp_path / "cache")
    four = tiny_cfg(tfds_dir, data={"source": "files", "train": str(tmp_path / "music"), "parts": 4})
    (tmp_path / "music" / "broken.mid").unlink()
    with pytest.raises(ValueError, match=r"has exactly data.parts=4 parts; --data.parts 0"):
        data.sequences(four.data, "train")


def test_trained_on_user_midi_files_its_condition_and_served_without_zoo(tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    write_pieces(tmp_path / "train", 12, rng)
    write_pieces(tmp_path / "test", 4, rng)
    cfg = tiny_cfg(tfds_dir, data={"source": "files", "train": str(tmp_path / "train"), "test": str(tmp_path / "test"),
                                   "validation": str(tmp_path / "test"), "parts": 0, "steps_per_quarter": 2},
                   train={"run_dir": str(tmp_path / "run")}, export={"base_dir": str(tmp_path / "export")})
    report = zoo.run(train.RECIPE, cfg).report
    assert report["metrics"]["pieces"] == 6 and set(report["metrics"]["per_class"]) == {"major", "minor"}
    served = subprocess.run([sys.executable, "-I", "-c", textwrap.dedent(f"""
        import sys
        sys.modules["zoo"] = None
        import tensorflow as tf
        out = tf.saved_model.load({report['saved_model']!r}).signatures["serving_default"](
            seed=tf.zeros([2, 0, 88], tf.int32), num_steps=tf.constant(5), temperature=tf.constant(1.0),
            top_k=tf.constant(0), random_seed=tf.constant(1, tf.int64), condition=tf.constant([0, 1]))
        print(out["roll"].shape)
    """)], cwd="/tmp", capture_output=True, text=True, env={"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.strip().splitlines()[-1] == "(2, 5, 88)"
