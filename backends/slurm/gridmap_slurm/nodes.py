"""Slurm's failed nodes, from ``sinfo``, in Slurm's words: what the monitor blames a
job's death on (a scheduler's ``down_hosts``), and what explains a wait for nodes that
no longer work.

Pure parsing, so every state is unit-tested without a cluster. A node Slurm cannot
reach is first ``NOT_RESPONDING`` (after ``SlurmdTimeout``), then ``DOWN``, when Slurm
puts its batch jobs back in the queue; an administrator's ``FAIL`` means it is failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gridmap_core.backend.scheduler import short_host

__all__ = ["FAILED_STATES", "SINFO_FAILED", "failed_nodes", "wait_note"]

#: The node states (``sinfo -t``) of a failed node.
FAILED_STATES = "down,no_respond,fail"
#: One sinfo call listing the failed nodes: name, host name, every state, reason.
SINFO_FAILED = ["sinfo", "-h", "-N", "-t", FAILED_STATES, "-O",
                "NodeList:|,NodeHost:|,StateComplete:|,Reason:|"]
# sinfo marks a node that does not respond with a '*' after its state ("idle*"), where
# StateComplete's own spelling has no flag for it.
_NOT_RESPONDING = "*"
_NOTES_NAMED = 4  # failed nodes a wait's note names, the rest counted


def _state(text: str) -> str:
    """A sinfo state as scontrol spells it: ``down+not_responding`` or ``down*`` as
    ``DOWN+NOT_RESPONDING``."""
    state = text.strip()
    flags = []
    if state.endswith(_NOT_RESPONDING):
        state = state.rstrip(_NOT_RESPONDING)
        flags.append("NOT_RESPONDING")
    parts = [part.upper() for part in state.split("+") if part]
    parts += [flag for flag in flags if flag not in parts]
    return "+".join(parts) or "UNKNOWN"


def failed_nodes(text: str) -> dict[str, str]:
    """The output of :data:`SINFO_FAILED` as ``{name: Slurm's words}``, each node under
    its Slurm name and, where it differs, its host name (what a job's runner reports):
    "Slurm says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding"."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 3 or not fields[0]:
            continue
        name, host, state = fields[0], fields[1], _state(fields[2])
        reason = fields[3] if len(fields) > 3 and fields[3] not in ("", "none", "(null)") \
            else ""
        words = f"Slurm says {name} is {state}" + (f": {reason}" if reason else "")
        found[name] = words
        if host and host not in ("(null)", "N/A") and host != name:
            found[host] = words
    return found


def wait_note(candidates: Sequence[str], down: Mapping[str, str]) -> str:
    """Why jobs that may run only on ``candidates`` (Slurm's node names) wait, when every
    one of them failed (``down``, from :func:`failed_nodes`); "" when one works."""
    if not candidates:
        return ""
    failed = {short_host(name): words for name, words in down.items()}
    words = [failed.get(short_host(node)) for node in candidates]
    if not all(words):
        return ""
    told = list(dict.fromkeys(word for word in words if word))
    more = f"; and {len(told) - _NOTES_NAMED} more" if len(told) > _NOTES_NAMED else ""
    if len(candidates) == 1:
        return f"the only node they may run on, {candidates[0]}, failed: {told[0]}"
    return f"every node they may run on failed: {'; '.join(told[:_NOTES_NAMED])}{more}"
