"""control.journal: chunks read back as written; a chunk a kill cut short, or one that is not what
was written, ends the journal there; appending goes on after the last whole chunk."""
import struct

import numpy as np
import pytest

from touchpoint.control import journal
from touchpoint.probe.record import RECORD_DTYPE, empty


def chunk(n: int, base: int) -> tuple:
    rec = empty(n)
    rec["ts_ns"] = np.arange(base, base + n)
    marks = np.array([(1, 0, 42, base + n)], journal.MARK)
    return rec, marks


def test_chunks_come_back_and_a_cut_or_corrupt_tail_ends_the_journal(tmp_path):
    path = str(tmp_path / "j")
    j = journal.Journal(path)
    j.open(3)
    written = [chunk(n, 100 * i) for i, n in enumerate((5, 1, 300))]
    sizes = []
    for rec, marks in written:
        j.append(rec, marks)
        sizes.append(j.bytes)
    j.close()
    gen, chunks, whole = journal.read(path)
    assert gen == 3 and whole == sizes[-1] and len(chunks) == 3
    for (rec, marks), (r, m) in zip(written, chunks):
        assert (r == rec).all() and (m == marks).all()
    raw = bytearray(open(path, "rb").read())
    for cut in (sizes[-1] - 1, sizes[1] + 20, sizes[1] + 1):          # a kill mid-write
        open(path, "wb").write(raw[:cut])
        gen, chunks, whole = journal.read(path)
        assert len(chunks) == 2 and whole == sizes[1], cut
    bad = bytearray(raw)
    bad[sizes[0] + 40] ^= 1                                            # not what was written: the crc
    open(path, "wb").write(bad)
    assert len(journal.read(path)[1]) == 1 and journal.read(path)[2] == sizes[0]
    j.open(3, keep=sizes[0])                                            # appending after the last whole chunk
    j.append(*written[2])
    j.close()
    gen, chunks, _ = journal.read(path)
    assert [len(r) for r, _ in chunks] == [5, 300]


def test_another_record_size_or_no_journal(tmp_path):
    path = tmp_path / "j"
    assert journal.read(str(path)) == (None, [], 0)
    path.write_bytes(struct.pack("<4sII", b"TPJ1", 1, RECORD_DTYPE.itemsize + 8))
    with pytest.raises(journal.JournalError, match="byte records; this engine's are"):
        journal.read(str(path))
    path.write_bytes(b"not a journal at all")
    with pytest.raises(journal.JournalError, match="not a touchpoint engine journal"):
        journal.read(str(path))
    j = journal.Journal(str(path))
    j.start(7)                      # replaced whole
    assert journal.read(str(path)) == (7, [], journal.FILE.size)
    assert path.stat().st_mode & 0o777 == 0o600
