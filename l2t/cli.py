"""The ``l2t`` command line. Thin: parse arguments, build a config, call the library.

A user mistake (bad path, corrupt file, unknown name, bad value) ends with one line
``l2t: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from l2t.config import Config, load_config, parse_override
from l2t.errors import AgreedError, L2TError

log = logging.getLogger("l2t")


def _common(p: argparse.ArgumentParser, *, data: bool = True, trains: bool = True) -> None:
    from l2t.data import DATASETS
    from l2t.students import STUDENTS

    config_flags: list[tuple[str, str]] = []  # (flag, dest) of the options that make the config (_config)

    def config_arg(flag: str, **kw) -> None:
        config_flags.append((flag, p.add_argument(flag, **kw).dest))

    if data:
        config_arg("--config", help="a TOML config: a file, or a shipped one by name (l2t config --list), e.g. "
                                    "fashion/fashion_lenet; without it, the shipped config of --data and --student "
                                    "when there is one, else the defaults (digits, an MLP, the attention teacher)")
        config_arg("--data", help=f"{' | '.join(DATASETS.list())} | FOLDER (IDX, CIFAR or parallel text files) | "
                                  "FILE.npz | FILE.tsv (l2t list)")
        config_arg("--src", help="parallel text: the source language (data.options.src, e.g. de)")
        config_arg("--tgt", help="parallel text: the target language (data.options.tgt, e.g. en)")
        config_arg("--download", action="store_true",
                   help="fetch a named public data set (checksummed) into $L2T_DATA_DIR or ~/.cache/l2t first")
        config_arg("--student", help=f"student architecture: {', '.join(STUDENTS.list())}; resets the student's "
                                     "options from the config")
        config_arg("--teacher", dest="teacher_name", help="the teacher (l2t list); resets the teacher's options")
        config_arg("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set inner.lr=0.05 (repeatable; l2t config --show lists "
                        "the keys)")
    if trains:
        config_arg("--steps", type=int, help="student training steps (inner.steps)")
        config_arg("--epochs", type=float, help="student training length in epochs of the training split (sets inner.steps)")
        config_arg("--lr", type=float, help="the student's learning rate (inner.lr)")
        config_arg("--batch-size", type=int, help="training batch size (inner.batch_size)")
    p.add_argument("--threads", type=int,
                   help=f"CPU threads for torch (default {default_threads()}: one per core, at most {MAX_THREADS}; "
                        "use 1 when other work shares the cores)")
    config_arg("--seed", type=int, help="random seed (default: the config's, 0)")
    p.add_argument("--device", help="cpu (default) or cuda[:N]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(config_flags=config_flags)


#: torch's own default is one thread per core; more than this many rarely helps the small students
MAX_THREADS = 8


def default_threads() -> int:
    """One per core, shared among the processes torchrun starts on this machine, at most
    :data:`MAX_THREADS`."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min((os.cpu_count() or 1) // max(local, 1), MAX_THREADS))


def _config(args: argparse.Namespace, **extra) -> Config:
    """The config file (or the shipped config of --data and --student), then the named flags,
    then ``--set`` overrides, then ``extra``."""
    from l2t.config import default_config_for

    path = args.config or getattr(args, "config_default", None)
    if path is None and args.data and args.student:
        path = default_config_for(args.data, args.student)
        if path is not None:
            log.info("using the shipped config %s for %s / %s (pass --config to choose another)", path, args.data,
                     args.student)
    overrides: dict = {}
    base = load_config(path)
    if args.data:
        overrides["data.name"] = args.data
    if args.download:
        overrides["data.download"] = True
    if args.student and args.student != base.student.name:
        overrides["student.name"] = args.student
        overrides["student.options"] = {}
    if getattr(args, "teacher_name", None) and args.teacher_name != base.teacher.name:
        overrides["teacher.name"] = args.teacher_name
        overrides["teacher.options"] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device:
        overrides["device"] = args.device
    for flag, key in (("steps", "inner.steps"), ("lr", "inner.lr"), ("batch_size", "inner.batch_size")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    overrides |= dict(parse_override(item) for item in args.overrides)
    langs = {k: getattr(args, k) for k in ("src", "tgt") if getattr(args, k, None)}
    if langs:  # after --set, so that --set data.options=... keeps the direction
        overrides["data.options"] = dict(overrides.get("data.options", base.data.options)) | langs
    overrides |= {k: v for k, v in extra.items() if v is not None}
    cfg = load_config(path, overrides)
    if getattr(args, "epochs", None) is not None:
        cfg = _with_epochs(cfg, args.epochs)
    return cfg


def _with_epochs(cfg: Config, epochs: float) -> Config:
    from dataclasses import replace

    from l2t.build import load_splits

    if not 0 < epochs < 1e6:
        raise L2TError(f"--epochs must be positive and finite (below 1e6), got {epochs}")
    per_epoch = len(load_splits(cfg).train) // cfg.inner.batch_size
    steps = max(1, round(epochs * per_epoch))
    log.info("%g epochs of %d batches: %d steps", epochs, per_epoch, steps)
    return replace(cfg, inner=replace(cfg.inner, steps=steps))


def _default_out(kind: str, cfg: Config) -> Path:
    data = Path(cfg.data.name).stem
    return Path("runs") / f"{kind}-{data}-{cfg.student.name}" / f"seed{cfg.seed}"


def cmd_teach(args: argparse.Namespace) -> int:
    from l2t import distributed
    from l2t.teach import teach

    if args.resume:
        flags = [*args.config_flags, ("--hypergrad", "hypergrad")]
        given = [flag for flag, dest in flags if getattr(args, dest) not in (None, [], False)]
        if given:
            raise L2TError(f"--resume continues a run with its saved config; it takes no {', '.join(given)}")
    cfg = None if args.resume else _config(args, **{"outer.hypergrad": args.hypergrad})
    world = distributed.init(args.device or (cfg.device if cfg is not None else "cpu"))
    kw = dict(progress=not args.no_progress, tensorboard=args.tensorboard, world=world)
    if args.resume:
        res = teach(None, args.resume, resume=True, **kw)
    else:
        out = Path(args.out) if args.out else _default_out("teach", cfg)
        # torchrun restarted the job after a failure (--max-restarts): teach() continues from the
        # checkpoint this job wrote (and compares the config)
        res = teach(cfg, out, restart=distributed.restarted(), **kw)
    if world.main:
        print(f"teacher written to {res.teacher_path} ({len(res.metrics)} teacher steps, {res.skipped} skipped)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from l2t.build import load_splits
    from l2t.train import TaughtLoss, load_loss, record_student

    cfg = _config(args)
    data = load_splits(cfg)
    loss = load_loss(cfg, args.loss)
    label = loss.label
    # a teacher's students are named after the teacher's file, so two teachers' never collide
    name = label if not isinstance(loss, TaughtLoss) else f"{label}-{teacher_tag(loss.path)}"
    out = Path(args.out) if args.out else _default_out(f"train-{name}", cfg)
    res = _with_progress(lambda hook: record_student(cfg, data, loss, cfg.seed, out, on_step=hook, overwrite=args.overwrite,
                                                     tensorboard=args.tensorboard),
                         cfg.inner.steps, f"student ({label})", args.no_progress)
    scores, error = res.scores, 100 * res.test_error
    if "test_bleu" in scores:
        result = f"test BLEU {scores['test_bleu']:.2f} (beam {cfg.beam}; token error {error:.2f}%)"
    elif "test_miou" in scores:
        result = f"test mIoU {100 * scores['test_miou']:.2f}% (pixel error {error:.2f}%)"
    elif "test_map50" in scores:
        result = f"test mAP@0.5 {100 * scores['test_map50']:.2f}%, mAP@[.5:.95] {100 * scores['test_map']:.2f}% (cell error {error:.2f}%)"
    else:
        result = f"test error {error:.2f}% (dev error {100 * res.dev_error:.2f}%)"
    print(f"{result}, loss {label}, seed {cfg.seed}" + (" -- DIVERGED" if res.diverged else ""))
    for hint in advice(cfg, data, loss, res):
        print(f"note: {hint}")
    print(f"results in {out}")
    return 0


def teacher_tag(path: str) -> str:
    """A short, stable name for a teacher file: 8 hex digits of its resolved path."""
    import hashlib

    from l2t.teachers.checkpoint import resolve_teacher_path

    return hashlib.sha1(str(resolve_teacher_path(path).resolve()).encode()).hexdigest()[:8]


def advice(cfg: Config, data, loss, res) -> list[str]:
    """What to change when a run diverged or ended near chance."""
    chance = 1 - 1 / data.num_classes
    if res.diverged or res.test_error >= chance - 0.02:
        what = "diverged" if res.diverged else f"ended near chance ({100 * res.test_error:.1f}% error; chance {100 * chance:.1f}%)"
        lr = cfg.inner.lr
        if getattr(loss, "name", "") == "smooth01":
            K = float(cfg.loss_options.get("smooth01", {}).get("K", 50.0))
            tip = (f"smooth 0-1's gradient at a zero margin is K/2 = {K / 2:g} times cross entropy's: try "
                   f"--lr {lr * 2 / K:.2g}")
        else:
            tip = f"try a smaller learning rate (--lr {lr / 10:.2g}) or more steps (--steps)"
        return [f"the student {what} at lr {lr:g} with {cfg.inner.steps} steps; {tip}"]
    return []


def _with_progress(fn, total: int, desc: str, disabled: bool):
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=disabled, unit="step") as bar:
        return fn(lambda t: bar.update(1))


def cmd_experiment(args: argparse.Namespace) -> int:
    from l2t import distributed
    from l2t.experiment import run_experiment

    cfg = _config(args)
    world = distributed.init(cfg.device)
    out = args.out or (Path("runs") / (Path(args.config).stem if args.config else "experiment"))
    seeds = cfg.eval_seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise L2TError(f"--seeds must be at least 1, got {seeds}")
    report = run_experiment(cfg, Path(out), seeds=seeds, progress=not args.no_progress, world=world)
    if world.main:
        print(report)
    return 0


def cmd_check_grad(args: argparse.Namespace) -> int:
    import torch

    from l2t.build import resolve_device
    from l2t.gradcheck import check, check_config, check_problem
    from l2t.hypergrad import get_method

    get_method(args.method)
    if args.directions < 1:
        raise L2TError(f"--directions must be at least 1, got {args.directions}")
    device = resolve_device(args.device or "cpu")
    cfg = check_config(student=args.student, teacher=args.teacher, steps=args.steps, every=args.every,
                       seed=args.seed or 0, device=str(device), overrides=args.overrides,
                       **({} if args.momentum is None else {"momentum": args.momentum}))
    if args.momentum is not None and cfg.inner.optimizer != "sgd":
        raise L2TError(f"--momentum is momentum SGD's; the student's optimizer here is {cfg.inner.optimizer} "
                       "(set its moments with --set inner.betas=...)")
    cp = check_problem(cfg)
    print(f"method {args.method}, student {cfg.student.name} on {cfg.data.name}, {cfg.teacher.name} teacher: float64, "
          f"{cfg.inner.steps} {'Adam' if cfg.inner.optimizer == 'adam' else 'momentum-SGD'} steps, state refreshed every "
          f"{cfg.teacher.state_every}")
    if cfg.teacher.name == "dln":  # the loss network's hypergradient, then the LSTM's gradient through stage 3
        from l2t.gradcheck import check_loss_network

        results = zip(("dJ/dφ (loss network)", "dJ(φ'(θ))/dθ (LSTM, stage 3)"),
                      check_loss_network(cp, args.method, directions=args.directions, seed=args.seed or 0))
    else:
        results = [("d outer / d teacher", check(cp, args.method, directions=args.directions, seed=args.seed or 0))]
    ok = True
    for what, res in results:
        worst = res.max_rel_error
        print(what)
        for i, e in enumerate(res.rel_errors):
            print(f"  direction {i}: relative error {e:.3e}")
        held = ("the state features (continuous here) held at the nominal run's values" if res.continuous_features
                else f"{res.jumps}/{res.evaluations} perturbed runs crossed a state-feature jump")
        print(f"max relative error vs central finite differences: {worst:.3e} (tolerance {args.tol:.0e}); {held}")
        ok = ok and worst <= args.tol and bool(torch.isfinite(torch.tensor(worst)))
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

    for family, reg, flag in [
        ("students", STUDENTS, "--student NAME"), ("losses", LOSSES, "train --loss NAME"),
        ("teachers", TEACHERS, "--set teacher.name=NAME"), ("state features", STATE_FEATURES, "--set teacher.features=NAME"),
        ("hypergradient methods", METHODS, "teach --hypergrad NAME"), ("dev objectives", OBJECTIVES, "--set outer.objective=NAME"),
        ("data sets", DATASETS, "--data NAME"),
    ]:
        print(f"{family} ({flag}):")
        for name in reg.list():
            print(f"  {reg.usage(name):<26} {reg.describe(name)}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from l2t.decode import load_translator, translate

    student, params, buffers, tok = load_translator(args.run_dir)
    sentences = args.sentences or [line.rstrip("\n") for line in sys.stdin]
    real = [s for s in sentences if s.strip()]
    done = iter(translate(student, params, buffers, tok, real, beam=args.beam) if real else [])
    for s in sentences:  # a blank line stays blank, so output lines match input lines
        print(next(done) if s.strip() else "")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from l2t.config import CONFIG_DIR, describe, shipped_configs

    if args.list:
        print(f"shipped configs (in {CONFIG_DIR}; pass one to --config by name):")
        for name in shipped_configs():
            print(f"  {name.removesuffix('.toml')}")
        return 0
    print(describe(_config(args)))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from l2t import __version__
    from l2t.losses import LOSSES

    parser = argparse.ArgumentParser(prog="l2t", description="Learning to teach with dynamic loss functions.")
    parser.add_argument("--version", action="version", version=f"l2t {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fixed = ", ".join(n for n in LOSSES.list() if n != "bilinear")

    p = sub.add_parser("teach", help="train a teacher (Algorithm 1) into a run folder")
    _common(p)
    p.add_argument("--out", help="run folder (default runs/teach-DATA-STUDENT/seedN)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (uses its saved config)")
    p.add_argument("--hypergrad", help="hypergradient method (l2t list)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (pip install 'l2t[tensorboard]')")
    p.set_defaults(func=cmd_teach)

    p = sub.add_parser("train", help="train one student with a loss or a teacher; print its test error")
    _common(p)
    p.add_argument("--loss", required=True, help=f"{fixed} (l2t list), or teacher:PATH (a teacher file or a teach run "
                                                  "folder)")
    p.add_argument("--out", help="run folder (default runs/train-LOSS-DATA-STUDENT/seedN)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out (refused otherwise)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (pip install 'l2t[tensorboard]')")
    p.set_defaults(func=cmd_train)

    for name, text, default in [
        ("demo", "the demo (the shipped config demo): on digits, tune every loss, teach, compare over 10 seeds", "runs/demo"),
        ("experiment", "one experiment (a config, l2t config --list): tune every loss, teach, compare over seeds", None),
    ]:
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("--out", default=default, help=f"output folder (default {default or 'runs/<config name>'})")
        p.add_argument("--seeds", type=int, help="evaluation seeds per loss (default: the config's eval_seeds)")
        p.set_defaults(func=cmd_experiment, config_default="demo" if name == "demo" else None)

    p = sub.add_parser("check-grad", help="hypergradient vs central finite differences on a float64 problem")
    _common(p, data=False, trains=False)
    p.add_argument("--method", default="reverse", help="hypergradient method (l2t list)")
    p.add_argument("--student", default="mlp", help="any registered student (l2t list); small options by default")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the check problem's config, e.g. --set student.options='{\"dropout\": 0.3}'")
    p.add_argument("--steps", type=int, default=12, help="student steps (default 12)")
    p.add_argument("--every", type=int, default=4, help="state refresh interval (default 4)")
    p.add_argument("--momentum", type=float, help="the student's SGD momentum (default 0.9; not with Adam)")
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

    p = sub.add_parser("translate", help="translate sentences (arguments, or lines of stdin) with a trained seq2seq student")
    p.add_argument("run_dir", help="a run folder of l2t train with a translation student")
    p.add_argument("sentences", nargs="*", help="sentences to translate (default: one per line of stdin)")
    p.add_argument("--beam", type=int, default=5, help="beam width (1: greedy; default 5)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("config", help="the resolved config with each key's meaning (--show), or the shipped configs (--list)")
    _common(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--show", action="store_true", help="print the config --config and --set resolve to")
    group.add_argument("--list", action="store_true", help="list the shipped configs")
    p.set_defaults(func=cmd_config)
    return parser, dict(sub.choices)


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the subcommand's usage, not the top level's
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)} (l2t {args.command} --help lists "
                                     "the options; any config key: --set section.key=value)")
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "threads", None) is not None and args.threads < 1:
            raise L2TError(f"--threads must be at least 1, got {args.threads}")
        _set_threads(getattr(args, "threads", None))
        return args.func(args)
    except L2TError as e:
        if not (isinstance(e, AgreedError) and os.environ.get("RANK", "0") != "0"):  # said once, by rank 0
            print(f"l2t: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("l2t: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `l2t report ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _set_threads(threads: int | None) -> None:
    import torch

    torch.set_num_threads(threads or default_threads())


if __name__ == "__main__":
    sys.exit(main())
