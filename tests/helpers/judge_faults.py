"""A judge function for the answer judge's workers that crashes on one reference (tests only;
module-level so the forkserver's workers can import it by name)."""

from __future__ import annotations

import os

from pipeline.domains.base import Verdict
from pipeline.domains.math.answers import judge

CRASH_REFERENCE = "13/17"


def crash_on_reference(reference: str, attempts: tuple[str, ...]) -> Verdict:
    if reference == CRASH_REFERENCE:
        os._exit(1)  # the worker dies as a segfault or the OOM killer would end it
    return judge(reference, attempts)
