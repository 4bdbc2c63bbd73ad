"""Speech data: real Spanish recordings of Tux Paint plus espeak-ng speech (offline default), or TFDS corpora.

Real speech: the Debian package ``tuxpaint-stamps-default`` holds spoken descriptions of the stamps recorded by
people, ``stamps/**/NAME_desc_es.ogg``, transcribed on the ``es.utf8=`` line of ``NAME.txt`` (890 Spanish clips,
~1.7 s each, 44.1 kHz stereo Ogg Vorbis). The 43 transcripts with digits are dropped (how the speaker read "$0,10"
is unknown). Clips are split by a CRC32 hash of the stamp path: ``data.real_train_percent`` train,
``data.real_validation_percent`` validation, the rest ``test_real``, never trained on.

Synthetic speech: ``espeak-ng`` (Debian) reads short Spanish sentences — verses of the Reina-Valera 1909 Bible
(Debian ``sword-text-sparv``, read with ``pysword``) cut at punctuation, plus the transcripts of the real *training*
clips — with a random voice variant (``es`` or ``es-419`` + one of ~100 variants), speed, pitch, noise, gain and
leading/trailing silence. ``data.perturbed_variants`` more training voices are training variants with their formants
and pitch scaled at random. Every ``data.held_out_voice_every``-th variant and 10 % of the Bible sentences (by hash)
are kept for ``test_synthetic``; validation uses training voices on the held-out validation sentences.

The splits are written once by a TFDS builder whose config name is a digest of the generation settings, so changing a
setting generates a new copy and an unchanged one is read from the cache. All audio is 16 kHz mono.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import re
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy.signal import resample_poly

from zoo.data import fetch, files
from zoo.data.builder import Builder
from zoo.recipes.speech_ctc.config import SAMPLE_RATE, DataConfig

TUXPAINT_DEB = ("tuxpaint-stamps-default", "2022.06.04-1",
                "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34")
SPARV_DEB = ("sword-text-sparv", "2.60-1", "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf")
SPARV_MODULE = "spaRV1909eb"
LANGUAGE = "es"
ESPEAK_BASE_VOICES = ("es", "es-419")
SPLITS = ("train", "validation", "test_real", "test_synthetic")
MAX_FAILED_FRACTION = 0.01  # of espeak-ng calls; a few crash on odd voice/text pairs, many mean a broken setup


def _hash_percent(key: str) -> int:
    return zlib.crc32(key.encode()) % 100


def normalize_text(text, alphabet: str, plain_single_vowels: bool = True):
    """Lower-cases, maps characters outside ``alphabet`` to spaces and collapses spaces (tf string tensor op)."""
    text = tf.strings.lower(text, encoding="utf-8")
    # The 1909 orthography writes the words "a", "e", "o", "u" with accents; nobody hears them.
    for accented, plain in (("á", "a"), ("é", "e"), ("ó", "o"), ("ú", "u")) if plain_single_vowels else ():
        text = tf.strings.regex_replace(text, rf"(^|[^\pL]){accented}([^\pL]|$)", rf"\1{plain}\2")
    escaped = "".join("\\" + c if c in r"\^-]['" else c for c in alphabet)
    text = tf.strings.regex_replace(text, f"[^{escaped}]+", " ")
    return tf.strings.strip(tf.strings.regex_replace(text, " +", " "))


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 audio at ``SAMPLE_RATE`` (polyphase filter, scipy)."""
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g)
    return audio.astype(np.float32)


def read_audio(path_or_file) -> np.ndarray:
    """Any format libsndfile reads (WAV, FLAC, Ogg Vorbis, ...) as 16 kHz mono float32."""
    audio, rate = soundfile.read(path_or_file, dtype="float32", always_2d=False)
    return resample(audio, rate)


def real_clips(lang: str = LANGUAGE) -> list[tuple[str, Path, str]]:
    """(key, ogg path, transcript) of every Tux Paint recording in ``lang`` whose transcript has no digits."""
    root = fetch.debian_package(*TUXPAINT_DEB) / "usr/share/tuxpaint/stamps"
    clips = []
    for ogg in sorted(root.rglob(f"*_desc_{lang}.ogg")):
        txt = ogg.with_name(ogg.name[: -len(f"_desc_{lang}.ogg")] + ".txt")
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines() if txt.is_file() else []
        transcript = next((line.split("=", 1)[1].strip() for line in lines if line.startswith(f"{lang}.utf8=")), "")
        if transcript and not re.search(r"\d", transcript):
            clips.append((str(ogg.relative_to(root)), ogg, transcript))
    return clips


def real_split(key: str, cfg: DataConfig) -> str:
    bucket = _hash_percent(key)
    if bucket < cfg.real_train_percent:
        return "train"
    return "validation" if bucket < cfg.real_train_percent + cfg.real_validation_percent else "test_real"


def bible_sentences(books: list[str], max_words: int) -> list[str]:
    """Distinct Spanish phrases of 2 to ``max_words`` words: SpaRV verses cut at punctuation, no digits."""
    from pysword.modules import SwordModules

    modules = SwordModules(str(fetch.debian_package(*SPARV_DEB) / "usr/share/sword"))
    modules.parse_modules()
    bible = modules.get_bible_from_module(SPARV_MODULE)
    phrases = set()
    for book in books:
        for verse in bible.get(books=[book], clean=True, join="\n").splitlines():
            for phrase in re.split(r"[.,;:!?¿¡()«»\"]+", verse):
                words = phrase.split()
                if 2 <= len(words) <= max_words and not re.search(r"\d", phrase):
                    phrases.add(" ".join(words))
    return sorted(phrases)


def sentence_split(sentence: str) -> str:
    bucket = _hash_percent("sentence:" + sentence)
    return "test_synthetic" if bucket < 10 else ("validation" if bucket < 15 else "train")


def espeak_data_dir() -> Path:
    """The installed ``espeak-ng-data`` directory (``espeak-ng --version`` names it)."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return Path(out.split("Data at:", 1)[1].strip())


def espeak_variants() -> list[str]:
    """Names of the installed espeak-ng voice variants (the files of ``espeak-ng-data/voices/!v``), sorted.

    Read from the directory: ``espeak-ng --voices=variant`` prints file names unquoted, and one has a space.
    """
    return sorted(p.name for p in (espeak_data_dir() / "voices" / "!v").iterdir() if p.is_file())


def voice_split(variants: list[str], every: int) -> tuple[list[str], list[str]]:
    """(training variants, held-out variants): every ``every``-th variant by name is held out."""
    return ([v for i, v in enumerate(variants) if i % every], [v for i, v in enumerate(variants) if not i % every])


def scale_variant(text: str, formant_factor: float, pitch_factor: float) -> str:
    """An espeak-ng variant file: ``text`` with every formant frequency and the pitch range multiplied.

    Formants and pitch the variant leaves at espeak-ng's defaults (100 %, 82-118 Hz) are written out, scaled.
    """
    lines, formants, has_pitch = [], set(), False
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "formant" and fields[2].isdigit():
            formants.add(fields[1])
            line = " ".join([*fields[:2], str(round(int(fields[2]) * formant_factor)), *fields[3:]])
        elif len(fields) >= 3 and fields[0] == "pitch" and fields[1].isdigit() and fields[2].isdigit():
            has_pitch = True
            line = f"pitch {round(int(fields[1]) * pitch_factor)} {round(int(fields[2]) * pitch_factor)}"
        lines.append(line)
    lines += [f"formant {n} {round(100 * formant_factor)} 100 100" for n in range(9) if str(n) not in formants]
    if not has_pitch:
        lines.append(f"pitch {round(82 * pitch_factor)} {round(118 * pitch_factor)}")
    return "\n".join(lines) + "\n"


def write_perturbed_variants(variants: list[str], cfg: DataConfig, espeak_path: Path) -> list[str]:
    """Copies espeak-ng's data under ``espeak_path`` and adds ``cfg.perturbed_variants`` variants, each one of
    ``variants`` with its formants and pitch scaled by factors log-uniform in ``[1/scale, scale]``; returns their
    names. Only the given (training) variants are read, so held-out voices stay unseen."""
    source, data_dir = espeak_data_dir(), espeak_path / "espeak-ng-data"
    spanish = {source / "lang/roa" / voice for voice in ESPEAK_BASE_VOICES}

    def other_voices(directory, names):
        """espeak-ng lists at most 349 voices: leave out the other languages and the MBROLA voices."""
        directory = Path(directory)
        if directory == source / "voices":
            return {"mb"}
        inside_lang = directory.is_relative_to(source / "lang")
        return {n for n in names if inside_lang and (directory / n).is_file() and directory / n not in spanish}

    shutil.copytree(source, data_dir, ignore=other_voices)
    rng = np.random.default_rng(zlib.crc32(b"perturbed variants"))
    names = []
    for k in range(cfg.perturbed_variants):
        base = str(rng.choice(variants))
        formant, pitch = np.exp(rng.uniform(-1, 1, 2) * np.log([cfg.variant_formant_scale, cfg.variant_pitch_scale]))
        name = f"zoo{k}-{base.replace(' ', '_')}"
        text = (data_dir / "voices/!v" / base).read_text(encoding="utf-8", errors="replace")
        (data_dir / "voices/!v" / name).write_text(scale_variant(text, formant, pitch), encoding="utf-8")
        names.append(name)
    return names


def synthesize(text: str, voice: str, rate: int, pitch: int, espeak_path: str | None = None) -> np.ndarray:
    """``text`` read by espeak-ng as 16 kHz mono float32 (voices from ``espeak_path``/espeak-ng-data if given)."""
    path = [f"--path={espeak_path}"] if espeak_path else []
    wav = subprocess.run(["espeak-ng", *path, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
                         capture_output=True, check=True).stdout
    return read_audio(io.BytesIO(wav))


def degrade(audio: np.ndarray, rng: np.random.Generator, cfg: DataConfig) -> np.ndarray:
    """Random leading/trailing silence, white or brown noise at a random SNR, random gain, clipping at ±1."""
    pad = rng.integers(0, SAMPLE_RATE // 3, size=2)
    audio = np.pad(audio, pad)
    noise = rng.standard_normal(audio.size).astype(np.float32)
    if rng.random() < 0.5:  # brown noise: rumble rather than hiss
        noise = np.cumsum(noise)
        noise -= np.linspace(noise[0], noise[-1], noise.size)
    signal_power = np.mean(audio**2) + 1e-12
    snr = rng.uniform(*cfg.snr_db)
    noise *= np.sqrt(signal_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
    gain = 10 ** (rng.uniform(*cfg.gain_db) / 20) / (np.abs(audio).max() + 1e-9)
    return np.clip((audio + noise) * gain, -1.0, 1.0).astype(np.float32)


def _synthetic_job(args):
    """(degraded synthetic clip, None), or (None, why) where espeak-ng fails (a few voice/text pairs crash it)."""
    text, voice, rate, pitch, seed, cfg, espeak_path = args
    try:
        audio = synthesize(text, voice, rate, pitch, espeak_path)
    except subprocess.CalledProcessError as error:
        stderr = (error.stderr or b"").decode(errors="replace").strip()[-200:]
        return None, f"{voice}: {text!r}: exit status {error.returncode} {stderr}"
    if not audio.size:
        return None, f"{voice}: {text!r}: no audio"
    return degrade(audio, np.random.default_rng(seed), cfg), None


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def generation_settings(cfg: DataConfig) -> dict:
    """The settings that determine the generated data (their digest names the TFDS config)."""
    keys = ("alphabet", "synthetic_clips", "synthetic_eval_clips", "held_out_voice_every", "perturbed_variants",
            "variant_formant_scale", "variant_pitch_scale", "max_real_clips", "real_train_percent",
            "real_validation_percent", "bible_books", "max_words", "speech_rate", "pitch", "snr_db", "gain_db")
    return {k: getattr(cfg, k) for k in keys}


class TuxpaintEspeakSpeech(Builder):
    """TFDS builder: real Tux Paint recordings and espeak-ng speech, splits ``train``, ``validation``,
    ``test_real``, ``test_synthetic`` (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Spanish; hashed real-clip split, held-out espeak-ng voices and sentences."}

    FEATURES = {
        "audio": tfds.features.Audio(shape=(None,), dtype=np.int16, sample_rate=SAMPLE_RATE),
        "text": tfds.features.Text(),
        "real": tfds.features.Scalar(dtype=np.bool_),
        "voice": tfds.features.Text(),
    }
    HOMEPAGE = "https://tuxpaint.org/ and https://github.com/espeak-ng/espeak-ng"

    def __init__(self, *, settings: DataConfig, **kwargs):
        self.settings = settings
        digest = hashlib.sha256(json.dumps(generation_settings(settings), sort_keys=True).encode()).hexdigest()[:12]
        super().__init__(config=tfds.core.BuilderConfig(name=f"{LANGUAGE}_{digest}"), **kwargs)

    def metadata(self):
        return tfds.core.MetadataDict(settings=generation_settings(self.settings))

    def _split_generators(self, dl_manager):
        cfg = self.settings
        clips = real_clips()[: cfg.max_real_clips or None]
        sentences = bible_sentences(cfg.bible_books, cfg.max_words)
        train_voices, test_voices = voice_split(espeak_variants(), cfg.held_out_voice_every)
        by_split = {s: [t for t in sentences if sentence_split(t) == s] for s in SPLITS}
        # The real training clips' transcripts are read by espeak-ng too: the same kind of phrase as the test.
        by_split["train"] += [t for key, _, t in clips if real_split(key, cfg) == "train"]
        plan = {
            "train": (by_split["train"], train_voices, cfg.synthetic_clips),
            "validation": (by_split["validation"], train_voices, cfg.synthetic_eval_clips),
            "test_synthetic": (by_split["test_synthetic"], test_voices, cfg.synthetic_eval_clips),
            "test_real": ([], [], 0),
        }
        return {split: self._generate_examples(split, clips, *plan[split]) for split in SPLITS}

    def _generate_examples(self, split, clips, sentences, voices, num_synthetic):
        cfg = self.settings
        for key, path, transcript in clips:
            if real_split(key, cfg) == split:
                yield f"real/{key}", {"audio": _to_int16(read_audio(path)), "text": transcript, "real": True,
                                      "voice": "human"}
        with tempfile.TemporaryDirectory() as espeak_path:
            espeak_path = espeak_path if split == "train" and cfg.perturbed_variants else None
            if espeak_path:
                voices = voices + write_perturbed_variants(voices, cfg, Path(espeak_path))
            yield from self._synthetic_examples(split, sentences, voices, num_synthetic, espeak_path)

    def _synthetic_examples(self, split, sentences, voices, num_synthetic, espeak_path):
        cfg = self.settings
        rng = np.random.default_rng(zlib.crc32(split.encode()))
        jobs = []
        for i in range(num_synthetic):
            voice = f"{rng.choice(ESPEAK_BASE_VOICES)}+{rng.choice(voices)}"
            sentence = str(rng.choice(sentences))
            rate = int(rng.integers(cfg.speech_rate[0], cfg.speech_rate[1] + 1))
            pitch = int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1))
            jobs.append((sentence, voice, rate, pitch, int(rng.integers(2**31)), cfg, espeak_path))
        failed = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # espeak-ng runs as subprocesses
            for start in range(0, len(jobs), 64):
                for i, (audio, error) in enumerate(pool.map(_synthetic_job, jobs[start:start + 64]), start):
                    if error:
                        failed.append(error)
                        if len(failed) > MAX_FAILED_FRACTION * len(jobs) + 10:
                            raise RuntimeError(f"{split}: espeak-ng failed on {len(failed)} of the first {i + 1} "
                                               f"clips; first failure: {failed[0]}")
                        continue
                    text, voice = jobs[i][:2]
                    yield f"synthetic/{i}", {"audio": _to_int16(audio), "text": text, "real": False, "voice": voice}
        if failed:
            print(f"{split}: espeak-ng failed on {len(failed)} of {len(jobs)} clips, skipped (first: {failed[0]})")


def _as_float(audio):
    return tf.cast(audio, tf.float32) / 32768.0


def load_tuxpaint_espeak(cfg: DataConfig, split: str) -> tf.data.Dataset:
    builder = TuxpaintEspeakSpeech(settings=cfg, data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
    builder.download_and_prepare()
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return ds.map(lambda ex: {"audio": _as_float(ex["audio"]), "text": ex["text"], "real": ex["real"]})


def _resample_tf(audio, rate: int):
    out = tf.numpy_function(lambda a: resample(a, rate), [audio], tf.float32, stateful=False)
    return tf.ensure_shape(out, [None])


def load_tfds_corpus(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """LibriSpeech (16 kHz) or LJSpeech (22.05 kHz, resampled) through TFDS; both test splits are ``test_real``."""
    if cfg.source == "librispeech":
        tfds_split = {"train": "train_clean100", "validation": "dev_clean"}.get(split, "test_clean")
        rate, text_key = 16000, "text"
    else:
        tfds_split = {"train": "train[:90%]", "validation": "train[90%:95%]"}.get(split, "train[95%:]")
        rate, text_key = 22050, "text_normalized"
    ds = fetch.load_tfds(cfg.source, fetch.tfds_dir(cfg.tfds_data_dir), split=tfds_split)

    def convert(ex):
        audio = _as_float(ex["speech"])
        return {"audio": audio if rate == SAMPLE_RATE else _resample_tf(audio, rate), "text": ex[text_key],
                "real": tf.constant(True)}

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def alphabet_of(cfg: DataConfig) -> str:
    """The characters the model writes: ``data.alphabet``, or for ``files`` a space and every letter, digit and
    apostrophe of the training transcripts (lower-cased), sorted."""
    if cfg.source != "files":
        return cfg.alphabet
    return _alphabet_of(files.path_of(cfg, "train"))


@files.per_file_version
def _alphabet_of(path: Path) -> str:
    chars = {c for _, row in files.read_table(path, ("path", "text")) for c in row["text"].lower()
             if c.isalnum() or c == "'"}
    return " " + "".join(sorted(chars))


def read_manifest(path: Path) -> list[tuple[Path, int, Path, str, str]]:
    """``(manifest, line, audio path, transcript, path as written)`` of a ``.csv`` / ``.tsv`` manifest with ``path``
    (relative to the manifest) and ``text`` columns; an audio file that is missing, unreadable or empty is an error
    naming the manifest's line (only its header is read here, the samples when the clip is used)."""
    clips = []
    for line, row in files.read_table(path, ("path", "text")):
        audio = path.parent / row["path"]
        try:
            frames = soundfile.info(str(audio)).frames
        except (RuntimeError, OSError) as error:  # libsndfile's errors are RuntimeErrors
            raise files.FileFormatError(path, line, f"{row['path']}: cannot be read as audio ({error})") from None
        if frames == 0:
            raise files.FileFormatError(path, line, f"{row['path']}: the audio is empty")
        clips.append((path, line, audio, row["text"], row["path"]))
    return clips


def load_files(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split of the user's manifests, decoded with soundfile (any format, rate and channel count) to 16 kHz
    mono as it is read; every clip counts as real speech. There is no synthetic test split."""
    if split == "test_synthetic":
        return tf.data.Dataset.from_tensor_slices({"audio": tf.zeros([0, 0]), "text": tf.constant([], tf.string),
                                                   "real": tf.zeros([0], tf.bool)})
    clips = files.split_examples(cfg, read_manifest, lambda clip: clip[4], "test" if split == "test_real" else split)
    files.report_split(cfg, "test" if split == "test_real" else split, f"{len(clips)} clips")
    paths, texts = [str(clip[2]) for clip in clips], [clip[3] for clip in clips]

    def decode(path):
        return read_audio(path.decode())

    ds = tf.data.Dataset.from_tensor_slices({"path": paths, "text": texts})
    return ds.map(lambda ex: {"audio": tf.ensure_shape(tf.numpy_function(decode, [ex["path"]], tf.float32), [None]),
                              "text": ex["text"], "real": tf.constant(True)})


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """Examples ``{"audio": float32 (samples,) at 16 kHz, "text": normalised transcript, "real": bool}``.

    ``split`` is one of ``SPLITS``; TFDS corpora have no synthetic test, so ``test_synthetic`` is empty there.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if cfg.source == "tuxpaint_espeak":
        ds = load_tuxpaint_espeak(cfg, split)
    elif cfg.source == "files":
        ds = load_files(cfg, split)
    else:
        ds = load_tfds_corpus(cfg, split)
        if split == "test_synthetic":
            ds = ds.take(0)
    alphabet, spanish_bible = alphabet_of(cfg), cfg.source == "tuxpaint_espeak"
    return ds.map(lambda ex: {**ex, "text": normalize_text(ex["text"], alphabet, spanish_bible)})
