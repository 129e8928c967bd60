"""Reading a list's source file, CSV or Parquet, in batches, and reporting its bad rows."""
import csv
import queue
import threading

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .layout import ListError

SHOWN_BAD = 20                      # bad rows an import keeps for its report (all are counted)
BLOCK = 4 << 20                     # CSV bytes parsed per batch
MAX_HEADER = 1 << 20                # bytes of a header line


class CsvSource:
    """A CSV file with a header row, read in blocks, with each row's line number.

    The delimiter is the most frequent of comma, tab and semicolon in the header. Every column
    is read as bytes: UTF-8, numbers and keys are checked per row by the import, so a bad value
    costs its row, not the file.
    """
    unit = "line"

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            head = f.readline(MAX_HEADER + 1)
        if len(head) > MAX_HEADER and not head.endswith(b"\n"):
            raise ListError(f"{path}:1: the header line is longer than {MAX_HEADER >> 20} MiB: not a list's header")
        first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
        try:
            text = first.decode()
        except UnicodeDecodeError:
            raise ListError(f"{path}:1: the header is not UTF-8 text (save the file as UTF-8)")
        self.delimiter = max(",\t;", key=text.count)
        self.columns = next(csv.reader([text], delimiter=self.delimiter), [])
        self._skipped = []                       # (line, fields) of rows with the wrong column count

    def _on_invalid(self, row) -> str:
        self._skipped.append((row.number, row.actual_columns))
        return "skip"

    def batches(self):
        """(the columns of a block as binary arrays, each row's line number, the rows skipped)."""
        n = len(self.columns)
        names = [f"c{i}" for i in range(n)]
        reader = pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK, skip_rows=1, column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=self._on_invalid,
                                             ignore_empty_lines=False),   # keeps line numbers exact
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.binary()),
                                                 strings_can_be_null=False))
        line = 2
        for batch in reader:
            # The rows of this block fill the lines from `line` on that the parser did not skip.
            skipped, self._skipped = sorted(self._skipped), []
            m = batch.num_rows
            gaps = np.array([s for s, _ in skipped], np.int64) - line - np.arange(len(skipped))
            lines = line + np.arange(m) + np.searchsorted(gaps, np.arange(m), side="right")
            line = int(lines[-1]) + 1 if m else line
            self._skipped = [s for s in skipped if s[0] >= line]
            yield batch.columns, lines, [self._why(s) for s in skipped if s[0] < line]
        yield [pa.array([], pa.binary())] * n, np.zeros(0, np.int64), [self._why(s) for s in self._skipped]

    def _why(self, skipped: tuple[int, int]) -> tuple[int, str]:
        return skipped[0], f"expected {len(self.columns)} columns, found {skipped[1]}"


class ParquetSource:
    """A Parquet file, read in batches; rows are numbered from 1."""
    unit = "row"
    delimiter = None

    def __init__(self, path: str):
        import pyarrow.parquet as pq
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as e:
            raise ListError(f"{path}: not a readable Parquet file: {e}")
        self.columns = list(self._file.schema_arrow.names)

    def batches(self):
        row = 1
        for batch in self._file.iter_batches(batch_size=65536):
            yield batch.columns, np.arange(row, row + batch.num_rows), []
            row += batch.num_rows


def open_source(path: str):
    with open(path, "rb") as f:
        magic = f.read(4)
    return ParquetSource(path) if magic == b"PAR1" else CsvSource(path)


def prefetch(batches, depth: int = 2):
    """The batches of a source, read ahead in a thread: parsing overlaps converting (both
    release the GIL in Arrow and numpy)."""
    q = queue.Queue(depth)
    done = threading.Event()

    def read():
        try:
            for item in batches:
                while not done.is_set():
                    try:
                        q.put(("batch", item), timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if done.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            q.put(("error", e))

    thread = threading.Thread(target=read, name="list-reader", daemon=True)
    thread.start()
    try:
        while True:
            what, item = q.get()
            if what == "end":
                return
            if what == "error":
                raise item
            yield item
    finally:
        done.set()
        thread.join()


class BadRows:
    """Rows an import skips: all counted, the first SHOWN_BAD kept, all written to `out` in
    line order (a batch's rows are sorted when it is done: flush)."""

    def __init__(self, source, out=None):
        self.source = source
        self.out = out
        self.count = 0
        self.first: list[str] = []
        self._pending: list[tuple[int, str]] = []

    def add(self, number: int, why: str) -> None:
        self._pending.append((number, why))

    def flush(self) -> None:
        path = self.source.path
        for number, why in sorted(self._pending):
            text = f"{path}:{number}: {why}" if self.source.unit == "line" else f"{path}: row {number}: {why}"
            self.count += 1
            if len(self.first) < SHOWN_BAD:
                self.first.append(text)
            if self.out is not None:
                self.out.write(text + "\n")
        self._pending = []

