"""The ``l2t`` command line. Thin: parse arguments, build a config, call the library.

A user mistake (bad path, corrupt file, unknown name, bad value) ends with one line
``l2t: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from l2t.config import Config, load_config, parse_override
from l2t.errors import L2TError

log = logging.getLogger("l2t")


def _common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    if data:
        p.add_argument("--config", help="TOML config file (see configs/); defaults are the digits demo")
        p.add_argument("--data", help="digits | fashion-mnist | mnist | cifar10 | cifar100 | FOLDER (IDX or CIFAR files) | FILE.npz")
        p.add_argument("--download", action="store_true",
                       help="fetch a named public data set (checksummed) into $L2T_DATA_DIR or ~/.cache/l2t first")
        p.add_argument("--student", help="student architecture (l2t list); resets student options from the config")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set inner.lr=0.05 (repeatable)")
    p.add_argument("--seed", type=int, help="random seed (default: the config's, 0)")
    p.add_argument("--device", help="cpu (default) or cuda[:N]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _config(args: argparse.Namespace, **extra) -> Config:
    """The config file, then the named flags, then ``--set`` overrides, then ``extra``."""
    overrides: dict = {}
    base = load_config(args.config)
    if args.data:
        overrides["data.name"] = args.data
    if args.download:
        overrides["data.download"] = True
    if args.student and args.student != base.student.name:
        overrides["student.name"] = args.student
        overrides["student.options"] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device:
        overrides["device"] = args.device
    overrides |= dict(parse_override(item) for item in args.overrides)
    overrides |= {k: v for k, v in extra.items() if v is not None}
    return load_config(args.config, overrides)


def _default_out(kind: str, cfg: Config) -> Path:
    data = Path(cfg.data.name).stem
    return Path("runs") / f"{kind}-{data}-{cfg.student.name}" / f"seed{cfg.seed}"


def cmd_teach(args: argparse.Namespace) -> int:
    from l2t.teach import teach

    if args.resume:
        res = teach(None, args.resume, resume=True, progress=not args.no_progress)
    else:
        cfg = _config(args, **{"outer.hypergrad": args.hypergrad})
        res = teach(cfg, args.out or _default_out("teach", cfg), progress=not args.no_progress)
    print(f"teacher written to {res.teacher_path} ({len(res.metrics)} teacher steps, {res.skipped} skipped)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from l2t.build import load_splits
    from l2t.train import load_loss, record_student

    cfg = _config(args)
    data = load_splits(cfg)
    loss = load_loss(cfg, args.loss)
    label = loss.label
    out = Path(args.out) if args.out else _default_out(f"train-{label}", cfg)
    res = _with_progress(lambda hook: record_student(cfg, data, loss, cfg.seed, out, on_step=hook), cfg.inner.steps,
                         f"student ({label})", args.no_progress)
    print(f"test error {100 * res.test_error:.2f}% (dev error {100 * res.dev_error:.2f}%), loss {label}, seed {cfg.seed}"
          + (" -- DIVERGED" if res.diverged else ""))
    print(f"results in {out}")
    return 0


def _with_progress(fn, total: int, desc: str, disabled: bool):
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=disabled, unit="step") as bar:
        return fn(lambda t: bar.update(1))


def cmd_experiment(args: argparse.Namespace) -> int:
    from l2t.experiment import run_experiment

    cfg = _config(args)
    out = args.out or (Path("runs") / (Path(args.config).stem if args.config else "experiment"))
    report = run_experiment(cfg, Path(out), seeds=args.seeds or cfg.eval_seeds, progress=not args.no_progress)
    print(report)
    return 0


def cmd_check_grad(args: argparse.Namespace) -> int:
    import torch

    from l2t.build import resolve_device
    from l2t.gradcheck import check, check_config, check_problem

    device = resolve_device(args.device or "cpu")
    cfg = check_config(student=args.student, teacher=args.teacher, steps=args.steps, every=args.every,
                       seed=args.seed or 0, momentum=args.momentum, device=str(device), overrides=args.overrides)
    res = check(check_problem(cfg), args.method, directions=args.directions, seed=args.seed or 0)
    worst = res.max_rel_error
    print(f"method {args.method}, student {cfg.student.name} on {cfg.data.name}, {cfg.teacher.name} teacher: float64, "
          f"{cfg.inner.steps} momentum-SGD steps, state refreshed every {cfg.teacher.state_every}")
    for i, e in enumerate(res.rel_errors):
        print(f"  direction {i}: relative error {e:.3e}")
    print(f"max relative error vs central finite differences: {worst:.3e} (tolerance {args.tol:.0e}); "
          f"{res.jumps}/{res.evaluations} perturbed runs crossed a state-feature jump")
    ok = worst <= args.tol and torch.isfinite(torch.tensor(worst))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from l2t.report import report

    text = report([Path(d) for d in args.run_dirs], Path(args.out), classes=args.classes, against=args.against)
    print(text)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from l2t.data import DATASETS
    from l2t.hypergrad import METHODS
    from l2t.losses import LOSSES
    from l2t.objectives import OBJECTIVES
    from l2t.students import STUDENTS
    from l2t.teachers import STATE_FEATURES, TEACHERS

    for family, reg in [("students", STUDENTS), ("losses", LOSSES), ("teachers", TEACHERS),
                        ("state features", STATE_FEATURES), ("hypergradient methods", METHODS),
                        ("dev objectives", OBJECTIVES), ("data sets", DATASETS)]:
        print(f"{family}: {', '.join(reg.list())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2t", description="Learning to teach with dynamic loss functions.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("teach", help="train a teacher (Algorithm 1) into a run folder")
    _common(p)
    p.add_argument("--out", help="run folder (default runs/teach-DATA-STUDENT/seedN)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (uses its saved config)")
    p.add_argument("--hypergrad", help="hypergradient method (l2t list)")
    p.set_defaults(func=cmd_teach)

    p = sub.add_parser("train", help="train one student with a loss or a teacher; print its test error")
    _common(p)
    p.add_argument("--loss", required=True, help="ce | smooth01 | teacher:PATH (teacher file or teach run folder)")
    p.add_argument("--out", help="run folder (default runs/train-LOSS-DATA-STUDENT/seedN)")
    p.set_defaults(func=cmd_train)

    for name, text, default in [
        ("demo", "the demo: teach on digits, then compare cross entropy, smooth 0-1 and L2T-DLF over seeds", "runs/demo"),
        ("experiment", "one experiment (a config of configs/): tune every loss, teach, compare over seeds", None),
    ]:
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("--out", default=default, help=f"output folder (default {default or 'runs/<config name>'})")
        p.add_argument("--seeds", type=int, help="evaluation seeds per loss (default: the config's eval_seeds)")
        p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("check-grad", help="hypergradient vs central finite differences on a float64 problem")
    _common(p, data=False)
    p.add_argument("--method", default="reverse", help="hypergradient method (l2t list)")
    p.add_argument("--student", default="mlp", help="any registered student (l2t list); small options by default")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the check problem's config, e.g. --set student.options='{\"dropout\": 0.3}'")
    p.add_argument("--steps", type=int, default=12, help="student steps (default 12)")
    p.add_argument("--every", type=int, default=4, help="state refresh interval (default 4)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--teacher", default="attention", help="teacher whose weights are checked (l2t list)")
    p.add_argument("--directions", type=int, default=6, help="random directions to check (default 6)")
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes (default 1e-6)")
    p.set_defaults(func=cmd_check_grad)

    p = sub.add_parser("report", help="aggregate run folders into a table (mean ± std, paper numbers) and figures")
    p.add_argument("run_dirs", nargs="+", help="run folders (searched recursively)")
    p.add_argument("--out", default="runs/report", help="where report.md and the figures go (default runs/report)")
    p.add_argument("--classes", nargs="+", help="Fig. 4: the class(es) i, by name")
    p.add_argument("--against", nargs="+", help="Fig. 4: the classes j, by name (default: those whose Φ(i, j) changes most)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("list", help="registered students, losses, teachers, methods, data sets")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except L2TError as e:
        print(f"l2t: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("l2t: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
