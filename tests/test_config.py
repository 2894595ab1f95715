import pytest

from l2t.config import Config, load_config, to_dict
from l2t.data import DATASETS
from l2t.errors import L2TError
from l2t.config import TEACHER_LOSS as TEACHER
from l2t.losses import LOSSES
from l2t.students import STUDENTS
from l2t.teachers import TEACHERS

from conftest import ROOT


def test_defaults_are_the_demo():
    cfg = load_config()
    assert cfg.data.name == "digits" and cfg.inner.steps == 300 and cfg.teacher.name == "attention"


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 4\n[inner]\nlr = 0.2\n[student]\noptions = { widths = [8, 8] }\n')
    cfg = load_config(path, ["inner.lr=0.05", "data.name=fashion-mnist", "outer.clip=2"])
    assert (cfg.seed, cfg.inner.lr, cfg.data.name, cfg.outer.clip) == (4, 0.05, "fashion-mnist", 2.0)
    assert cfg.student.options == {"widths": [8, 8]}


def test_saved_config_loads_back(tmp_path):
    import json

    cfg = load_config(overrides={"inner.steps": 7, "student.options": {"widths": [3]}})
    (tmp_path / "config.json").write_text(json.dumps(to_dict(cfg)))
    assert load_config(tmp_path / "config.json") == cfg


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["inner.nope=1"], "unknown config key.*inner.nope"),
        (["nope.lr=1"], "unknown config key.*nope"),
        (["inner.steps=1.5"], "config inner.steps: expected int, got 1.5"),
        (["inner.lr=fast"], "config inner.lr: expected float, got 'fast'"),
        (["seed=true"], "config seed: expected int, got True"),
        (["inner=3"], "config inner: expected a section"),
        (["justtext"], "bad override"),
        # a key of the other optimizer would be ignored
        (["inner.optimizer=adam", "inner.momentum=0.5"], r"inner.momentum is for inner.optimizer = 'sgd'.*'adam'"),
        (["inner.betas=[0.5, 0.9]"], r"inner.betas is for inner.optimizer = 'adam'.*'sgd'"),
        (["inner.eps=1e-6"], r"inner.eps is for inner.optimizer = 'adam'"),
    ],
)
def test_bad_configs(overrides, message):
    with pytest.raises(L2TError, match=message):
        load_config(overrides=overrides)


def test_the_other_optimizers_defaults_pass():
    # a resolved config.json carries every key at its default, so it loads back under either optimizer
    adam = load_config(overrides=["inner.optimizer=adam", "inner.betas=[0.9, 0.98]", "inner.eps=1e-6"])
    assert adam.inner.momentum == 0.9 and adam.inner.betas == [0.9, 0.98]
    sgd = load_config(overrides=["inner.momentum=0.5"])
    assert sgd.inner.betas == [0.9, 0.999] and sgd.inner.eps == 1e-8


def test_bad_config_files(tmp_path):
    with pytest.raises(L2TError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[inner\nlr = ")
    with pytest.raises(L2TError, match="cannot parse config"):
        load_config(tmp_path / "bad.toml")


def test_config_is_frozen():
    with pytest.raises(Exception):
        Config().seed = 3


SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.toml") if p.parent.name != "ablations")  # ablations: variants files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_load_and_name_registered_parts(path):
    """Every shipped config parses and names only registered parts: a typo is not found at the
    end of an hour-long run."""
    cfg = load_config(path)
    assert cfg.student.name in STUDENTS and cfg.teacher.name in TEACHERS
    assert cfg.data.name in DATASETS or cfg.data.name.endswith(".npz")
    assert all(loss in LOSSES or loss == TEACHER for loss in cfg.losses)
