"""Job fields into a slurm-drmaa native specification, refusing what it cannot read.

The options are the sbatch backend's (:func:`gridmap_slurm.options.job_options`), which
slurm-drmaa reads as sbatch does. But slurm-drmaa does not use sbatch's parser
(natefoo/slurm-drmaa, ``slurm_drmaa/util.c``): it splits the specification at blanks,
knows a fixed list of options and refuses the whole job over any other, with a bare
"Invalid native specification". Some options it reads differently without a word: a
long option's value is cut at its next ``=``, numbers take no unit, ``--time`` is
hours:minutes[:seconds]. So every option is checked here, before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

from gridmap_slurm.options import SlurmOptions, allowed_nodes, job_options

from gridmap_core.backend import JobSpec
from gridmap_core.model.resources import ResourceError

__all__ = ["FLAGS", "SHORT_OPTIONS", "VALUED", "check_job", "check_options",
           "native_specification"]

#: Long options slurm-drmaa reads as ``--name=value``.
VALUED = frozenset({
    "account", "acctg-freq", "comment", "constraint", "cpus-per-task", "mem",
    "mem-per-cpu", "mincpus", "nodelist", "nodes", "ntasks-per-node", "partition", "qos",
    "reservation", "job_name", "time_limit", "time", "ntasks", "gres", "licenses",
    "mail-type", "exclude", "tmp",
})
#: Long options slurm-drmaa reads as ``--name``, without a value.
FLAGS = frozenset({"contiguous", "exclusive", "requeue", "share", "no-kill", "no-requeue"})
#: Short options, each followed by its value as the next word, and their long names.
SHORT_OPTIONS = {
    "-A": "account", "-C": "constraint", "-c": "cpus-per-task", "-N": "nodes",
    "-p": "partition", "-w": "nodelist", "-J": "job_name", "-t": "time", "-n": "ntasks",
    "-x": "exclude", "-L": "licenses",
}
# Values slurm-drmaa reads with its strict atoi: digits only (memory and disk in MB).
_WHOLE_NUMBERS = frozenset({"cpus-per-task", "mem", "mem-per-cpu", "mincpus",
                            "ntasks-per-node", "ntasks", "tmp"})
# Three fields, because slurm-drmaa reads "1:30" as 1 h 30 min and sbatch as 1 min 30 s.
_TIME = re.compile(r"\d+:[0-5]?\d:[0-5]?\d")
_NODES = re.compile(r"\d+(-\d+)?")
_MAIL_TYPES = ("BEGIN", "END", "FAIL", "REQUEUE", "ALL")
_JOB = "the job (its resources=[...], queue, white_list, gpu or project)"
_SITE = "the backend option native_specification"


def _supported() -> str:
    return (", ".join(f"--{name}=…" for name in sorted(VALUED)) + ", "
            + ", ".join(f"--{name}" for name in sorted(FLAGS)) + "; short forms "
            + " ".join(SHORT_OPTIONS))


def _refuse(shown: str, where: str, why: str) -> ResourceError:
    return ResourceError(f"{shown!r} from {where}: {why} (slurm-drmaa would refuse or "
                         "misread the whole job; nothing was submitted)")


def _check_value(name: str, value: str, shown: str, where: str) -> None:
    if name in _WHOLE_NUMBERS and not value.isdigit():
        unit = " of MB, with no unit" if name in ("mem", "mem-per-cpu", "tmp") else ""
        raise _refuse(shown, where, f"slurm-drmaa reads --{name} as a whole number{unit}, "
                      f"e.g. --{name}=4096")
    if name == "nodes" and not _NODES.fullmatch(value):
        raise _refuse(shown, where, "slurm-drmaa reads --nodes as N or MIN-MAX")
    if name in ("time", "time_limit") and not _TIME.fullmatch(value):
        raise _refuse(shown, where, "write the time limit as hours:minutes:seconds, e.g. "
                      "--time=1:30:00 (slurm-drmaa reads 1:30 as 1 h 30 min where sbatch "
                      "reads 1 min 30 s, and reads no days)")
    if name == "mail-type" and value.upper() not in _MAIL_TYPES:
        raise _refuse(shown, where, f"slurm-drmaa reads one of {', '.join(_MAIL_TYPES)} "
                      "and silently ignores anything else")


def check_options(tokens: Sequence[str], where: str) -> list[str]:
    """``tokens`` if slurm-drmaa reads every one as sbatch would; otherwise raise
    :class:`ResourceError` naming the option, ``where`` it came from, and what to write."""
    waiting: str | None = None  # a short option whose value comes next
    for token in tokens:
        if not token or any(c.isspace() for c in token):
            raise _refuse(token, where, "slurm-drmaa splits options at blanks, so no option "
                          "or value may contain one")
        if waiting is not None:
            if token.startswith("-"):
                raise _refuse(waiting, where, f"{waiting} needs a value as the next word")
            _check_value(SHORT_OPTIONS[waiting], token, f"{waiting} {token}", where)
            waiting = None
        elif token.startswith("--"):
            name, has_value, value = token[2:].partition("=")
            if name in FLAGS:
                if has_value:
                    raise _refuse(token, where, f"slurm-drmaa reads --{name} without a value "
                                  "and would drop this one")
            elif name in VALUED:
                if not value:
                    raise _refuse(token, where, f"write --{name}=VALUE, as one word")
                if "=" in value:
                    raise _refuse(token, where, "slurm-drmaa cuts a value at its first '=' "
                                  f"(it would read --{name}={value.split('=')[0]})")
                _check_value(name, value, token, where)
            else:
                raise _refuse(token, where, f"slurm-drmaa does not know --{name}; it reads "
                              f"only {_supported()}")
        elif token in SHORT_OPTIONS:
            waiting = token
        elif token == "-s":
            raise _refuse(token, where, "write --share (slurm-drmaa reads the word after -s "
                          "as its value, and so drops a long option that follows it)")
        elif len(token) == 2 and token.startswith("-"):
            raise _refuse(token, where, f"slurm-drmaa does not know {token}; it reads only "
                          f"{_supported()}")
        elif token.startswith("-"):
            raise _refuse(token, where, "slurm-drmaa reads short options only as a letter "
                          f"followed by its value as the next word ({' '.join(SHORT_OPTIONS)})"
                          f", and long options as --name=value")
        else:
            raise _refuse(token, where, "a value with no option before it")
    if waiting is not None:
        raise _refuse(waiting, where, f"{waiting} needs a value as the next word")
    return list(tokens)


def _long_names(tokens: Sequence[str]) -> set[str]:
    # Values never start with '-' (check_options), so every such token is an option.
    return {token[2:].partition("=")[0] if token.startswith("--") else SHORT_OPTIONS[token]
            for token in tokens if token.startswith("--") or token in SHORT_OPTIONS}


def native_specification(spec: JobSpec, options: SlurmOptions | None = None,
                         avoid: Sequence[str] = ()) -> str:
    """The native specification for ``spec``'s jobs: the sbatch backend's options (with
    ``avoid``, the hosts whose nodes failed, left out as sbatch's are), each checked
    with :func:`check_options`, joined by spaces."""
    options = options or SlurmOptions()
    if allowed_nodes(spec.resources, options, avoid) is None:
        avoid = ()  # the site's options name the nodes
    tokens = check_options(job_options(spec, dataclasses.replace(options, extra=()), avoid),
                           _JOB)
    tokens += check_options(options.extra, _SITE)
    if {"mem", "mem-per-cpu"} <= _long_names(tokens):
        raise ResourceError(
            f"--mem and --mem-per-cpu together ({' '.join(tokens)}): sbatch refuses the pair "
            "and slurm-drmaa silently keeps whichever number is larger, per node or per CPU. "
            "h_vmem and mem_free become --mem-per-cpu: for --mem, set both to None."
        )
    return " ".join(tokens)


def check_job(spec: JobSpec) -> None:
    """Refuse what slurm-drmaa cannot do besides options: it writes every job script for
    /bin/bash, and gives every job the submitting process's environment."""
    shell = spec.interpreting_shell
    if shell and os.path.basename(shell) not in ("bash", "sh"):
        raise ResourceError(
            f"interpreting_shell={shell!r}: slurm-drmaa writes every job script for "
            "/bin/bash and cannot run it with another shell; leave interpreting_shell unset "
            "(the runner needs no particular shell)."
        )
    if not spec.copy_env:
        raise ResourceError(
            "copy_env=False: slurm-drmaa always passes the submitting process's environment "
            "on to its jobs (add_env is added on top); use backend='slurm' for jobs that "
            "must not inherit it."
        )
