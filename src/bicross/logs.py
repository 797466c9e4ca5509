"""Send a job's logging, warnings and progress bars to its rule's log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


@contextlib.contextmanager
def rule_log(path: str | None):
    """Redirect stdout/stderr (tqdm writes there) and `logging` to `path` for the duration of a job."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as handle, contextlib.redirect_stderr(handle), \
            contextlib.redirect_stdout(handle):
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except Exception:
            logging.getLogger("bicross").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr.flush()
