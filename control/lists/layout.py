"""What an imported list is on disk, and what may go wrong with one.

DATA/lists/NAME is a symlink to the directory of its current generation, `.NAME.<gen>`:

    meta.json                          source, rows, bad rows, duplicates, columns and types
    msisdn.keys.npy, msisdn.rows.npy   packed MSISDNs (as probe.record.pack), sorted, and their rows
    imsi.keys.npy, imsi.rows.npy       the same for IMSIs (tac.keys.npy in the TAC table, `_tac`)
    col.NAME.npy                       one attribute column in file order, memory-mapped on load
    col.NAME.categories.npy            the code table of a text column with few distinct values

Every file is fsynced before the symlink names its generation (lists.importing does the swap).
"""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

TYPES = ("int", "float", "bool", "text")
KEYS = ("msisdn", "imsi")
TAC = "_tac"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class ListError(Exception):
    """A list cannot be imported or read; the message says what and where (`first_bad`: the
    first bad rows of an import that found nothing to import)."""

    def __init__(self, message: str, first_bad: list[str] = ()):
        super().__init__(message)
        self.first_bad = list(first_bad)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ListError(f"{name!r} is not a list name: letters, digits, _ and - (not first), up to 64")
    return name


# --- files -------------------------------------------------------------------------------------

def fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())


def read_meta(path: Path) -> dict:
    try:
        with open(Path(path) / "meta.json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ListError(f"{path}: not an imported list ({e.strerror if isinstance(e, OSError) else e})")


def generation_of(link: Path) -> int:
    """The generation a list's symlink names (0: none)."""
    try:
        return int(os.readlink(link).rsplit(".", 1)[1])
    except (OSError, ValueError, IndexError):
        return 0


def clean_generations(lists: Path, name: str) -> None:
    """Removes the generations of NAME that its symlink does not name (the one it named before,
    one an interrupted import left)."""
    current = generation_of(lists / name)
    for p in lists.glob(f".{name}.*"):
        gen = p.name.rsplit(".", 1)[1]
        if gen.isdigit() and int(gen) != current:
            shutil.rmtree(p, ignore_errors=True)

