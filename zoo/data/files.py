"""The user's own files as a recipe's splits: which file holds which split, errors that name the file and line.

A recipe whose data section is a ``zoo.config.FileSourceConfig`` reads ``data.train`` and, where given,
``data.validation`` and ``data.test``. A split without a file is cut from the training file by a CRC32 hash of each
example's key (10 % each), so it never changes between runs or machines and a duplicated example always lands in the
same split. What is read from a file is kept for as long as its ``version`` (modification times and sizes) stays
the same, so each file is read once per run and a changed file is always read again.
"""

from __future__ import annotations

import csv
import functools
import json
import zlib
from pathlib import Path

SPLITS = ("train", "validation", "test")


class FileFormatError(ValueError):
    """A user file that cannot be read as its documented format; the message starts with ``path:line:``."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


def path_of(data_cfg, split: str) -> Path | None:
    """The file configured for ``split`` (None: cut from train), checked to exist and not to be empty."""
    name = getattr(data_cfg, split)
    if not name:
        return None
    path = Path(name).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data.{split}: {path} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise FileFormatError(path, None, f"the {split} file is empty")
    return path


def hashed_split(key: str, held_out: tuple[str, ...]) -> str:
    """The split of an example of the training file: each split in ``held_out`` (those without a file of their
    own) takes 10 % of the examples by CRC32 of ``key``, the rest stay in train."""
    bucket = zlib.crc32(key.encode("utf-8")) % 10
    for index, split in enumerate(held_out):
        if bucket == 9 - index:
            return split
    return "train"


def split_examples(data_cfg, read, key, split: str) -> list:
    """The examples of ``split``: ``read(path)`` of its own file, or its hashed share of the training file.

    Args:
        data_cfg: a ``FileSourceConfig``.
        read: ``Path`` → list of examples, raising ``FileFormatError`` on a bad line.
        key: example → str, what the hashed split is keyed on (the text, so duplicates stay together).
        split: one of ``SPLITS``.
    """
    own = path_of(data_cfg, split)
    if own is not None and split != "train":
        return list(_read(read, own, version(own)))
    held_out = tuple(s for s in SPLITS[1:] if path_of(data_cfg, s) is None)
    train_path = path_of(data_cfg, "train")
    examples = [ex for ex in _read(read, train_path, version(train_path)) if hashed_split(key(ex), held_out) == split]
    if not examples:
        raise FileFormatError(train_path, None, f"no example left for the {split} split (give data.{split} a file, "
                                                f"or more examples)")
    return examples


def version(path: Path) -> tuple:
    """What changes when a user file or directory changes: the modification time and size of the file, or of
    every file and directory below the directory."""
    if path.is_dir():
        return tuple((str(p.relative_to(path)), p.stat().st_mtime_ns, p.stat().st_size)
                     for p in sorted(path.rglob("*")))
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _read(read, path: Path, file_version: tuple) -> tuple:
    """``read(path)``, once per version of the file: the three splits cut from one training file read it once."""
    return tuple(read(path))


def per_file_version(fn):
    """``fn(path)`` memoised on the file's ``version``, so that what a recipe learns from a file (its labels, tags,
    alphabet) is read once per run and again when the file changes."""
    cached = functools.lru_cache(maxsize=8)(lambda path, file_version: fn(path))

    @functools.wraps(fn)
    def wrapper(path: Path):
        return cached(path, version(path))

    return wrapper


def read_text(path: Path) -> str:
    """The UTF-8 text of a user file; invalid UTF-8 is an error naming the line."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise FileFormatError(path, line, "not UTF-8 text") from None


def report_split(data_cfg, split: str, what: str) -> None:
    """Prints the size of a split read from files and where it came from."""
    origin = path_of(data_cfg, split) or f"the hashed share of {data_cfg.train}"
    print(f"data.{split}: {what} from {origin}")


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def read_table(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(line, {column: value})`` of each record of a ``.csv``, ``.tsv`` (a header row naming the columns) or
    ``.jsonl`` file (one JSON object per line), for the named ``columns`` (others are ignored); every value is a
    non-empty string (JSON numbers become their text). A missing column or an empty value is an error naming the
    file and line; blank lines are skipped."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise FileFormatError(path, None, f"unknown table format {path.suffix!r}: use {', '.join(TABLE_SUFFIXES)}")
    text = read_text(path)
    records = []
    if path.suffix.lower() == ".jsonl":
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise FileFormatError(path, line_no, f"not a JSON object: {e.msg}") from None
            if not isinstance(record, dict):
                raise FileFormatError(path, line_no, "not a JSON object")
            records.append((line_no, record))
    else:
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise FileFormatError(path, 1, f"no {', '.join(map(repr, missing))} column in the header "
                                           f"(columns: {', '.join(reader.fieldnames or [])})")
        records = [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    out = []
    for line_no, record in records:
        values = {}
        for column in columns:
            if column not in record:
                raise FileFormatError(path, line_no, f"no {column!r} field")
            value = record[column]
            value = "" if value is None else str(value).strip()
            if not value:
                raise FileFormatError(path, line_no, f"empty {column!r}")
            values[column] = value
        out.append((line_no, values))
    if not out:
        raise FileFormatError(path, None, "no records")
    return out
