"""Named crash points for crash-safety tests and benchmarks: the process dies there, for real.

``BULKAI_FAILPOINTS=reclassify.after_post`` makes the process that reaches ``failpoint("reclassify.after_post")``
exit at once with :data:`EXIT_CODE`, with no cleanup, no ``finally`` and no commit: what a killed worker leaves.
Tests run a flow in a child process with the variable set, then rerun it and check what the crash left.  Unset
(always, outside tests), a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os

ENV = "BULKAI_FAILPOINTS"
EXIT_CODE = 97


def failpoint(name: str) -> None:
    armed = os.environ.get(ENV)
    if armed and name in armed.split(","):
        os._exit(EXIT_CODE)
