"""JobOptions: the one list of per-job options, their defaults and their checks.

``Job(...)``, ``grid_map(...)`` and ``GridMapExecutor(...)`` keep the original GridMap's
explicit keyword parameters (a drop-in must keep its signatures), and each hands them
here by name; a test holds those signatures to this list. Everything else (the
executor's accepted options, how jobs group into batches) reads the list from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from gridmap_core.model.resources import ResourceError

__all__ = ["VALIDATION_LEVELS", "JobOptions", "check_env"]

VALIDATION_LEVELS = ("e", "w", "n", "p", "v")


def check_env(add_env: object) -> dict[str, str] | None:
    """Validate ``add_env``: a mapping of variable names to string values."""
    if add_env is None:
        return None
    if not isinstance(add_env, Mapping) or not all(
        isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in add_env.items()
    ):
        raise TypeError(
            f"add_env={add_env!r:.200} must map variable names (strings without '=') "
            "to string values"
        )
    return dict(add_env)


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """What a job asks of its backend besides its function and arguments.

    Checked on creation: a bad ``name``, ``add_env`` or ``validation_level`` fails
    here. Resource strings (``mem_free``, ``h_rt``, …) are parsed with the backend's
    defaults by :meth:`gridmap_core.model.job.Job.requirements`.
    """

    cleanup: bool = True
    mem_free: str | None = "1G"
    name: str = "gridmap_job"
    num_slots: int = 1
    queue: str | None = None
    interpreting_shell: str | None = None
    copy_env: bool = True
    add_env: Mapping[str, str] | None = None
    project: str | None = None
    validation_level: str | None = None
    os_distribution: str | None = None
    os_minor: str | None = None
    par_env: str | None = None
    gpu: int = 0
    h_vmem: str | None = None
    h_rt: str | int | None = None
    resources: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name={self.name!r} must be a string")
        if self.validation_level and self.validation_level not in VALIDATION_LEVELS:
            raise ResourceError(
                f"validation_level={self.validation_level!r}: use one of e, w, n, p, v")
        # Frozen, so the normalised values are set past the dataclass's guard.
        object.__setattr__(self, "name", self.name.replace(" ", "_"))
        object.__setattr__(self, "add_env", check_env(self.add_env))
        if isinstance(self.resources, (list, tuple)):
            object.__setattr__(self, "resources", list(self.resources))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The options' names, in the original GridMap's parameter order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def of(cls, values: Mapping[str, Any], *, strict: bool = True) -> JobOptions:
        """The options among ``values`` (a call's keyword arguments, say).

        ``strict``: a name that is not an option is an error naming the accepted ones;
        otherwise other names are ignored (a signature's other parameters).
        """
        names = cls.names()
        unknown = set(values) - set(names)
        if strict and unknown:
            raise TypeError(
                f"unknown job option(s) {sorted(unknown)}; accepted: {', '.join(sorted(names))}"
            )
        return cls(**{name: values[name] for name in names if name in values})

    def replace(self, **changes: Any) -> JobOptions:
        """These options with some changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every option by name (shallow: ``add_env`` and ``resources`` are shared)."""
        return {name: getattr(self, name) for name in self.names()}

    def grouping_key(self) -> tuple[Any, ...]:
        """What jobs must share, besides their function, to run as one batch (one
        array): every option but the name, in a hashable form."""
        return tuple(
            tuple(sorted(value.items())) if isinstance(value, Mapping)
            else tuple(value) if isinstance(value, list) else value
            for name, value in self.as_dict().items() if name != "name"
        )
