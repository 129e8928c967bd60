"""The source lints clean (ruff, configured in pyproject.toml), and every `# noqa` says why.

As asyncpg's tests/test__sourcecode.py runs flake8 over its tree: a lint finding fails the suite
with ruff's own report. ruff is a test dependency (pip install '.[test]').
"""
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each noqa names its codes and says why after a dash; one without a reason hides what the next
# reader needs.
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")
REASONED = re.compile(r":\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")


def ruff() -> list:
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff as _  # noqa: F401 - only whether the package is there
    except ImportError:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    return [sys.executable, "-m", "ruff"]


def test_ruff_finds_nothing():
    r = subprocess.run(ruff() + ["check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"ruff check found problems:\n{r.stdout}{r.stderr}"


def sources() -> list:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in tracked.stdout.split()]


def unreasoned(text: str) -> list:
    """The lines (1-based) of the source `text` whose comment is a noqa that names no code or gives
    no reason (a noqa inside a string is not one)."""
    comments = (t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT)
    return [t.start[0] for t in comments if (m := NOQA.search(t.string)) and not REASONED.match(m["rest"])]


def test_every_noqa_says_why():
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in sources() for n in unreasoned(p.read_text(encoding="utf-8"))]
    assert not bad, "a # noqa without `: CODE - why`:\n  " + "\n  ".join(bad)


def test_the_noqa_check_tells_a_reason_from_none():
    assert unreasoned("x = 1  # noqa: E731 - a table entry\n") == []
    assert unreasoned("x = 1  # noqa: E731, F401 - both\n") == []
    assert unreasoned("x = 1  # noqa: E731\n") == [1]
    assert unreasoned("import a\nx = 1  # noqa\n") == [2]
    assert unreasoned("x = 1  # noqa: E731 -\n") == [1]
