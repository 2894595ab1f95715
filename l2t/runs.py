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

import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from l2t.config import Config, to_dict
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
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def init_run(run_dir: str | Path, cfg: Config) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", to_dict(cfg))
    write_json(run_dir / "provenance.json", provenance())
    return run_dir
