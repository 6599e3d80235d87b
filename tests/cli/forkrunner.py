"""Run many `genmeasures` command lines, each in its own forked process, from one warm parent.

Starting a fresh interpreter costs seconds on a small machine (torch, pandas and scikit-learn
are imported again each time); a fork of a parent that has imported them once costs
milliseconds. Each case still runs in a process of its own, through the real command-line
entry point, with its own exit status and its own stdout and stderr files, and no state is
shared between cases.

Usage: ``python forkrunner.py CASES.json RESULTS.json JOBS`` where CASES.json lists objects
``{"id", "argv", "stdout", "stderr"}``; RESULTS.json gets ``{id: exit_status}``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import sklearn.datasets  # noqa: F401
import torch  # noqa: F401

# Imported once in the parent, inherited by every fork.
import genmeasures.cli
import genmeasures.finetune
import genmeasures.scoring
import genmeasures.sweeps


def _child(case: dict) -> None:
    code = 70
    try:
        for fd, path in ((1, case["stdout"]), (2, case["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        genmeasures.cli.main.main(args=case["argv"], prog_name="genmeasures")
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    cases_path, results_path, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(cases_path) as handle:
        cases = json.load(handle)
    results: dict[str, int] = {}
    running: dict[int, str] = {}
    pending = list(cases)
    while pending or running:
        while pending and len(running) < jobs:
            case = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(case)
            running[pid] = case["id"]
        pid, status = os.wait()
        results[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    with open(results_path, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
