"""Send a job's logging, warnings and progress bars to its rule's log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from bicross.schemas import remove_stale_temporaries


@contextlib.contextmanager
def rule_log(path: str | None, outputs: Iterable[str] = ()):
    """Redirect stdout/stderr (tqdm writes there) and `logging` to `path` for the duration of a job.

    `outputs` (the job's `snakemake.output`): the temporaries that killed writes of them left are
    removed first, so a rerun after a crash leaves no `.<name>.*.tmp` behind (Snakemake runs one job per
    output at a time, so nothing else is writing them).
    """
    for output in outputs:
        remove_stale_temporaries(output)
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
