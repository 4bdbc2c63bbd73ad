"""The music recipe: next-step training on pieces, held-out frame NLL, generated samples as MIDI with their
statistics beside the held-out pieces'."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.recipe import Prepared, Recipe
from zoo.recipes.music import data, model, synth
from zoo.recipes.music.config import MusicConfig


def make_datasets(cfg: MusicConfig, train_examples: list, val_examples: list):
    """Length-bucketed train (transposed at random) and validation datasets of (inputs, targets, weights) from
    ``(sequence, class)`` pairs."""
    boundaries = bucket_boundaries([len(s) for s, _ in train_examples], cfg.data.num_buckets)
    length_fn = lambda inputs, *_: inputs["lengths"]  # noqa: E731
    train_ds = data.dataset(train_examples, cfg.data).cache()
    train_ds = train_ds.shuffle(len(train_examples), seed=cfg.train.seed, reshuffle_each_iteration=True)
    train_ds = train_ds.map(data.to_example(cfg.data, training=True), num_parallel_calls=tf.data.AUTOTUNE)
    val_ds = data.dataset(val_examples, cfg.data).map(data.to_example(cfg.data, training=False)).cache()
    train_ds = bucketed_batches(train_ds, length_fn, cfg.train.batch_size, boundaries)
    val_ds = bucketed_batches(val_ds, length_fn, cfg.train.batch_size, boundaries)
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds.prefetch(tf.data.AUTOTUNE)


def step_nll(net: keras.Model, cfg: MusicConfig, examples: list, batch_size: int = 32):
    """Per-step NLL (nats) of every ``(sequence, class)`` pair, each a `(steps,)` array; step 0 is the prediction
    from the start step."""
    to_example = data.to_example(cfg.data, training=False)
    order = np.argsort([len(s) for s, _ in examples])  # batches of similar length pad little
    result = [None] * len(examples)
    for i in range(0, len(order), batch_size):
        chosen = [examples[j] for j in order[i:i + batch_size]]
        batch = [to_example(tf.constant(seq), tf.constant(cls, tf.int32)) for seq, cls in chosen]
        steps = max(len(seq) for seq, _ in chosen)
        pad = lambda t: tf.pad(t, [[0, steps - tf.shape(t)[0]]] + [[0, 0]] * (t.shape.rank - 1))  # noqa: E731
        inputs = {"inputs": tf.stack([pad(b[0]["inputs"]) for b in batch]),
                  "lengths": tf.stack([b[0]["lengths"] for b in batch])}
        if cfg.data.class_names:
            inputs["condition"] = tf.stack([b[0]["condition"] for b in batch])
        targets = tf.stack([pad(b[1]) for b in batch])
        logits = net(inputs, training=False)
        if cfg.data.representation == "roll":
            nll = model.FrameNLL().call(targets, logits)
        else:
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        for row, j in enumerate(order[i:i + batch_size]):
            result[j] = nll[row, :len(examples[j][0])].numpy()
    return result


def evaluate(net: keras.Model, cfg: MusicConfig, examples: list, name: str = "test") -> dict:
    """Held-out NLL in nats per step, averaged over all steps of all pieces (as Bai et al.'s evaluation), overall
    and per class of ``data.condition``.

    ``nll`` leaves out each piece's first step, like the published tables (they predict frames 2..T from the
    frames before); ``nll_with_first_step`` includes the prediction from the start step.
    """
    per_step = step_nll(net, cfg, examples)

    def summary(rows):
        return {"pieces": len(rows), "steps": int(sum(len(s) for s in rows)),
                "nll": float(np.concatenate([s[1:] for s in rows]).mean()) if rows else float("nan"),
                "nll_with_first_step": float(np.concatenate(rows).mean()) if rows else float("nan")}

    metrics = {"split": name, **summary(per_step)}
    if cfg.data.class_names:
        metrics["per_class"] = {class_name: summary([nll for nll, (_, c) in zip(per_step, examples) if c == index])
                                for index, class_name in enumerate(cfg.data.class_names)}
    return metrics


def generate(net: keras.Model, cfg: MusicConfig, seed: np.ndarray, num_steps: int, temperature: float,
             top_k: int, random_seed: int, condition=None) -> np.ndarray:
    """The served sampler, run in this process: the continuation of each seed (see ``model.make_generate_fn``);
    ``condition`` is the class of each seed (one integer for all; class 0 when None) where the model has one."""
    fn = model.make_generate_fn(net, cfg)
    args = [tf.constant(seed, tf.int32), tf.constant(num_steps, tf.int32), tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32), tf.constant(random_seed, tf.int64)]
    if cfg.data.class_names:
        classes = np.asarray(0 if condition is None else condition, np.int32)
        args.append(tf.constant(np.broadcast_to(classes, [len(seed)])))
    out = fn(*args)
    return next(iter(out.values())).numpy()


def as_roll(sequence: np.ndarray, cfg: MusicConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """A roll and its note onsets (None for a plain roll) of either representation."""
    if cfg.data.representation == "roll":
        return sequence.astype(np.uint8), None
    return data.events_to_roll(sequence, cfg.data), data.event_onsets(sequence, cfg.data)


def music_stats(rolls: list[tuple[np.ndarray, np.ndarray | None]], cfg: MusicConfig) -> dict:
    """Pitch-class histogram (over sounding steps), polyphony (pitches per non-silent step), note density (notes
    started per step) and the fraction of silent steps."""
    histogram, sounding, silent, notes, steps = np.zeros(12), 0, 0, 0, 0
    for roll, onsets in rolls:
        pitch_steps = roll.sum(axis=0)
        for p, n in enumerate(pitch_steps):
            histogram[(cfg.data.low_pitch + p) % 12] += n
        active = roll.sum(axis=1)
        sounding += active.sum()
        silent += int((active == 0).sum())
        notes += len(data.roll_notes(roll, cfg.data, onsets))
        steps += len(roll)
    non_silent = steps - silent
    return {
        "pitch_class_histogram": (histogram / max(histogram.sum(), 1)).round(4).tolist(),
        "polyphony": float(sounding / max(non_silent, 1)),
        "note_density": float(notes / max(steps, 1)),
        "silent_fraction": float(silent / max(steps, 1)),
    }


def compare_stats(generated: dict, reference: dict) -> dict:
    """Total-variation distance (0 = same, 1 = disjoint) between pitch-class histograms, and the other statistics
    side by side."""
    distance = 0.5 * np.abs(np.array(generated["pitch_class_histogram"]) -
                            np.array(reference["pitch_class_histogram"])).sum()
    return {"pitch_class_distance": float(distance), "generated": generated, "held_out": reference}


def plot_roll(roll: np.ndarray, cfg: MusicConfig, path: Path, title: str, seed_steps: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(roll) / 12), 4))
    ax.imshow(roll.T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, len(roll), cfg.data.low_pitch - 0.5, cfg.data.high_pitch + 0.5))
    if seed_steps:
        ax.axvline(seed_steps, color="tab:red", linewidth=1, label="end of seed")
        ax.legend(loc="upper right")
    ax.set_xlabel(f"step (1/{cfg.data.steps_per_quarter} quarter note)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def general_midi_renderer():
    """A function rendering a ``pretty_midi.PrettyMIDI`` to 16 kHz audio with FluidSynth and a General-MIDI
    soundfont (Debian: ``fluidsynth`` / ``fluid-soundfont-gm`` and the ``pyfluidsynth`` wheel), or None."""
    sf2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    try:
        import fluidsynth  # noqa: F401  (pretty_midi's fluidsynth() needs it)
    except (ImportError, OSError):
        return None
    if not sf2.is_file():
        return None
    return lambda midi: midi.fluidsynth(fs=synth.SAMPLE_RATE, sf2_path=str(sf2))


def write_wav(roll: np.ndarray, onsets: np.ndarray | None, midi_path: Path, cfg: MusicConfig, render) -> Path:
    """The piece as a 16 kHz ``.wav`` beside its MIDI file: rendered by ``render`` (FluidSynth) if given, else by
    the served graph's additive synthesis."""
    import soundfile

    if render is not None:
        import pretty_midi

        audio = render(pretty_midi.PrettyMIDI(str(midi_path)))
        audio = audio / max(1.0, float(np.abs(audio).max()))
    else:
        step_samples = synth.samples_per_step(cfg.data.steps_per_quarter, cfg.generate.tempo_bpm)
        audio = synth.synthesize(roll[None].astype(np.float32), None if onsets is None else onsets[None],
                                 cfg.data.low_pitch, step_samples)[0].numpy()
    path = midi_path.with_suffix(".wav")
    soundfile.write(path, audio.astype(np.float32), synth.SAMPLE_RATE)
    return path


def write_samples(net: keras.Model, cfg: MusicConfig, held_out: list, out_dir: Path) -> dict:
    """Generates ``generate.num_samples`` pieces per class of ``data.condition`` (half from nothing, half
    continuing the openings of ``held_out`` pieces of that class), writes each as ``.mid``, ``.wav`` and ``.png``,
    and compares their statistics with the held-out pieces', overall and per class.

    Per class, ``pitch_class_distance_to`` holds the distance of the class's samples to the held-out pieces of
    every class: conditioning works where each class's samples are nearest to their own class.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    g = cfg.generate
    names = cfg.data.class_names or (None,)
    render = general_midi_renderer()
    empty = np.zeros((0,) + held_out[0][0].shape[1:], np.int32)
    generated, files = {}, []
    for index, class_name in enumerate(names):
        pieces = [s for s, c in held_out if class_name is None or c == index]
        seeded = [s for s in pieces if len(s) >= g.seed_steps][:g.num_samples // 2]
        requests = [("free", np.stack([empty] * (g.num_samples - len(seeded))))]
        if seeded:
            requests.append(("seeded", np.stack([s[:g.seed_steps] for s in seeded]).astype(np.int32)))
        generated[class_name] = []
        for kind, seed in requests:
            continuation = generate(net, cfg, seed, g.num_steps, g.temperature, g.top_k, g.random_seed, index)
            for i, (opening, cont) in enumerate(zip(seed, continuation)):
                generated[class_name].append(as_roll(cont, cfg))
                roll, onsets = as_roll(np.concatenate([opening, cont]), cfg)
                stem = out_dir / "_".join(([class_name] if class_name else []) + [kind, str(i)])
                midi = data.write_midi(data.roll_notes(roll, cfg.data, onsets), stem.with_suffix(".mid"), cfg.data,
                                       g.tempo_bpm)
                wav = write_wav(roll, onsets, midi, cfg, render)
                title = " ".join(([class_name] if class_name else []) + [kind, "sample", str(i)])
                plot_roll(roll, cfg, stem.with_suffix(".png"), f"{title} (T={g.temperature}, top-k={g.top_k})",
                          seed_steps=len(opening))
                files.extend([str(midi), str(wav), str(stem.with_suffix(".png"))])
    everything = [r for rolls in generated.values() for r in rolls]
    stats = compare_stats(music_stats(everything, cfg), music_stats([as_roll(s, cfg) for s, _ in held_out], cfg))
    renderer = "FluidSynth (General MIDI)" if render else "additive synthesis (the served graph's)"
    result = {"files": files, "audio_renderer": renderer, **stats}
    if cfg.data.class_names:
        reference = {name: music_stats([as_roll(s, cfg) for s, c in held_out if c == index], cfg)
                     for index, name in enumerate(names)}
        result["per_class"] = {}
        for name in names:
            own = compare_stats(music_stats(generated[name], cfg), reference[name])
            own["pitch_class_distance_to"] = {other: compare_stats(own["generated"], reference[other])[
                "pitch_class_distance"] for other in names}
            result["per_class"][name] = own
    return result


class MusicRecipe(Recipe):
    """Music (one → sequence): next-step models of Bach chorales (piano roll) and folk melodies (note events) that
    generate MIDI."""

    name = "music"
    config_class = MusicConfig

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        train_examples, val_examples = data.sequences_of(splits["train"]), data.sequences_of(splits["validation"])
        train_ds, val_ds = make_datasets(cfg, train_examples, val_examples)
        facts = {"training_sequences": len(train_examples), "validation_sequences": len(val_examples)}
        if cfg.data.class_names:
            facts["training_sequences_per_class"] = {name: sum(c == index for _, c in train_examples)
                                                     for index, name in enumerate(cfg.data.class_names)}
        return Prepared(train_ds, val_ds, facts=facts)

    def build(self, cfg, prepared, member):
        net = model.build_model(cfg)
        model.compile_model(net, cfg)
        return net

    def evaluate(self, cfg, net, splits, prepared, run_dir):
        held_out = data.sequences_of(splits["test"])  # (sequence, class) pairs
        return {"metrics": evaluate(net, cfg, held_out), "samples": write_samples(net, cfg, held_out,
                                                                                   run_dir / "samples")}

    def summary(self, report):
        metrics, samples = report["metrics"], report["samples"]

        def stats(s):
            return (f"pitch-class distance to held-out {s['pitch_class_distance']:.3f}, polyphony "
                    f"{s['generated']['polyphony']:.2f} vs {s['held_out']['polyphony']:.2f}, note density "
                    f"{s['generated']['note_density']:.2f} vs {s['held_out']['note_density']:.2f}")

        lines = [f"Held-out test pieces: {metrics['pieces']}, {metrics['steps']} steps; NLL {metrics['nll']:.3f} "
                 f"nats/step ({metrics['nll_with_first_step']:.3f} with the first step)",
                 f"samples: {len(samples['files'])} files (.mid, .wav, .png) in {Path(samples['files'][0]).parent}",
                 f"all samples: {stats(samples)}"]
        for name, s in samples.get("per_class", {}).items():
            to = ", ".join(f"{other} {d:.3f}" for other, d in s["pitch_class_distance_to"].items())
            lines.append(f"class {name} (NLL {metrics['per_class'][name]['nll']:.3f}): {stats(s)}; pitch-class "
                         f"distance to the held-out pieces of each class: {to}")
        return "\n".join(lines)

    def endpoints(self, cfg, net):
        return {"serving_default": model.make_generate_fn(net, cfg),
                "generate_audio": model.make_generate_fn(net, cfg, audio=True)}

    def request(self, cfg, seeds=None, num_steps=None, temperature=None, top_k=None, random_seed=None, count=1,
                condition=0):
        """``seeds``: roll `(batch, steps, pitches)` 0/1 or event ids `(batch, steps)` (None: ``count`` pieces
        from nothing); the sampling options default to the ``generate`` settings. ``condition``: the class of
        every piece, as an integer or a name of ``data.class_names`` (e.g. "minor"), or one per seed."""
        g = cfg.generate
        if seeds is None:
            shape = (count, 0, cfg.data.num_pitches) if cfg.data.representation == "roll" else (count, 0)
            seeds = np.zeros(shape, np.int32)
        seeds = np.asarray(seeds, np.int32)
        request = {"seed": tf.constant(seeds),
                   "num_steps": tf.constant(g.num_steps if num_steps is None else num_steps, tf.int32),
                   "temperature": tf.constant(g.temperature if temperature is None else temperature, tf.float32),
                   "top_k": tf.constant(g.top_k if top_k is None else top_k, tf.int32),
                   "random_seed": tf.constant(g.random_seed if random_seed is None else random_seed, tf.int64)}
        if cfg.data.class_names:
            names = list(cfg.data.class_names)
            classes = [names.index(c) if isinstance(c, str) and c in names else c for c in np.atleast_1d(condition)]
            if any(isinstance(c, str) for c in classes):
                raise ValueError(f"condition: unknown class in {condition!r}; the classes are {names}")
            request["condition"] = tf.constant(np.broadcast_to(np.asarray(classes, np.int32), [len(seeds)]))
        return request

    def example_inputs(self, cfg):
        """One two-step seed: the middle pitch held (roll), or two holds (events)."""
        if cfg.data.representation == "roll":
            seed = np.zeros((1, 2, cfg.data.num_pitches), np.int32)
            seed[:, :, cfg.data.num_pitches // 2] = 1
            return seed
        return np.full((1, 2), data.HOLD, np.int32)


RECIPE = MusicRecipe()
