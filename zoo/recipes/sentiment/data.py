"""Sentiment data: the VADER human-rated snippets (offline default) and IMDB reviews through TFDS.

VADER ground truth (Hutto & Gilbert, ICWSM 2014) ships in the source distribution of the PyPI package
``vadersentiment==3.3.2`` as ``additional_resources/hutto_ICWSM_2014.tar.gz``: 10,605 movie-review snippets (the
rt-polarity "MR" sentences), 3,708 Amazon review snippets, 5,190 NYT editorial snippets and 4,200 tweets, each the mean
of ~20 human ratings on a -4..+4 scale. Targets:

- ``rating``: 1-5, the mean rating cut into five equal bins of width 1.6 (1: < -2.4, 2: < -0.8, 3: [-0.8, 0.8],
  4: <= 2.4, 5: > 2.4);
- ``polarity``: 1 if the mean is > 0, 0 if < 0; a mean of exactly 0 has no polarity (weight 0 in loss and metric).

``files``: the user's ``.csv`` / ``.tsv`` / ``.jsonl`` files with ``text`` and ``label`` columns; the classes come
from the training file's labels (``class_names``).

Splits are fixed by a CRC32 hash of each snippet's id (80 % train, 10 % validation, 10 % test), so they never change
between runs or machines; the test split is never used for early stopping.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import fetch, files
from zoo.data.builder import Builder
from zoo.recipes.sentiment.config import VADER_DOMAINS, DataConfig

VADER_SDIST = ("vadersentiment", "3.3.2", "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9")
GROUND_TRUTH = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}
NUM_RATINGS = 5


def read_lexicon(archive: Path) -> dict[str, float]:
    """The VADER word lexicon (7,500 tokens, each the mean of 10 human valence ratings on -4..+4).

    Built from ratings of isolated words, independently of the snippets, so it is prior knowledge like pretrained
    embeddings; the model reads it as a per-token feature (``model.lexicon_feature``).
    """
    with tarfile.open(archive) as sdist:
        raw = sdist.extractfile("vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt").read().decode("utf-8")
    lexicon = {}
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            lexicon[parts[0].strip().lower()] = float(parts[1])
    return lexicon


def split_of(key: str) -> str:
    bucket = zlib.crc32(key.encode()) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def read_ground_truth(archive: Path):
    """Yields (domain, id, mean rating, text) from the VADER archive, failing loudly on a malformed line."""
    with tarfile.open(archive) as outer:
        inner_member = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner_member) as inner:
            for domain, filename in GROUND_TRUTH.items():
                raw = inner.extractfile(f"hutto_ICWSM_2014/{filename}").read().decode("utf-8")
                for line_no, line in enumerate(raw.splitlines(), 1):
                    if not line.strip():
                        continue
                    parts = line.split("\t")
                    if len(parts) != 3:
                        raise ValueError(f"{filename}:{line_no}: expected 3 tab-separated fields, got {len(parts)}")
                    yield domain, parts[0], float(parts[1]), parts[2].strip()


class VaderSentiment(Builder):
    """TFDS builder for the VADER ground-truth snippets (splits, versions and caching are TFDS's)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Four domains, hashed 80/10/10 split."}

    FEATURES = {
        "id": tfds.features.Text(),
        "text": tfds.features.Text(),
        "mean_rating": tfds.features.Scalar(dtype=np.float32),
        "domain": tfds.features.ClassLabel(names=list(VADER_DOMAINS)),
    }
    HOMEPAGE = "https://github.com/cjhutto/vaderSentiment"
    CITATION = "Hutto, C.J. & Gilbert, E.E. (2014). VADER. ICWSM-14."

    def _split_generators(self, dl_manager):
        archive = fetch.pip_sdist(*VADER_SDIST)
        return {split: self._generate_examples(archive, split) for split in ("train", "validation", "test")}

    def _generate_examples(self, archive, split):
        for domain, snippet_id, mean, text in read_ground_truth(archive):
            key = f"{domain}/{snippet_id}"
            if split_of(key) == split:
                yield key, {"id": key, "text": text, "mean_rating": mean, "domain": domain}


def load_vader(cfg: DataConfig, split: str, domains=VADER_DOMAINS) -> tf.data.Dataset:
    """Examples ``{"text", "rating", "polarity", "polarity_weight", "domain"}`` of one VADER split."""
    builder = VaderSentiment(data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
    builder.download_and_prepare()
    domain_ids = tf.constant([VADER_DOMAINS.index(d) for d in domains], tf.int64)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["domain"], domain_ids)))

    def targets(ex):
        mean = ex["mean_rating"]
        rating = tf.cast(tf.clip_by_value(tf.floor((mean + 4.0) / 1.6), 0.0, NUM_RATINGS - 1.0), tf.int32)
        return {
            "text": ex["text"],
            "rating": rating,
            "rating_weight": tf.constant(1.0),
            "polarity": tf.cast(mean > 0, tf.float32),
            "polarity_weight": tf.cast(tf.not_equal(mean, 0.0), tf.float32),
            "domain": tf.cast(ex["domain"], tf.int32),
        }

    return ds.map(targets)


def load_imdb(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """IMDB reviews through TFDS (binary labels only: the rating head gets zero weight)."""
    tfds_split = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}[split]
    ds = fetch.load_tfds("imdb_reviews", fetch.tfds_dir(cfg.tfds_data_dir), split=tfds_split)
    return ds.map(lambda ex: {
        "text": ex["text"],
        "rating": tf.constant(0, tf.int32),
        "rating_weight": tf.constant(0.0),
        "polarity": tf.cast(ex["label"], tf.float32),
        "polarity_weight": tf.constant(1.0),
        "domain": tf.constant(-1, tf.int32),
    })


def has_polarity(cfg: DataConfig) -> bool:
    """Whether the source has a positive/negative target beside its classes (the public corpora do)."""
    return cfg.source != "files"


def class_names(cfg: DataConfig) -> tuple[str, ...]:
    """The classes the model predicts, by class id: the ratings "1".."5" for the public corpora; for ``files``, the
    labels of the training file (integers: every rating from the lowest to the highest; names: sorted)."""
    if cfg.source != "files":
        return tuple(str(r) for r in range(1, NUM_RATINGS + 1))
    return _labels_of(files.path_of(cfg, "train"))


def integer_classes(names: tuple[str, ...]) -> bool:
    """Whether the classes are integer ratings (served as ``rating``) rather than names (served as ``label``)."""
    return all(_as_int(name) is not None for name in names)


def _as_int(label: str):
    try:
        return int(label)
    except ValueError:
        return None


@files.per_file_version
def _labels_of(path: Path) -> tuple[str, ...]:
    labels = {values["label"] for _, values in files.read_table(path, ("text", "label"))}
    numbers = [_as_int(label) for label in labels]
    if all(n is not None for n in numbers):
        return tuple(str(r) for r in range(min(numbers), max(numbers) + 1))
    if len(labels) < 2:
        raise files.FileFormatError(path, None, f"one label only ({labels.pop()!r}): a classifier needs two")
    return tuple(sorted(labels))


def load_files(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split of the user's labelled text files; a label that the training file never uses is an error naming
    its line."""
    names = class_names(cfg)
    integer = integer_classes(names)
    index = {name: i for i, name in enumerate(names)}

    def read(path):
        return [(path, line, values) for line, values in files.read_table(path, ("text", "label"))]

    rows = files.split_examples(cfg, read, lambda row: row[2]["text"], split)
    ids = []
    for path, line, values in rows:
        label = str(_as_int(values["label"])) if integer and _as_int(values["label"]) is not None else values["label"]
        if label not in index:
            raise files.FileFormatError(path, line, f"label {values['label']!r} never appears in the training file "
                                                    f"{cfg.train} (its classes: {', '.join(names)})")
        ids.append(index[label])
    files.report_split(cfg, split, f"{len(rows)} texts")
    n = len(rows)
    return tf.data.Dataset.from_tensor_slices({
        "text": [values["text"] for _, _, values in rows],
        "rating": tf.constant(ids, tf.int32),
        "rating_weight": tf.ones([n]),
        "polarity": tf.zeros([n]),
        "polarity_weight": tf.zeros([n]),
        "domain": tf.fill([n], -1),
    })


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split as examples ``{"text": string, "rating": int32 class id (``class_names``), "rating_weight":
    float32, "polarity": float32 0/1, "polarity_weight": float32, "domain": int32}`` (weights 0 where a target is
    unknown; ``domain`` indexes ``VADER_DOMAINS``, -1 for other sources). The training split holds
    ``cfg.train_domains`` only."""
    if cfg.source == "files":
        return load_files(cfg, split)
    if cfg.source == "imdb_reviews":
        return load_imdb(cfg, split)
    return load_vader(cfg, split, cfg.train_domains if split == "train" else VADER_DOMAINS)


def to_training_example(vectorize, max_tokens: int, polarity: bool = True):
    """Maps an example to (token ids, targets, sample weights) as the classifier's fit expects (the polarity
    target only where the classifier has that head)."""
    heads = ("rating", "polarity") if polarity else ("rating",)

    def fn(ex):
        ids = vectorize(ex["text"])[:max_tokens]
        return ids, {head: ex[head] for head in heads}, {head: ex[f"{head}_weight"] for head in heads}

    return fn
