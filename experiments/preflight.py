"""Before Hydra runs anything: compose every job of the command line as Hydra will and check it, so bad input
(an unknown option, key or value in any job of a sweep) stops at once in one line, before any work."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from experiments.config import register
from experiments.progress import SWEEP_JOBS, SWEEP_START
from experiments.runfolder import computing, refuse_other_config
from experiments.validate import check_run, unknown_key, unused_overrides
from methods.base import invalid_choice

SKIPPED_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion", "experimental_rerun",
                 "config_path", "config_dir")  # Hydra answers these itself, or composes from elsewhere
ALL_JOBS_UP_TO = 128  # sweeps up to this many jobs have every job's config checked before the first starts
NOISE = ("See https://", "Set the environment variable", "full_key:", "object_type=", "reference_type=")


def preflight(argv: Sequence[str]) -> None:
    """Check every job the command line makes; on bad input print one line and exit 1."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(list(argv))
    except SystemExit:
        return  # a bad flag: Hydra's own parser says so and exits
    if getattr(args, "cfg", None):
        note_first_job(args)
    if any(getattr(args, flag, None) for flag in SKIPPED_FLAGS):
        return
    try:
        jobs = job_configs(args.overrides, args.multirun, args.config_name or "config")
        for job in jobs:
            try:
                check_run(job.cfg)
                unused_overrides(job.cfg, job.overrides)
                if job.folder is not None:
                    check_writable(job.folder)
                    refuse_other_config(job.folder, computing(job.overrides))
            except Exception as err:  # noqa: BLE001 - any check failing is bad input
                raise ValueError(f"{message(err)}{f' (sweep job {job.label})' if job.label else ''}") from None
    except Exception as err:  # noqa: BLE001 - Hydra's composition errors are many types, all bad input
        print(f"error: {message(err)}", file=sys.stderr)
        sys.exit(1)
    if jobs[0].label:  # a sweep: its size and start, for each job's progress line
        os.environ[SWEEP_JOBS], os.environ[SWEEP_START] = str(jobs[0].of), str(time.time())


def note_first_job(args: Any) -> None:
    """With --cfg, say on stderr when the command is a sweep: Hydra prints the first job's config only."""
    try:
        jobs = job_configs(args.overrides, args.multirun, args.config_name or "config")
        if jobs[0].label:
            print(f"note: this command is a sweep of {jobs[0].of} jobs; --cfg shows the first ({jobs[0].label})",
                  file=sys.stderr)
    except Exception:  # noqa: BLE001 - Hydra reports bad input itself
        pass


def is_hydra(override: str) -> bool:
    """Whether an override sets Hydra's own config (hydra.*, hydra/launcher=...), not the job's."""
    return override.lstrip("+~").startswith(("hydra.", "hydra/"))


class Job(NamedTuple):
    """One job the command line makes: its overrides, composed config and run folder (None: not known yet)."""

    label: str  # '' for a single run
    overrides: list[str]
    cfg: DictConfig
    folder: Path | None
    of: int = 1  # how many jobs the command line makes (all of them, also where only some are checked)


def job_configs(overrides: list[str], multirun: bool, config_name: str) -> list[Job]:
    """Each job the command line makes: one for a run, the product for a sweep (composed as Hydra will)."""
    register()
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    with initialize_config_module(config_module="conf", version_base="1.3"):
        try:
            return composed_jobs(parser, parsed, overrides, multirun, config_name)
        except MissingConfigException as err:
            raise missing_option(err, parsed) from None


def composed_jobs(parser: OverridesParser, parsed: list[Override], overrides: list[str], multirun: bool,
                  config_name: str) -> list[Job]:
    """job_configs inside an initialized Hydra."""
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    base = compose(config_name, overrides=fixed, return_hydra_config=True)
    if not (multirun or base.hydra.mode == RunMode.MULTIRUN):
        if sweeps:
            raise ValueError(f"override {sweeps[0]} lists several values: add -m to sweep over them, or write "
                             f"a list as key=[a,b]")
        return [Job("", [o for o in overrides if not is_hydra(o)], base, folder_of(base, None))]
    if not base.hydra.sweeper._target_.endswith("BasicSweeper"):
        return [Job("", [], base, None)]
    hydra_overrides = [o for o in overrides if is_hydra(o)]
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    task = parser.parse_overrides(params + [o for o in overrides if not is_hydra(o)])
    jobs = BasicSweeper.split_arguments(task, None)[0]
    chosen = covering(jobs)
    composed = [(i, compose(config_name, overrides=hydra_overrides + jobs[i], return_hydra_config=True)) for i in chosen]
    return [Job(" ".join(jobs[i]), jobs[i], cfg, folder_of(cfg, i), len(jobs)) for i, cfg in composed]


def covering(jobs: list[list[str]], limit: int = ALL_JOBS_UP_TO) -> list[int]:
    """Indices of the jobs to check: all up to `limit` (composing one takes ~0.1 s); beyond, jobs until every
    override value appears in one (each job still checks its own config when it starts)."""
    if len(jobs) <= limit:
        return list(range(len(jobs)))
    chosen, seen = [], set()
    for i, job in enumerate(jobs):
        if not set(job) <= seen:
            chosen.append(i)
            seen.update(job)
    print(f"preflight: checked {len(chosen)} of the sweep's {len(jobs)} job configs, covering every override value")
    return chosen


def check_writable(folder: Path) -> None:
    """One line if a run folder cannot be made there (a file in the way, a read-only or missing mount)."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"run folder {folder} cannot be made: {parent} is a file (set hydra.run.dir / hydra.sweep.dir)")
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".vizbench-check-"))
    except OSError as err:
        raise ValueError(f"run folder {folder} cannot be made: {parent}: {err.strerror} (set hydra.run.dir / "
                         "hydra.sweep.dir)") from None


def folder_of(cfg: DictConfig, job: int | None) -> Path | None:
    """The run folder Hydra will give a single run (job None) or sweep job `job` (None where it cannot be known
    before Hydra runs, e.g. a subdir other than the job number)."""
    try:
        if job is None:
            return Path(cfg.hydra.run.dir)
        if OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"] != "${hydra.job.num}":
            return None
        return Path(cfg.hydra.sweep.dir) / str(job)
    except Exception:  # noqa: BLE001 - an interpolation only Hydra's runtime can resolve
        return None


def group_options(loader: Any, group: str) -> list[str]:
    """Every option of a config group, those of its subgroups as sub/option (method: gradient_ascent/olah2017...)."""
    names = list(loader.get_group_options(group))
    for sub in loader.list_groups(group):
        names += [f"{sub}/{name}" for name in group_options(loader, f"{group}/{sub}")]
    return sorted(names)


def missing_option(err: MissingConfigException, parsed: list[Override]) -> Exception:
    """An unknown group option as one line with every valid option of the group (subgroups included)."""
    for group in sorted({o.key_or_group.lstrip("+~") for o in parsed}, key=len, reverse=True):
        if err.missing_cfg_file.startswith(f"{group}/"):
            value = err.missing_cfg_file[len(group) + 1:]
            return invalid_choice(f"{group} option", value, group_options(GlobalHydra.instance().config_loader(), group))
    return err


def message(err: BaseException) -> str:
    """One line for a composition or check error: Hydra's multi-line messages folded, a missing option with the
    valid ones, an unknown key with its close matches."""
    if isinstance(err, OverrideParseException):
        return f"cannot parse override {err.override!r}: {str(err).splitlines()[0]}"
    cause = err.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key and not is_hydra(cause.full_key):
        return str(unknown_key(cause.full_key))
    text = [str(err)] + ([str(err.__cause__)] if err.__cause__ is not None and str(err.__cause__) not in str(err) else [])
    lines = [ln.strip() for t in text for ln in t.splitlines() if ln.strip() and not ln.strip().startswith(NOISE)]
    return ": ".join(dict.fromkeys(lines)) or type(err).__name__

