"""The user's own files as a recipe's splits: which file holds which split, errors that name the file and line.

A recipe whose data section is a ``zoo.config.FileSourceConfig`` reads ``data.train`` and, where given,
``data.validation`` and ``data.test``. A split without a file is cut from the training file by a CRC32 hash of each
example's key (10 % each), so it never changes between runs or machines and a duplicated example always lands in the
same split. Files are read afresh on every run (nothing is cached), so a changed file is always the one used.
"""

from __future__ import annotations

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
        return read(own)
    held_out = tuple(s for s in SPLITS[1:] if path_of(data_cfg, s) is None)
    train_path = path_of(data_cfg, "train")
    examples = [ex for ex in read(train_path) if hashed_split(key(ex), held_out) == split]
    if not examples:
        raise FileFormatError(train_path, None, f"no example left for the {split} split (give data.{split} a file, "
                                                f"or more examples)")
    return examples


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
