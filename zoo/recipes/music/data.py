"""Music data: the corpora inside the ``music21`` wheel, parsed once into a TFDS dataset of notes, then quantised.

Sources (see ``music21/corpus/license.txt``: the works are public domain or licensed to music21 for distribution;
some repertories are non-commercial only, so only these two are offered):

- ``jsb``: every Bach chorale encoding in ``music21/corpus/bach`` (MusicXML and Humdrum, 413 files; harmonisations that
  share a melody are distinct pieces). All parts are kept; most chorales have the four SATB parts.
- ``folk``: O'Neill's *Music of Ireland* (1850) in ``music21/corpus/oneills1850``, ABC transcriptions by Norbert Paap
  and John Chambers. (The ``nottingham-dataset`` folder of music21 10 holds only a two-tune stub, so the
  Nottingham benchmark cannot be rebuilt offline from it.)

Parsing with music21 is slow (~0.2 s a chorale), so the parsed notes — ``(pitch, start, end, part)`` with times in
quarter notes — are cached by TFDS under ``<zoo cache>/tfds/music_corpus/<source>``; the quantisation below is
cheap and runs on every load, so changing the grid never re-parses.

Grid (``data.steps_per_quarter`` = spq, default 1 = the quarter notes of the JSB benchmark of Boulanger-Lewandowski
et al. 2012): step ``t`` is the instant ``t / spq`` quarter notes into the piece, and holds every note sounding at that
instant (``start <= t / spq < end``), as the benchmark samples its rolls. A note between two instants (a passing
eighth on a quarter grid) is dropped, as are grace notes and notes outside ``[low_pitch, high_pitch]``; tied notes
are merged and repeats are not expanded.

- ``roll``: a ``(steps, pitches)`` 0/1 matrix; the model reads step ``t - 1`` (or a start step) and predicts step
  ``t``, one independent sigmoid per pitch.
- ``events``: the top part as one token per step, as in Magenta's MelodyRNN: ``NOTE_OFF``, ``HOLD`` (no new event:
  the current note or rest goes on) or ``ON(pitch)``; the model predicts a softmax over the next token.

Classes (``data.condition``): ``mode`` gives each piece the mode of its Krumhansl-Kessler key estimate, 0 = major,
1 = minor; the model is conditioned on it and generation takes it as an integer.

``files``: the user's directories of music files (MIDI, MusicXML, ABC, Humdrum), read with music21 (``parse_file``).

Splits are by piece: pieces are ranked by the CRC32 of their id; the last 10 % form ``test``, the 10 % before them
``validation`` (at least one piece each), the rest ``train``. So a piece never straddles two splits and the split does
not depend on the machine, the parse order or ``max_pieces`` beyond which pieces are included.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import fetch, files
from zoo.data.builder import Builder
from zoo.recipes.music.config import DataConfig

SPLITS = ("train", "validation", "test")
# Event vocabulary: padding and the start token are never targets of generation.
PAD, START, NOTE_OFF, HOLD = 0, 1, 2, 3
FIRST_PITCH_TOKEN = 4
_CORPUS_DIRS = {"jsb": ("bach", (".mxl", ".xml", ".krn")), "folk": ("oneills1850", (".abc",))}


def vocab_size(cfg: DataConfig) -> int:
    return FIRST_PITCH_TOKEN + cfg.num_pitches


def corpus_files(source: str) -> list[Path]:
    """The corpus files of ``source`` inside the installed music21 wheel, in a fixed order."""
    import music21

    folder, extensions = _CORPUS_DIRS[source]
    root = Path(music21.__file__).parent / "corpus" / folder
    return sorted(p for p in root.iterdir() if p.suffix in extensions)


def score_notes(score) -> np.ndarray:
    """`(notes, 4)` float32 rows ``(midi pitch, start, end, part index)`` of a music21 score, times in quarters."""
    from music21 import harmony

    rows = []
    for part_index, part in enumerate(score.parts or [score]):
        for note in part.stripTies().flatten().notes:
            length = float(note.duration.quarterLength)
            if isinstance(note, harmony.Harmony) or length <= 0:  # chord symbols, grace notes
                continue
            start = float(note.offset)
            rows.extend((p.midi, start, start + length, part_index) for p in note.pitches)
    return np.array(rows, np.float32).reshape(-1, 4)


def parse_corpus(source: str, max_pieces: int = 0):
    """Yields ``(piece id, notes)`` for the pieces of ``source`` with a progress bar; ABC files hold many tunes."""
    import music21
    from tqdm import tqdm

    files = corpus_files(source)
    if max_pieces and source == "jsb":
        files = files[:max_pieces]
    count = 0
    for path in tqdm(files, desc=f"parsing {source} with music21", unit="file"):
        parsed = music21.converter.parse(path)
        scores = parsed.scores if isinstance(parsed, music21.stream.Opus) else [parsed]
        for index, score in enumerate(scores):
            piece_id = path.stem if len(scores) == 1 else f"{path.stem}/{score.metadata.number or index}"
            notes = score_notes(score)
            if len(notes):
                yield piece_id, notes
                count += 1
            if max_pieces and count >= max_pieces:
                return


def assign_splits(piece_ids: list[str]) -> dict[str, str]:
    """Piece id → split: ranked by CRC32, last 10 % test, 10 % before them validation (≥ 1 each), rest train."""
    ranked = sorted(piece_ids, key=lambda i: (zlib.crc32(i.encode()), i))
    n = len(ranked)
    n_held = max(1, round(0.1 * n)) if n >= 3 else 0
    splits = ["train"] * (n - 2 * n_held) + ["validation"] * n_held + ["test"] * n_held
    return dict(zip(ranked, splits))


class MusicCorpusConfig(tfds.core.BuilderConfig):
    """Which corpus, and how many of its pieces (``max_pieces`` > 0 caches a small subset under its own name)."""

    def __init__(self, *, source: str, max_pieces: int = 0):
        name = source if not max_pieces else f"{source}_first{max_pieces}"
        super().__init__(name=name, description=f"music21 corpus '{source}'")
        self.source, self.max_pieces = source, max_pieces


class MusicCorpus(Builder):
    """TFDS builder holding the parsed notes of a music21 corpus, split by piece."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Notes (pitch, start, end, part) in quarter notes; CRC32-ranked 80/10/10 piece split."}
    BUILDER_CONFIGS = [MusicCorpusConfig(source="jsb"), MusicCorpusConfig(source="folk")]

    FEATURES = {
        "id": tfds.features.Text(),
        "notes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
    }
    HOMEPAGE = "https://github.com/cuthbertLab/music21"

    def _split_generators(self, dl_manager):
        pieces = dict(parse_corpus(self.builder_config.source, self.builder_config.max_pieces))
        split_of = assign_splits(list(pieces))
        return {split: self._generate_examples(pieces, split_of, split) for split in SPLITS}

    def _generate_examples(self, pieces, split_of, split):
        for piece_id, notes in pieces.items():
            if split_of[piece_id] == split:
                yield piece_id, {"id": piece_id, "notes": notes}


MUSIC_SUFFIXES = (".mid", ".midi", ".mxl", ".musicxml", ".xml", ".abc", ".krn")


def parse_file(path: Path) -> list[tuple[str, np.ndarray]]:
    """``(suffix, notes)`` of every piece in a music file: suffix "" for a single piece, ``#<number>`` for each tune
    of an ABC file that holds many; parsed with music21 and cached by the file's SHA-256 under ``<zoo
    cache>/music_files`` (an edited file is parsed again)."""
    import music21

    cache = fetch.cache_dir() / "music_files" / f"{fetch.sha256_of(path)}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return [(str(suffix), stored[f"notes{i}"]) for i, suffix in enumerate(stored["ids"])]
    try:
        parsed = music21.converter.parse(path)
    except Exception as error:  # music21 raises many types (ConverterException, MidiException, ...)
        raise files.FileFormatError(path, None, f"cannot be read as music ({type(error).__name__}: {error})") \
            from None
    scores = parsed.scores if isinstance(parsed, music21.stream.Opus) else [parsed]
    pieces = {("" if len(scores) == 1 else f"#{score.metadata.number or i}"): score_notes(score)
              for i, score in enumerate(scores)}
    pieces = {suffix: notes for suffix, notes in pieces.items() if len(notes)}
    if not pieces:
        raise files.FileFormatError(path, None, "holds no notes")
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, ids=np.array(list(pieces)), **{f"notes{i}": n for i, n in enumerate(pieces.values())})
    partial.replace(cache)  # a parse killed mid-write leaves no cache entry
    return list(pieces.items())


def read_music_dir(directory: Path) -> list[tuple[str, np.ndarray]]:
    """``(piece id, notes)`` of every piece of every music file under ``directory`` (recursively, in name order);
    the id is the file's path relative to ``directory`` (plus ``#<tune>``), so the hashed split does not depend on
    where the directory lives."""
    if not directory.is_dir():
        raise files.FileFormatError(directory, None, "is not a directory of music files")
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in MUSIC_SUFFIXES)
    if not paths:
        raise files.FileFormatError(directory, None, f"holds no music files ({', '.join(MUSIC_SUFFIXES)})")
    from tqdm import tqdm

    return [(f"{path.relative_to(directory)}{suffix}", notes)
            for path in tqdm(paths, desc=f"reading {directory}", unit="file") for suffix, notes in parse_file(path)]


def load_pieces(cfg: DataConfig, split: str) -> list[tuple[str, np.ndarray]]:
    """``(piece id, notes)`` of one split, parsing and caching the corpus on first use."""
    if cfg.source == "files":
        pieces = files.split_examples(cfg, read_music_dir, lambda piece: piece[0], split)
        files.report_split(cfg, split, f"{len(pieces)} pieces")
        return pieces
    # The full corpora are declared configs (TFDS refuses an instance of the same name); subsets are ad hoc.
    config = MusicCorpusConfig(source=cfg.source, max_pieces=cfg.max_pieces) if cfg.max_pieces else cfg.source
    builder = MusicCorpus(config=config, data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
    builder.download_and_prepare()
    if builder.info.splits[split].num_examples == 0:
        return []
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return sorted((ex["id"].decode(), ex["notes"]) for ex in ds.as_numpy_iterator())


# Krumhansl-Kessler key profiles (C major, C minor), for the key estimate behind ``data.key = "c"``.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(notes: np.ndarray) -> tuple[int, int]:
    """``(tonic pitch class, mode)`` (mode 0 = major, 1 = minor) of the best-correlating Krumhansl-Kessler key
    profile for the duration-weighted pitch classes."""
    histogram = np.bincount(notes[:, 0].astype(np.int64) % 12, weights=notes[:, 2] - notes[:, 1], minlength=12)
    scores = [np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
              for profile in (_MAJOR_PROFILE, _MINOR_PROFILE) for tonic in range(12)]
    best = int(np.nanargmax(scores))
    return best % 12, best // 12


def to_c(notes: np.ndarray) -> np.ndarray:
    """Transposes a piece to C major / C minor by the smallest shift (-6..+5 semitones), as Allan & Williams (2005)
    did for the JSB benchmark data."""
    shift = -((estimate_key(notes)[0] + 6) % 12 - 6)
    return np.concatenate([notes[:, :1] + shift, notes[:, 1:]], axis=1)


def _grid(notes: np.ndarray, cfg: DataConfig):
    """Notes in range as integer ``(pitch index, first step, end step)`` arrays on the grid."""
    # Step t is the instant t / spq; a note covers the instants in [start, end). The tolerance absorbs float error.
    start = np.ceil(notes[:, 1] * cfg.steps_per_quarter - 1e-4).astype(np.int64)
    end = np.ceil(notes[:, 2] * cfg.steps_per_quarter - 1e-4).astype(np.int64)
    keep = (notes[:, 0] >= cfg.low_pitch) & (notes[:, 0] <= cfg.high_pitch) & (end > start)
    return notes[keep, 0].astype(np.int64) - cfg.low_pitch, start[keep], end[keep], notes[keep, 3].astype(np.int64)


def to_roll(notes: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """`(steps, pitches)` uint8 piano roll of all parts."""
    pitch, start, end, _ = _grid(notes, cfg)
    roll = np.zeros((int(end.max(initial=0)), cfg.num_pitches), np.uint8)
    for p, s, e in zip(pitch, start, end):
        roll[s:e, p] = 1
    return roll


def to_events(notes: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """`(steps,)` int32 event tokens of the top part (part 0; the highest pitch of a chord). A note that starts
    while another sounds cuts it short, so the melody stays monophonic."""
    pitch, start, end, part = _grid(notes, cfg)
    keep = part == 0
    pitch, start, end = pitch[keep], start[keep], end[keep]
    order = np.lexsort((-pitch, start))  # by onset, highest pitch first
    tokens = np.full(int(end.max(initial=0)) + 1, HOLD, np.int32)
    sounding_until = -1
    for i in order:
        if sounding_until > start[i] and tokens[start[i]] >= FIRST_PITCH_TOKEN:
            continue  # a lower note of the same chord
        tokens[start[i]] = FIRST_PITCH_TOKEN + pitch[i]
        tokens[start[i] + 1:end[i]] = HOLD
        if end[i] < len(tokens):
            tokens[end[i]] = NOTE_OFF
        sounding_until = end[i]
    return tokens


def events_to_roll(tokens: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Inverse of ``to_events`` onto a roll (one pitch at a time)."""
    roll = np.zeros((len(tokens), cfg.num_pitches), np.uint8)
    current = None
    for t, token in enumerate(tokens):
        if token >= FIRST_PITCH_TOKEN:
            current = token - FIRST_PITCH_TOKEN
        elif token in (NOTE_OFF, PAD, START):
            current = None
        if current is not None:
            roll[t, current] = 1
    return roll


def roll_notes(roll: np.ndarray, cfg: DataConfig, onsets: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """``(midi pitch, first step, end step)`` of a roll: a run of active steps is one note, unless ``onsets``
    (same shape, 1 where a note starts) splits it. A plain roll cannot tell a repeated note from a held one."""
    notes = []
    padded = np.pad(roll.astype(bool), ((1, 1), (0, 0)))
    for p in range(roll.shape[1]):
        active = padded[:, p]
        starts = np.flatnonzero(active[1:] & ~active[:-1])
        ends = np.flatnonzero(~active[1:] & active[:-1])
        for s, e in zip(starts, ends):
            cuts = [s] + ([t for t in range(s + 1, e) if onsets[t, p]] if onsets is not None else []) + [e]
            notes.extend((cfg.low_pitch + p, a, b) for a, b in zip(cuts[:-1], cuts[1:]))
    return sorted(notes, key=lambda n: (n[1], n[0]))


def event_onsets(tokens: np.ndarray, cfg: DataConfig) -> np.ndarray:
    onsets = np.zeros((len(tokens), cfg.num_pitches), np.uint8)
    t = np.flatnonzero(tokens >= FIRST_PITCH_TOKEN)
    onsets[t, tokens[t] - FIRST_PITCH_TOKEN] = 1
    return onsets


def encode(notes: np.ndarray, cfg: DataConfig) -> np.ndarray:
    if cfg.key == "c":
        notes = to_c(notes)
    return to_roll(notes, cfg) if cfg.representation == "roll" else to_events(notes, cfg)


def piece_class(notes: np.ndarray, cfg: DataConfig) -> int:
    """The class integer of a piece under ``data.condition`` (0 when there is no condition)."""
    return estimate_key(notes)[1] if cfg.condition == "mode" else 0


def chunks(sequence: np.ndarray, max_steps: int) -> list[np.ndarray]:
    """Consecutive pieces of at most ``max_steps`` steps (dropping a last piece too short to predict anything)."""
    return [sequence[i:i + max_steps] for i in range(0, len(sequence), max_steps) if len(sequence) - i >= 2]


def transpose(sequence: tf.Tensor, cfg: DataConfig, max_shift: int) -> tf.Tensor:
    """Shifts a roll `(steps, pitches)` or event tokens `(steps,)` by a random number of semitones in
    ``[-max_shift, max_shift]``, narrowed so that no note leaves the pitch range."""
    if cfg.representation == "roll":
        used = tf.where(tf.reduce_any(sequence > 0, axis=0))[:, 0]
    else:
        used = tf.cast(tf.boolean_mask(sequence, sequence >= FIRST_PITCH_TOKEN) - FIRST_PITCH_TOKEN, tf.int64)
    low = tf.maximum(-max_shift, -tf.cast(tf.reduce_min(tf.concat([used, [cfg.num_pitches]], 0)), tf.int32))
    high = tf.minimum(max_shift, cfg.num_pitches - 1 - tf.cast(tf.reduce_max(tf.concat([used, [-1]], 0)), tf.int32))
    high = tf.maximum(low, high)
    shift = tf.random.uniform([], low, high + 1, dtype=tf.int32)
    if cfg.representation == "roll":
        return tf.roll(sequence, shift, axis=1)  # nothing wraps: the shift keeps every note in range
    return tf.where(sequence >= FIRST_PITCH_TOKEN, sequence + shift, sequence)


def to_example(cfg: DataConfig, training: bool):
    """Maps a roll or token sequence and its class to ``({"inputs", "lengths"[, "condition"]}, targets, per-step
    weights)`` for next-step prediction: the inputs are a start step followed by the sequence without its last
    step; ``condition`` (the class integer) is there when ``data.condition`` is not none."""

    def fn(sequence, condition):
        if training and cfg.transpose:
            sequence = transpose(sequence, cfg, cfg.transpose)
        steps = tf.shape(sequence)[0]
        if cfg.representation == "roll":
            roll = tf.cast(sequence, tf.float32)
            inputs = tf.concat([tf.one_hot([cfg.num_pitches], cfg.num_pitches + 1),
                                tf.pad(roll[:-1], [[0, 0], [0, 1]])], axis=0)
            targets = roll
        else:
            inputs = tf.concat([[START], sequence[:-1]], axis=0)
            targets = sequence
        features = {"inputs": inputs, "lengths": steps}
        if cfg.class_names:
            features["condition"] = condition
        return features, targets, tf.ones([steps], tf.float32)

    return fn


def sequences(cfg: DataConfig, split: str) -> list[tuple[np.ndarray, int]]:
    """``(encoded sequence, class integer)`` of the pieces of a split, long pieces cut into ``max_steps`` chunks
    (training) or whole (evaluation); the class is estimated from the piece as written, before ``data.key``."""
    pieces = [notes for _, notes in load_pieces(cfg, split)]
    if cfg.parts:
        kept = [notes for notes in pieces if int(notes[:, 3].max()) + 1 == cfg.parts]
        if pieces and not kept and cfg.source == "files":
            raise files.FileFormatError(files.path_of(cfg, split) or cfg.train, None, (
                f"none of the {len(pieces)} {split} pieces has exactly data.parts={cfg.parts} parts; "
                f"--data.parts 0 keeps them all"))
        pieces = kept
    encoded = [(encode(notes, cfg), piece_class(notes, cfg)) for notes in pieces]
    if split == "train":
        encoded = [(c, cls) for seq, cls in encoded for c in chunks(seq, cfg.max_steps)]
    return [(seq, cls) for seq, cls in encoded if len(seq) >= 2]


def dataset(examples: list[tuple[np.ndarray, int]], cfg: DataConfig) -> tf.data.Dataset:
    """``(sequence, class)`` pairs as a dataset of ``(roll uint8 (steps, pitches) | event ids int32 (steps,),
    class int32 ())``."""
    if cfg.representation == "roll":
        spec = tf.TensorSpec([None, cfg.num_pitches], tf.uint8)
    else:
        spec = tf.TensorSpec([None], tf.int32)
    return tf.data.Dataset.from_generator(lambda: iter(examples),
                                          output_signature=(spec, tf.TensorSpec([], tf.int32)))


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split as examples ``{"sequence": uint8 (steps, pitches) roll | int32 (steps,) event ids, "condition":
    int32 class (0 when data.condition is none)}``: the pieces of the split (training pieces cut into ``max_steps``
    chunks), parsed and cached on first use."""
    return dataset(sequences(cfg, split), cfg).map(lambda sequence, cls: {"sequence": sequence, "condition": cls})


def sequences_of(split: tf.data.Dataset) -> list[tuple[np.ndarray, int]]:
    """The ``(sequence, class)`` pairs of a split's examples."""
    return [(ex["sequence"], int(ex["condition"])) for ex in split.as_numpy_iterator()]


def write_midi(notes: list[tuple[int, int, int]], path: Path, cfg: DataConfig, tempo_bpm: float) -> Path:
    """Writes ``(midi pitch, first step, end step)`` notes as a piano MIDI file with pretty_midi.

    Notes are dealt into monophonic tracks (a new track only when all others are sounding): music21's MIDI import
    mistimes overlapping notes of different lengths within one track, and one line per track reads well anyway.
    """
    import pretty_midi

    seconds_per_step = 60.0 / tempo_bpm / cfg.steps_per_quarter
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    track_ends = []
    for pitch, start, end in sorted(notes, key=lambda n: (n[1], -n[0])):
        free = next((i for i, track_end in enumerate(track_ends) if track_end <= start), None)
        if free is None:
            free = len(track_ends)
            track_ends.append(0)
            midi.instruments.append(pretty_midi.Instrument(program=0, name=f"voice {free + 1}"))
        track_ends[free] = end
        midi.instruments[free].notes.append(pretty_midi.Note(velocity=80, pitch=int(pitch),
                                                             start=start * seconds_per_step,
                                                             end=end * seconds_per_step))
    midi.write(str(path))
    return Path(path)
