"""Real reviews for the sentiment recipe's ``--data.source files``: Amazon fine-food reviews, 5 stars or not.

    python -m benchmarks.user_files_sentiment /tmp/userfiles/sentiment
    python -m zoo.recipes.sentiment --data.source files --data.train /tmp/userfiles/sentiment/train.csv \\
        --data.test /tmp/userfiles/sentiment/test.csv

The corpus is ``small_fine_foods`` of the R package modeldata (MIT), from Debian's ``r-cran-modeldata`` 1.1.0-1,
fetched with ``apt-get download`` and pinned by its SHA-256: 5,000 English reviews from the Amazon Fine Food Reviews
of SNAP (McAuley & Leskovec, 2013), each labelled by its author's own star rating as ``great`` (5 stars) or
``other`` (1 to 4), in modeldata's own split of 4,000 training and 1,000 test reviews (one review per product).
The reviews keep the HTML of the source (``<br />``, links), which is replaced by spaces; whitespace is collapsed.
R's data is read with the PyPI package ``rdata`` (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import lzma
import re
import warnings
from collections import Counter
from pathlib import Path

from zoo.data.fetch import debian_package

PACKAGE, VERSION = "r-cran-modeldata", "1.1.0-1"
SHA256 = "66c2e08bb4bf695d972b1e72ea44d5af9ada3c42841793d3871017f7b896bf95"
DATA = Path("usr/lib/R/site-library/modeldata/data")
SPLITS = {"train": "training_data", "test": "testing_data"}
MARKUP = re.compile(r"</?(?:a|br|p|span)\b[^>]*>", re.I)


def lazy_load(data_dir: Path, name: str):
    """The object ``name`` of the R lazy-load database ``data_dir/Rdata.{rdx,rdb}``, read with ``rdata``: the
    index (gzip) gives each object's place in ``Rdata.rdb``, where it is a 4-byte length, ``Z`` and a raw LZMA2
    stream of R's serialization."""
    import rdata

    def convert(data: bytes):
        # The database's parts have no RDS header, and a tibble is read as a data frame: rdata says so, rightly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(data))

    index = convert(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    start, size = index["variables"][name]
    blob = (data_dir / "Rdata.rdb").read_bytes()[start:start + size]
    if blob[4:5] != b"Z":
        raise ValueError(f"{name}: not an xz-compressed object")
    return convert(lzma.decompress(blob[5:], format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]))


def reviews(data_dir: Path, name: str) -> list[tuple[str, str]]:
    """``(text, label)`` of each review of modeldata's tibble ``name`` (columns product, review, score)."""
    table = lazy_load(data_dir, name)
    return [(" ".join(html.unescape(MARKUP.sub(" ", text)).split()), str(label))
            for text, label in zip(table["review"], table["score"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for train.csv and test.csv")
    args = parser.parse_args()
    data_dir = debian_package(PACKAGE, VERSION, SHA256) / DATA
    args.out.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        rows = reviews(data_dir, name)
        with open(args.out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        counts = Counter(label for _, label in rows)
        print(f"{args.out / f'{split}.csv'}: {len(rows)} reviews ("
              + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) + ")")


if __name__ == "__main__":
    main()
