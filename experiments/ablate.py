"""Run named variants of a config (teacher or fixed-loss baseline) over the same evaluation seeds
and print one table: test error and dev error (mean ± std), paired difference to the baseline.

    python experiments/ablate.py VARIANTS.toml [--config BASE.toml] [--only NAME ...] [--report]

A top-level ``overrides`` table applies to every variant (a variant's own overrides win).
Each variant writes ``OUT/<name>/teach`` (a teach run) and ``OUT/<name>/seed<k>/summary.json``;
the table is read back from those run folders, so ``--report`` re-prints it without training.
"""

from __future__ import annotations

import argparse
import statistics
import tomllib
from pathlib import Path

from l2t.build import load_splits
from l2t.config import load_config
from l2t.io import read_json, read_jsonl
from l2t.report import mean_std, paired_delta, seed_summaries
from l2t.teach import STATE_FILE, teach
from l2t.train import load_loss, record_student


def run_variant(name: str, spec: dict, base: Path | None, out: Path, seeds: int, common: dict) -> None:
    cfg = load_config(base, common | spec.get("overrides", {}))
    data = load_splits(cfg)
    if "baseline" in spec:
        loss = load_loss(cfg, spec["baseline"])
    else:
        teach_dir = out / name / "teach"
        teach(cfg, teach_dir, resume=(teach_dir / STATE_FILE).exists(), progress=False)
        loss = load_loss(cfg, f"teacher:{teach_dir}")
    for s in range(seeds):
        record_student(cfg, data, loss, s, out / name / f"seed{s}", overwrite=True)


def report(variants: dict, out: Path, seeds: int) -> str:
    def errors(name, key):
        return [100 * r[key] for r in seed_summaries(out / name, seeds)]

    base = next((n for n, v in variants.items() if "baseline" in v), None)
    rows = ["| variant | test error (%) | paired Δ vs " + (base or "-") + " (± s.e.) | dev error (%) | dev measure, first → last 5 teacher steps | online student's test error (%) |",
            "|---|---|---|---|---|---|"]
    for name, spec in variants.items():
        if not (out / name / f"seed{seeds - 1}" / "summary.json").exists():
            rows.append(f"| {name} | not run | | | | |")
            continue
        test, dev = errors(name, "test_error"), errors(name, "dev_error")
        delta = ""
        if base and name != base and (out / base / f"seed{seeds - 1}").exists():
            delta = paired_delta(test, errors(base, "test_error"))
        curve = ""
        metrics = [m["dev_measure"] for m in read_jsonl(out / name / "teach" / "metrics.jsonl") if "dev_measure" in m]
        if metrics:
            curve = f"{statistics.mean(metrics[:5]):.4f} → {statistics.mean(metrics[-5:]):.4f}"
        (m, sd), (dm, dsd) = mean_std(test), mean_std(dev)
        summary = out / name / "teach" / "summary.json"
        online = read_json(summary).get("online_test_error") if summary.exists() else None
        online = f"{100 * online:.2f}" if online is not None else ""
        rows.append(f"| {name} | {m:.2f} ± {sd:.2f} | {delta} | {dm:.2f} ± {dsd:.2f} | {curve} | {online} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", type=Path)
    p.add_argument("--config", type=Path, help="base config (default: the demo defaults)")
    p.add_argument("--out", type=Path, help="default runs/ablation/<variants file stem>")
    p.add_argument("--only", nargs="*", help="run only these variants")
    p.add_argument("--report", action="store_true", help="only print the table from existing runs")
    args = p.parse_args()
    spec = tomllib.loads(args.variants.read_text())
    seeds, variants = spec.get("seeds", 5), spec["variants"]
    out = args.out or Path("runs/ablation") / args.variants.stem
    if not args.report:
        for name, v in variants.items():
            if not args.only or name in args.only:
                print(f"running {name} ...", flush=True)
                run_variant(name, v, args.config, out, seeds, spec.get("overrides", {}))
    print(report(variants, out, seeds))


if __name__ == "__main__":
    main()
