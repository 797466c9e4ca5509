"""What made an artifact: the bicross version and the git commit of its source, for training.json and
the model cards."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


def version() -> str:
    from bicross import __version__

    return __version__


@functools.cache
def commit() -> str | None:
    """The commit of the checkout bicross is imported from (an editable install), with ``-dirty`` when it
    has uncommitted changes; None outside a git checkout (an installed wheel) or without git."""
    source = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
