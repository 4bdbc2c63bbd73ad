"""Translation data: verse-aligned Bibles from Debian SWORD packages (offline default) and TFDS translation sets.

Spanish source: Reina-Valera 1909 (``sword-text-sparv``, module ``spaRV1909eb``); English target: King James Version
(``sword-text-kjv``, module ``engKJV2006eb``). Both are public domain and use KJV versification, so verses pair up by
reference: 31,084 pairs where both verses are non-empty (18 references are empty in one of them). The modules are
read with the PyPI package ``pysword``.

Split by book, so no test verse, nor any verse of its book, is seen in training:
- test: Joshua, Esther, Hosea, Malachi, Philippians, 2 Peter (every 11th book from Joshua: history, poetry-adjacent
  narrative, prophets, epistles);
- validation (early stopping only): Ruth, Jonah, Colossians, Titus, Jude;
- train: the other 55 books.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import fetch, files
from zoo.data.builder import Builder
from zoo.recipes.translation.config import DataConfig

SWORD_PACKAGES = {
    "es": ("sword-text-sparv", "2.60-1", "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
           "spaRV1909eb"),
    "en": ("sword-text-kjv", "14.3-1", "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
           "engKJV2006eb"),
}
TEST_BOOKS = ("Josh", "Esth", "Hos", "Mal", "Phil", "2Pet")
VALIDATION_BOOKS = ("Ruth", "Jonah", "Col", "Titus", "Jude")
SPLITS = ("train", "validation", "test")


def split_of(book: str) -> str:
    return "test" if book in TEST_BOOKS else "validation" if book in VALIDATION_BOOKS else "train"


def clean_verse(text: str) -> str:
    """Drops the KJV paragraph sign and collapses whitespace left by stripped markup."""
    return " ".join(text.replace("¶", " ").split())


def read_verse_pairs(sword_roots: dict[str, Path]):
    """Yields (reference, book, Spanish verse, English verse) for every reference non-empty in both Bibles."""
    from pysword.modules import SwordModules

    bibles = {}
    for lang, root in sword_roots.items():
        modules = SwordModules(str(root))
        modules.parse_modules()
        bibles[lang] = modules.get_bible_from_module(SWORD_PACKAGES[lang][3])
    for books in bibles["en"].get_structure().get_books().values():
        for book in books:
            # One decompression per book and Bible: get_iter walks the book's verses in reference order.
            verses = {lang: list(bible.get_iter(books=[book.osis_name], clean=True)) for lang, bible in bibles.items()}
            references = [(c, v) for c in range(1, book.num_chapters + 1)
                          for v in range(1, book.chapter_lengths[c - 1] + 1)]
            if any(len(v) != len(references) for v in verses.values()):
                raise ValueError(f"{book.osis_name}: verse counts differ from the KJV versification")
            for (chapter, verse), es, en in zip(references, verses["es"], verses["en"]):
                es, en = clean_verse(es), clean_verse(en)
                if es and en:
                    yield f"{book.osis_name}.{chapter}.{verse}", book.osis_name, es, en


def sword_roots() -> dict[str, Path]:
    return {lang: fetch.debian_package(*pkg[:3]) / "usr/share/sword" for lang, pkg in SWORD_PACKAGES.items()}


class BibleEsEn(Builder):
    """TFDS builder for the verse-aligned Spanish (RV1909) / English (KJV) Bibles, split by book."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "RV1909 / KJV verse pairs, split by book."}

    FEATURES = {
        "reference": tfds.features.Text(),
        "book": tfds.features.Text(),
        "es": tfds.features.Text(),
        "en": tfds.features.Text(),
    }
    HOMEPAGE = "https://crosswire.org/sword/"
    SUPERVISED_KEYS = ("es", "en")

    def _split_generators(self, dl_manager):
        pairs = list(read_verse_pairs(sword_roots()))  # read once (decompression dominates), split in memory
        return {split: self._generate_examples(pairs, split) for split in SPLITS}

    def _generate_examples(self, pairs, split):
        for reference, book, es, en in pairs:
            if split_of(book) == split:
                yield reference, {"reference": reference, "book": book, "es": es, "en": en}


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The ``(source, target)`` sentence pairs of a ``.tsv`` file: one ``source<TAB>target`` pair per line (UTF-8;
    blank lines are skipped); a line without exactly one tab, or with an empty side, is an error naming it."""
    pairs = []
    for line_no, line in enumerate(files.read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise files.FileFormatError(path, line_no, f"expected 'source<TAB>target', found {len(fields)} "
                                                       f"tab-separated fields")
        source, target = (f.strip() for f in fields)
        if not source or not target:
            raise files.FileFormatError(path, line_no, f"empty {'source' if not source else 'target'} sentence")
        pairs.append((source, target))
    if not pairs:
        raise files.FileFormatError(path, None, "no sentence pairs")
    return pairs


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """``{"source": string, "target": string}`` examples of one split (train | validation | test), in file order."""
    if cfg.source == "files":
        pairs = files.split_examples(cfg, read_pairs, lambda pair: pair[0], split)
        files.report_split(cfg, split, f"{len(pairs)} sentence pairs")
        return tf.data.Dataset.from_tensor_slices({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs]})
    if cfg.source == "bible":
        builder = BibleEsEn(data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
        builder.download_and_prepare()
        ds = builder.as_dataset(split=split, shuffle_files=False, as_supervised=True)
    else:
        ds = fetch.load_tfds(cfg.tfds_name, fetch.tfds_dir(cfg.tfds_data_dir), split=split, as_supervised=True)
    return ds.map(lambda source, target: {"source": source, "target": target})
