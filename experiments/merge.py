"""`python -m experiments.merge SWEEP`: a sweep's shard runs (data.shard=0..n-1) merged into the run one pass over
the whole data gives, then scored like any run, in one run folder (<sweep>/merged)."""
from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from experiments import tables
from experiments.adapters import Method, get_method
from experiments.compare import find_runs
from experiments.devices import device_label, resolve_device
from experiments.gallery.catalog import natural_key
from experiments.progress import RunProgress
from experiments.run import (build_run, context_columns, failed_target, failure_line, metric_settings, run_options,
                             save_and_score, value_rows)
from experiments.runfolder import IGNORED, RunFolder, run_id
from experiments.scoring import Scoring
from experiments.validate import check_run
from methods.base import Target, Visualization, one_line

MARKER = "merged.json"  # in a merged run folder: the shard runs it came from (never itself taken for a shard)


class MergeRefused(ValueError):
    """The sweep's shards cannot be merged (missing, unfinished or duplicated shards; no shard runs)."""


@dataclass
class Shard:
    """One shard run: its folder and the config it ran (Hydra's .hydra/config.yaml)."""

    path: Path
    cfg: DictConfig

    @property
    def index(self) -> int:
        return int(self.cfg.data.shard)

    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists()


def job_config(run: Path) -> DictConfig | None:
    """The config a run folder's job ran (None: the folder has no .hydra/config.yaml)."""
    path = run / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.exists() else None


def group_key(cfg: DictConfig) -> str:
    """Everything a shard run computes but its shard (resume, progress and output_dir left out too)."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree["data"].pop("shard", None)
    for key in (*IGNORED, "output_dir"):
        tree.pop(key, None)
    return json.dumps(tree, sort_keys=True, default=str)


def find_groups(sweep: Path) -> list[list[Shard]]:
    """The sweep's shard runs (data.num_shards > 1), grouped by everything but data.shard, in job order."""
    groups: dict[str, list[Shard]] = {}
    for run in sorted(find_runs([sweep]), key=lambda p: natural_key(p.relative_to(sweep).as_posix())):
        cfg = job_config(run)
        if (run / MARKER).exists() or cfg is None or cfg.get("data", {}).get("num_shards", 1) <= 1:
            continue
        groups.setdefault(group_key(cfg), []).append(Shard(run, cfg))
    if not groups:
        raise MergeRefused(f"no shard runs under {sweep} (run folders whose .hydra/config.yaml has "
                           "data.num_shards > 1); run them first: python -m experiments.run -m data.num_shards=N "
                           "data.shard=0,1,...,N-1 ...")
    return list(groups.values())


def describe(cfg: DictConfig) -> str:
    """What a group of shards runs, as its lines name it."""
    return (f"{cfg.method.name}/{cfg.method.preset} on {cfg.model.name or cfg.model.source} "
            f"(data.num_shards={cfg.data.num_shards})")


def problems(group: list[Shard], sweep: Path) -> str | None:
    """What keeps a group from merging: missing, unfinished or duplicated shards, a method that does not merge."""
    cfg, n = group[0].cfg, int(group[0].cfg.data.num_shards)
    method = get_method(cfg.method.name)
    if method.merge is None:
        return f"{describe(cfg)}: method={method.name} does not merge shards"
    where = {i: [s for s in group if s.index == i] for i in range(n)}
    name = lambda s: s.path.relative_to(sweep).as_posix()  # noqa: E731
    found = []
    if missing := [i for i, runs in where.items() if not runs]:
        found.append(f"missing data.shard={','.join(map(str, missing))} (no run folder)")
    if unfinished := [s for runs in where.values() for s in runs if not s.done]:
        found.append(f"data.shard={','.join(str(s.index) for s in unfinished)} did not finish (no DONE in "
                     f"{', '.join(map(name, unfinished))}: failed or killed; rerun with the same overrides and "
                     "resume=true)")
    if doubled := [(i, runs) for i, runs in where.items() if len(runs) > 1]:
        found.append("; ".join(f"data.shard={i} in {len(runs)} run folders ({', '.join(map(name, runs))})"
                               for i, runs in doubled))
    return f"{describe(cfg)}: {'; '.join(found)}" if found else None


def check_groups(groups: list[list[Shard]], sweep: Path) -> None:
    """One line naming every group's missing, unfinished or duplicated shards, before any work."""
    found = [p for group in groups if (p := problems(group, sweep)) is not None]
    if found:
        raise MergeRefused(f"cannot merge {sweep}: {' | '.join(found)}")


def whole_config(cfg: DictConfig, out: Path, device: str | None) -> DictConfig:
    """A shard's config for the whole source (data.shard unset), writing into `out`."""
    whole = copy.deepcopy(cfg)
    whole.data.shard = None
    whole.data.num_shards = 1
    whole.output_dir = str(out)
    whole.resume = False
    if device is not None:
        whole.device = device
    return whole


def shard_columns(shard: Shard) -> dict[str, str]:
    """The shard's own override columns (model, seed, data.num_shards, ...), all but data.shard, as a run's are."""
    path = shard.path / ".hydra" / "overrides.yaml"
    cols = {}
    for item in OmegaConf.load(path) if path.exists() else []:
        key, _, value = str(item).lstrip("+~").partition("=")
        if key not in tables.COLUMNS and key != "data.shard":
            cols[key] = value
    return cols


def load_arrays(shard: Shard, method: Method, target: Target) -> dict[str, Any]:
    """A shard's saved arrays of one target (experiments.run.save_pictures), checked to be that target's."""
    path = shard.path / "arrays" / f"{tables.safe_name(method.name, target.layer)}.pt"
    if not path.exists():
        raise ValueError(f"{path} is missing: shard data.shard={shard.index} saved no arrays for layer "
                         f"{target.layer!r}")
    arrays = torch.load(path, map_location="cpu", weights_only=True)
    if arrays.get("layer") != target.layer or tuple(arrays.get("units", ())) != tuple(target.units):
        raise ValueError(f"{path} holds layer {arrays.get('layer')!r} units {list(arrays.get('units', ()))}, not the "
                         f"merged config's layer {target.layer!r} units {list(target.units)}")
    return arrays


def shard_time(shards: list[Shard], layer: str) -> float | None:
    """The method's seconds on `layer`, summed over the shards (None: no shard timed it)."""
    total, found = 0.0, False
    for shard in shards:
        df = pd.read_csv(shard.path / "metrics.csv", keep_default_na=False, na_values=[""])
        layers = df["layer"].fillna("").astype(str)
        times = pd.to_numeric(df.loc[(df["metric"] == "time_s") & (layers == layer), "value"], errors="coerce")
        found |= len(times) > 0
        total += float(times.sum())
    return total if found else None


def merged_rows(result: Visualization, shards: list[Shard], seconds: float) -> list[dict]:
    """The merged target's own rows: the shards' method time summed, the shard count, the merge time, its values."""
    layer = result.layer
    rows = [{"layer": layer, "unit": None, "metric": "shards", "value": float(len(shards))},
            {"layer": layer, "unit": None, "metric": "merge_time_s", "value": seconds}]
    if (spent := shard_time(shards, layer)) is not None:
        rows.insert(0, {"layer": layer, "unit": None, "metric": "time_s", "value": spent})
    return rows + value_rows(result)


def merge_group(group: list[Shard], out: Path, device: str | None = None) -> pd.DataFrame:
    """Merge one group's shards into run folder `out` (model and whole data rebuilt from the config), score each
    target as experiments.run.quality_run does, and return the table."""
    shards = sorted(group, key=lambda s: s.index)
    cfg = whole_config(shards[0].cfg, out, device)
    folder = RunFolder(cfg, {**context_columns(cfg), **shard_columns(shards[0])})
    folder.resumed(False)  # refuses a folder of another run's config
    method = check_run(cfg)
    spec, data, params, targets = build_run(cfg, method)
    progress = RunProgress(f"merge {method.name}/{cfg.method.preset} on {cfg.model.name or cfg.model.source}",
                           len(targets), cfg.progress)
    opts, settings = run_options(cfg, progress.bars), metric_settings(cfg)
    folder.context.update(weights=spec.weights, device=device_label(resolve_device(cfg.device)))
    folder.start()
    marker = {"shards": [run_id(s.path) for s in shards], "config": OmegaConf.to_container(cfg, resolve=False)}
    (out / MARKER).write_text(json.dumps(marker, indent=1, default=str), encoding="utf-8")
    for target in targets:
        start, merge_s = time.perf_counter(), 0.0
        try:
            progress.stage(target.layer, "merge")
            parts = [load_arrays(s, method, target) for s in shards]
            result = method.merge(spec, data, target, params, opts, parts)
            merge_s = time.perf_counter() - start
            rows = save_and_score(out, Scoring(method, spec, data, target, params, opts, settings), result,
                                  merged_rows(result, shards, merge_s), cfg.method.preset,
                                  on_scoring=lambda: progress.stage(target.layer, "metrics"))  # noqa: B023
        except Exception as err:  # a failed target is recorded and fails the merge, the other targets still run
            rows = failed_target(target, err)
        folder.add(rows)
        progress.finished(target.layer, merge_s, time.perf_counter() - start - merge_s)
    progress.close()
    return folder.finish(tables.summary_markdown)


def outputs(groups: list[list[Shard]], out: Path) -> list[Path]:
    """Each group's merged run folder: `out` for one group, out/0, out/1, ... for several."""
    return [out] if len(groups) == 1 else [out / str(i) for i in range(len(groups))]


def merge_sweep(sweep: str | Path, out: str | Path | None = None, device: str | None = None,
                ) -> list[tuple[Path, pd.DataFrame]]:
    """Check every shard of every group in `sweep`, then merge each group into its run folder (default:
    <sweep>/merged); the folders and their tables."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise MergeRefused(f"no such sweep folder: {sweep}")
    groups = find_groups(sweep)
    check_groups(groups, sweep)
    done = []
    for group, path in zip(groups, outputs(groups, Path(out) if out is not None else sweep / "merged")):
        path.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path / "merge.log", encoding="utf-8")  # where log_traceback writes
        logging.getLogger().addHandler(handler)
        try:
            done.append((path, merge_group(group, path, device)))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return done


def summary_line(path: Path, df: pd.DataFrame) -> str:
    """One line per merged run: where it is, what it merged, how many rows are ok."""
    first = df.iloc[0]
    shards = df.loc[df["metric"] == "shards", "value"]
    ok = int((df["status"] == "ok").sum())
    return (f"merged {int(shards.iloc[0]) if len(shards) else '?'} shards of {first['method']}/{first['preset']} on "
            f"{first['model']} into {run_id(path)}: {df['layer'].nunique()} layer(s), {ok} of {len(df)} rows ok "
            f"(python -m experiments.compare {run_id(path)})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m experiments.merge", description=__doc__)
    p.add_argument("sweep", help="the sweep folder (hydra.sweep.dir) holding the shard runs, one job per data.shard")
    p.add_argument("--out", help="the merged run folder (default: <sweep>/merged; <out>/<i> when the sweep holds "
                                 "several sharded configs)")
    p.add_argument("--device", help="run the model here instead of the shards' device setting (e.g. cpu, cuda)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Merge, print each merged run's folder and summary line; 1 on a refused merge or a failed row."""
    args = parse_args(argv)
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(console)
    try:
        merged = merge_sweep(args.sweep, args.out, args.device)
    except Exception as err:  # every error: one line (the traceback of a failed target is in merge.log)
        print(f"error: {err if isinstance(err, MergeRefused) else one_line(err)}", file=sys.stderr)
        return 1
    finally:
        root.removeHandler(console)
        root.setLevel(level)
    code = 0
    for path, df in merged:
        print(summary_line(path, df))
        if (line := failure_line(df)) is not None:
            print(f"error: {line} (traceback: {run_id(path / 'merge.log')})", file=sys.stderr)
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
