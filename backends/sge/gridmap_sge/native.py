"""Job fields into Grid Engine's native specification (``qsub`` options for DRMAA).

Pure translation, so every field's spelling is unit-tested without a cluster; the
cluster tests then check that Grid Engine granted what these options ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gridmap_core.backend import JobSpec
from gridmap_core.model.resources import ResourceError, Resources

__all__ = ["NativeOptions", "job_name", "native_specification"]

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


def _memory(value: int | None, text: str | None) -> str | None:
    if value is None:
        return None
    spelled = (text or "").strip()
    return spelled if _SGE_MEMORY.match(spelled) else str(value)


def _requests(resources: Resources, extra: Mapping[str, str],
              options: NativeOptions) -> Iterable[str]:
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
    if resources.white_list and not resources.queue:
        yield "hostname=" + "|".join(resources.white_list)
    for key in ("os_distribution", "os_minor"):
        if extra.get(key):
            yield f"{key}={extra[key]}"


def native_specification(spec: JobSpec, options: NativeOptions, *, array: bool) -> str:
    """The native specification of ``spec``'s jobs (``array``: an array job's)."""
    resources = spec.resources
    parts: list[str] = []
    for request in _requests(resources, spec.extra, options):
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
        if resources.white_list:
            queues = [f"{q}@{host}" for q in queues for host in resources.white_list]
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
