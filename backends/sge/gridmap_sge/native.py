"""Job fields into Grid Engine's native specification (``qsub`` options for DRMAA).

Pure translation, so every field's spelling is unit-tested without a cluster; the
cluster tests then check that Grid Engine granted what these options ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import hosts_to_avoid
from gridmap_core.model.resources import ResourceError, Resources

__all__ = ["NativeOptions", "Placement", "job_name", "native_specification", "placement"]

# Grid Engine reads an integer with one of these suffixes as memory (K=1024, k=1000);
# anything else (fractions, T) is sent as a byte count, which every version reads.
_SGE_MEMORY = re.compile(r"^\d+[kKmMgG]?$")
# Characters Grid Engine refuses in a job name.
_NAME_FORBIDDEN = re.compile(r"[\s/:@\\*?]")
_VALIDATION_LEVELS = ("e", "w", "n", "v", "p")


@dataclass(frozen=True)
class NativeOptions:
    """Site settings that shape the translation."""

    use_mem_free: bool = False  # the original's USE_MEM_FREE
    gpu_resource: str = "gpu"  # the complex a site counts GPUs with
    max_running: int | None = None  # cap on running elements of one array (-tc)
    extra: str = ""  # raw options appended as they are ([backends.sge] native_specification)


# Raw requests by which a job names its hosts itself: a resubmission's hosts to avoid
# are then left to them.
_HOST_REQUEST = re.compile(r"^(hostname|h)=")


@dataclass(frozen=True)
class Placement:
    """Where a job may run: on ``hosts`` (its white_list; empty: any host), and not on
    ``excluded``."""

    hosts: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def placement(resources: Resources, avoid: Sequence[str] = (),
              exec_hosts: Sequence[str] = ()) -> Placement:
    """Where a job may run, less the hosts in ``avoid`` (a resubmission's, whose nodes
    failed): taken off its white_list, or excluded from ``exec_hosts`` (every execution
    host), never all of them (see
    :func:`~gridmap_core.backend.scheduler.hosts_to_avoid`). A job that names its hosts
    in raw requests keeps them as they are."""
    hosts = tuple(resources.white_list)
    raw = [word for entry in resources.extra for word in entry.split()]
    if not avoid or any(_HOST_REQUEST.match(word) for word in raw):
        return Placement(hosts)
    if hosts:
        excluded = hosts_to_avoid(hosts, avoid)
        return Placement(tuple(host for host in hosts if host not in excluded))
    return Placement(excluded=tuple(hosts_to_avoid(exec_hosts, avoid)))


def _not_on(hosts: Sequence[str]) -> str:
    """A hostname request that excludes ``hosts``: ``hostname=!a`` or
    ``hostname=!(a|b)``."""
    names = "|".join(hosts)
    return f"hostname=!{names}" if len(hosts) == 1 else f"hostname=!({names})"


def _memory(value: int | None, text: str | None) -> str | None:
    if value is None:
        return None
    spelled = (text or "").strip()
    return spelled if _SGE_MEMORY.match(spelled) else str(value)


def _requests(resources: Resources, extra: Mapping[str, str],
              options: NativeOptions, where: Placement) -> Iterable[str]:
    memory = _memory(resources.h_vmem, resources.h_vmem_text)
    if memory:
        yield f"h_vmem={memory}"
    memory = _memory(resources.mem_free, resources.mem_free_text)
    if memory and options.use_mem_free:
        yield f"mem_free={memory}"
    if resources.h_rt is not None:
        yield f"h_rt={resources.h_rt}"
    if resources.gpu:
        yield f"{options.gpu_resource}={resources.gpu}"
    if where.hosts and not resources.queue:
        yield "hostname=" + "|".join(where.hosts)
    if where.excluded:
        yield _not_on(where.excluded)
    for key in ("os_distribution", "os_minor"):
        if extra.get(key):
            yield f"{key}={extra[key]}"


def native_specification(spec: JobSpec, options: NativeOptions, *, array: bool,
                         avoid: Sequence[str] = (), exec_hosts: Sequence[str] = ()) -> str:
    """The native specification of ``spec``'s jobs (``array``: an array job's), kept
    off the hosts in ``avoid`` where :func:`placement` allows."""
    resources = spec.resources
    where = placement(resources, avoid, exec_hosts)
    parts: list[str] = []
    for request in _requests(resources, spec.extra, options, where):
        parts += ["-l", request]
    for raw in resources.extra:
        # A raw entry is a resource request ("arch=lx-amd64"), or qsub options
        # when it starts with a dash ("-P project -R y").
        parts += raw.split() if raw.lstrip().startswith("-") else ["-l", raw]
    if resources.num_slots > 1:
        if not resources.par_env:
            raise ResourceError(
                f"num_slots={resources.num_slots} needs a parallel environment: set "
                "par_env= or DEFAULT_PAR_ENV (see `qconf -spl` for the names)."
            )
        parts += ["-pe", resources.par_env, str(resources.num_slots)]
    if resources.queue:
        queues = resources.queue.split(",")
        if where.hosts:
            queues = [f"{q}@{host}" for q in queues for host in where.hosts]
        parts += ["-q", ",".join(queues)]
    if spec.interpreting_shell:
        parts += ["-S", spec.interpreting_shell]
    if spec.extra.get("project"):
        parts += ["-P", spec.extra["project"]]
    level = spec.extra.get("validation_level")
    if level:
        if level not in _VALIDATION_LEVELS:
            raise ResourceError(
                f"validation_level={level!r}: Grid Engine knows {', '.join(_VALIDATION_LEVELS)}."
            )
        parts += ["-w", level]
    if array and options.max_running:
        parts += ["-tc", str(options.max_running)]
    # Grid Engine splits a native specification at white space and does not unquote.
    for part in parts:
        if not part or any(c.isspace() for c in part):
            raise ResourceError(
                f"{part!r} cannot be passed to Grid Engine: its requests may not contain "
                "spaces (remove them from resources=, queue= or white_list=)."
            )
    text = " ".join(parts)
    return f"{text} {options.extra}".strip() if options.extra else text


def job_name(name: str) -> str:
    """``name`` as Grid Engine accepts it (no separators, not starting with a digit)."""
    cleaned = _NAME_FORBIDDEN.sub("_", name) or "gridmap_job"
    return f"j{cleaned}" if cleaned[0].isdigit() else cleaned
