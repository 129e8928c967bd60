"""Replays on the records' clock: the records taken a minute of their time at a time, so that
what the dispatcher decides (on the latest record time seen) is what it decided live, however
the records came in chunks. The engine (`--clock records`) and `rules test` cut the same way."""
import numpy as np

STEP_NS = 60 * 10**9            # the dispatcher's time moves a minute at a time
STEP_MAX = 1 << 18              # records; and at most this many at a time


def step_starts(records: np.ndarray, clock_ns: int, step_ns: int = STEP_NS, most: int = STEP_MAX) -> list:
    """Where the dispatcher's steps of records start: where their time (its running maximum, from
    clock_ns) enters a new step, and every `most` records within one (time standing still: a
    looped replay, whose records are all behind the clock). Cut on the records alone, they are
    the same however the records came in chunks."""
    t = np.maximum.accumulate(np.maximum(records["ts_ns"], clock_ns)) // step_ns
    runs = [0, *(np.flatnonzero(np.diff(t)) + 1).tolist(), len(records)]
    return [s for start, end in zip(runs, runs[1:]) for s in range(start, end, most)]


def steps(records: np.ndarray, clock_ns: int, whole: bool) -> tuple:
    """(the whole steps of these records, the rest): the last step waits for more records,
    unless `whole` (the end of the stream)."""
    starts = step_starts(records, clock_ns) or [0]
    done = len(records) if whole or len(records) - starts[-1] == STEP_MAX else starts[-1]
    return [records[a:b] for a, b in zip(starts, [*starts[1:], done]) if a < done], records[done:]
