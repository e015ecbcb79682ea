"""The core's own settings: their names, types, defaults and help.

The names, defaults and environment variables are the original GridMap's where it had
them; the rest read ``GRIDMAP_*``. Settings of one plugin (the email notifier's
``SMTP_*``, the default transport's ``MONITOR_*``, Grid Engine's ``USE_MEM_FREE``) are
declared in that plugin's contribution instead, and read in the same way.
"""

from __future__ import annotations

import os
import socket

from gridmap_core.model.setting import (
    Setting,
    boolean,
    number,
    optional,
    seconds,
    seconds_or_off,
    text,
    whole,
)

__all__ = ["SETTINGS"]

#: The transport of the TRANSPORT setting's default (the transports re-export it).
DEFAULT_TRANSPORT = "zmq"


def _default_recipient() -> str:
    # getpass imports termios: not at import time, which a runner pays at every start.
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container: keep going
        user = os.environ.get("USER", "gridmap")
    return "{}@{}".format(user, ".".join(socket.gethostname().split(".")[-2:]))


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("BACKEND", optional(text), None,
                "backend to use; unset picks the best usable one (local when no cluster is "
                "configured)", env="GRIDMAP_BACKEND"),
        Setting("DEFAULT_QUEUE", text, "all.q", "default queue (partition on Slurm)"),
        Setting("DEFAULT_TEMP_DIR", text, "/scratch/",
                "directory for job logs; must be shared with compute nodes"),
        Setting("DEFAULT_PAR_ENV", text, "smp", "parallel environment for num_slots > 1"),
        Setting("CREATE_PLOTS", boolean, True, "attach CPU/memory plots to mails"),
        Setting("SEND_ERROR_MAIL", boolean, True, "mail when a job fails or dies"),
        Setting("ERROR_MAIL_SENDER", text, "error@gridmap.py", "sender of mails"),
        Setting("ERROR_MAIL_RECIPIENT", text, _default_recipient,
                "recipient of mails (several: separated by commas)"),
        Setting("NOTIFIERS", text, "email",
                "notifiers told of failures and finished maps, comma-separated (email, log; "
                "empty: none)", env="GRIDMAP_NOTIFIERS"),
        Setting("ERROR_MAIL_DIGEST", whole, 3,
                "more failures than this within ERROR_MAIL_WINDOW go out as one mail"),
        Setting("ERROR_MAIL_WINDOW", seconds, 5,
                "seconds failures are gathered before their mails go out"),
        Setting("PROGRESS_INTERVAL", seconds, 30,
                "seconds between progress lines of a map with quiet=False when its output "
                "is not a terminal", env="GRIDMAP_PROGRESS_INTERVAL"),
        Setting("STATUS_PAGE", boolean, False,
                "serve a live status page of each map (its address is printed as it starts)",
                env="GRIDMAP_STATUS_PAGE"),
        Setting("STATUS_PAGE_ADDRESS", text, "127.0.0.1:0",
                "host:port the status page listens on (port 0: any free port)",
                env="GRIDMAP_STATUS_PAGE_ADDRESS"),
        Setting("REUSE_RUNNERS", boolean, True,
                "a runner that has finished its job takes another queued job of the same "
                "map and request (never one with h_rt), and the scheduler job that was to "
                "run it is cancelled: fewer interpreter starts for maps of short jobs",
                env="GRIDMAP_REUSE_RUNNERS"),
        Setting("MAX_TIME_BETWEEN_HEARTBEATS", seconds, 90,
                "seconds without a heartbeat before a job counts as dead"),
        Setting("IDLE_THRESHOLD", number, 1.0,
                "CPU percent at or below which a sleeping job counts as idle"),
        Setting("MAX_IDLE_TIME", seconds_or_off, 3600,
                "seconds a job may stay idle (its processes together at or below "
                "IDLE_THRESHOLD CPU) before it counts as dead; 0: never",
                env="GRIDMAP_MAX_IDLE_TIME"),
        Setting("MAX_IDLE_HEARTBEATS", optional(whole), None,
                "the original's idle limit, in heartbeats: when set (and MAX_IDLE_TIME is "
                "not), the limit is this many HEARTBEAT_FREQUENCY seconds; 0: never"),
        Setting("NUM_RESUBMITS", whole, 3, "times a dead job is resubmitted"),
        Setting("CHECK_FREQUENCY", seconds, 15, "seconds between scheduler polls"),
        Setting("HEARTBEAT_FREQUENCY", seconds, 10, "seconds between heartbeats of a job"),
        Setting("MONITOR_GRACE", seconds, 600,
                "seconds a runner waits for a monitor that is gone (its submitting process "
                "was killed) before it gives the map up: `gridmap attach` within this time "
                "takes the map on with nothing lost",
                env="GRIDMAP_MONITOR_GRACE"),
        Setting("MAP_KEEP_TIME", seconds_or_off, 86400,
                "seconds the journal of an ended or abandoned map is kept in its session "
                "directory (for gridmap status, watch and logs) before gridmap clean, or "
                "the next map, removes it; 0: removed as the map ends",
                env="GRIDMAP_MAP_KEEP_TIME"),
        Setting("TRANSPORT", text, DEFAULT_TRANSPORT,
                "how jobs reach the submitting process: the name of an installed transport "
                "(docs/protocol.md describes the built-in ones)",
                env="GRIDMAP_TRANSPORT"),
    ]
}
