"""What the tests of maps that outlive their submitter share."""

from __future__ import annotations

#: What the session directory of a map that ended well holds while MAP_KEEP_TIME keeps
#: it: the journal and the small files beside it; no key, no logs, no results.
ENDED_SESSION = frozenset({"ended", "journal.sqlite", "launched", "monitor.json",
                           "submitter.json"})
