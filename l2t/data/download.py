"""Opt-in downloads of public data sets (``--download``), checked against published MD5 sums.

Only a user's explicit ``--download`` calls this; the library and the tests never touch the
network. Each file goes to a temporary name in the target folder, is checked, and only then
renamed; archives are extracted member by member, refusing paths that leave the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from l2t.errors import L2TError

log = logging.getLogger(__name__)

_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: name -> [(url, file name, md5, extract?)]; the sums are the publishers' (also torchvision's)
SOURCES: dict[str, list[tuple[str, str, str, bool]]] = {
    "mnist": [(_MNIST + f, f, m, False) for f, m in zip(_IDX, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))],
    "fashion-mnist": [(_FASHION + f, f, m, False) for f, m in zip(_IDX, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))],
    "cifar10": [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                 "c58f30108f718f92721af3b95e74349a", True)],
    "voc": [("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar", "VOCtrainval_11-May-2012.tar",
             "6cd6e144f989b92b3379bac3b3de84fd", True)],
    "cifar100": [("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                  "eb9058c3a382ffc7106e4002c42a8d85", True)],
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


def download(name: str, root: str | Path) -> Path:
    """Fetch data set ``name`` into ``root`` (skipping files already there and correct)."""
    if name not in SOURCES:
        raise L2TError(f"no download known for {name!r}; known: {', '.join(sorted(SOURCES))}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for url, filename, md5, extract in SOURCES[name]:
        target = root / filename
        if not (target.is_file() and md5sum(target) == md5):
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
        if extract:
            safe_extract(target, root)
    return root
