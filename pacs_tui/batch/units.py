"""Which systemd units a batch step stopped, read from the step's call text.

Off and restart batches stop a server's PACS units over SSH before the OS
goes down (``systemctl stop UNIT...``, see ``plan``). When the server then
stays On, those units stay stopped: the PACS is down on a running box. The
runner's result and the audit reader both need the unit names, and both
have only the call as people see it (``ssh user@host:port systemctl stop a b``),
so the parsing lives here once.
"""

from __future__ import annotations

import shlex

STOP_UNITS_VERB = "stop-units"
# Outcomes after which the units may be stopped: done, or sent with no answer.
MAY_HAVE_STOPPED = ("ok", "unknown")


def stopped_units(call: str) -> tuple[str, ...]:
    """The units of a ``systemctl stop`` call, in order; ``()`` for any other call.

    >>> stopped_units("ssh ops@10.0.0.5:22 systemctl stop pacs pacs-archive")
    ('pacs', 'pacs-archive')
    """
    try:
        words = shlex.split(call)
    except ValueError:  # an unbalanced quote: not a call we wrote
        return ()
    for index in range(len(words) - 1):
        if words[index] == "systemctl" and words[index + 1] == "stop":
            return tuple(w for w in words[index + 2 :] if not w.startswith("-"))
    return ()
