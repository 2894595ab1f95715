"""Opt-in downloads of public data sets (``--download``), checked against MD5 sums.

Only a user's explicit ``--download`` calls this; the library never touches the network, and
the tests serve generated files from localhost. Each file goes to a temporary name in the target
folder, is checked, and only then renamed; tar archives are extracted member by member, refusing
paths that leave the folder; a ``.gz`` file is decompressed to a temporary name and renamed.

The sums of the image sets are their publishers' (also torchvision's). Multi30k (task 1, the
raw German/English/French/Czech captions; Elliott et al. 2016) is fetched from its GitHub
repository at a pinned commit, so its files cannot change under the sums, which were computed
from that commit's blobs. Its files are saved in the layout of fairseq's IWSLT-14 preparation
(``train``, ``valid``, ``test`` = ``test_2016_flickr``), which ``l2t.data.parallel`` reads.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

from l2t.errors import L2TError

log = logging.getLogger(__name__)


class Source(NamedTuple):
    url: str
    filename: str  # the name it is saved under in the data set's folder
    md5: str
    unpack: str = ""  # "" (keep), "tar" (extract into the folder) or "gunzip" (to filename without .gz)


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
_MULTI30K = f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw/"

#: name -> the files that make it up
SOURCES: dict[str, list[Source]] = {
    "mnist": [Source(_MNIST + f, f, m) for f, m in zip(_IDX, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))],
    "fashion-mnist": [Source(_FASHION + f, f, m) for f, m in zip(_IDX, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))],
    "cifar10": [Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a", "tar")],
    "voc": [Source("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                   "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", "tar")],
    "cifar100": [Source("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85", "tar")],
    "multi30k": [Source(f"{_MULTI30K}{remote}.{lang}.gz", f"{split}.{lang}.gz", m, "gunzip") for remote, split, lang, m in (
        ("train", "train", "de", "81ff90b99829c0cd4b1b587d394afd39"),
        ("train", "train", "en", "0065d13af80720a55ca8153d126e6627"),
        ("val", "valid", "de", "6e0e229eb049e3fc99a1ef02fb2d5f91"),
        ("val", "valid", "en", "2b69aa9253948ac9f67e94917272dd40"),
        ("test_2016_flickr", "test", "de", "efd67d314d98489b716b145475101932"),
        ("test_2016_flickr", "test", "en", "ff2c0fcb4893a13bd73414306bc250ae"))],
}


def md5sum(path: str | Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path, expected_md5: str) -> None:
    got = md5sum(path)
    if got != expected_md5:
        raise L2TError(f"checksum mismatch for {path}: md5 {got}, expected {expected_md5}")


def safe_extract(archive: str | Path, dest: str | Path) -> None:
    """Extract a tar archive into ``dest``, refusing members that would land outside it or are links."""
    dest = Path(dest).resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not (target == dest or dest in target.parents) or member.issym() or member.islnk():
                raise L2TError(f"refusing unsafe archive member {member.name!r} in {archive}")
        tar.extractall(dest)


def gunzip(archive: str | Path, target: str | Path) -> None:
    """Decompress ``archive`` to ``target`` through a temporary file (never a half-written target)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(archive, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
    except (OSError, EOFError) as e:
        raise L2TError(f"cannot decompress {archive}: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def download(name: str, root: str | Path) -> Path:
    """Fetch data set ``name`` into ``root`` (skipping files already there and correct)."""
    if name not in SOURCES:
        raise L2TError(f"no download known for {name!r}; known: {', '.join(sorted(SOURCES))}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for url, filename, md5, unpack in SOURCES[name]:
        target = root / filename
        fetched = not (target.is_file() and md5sum(target) == md5)
        if fetched:
            log.info("downloading %s", url)
            fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
                    shutil.copyfileobj(resp, out)
                verify(tmp, md5)
                os.replace(tmp, target)
            except OSError as e:
                raise L2TError(f"download of {url} failed: {e}") from None
            finally:
                Path(tmp).unlink(missing_ok=True)
        if unpack == "tar":
            safe_extract(target, root)
        elif unpack == "gunzip" and (fetched or not target.with_suffix("").is_file()):  # written whole or not at all
            gunzip(target, target.with_suffix(""))
    return root
