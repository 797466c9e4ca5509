"""Atomic writes: what a killed write leaves is removed by the next job or write; modes follow the umask."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bicross.schemas import (
    QUERIES,
    AtomicParquetWriter,
    remove_stale_temporaries,
    replace_dir,
    write_table,
    write_text_atomic,
)

TABLE = pa.table({"qid": ["q1", "q2"], "text": ["a", "b"]})


def _killed_writer(path) -> None:
    """A process that streams into `path` and is SIGKILLed before closing it, as the OOM killer would."""
    code = textwrap.dedent(f"""
        import os, signal
        import pyarrow as pa
        from bicross.schemas import QUERIES, AtomicParquetWriter
        writer = AtomicParquetWriter({str(path)!r}, QUERIES)
        writer.write(pa.table({{"qid": ["q1"], "text": ["a"]}}))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr


def _beside(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_a_killed_write_leaves_a_temporary_the_next_write_removes(tmp_path):
    """The rerun's write of the same output starts by removing it (Snakemake runs one job per output
    at a time, so nothing else is writing it)."""
    out = tmp_path / "queries.parquet"
    _killed_writer(out)
    (leftover,) = _beside(out)
    assert leftover.startswith(".queries.parquet.") and leftover.endswith(".tmp")  # never under its name
    write_table(TABLE, out, QUERIES)
    assert _beside(out) == ["queries.parquet"]


def test_a_write_removes_the_temporaries_of_its_own_output_only(tmp_path):
    out = tmp_path / "a.parquet"
    _killed_writer(out)
    _killed_writer(tmp_path / "a.parquet.x")  # another output whose name starts alike: not touched
    (tmp_path / ".a.parquet.old-123").mkdir()  # a folder swap killed half-way
    (tmp_path / ".a.parquet.tmp-456").mkdir()
    (tmp_path / "a.parquet.checkpoints").mkdir()  # resumable state, not a temporary
    with AtomicParquetWriter(out, QUERIES) as writer:
        writer.write(TABLE)
    names = _beside(out)
    assert [n for n in names if n.startswith(".a.parquet.x.")] and "a.parquet.checkpoints" in names
    assert not [n for n in names if n.startswith(".a.parquet.") and not n.startswith(".a.parquet.x.")]
    assert pq.read_table(out).equals(TABLE)
    assert remove_stale_temporaries(tmp_path / "absent" / "b.parquet") == []


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_outputs_get_the_mode_a_plain_open_would_give(tmp_path, mask):
    """0666 less the umask (a group sharing the results reads them), not the 0600 of mkstemp."""
    from bicross.report import plot_metrics
    from bicross.schemas import METRICS

    with umask(mask):
        with open(tmp_path / "plain", "w"):
            pass
        write_table(TABLE, tmp_path / "table.parquet", QUERIES)
        with AtomicParquetWriter(tmp_path / "streamed.parquet", QUERIES) as writer:
            writer.write(TABLE)
        write_text_atomic("x\n", tmp_path / "text.tsv")
        metrics = pa.table({"iteration": [0, 1], "encoder": ["bi", "bi"], "split": ["test"] * 2,
                            "metric": ["ndcg@10"] * 2, "value": [0.1, 0.2]})
        write_table(metrics, tmp_path / "metrics.parquet", METRICS)
        plot_metrics(tmp_path / "metrics.parquet", tmp_path / "metrics.png")
        folder = tmp_path / ".model.tmp-1"
        folder.mkdir()
        (folder / "weights").write_text("w")
        replace_dir(folder, tmp_path / "model")
    expected = 0o666 & ~mask
    assert _mode(tmp_path / "plain") == expected
    for name in ("table.parquet", "streamed.parquet", "text.tsv", "metrics.parquet", "metrics.png", "model/weights"):
        assert _mode(tmp_path / name) == expected, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the plot leaves no temporary
