"""Run folders: the only link between training and reporting.

    runs/<name>/<seed>/
        config.json        the resolved config
        provenance.json    git commit, versions, command line, start time
        metrics.jsonl      one record per step (teacher training) or per evaluation
        summary.json       the final numbers
        checkpoints/       resumable state (teacher training)
        teacher.safetensors

Every file is written atomically (see :mod:`l2t.io`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from l2t.config import Config, to_dict
from l2t.errors import L2TError
from l2t.io import write_json


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance() -> dict:
    from l2t import __version__

    return {
        "l2t": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "torchelastic_run_id": os.environ.get("TORCHELASTIC_RUN_ID"),
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` can be written, checked without creating anything (a failed command leaves no
    folder behind): it is a folder or can become one, and its ``checkpoints/`` is no link out."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise L2TError(f"run folder {run_dir} is a file")
    ckpt = run_dir / "checkpoints"
    if ckpt.is_symlink() or (ckpt.exists() and run_dir.resolve() not in ckpt.resolve().parents):
        raise L2TError(f"{ckpt} is a link out of the run folder; l2t writes checkpoints only inside it")
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise L2TError(f"cannot create run folder {run_dir}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise L2TError(f"cannot write to run folder {run_dir}: permission denied on {existing}")
    return run_dir


TOKENIZER_FILE = "spm.model"


def save_tokenizer(run_dir: Path, tokenizer) -> None:
    """A copy of the run's subword model (sequence data), so that the run folder translates alone."""
    if tokenizer is not None:
        from l2t.io import atomic_write_bytes

        atomic_write_bytes(run_dir / TOKENIZER_FILE, Path(tokenizer.path).read_bytes())


def check_tokenizer(run_dir: Path, tokenizer) -> None:
    """The data's subword model is the run folder's (a run resumed or reused on other data is an
    error, not a model reading the wrong token ids)."""
    import hashlib

    saved = run_dir / TOKENIZER_FILE
    if tokenizer is not None and saved.exists():
        if hashlib.sha256(saved.read_bytes()).hexdigest() != tokenizer.sha256:
            raise L2TError(f"{saved} is not the subword model of this data (another vocabulary or training split); "
                           "use the run's own data, or another folder")


def init_run(run_dir: str | Path, cfg: Config) -> Path:
    """Create the folder, write ``config.json`` and ``provenance.json``. A ``summary.json`` of an
    earlier run is removed first, so the folder never pairs a new config with an old summary."""
    run_dir = check_run_dir(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise L2TError(f"cannot create run folder {run_dir}: {e.strerror or e}") from None
    (run_dir / "summary.json").unlink(missing_ok=True)
    write_json(run_dir / "config.json", to_dict(cfg))
    write_json(run_dir / "provenance.json", provenance())
    return run_dir
