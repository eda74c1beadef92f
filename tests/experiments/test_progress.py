"""What a run shows while it works: a bar on a terminal, plain lines with the time left elsewhere, a line per job."""
from __future__ import annotations

import io

import pytest

from experiments import progress
from experiments.progress import RunProgress, job_line, seconds


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_target_is_one_plain_line_with_the_time_left() -> None:
    out = io.StringIO()
    bar = RunProgress("occlusion/default on resnet18", 2, enabled=True, stream=out)
    assert not bar.bars and bar.lines
    bar.finished("conv1", 1.25, 0.5)
    bar.finished("layer3", 2.0, 1.0)
    bar.close()
    first, last = out.getvalue().splitlines()
    assert first.startswith("occlusion/default on resnet18 [1/2] conv1: method 1.2 s, metrics 0.5 s; ~") and "left" in first
    assert last.startswith("occlusion/default on resnet18 [2/2] layer3: method 2.0 s, metrics 1.0 s; done in")
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_on_a_terminal_a_bar_and_no_plain_lines_and_disabled_is_silent() -> None:
    term = Terminal()
    bar = RunProgress("m on x", 1, enabled=True, stream=term)
    bar.stage("conv1", "metrics")
    bar.finished("conv1", 1.0, 1.0)
    bar.close()
    assert bar.bars and not bar.lines and "m on x" in term.getvalue() and "[1/1]" not in term.getvalue()
    quiet = io.StringIO()
    silent = RunProgress("m on x", 1, enabled=False, stream=quiet)
    silent.finished("conv1", 1.0, 1.0)
    silent.close()
    assert quiet.getvalue() == ""


def test_job_line_counts_jobs_and_gives_the_sweeps_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.SWEEP_JOBS, raising=False)
    assert job_line(0, "occlusion/default on planted") == "job 1: occlusion/default on planted"
    monkeypatch.setenv(progress.SWEEP_JOBS, "4")
    monkeypatch.setenv(progress.SWEEP_START, str(progress.time.time() - 30))  # 2 jobs took 30 s
    line = job_line(2, "occlusion/default on planted")
    assert line.startswith("job 3/4: occlusion/default on planted, ~") and line.endswith(" s left in the sweep")
    assert 28 <= int(line.split("~")[1].split()[0]) <= 32  # 2 jobs left at 15 s each


@pytest.mark.parametrize("s,text", [(40.2, "40 s"), (210, "3.5 min"), (7200, "2.0 h")])
def test_durations_read_as_people_say_them(s: float, text: str) -> None:
    assert seconds(s) == text
