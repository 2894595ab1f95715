from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "l2t" / "configs" / "tiny.toml"


@pytest.fixture
def tiny_config():
    from l2t.config import load_config

    return load_config(TINY)


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)
