"""Doc tests: every ```sh block of README.md, docs/*.md and the folders' READMEs is run, so the
documentation cannot drift from the program; every relative link points to a file of the
repository; docs/layout.md names every module of the tree.

The blocks of one file run in order, each with `bash -e`, in one temporary directory holding
copies of the repository's samples (pcaps/, rules/): a block may use what an earlier one made
(imported lists, a generated capture), as a reader following the README would. The sandbox is
shared by the docs too, which run in DOCS order (the README's old order of sections): a doc may
use what an earlier doc made (docs/engine.md the lists docs/lists.md imported). A block must
exit 0; where a plain ``` block follows it directly, that is its output and every line of it
must appear in what the block printed (stdout and stderr), in order, except `...` lines (any
lines) and times (`0.2 s`, `up 0m 04s`), which vary. Processes a block leaves running are
ended with its process group.

A block preceded by `<!-- doctest: skip (why) -->` is not run: only blocks that need what a test
cannot provide (a real interface, an SMSC, a remote host, installing the package) carry it.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(?P<skip><!-- doctest: skip \((?P<why>[^)]*)\) -->[ \t]*\n)?^```sh\n(?P<code>.*?)^```\n"
                   r"(?:[ \t]*\n```\n(?P<out>.*?)^```\n)?", re.S | re.M)
TIME = re.compile(r"\b\d+(\.\d+)? s\b|\bup \d+m \d+s\b")
TIMEOUT = 60
# In reading order: a doc may use what an earlier one left in the sandbox.
DOCS = ["README.md"] + [f"docs/{n}.md" for n in (
    "decode", "record", "probe", "synth", "lists", "rules", "engine", "policy", "channels", "ctl", "report",
    "pool", "deployment", "layout")] + ["pcaps/README.md", "bench/README.md", "rules/README.md"]
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def blocks(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        out.append((line, m.group("code"), m.group("out"), m.group("why")))
    return out


def pattern(line: str, transcript: bool) -> re.Pattern:
    """A shown line as a pattern: times vary; in a transcript (a run shown with its `$ command`
    lines) so do counts, and `...` inside a line stands for what was left out."""
    parts = []
    for _i, piece in enumerate(re.split(r"(\.\.\.|…)", line.rstrip()) if transcript else [line.rstrip()]):
        if piece in ("...", "…"):
            parts.append(".*")
            continue
        esc = re.escape(TIME.sub("T", piece))
        parts.append(re.sub(r"\d[\d,.]*", r"[\\d,.]+", esc) if transcript else esc)
    return re.compile("".join(parts) + r"\s*$")


def shown_lines_appear(shown: str, got: str) -> str | None:
    """None when every shown line is in `got` in order; else the first line that is not."""
    lines = [TIME.sub("T", x).rstrip() for x in got.splitlines()]
    want_lines = shown.rstrip("\n").splitlines()
    transcript = any(x.startswith("$ ") for x in want_lines)
    at = 0
    for want in want_lines:
        if want.strip() in ("...", "") or want.startswith("$ "):
            continue
        pat = pattern(want, transcript)
        while at < len(lines) and not pat.match(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def end_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM (an engine snapshots and stops), SIGKILL what is still there after `grace`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            time.sleep(0.05)
            os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_block(code: str, cwd: str) -> subprocess.CompletedProcess:
    """bash -e on the block; then its process group (what it left in the background) is ended."""
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(["bash", "-e", "-c", code], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        end_group(p.pid)
        out.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read())


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    for sub in ("pcaps", "rules"):
        shutil.copytree(os.path.join(ROOT, sub), d / sub)
    return d


def test_every_doc_is_tested():
    """A new doc under docs/ (or a README beside the code) is run too: it has to be in DOCS."""
    found = {os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs
             if f.endswith(".md") and not any(p.startswith(".") or p in ("build", "touchpoint-demo")
                                              for p in os.path.relpath(d, ROOT).split(os.sep) if p != ".")}
    assert found <= set(DOCS), f"docs not in tests/test_readme.py DOCS: {sorted(found - set(DOCS))}"
    assert set(DOCS) <= found, f"DOCS names docs that are gone: {sorted(set(DOCS) - found)}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_block(doc, sandbox):
    found = blocks(os.path.join(ROOT, doc))
    assert found or doc != "README.md"
    failures = []
    for line, code, shown, why in found:
        if why is not None:
            assert why.strip(), f"{doc}:{line}: a skip needs its reason"
            continue
        r = run_block(code, str(sandbox))
        if r.returncode != 0:
            failures.append(f"{doc}:{line}: exit code {r.returncode}\n{code}{r.stdout[-2000:]}")
        elif shown is not None and (missing := shown_lines_appear(shown, r.stdout)) is not None:
            failures.append(f"{doc}:{line}: the README shows\n  {missing}\nnot printed:\n{r.stdout[-2000:]}")
    assert not failures, "\n\n".join(failures)


def test_skips_have_reasons_and_nothing_else_is_skipped():
    """The marker is the only way out, and it always says why."""
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        markers = re.findall(r"<!-- doctest:[^>]*-->", text)
        skips = [b for b in blocks(os.path.join(ROOT, doc)) if b[3] is not None]
        assert len(markers) == len(skips), f"{doc}: a doctest marker not right before a ```sh block"
        assert all(b[3].strip() for b in skips)


def test_output_comparison():
    assert shown_lines_appear("a 0.2 s\n...\nc", "a 1.7 s\nb\nc\n") is None
    assert shown_lines_appear("a\nc", "c\na\n") == "c"
    assert shown_lines_appear("x", "y") == "x"
    assert shown_lines_appear("16 rows", "17 rows") == "16 rows"                  # counts are exact
    assert shown_lines_appear("$ cmd\n16 rows, x ...", "17 rows, x y z") is None  # ... except in a transcript
    assert shown_lines_appear("$ cmd\n16 rows, x", "17 rows, y") == "16 rows, x"


def links(doc: str) -> list:
    """(line, target) of every markdown link of `doc` outside code blocks."""
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    return [(text.count("\n", 0, m.start()) + 1, m.group("target")) for m in LINK.finditer(text)]


def anchors(path: str) -> set:
    """The anchors GitHub gives the headings of a markdown file: lower case, punctuation but - and _
    dropped, spaces to -; a repeated heading gets -1, -2."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    seen, out = {}, set()
    for title in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_links_stay_in_the_repository_and_exist(doc):
    bad = []
    for line, target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):           # https:, mailto:: not a file of ours
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), path)) if path else os.path.join(ROOT, doc)
        if os.path.isabs(path) or os.path.relpath(full, ROOT).startswith(".."):
            bad.append(f"{doc}:{line}: {target}: leaves the repository")
        elif not os.path.exists(full):
            bad.append(f"{doc}:{line}: {target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            bad.append(f"{doc}:{line}: {target}: no such heading in {os.path.relpath(full, ROOT)}")
    assert not bad, "\n".join(bad)


def test_anchors_are_githubs():
    path = os.path.join(ROOT, "docs", "probe.md")
    got = anchors(path)
    assert {"live-capture-linux", "rotating-files---watch-dir", "tap", "keys-and-curve"} <= got


def modules() -> set:
    """Every Python module under probe/ control/ rules/ tests/ bench/ and every Cython/C source under ext/."""
    out = set()
    for top, exts in (("probe", (".py",)), ("control", (".py",)), ("rules", (".py",)), ("tests", (".py",)),
                      ("bench", (".py",)), ("ext", (".pyx", ".pxi", ".pxd", ".h"))):
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [x for x in dirs if not x.startswith((".", "__pycache__")) and x not in ("build", "out")]
            out |= {os.path.relpath(os.path.join(d, f), ROOT) for f in files if f.endswith(exts)}
    return out


def test_layout_names_every_module():
    """docs/layout.md names each module by its path (`control/engine.py`), and names no module that is gone."""
    with open(os.path.join(ROOT, "docs", "layout.md"), encoding="utf-8") as f:
        text = f.read()
    named = set(re.findall(r"`((?:probe|control|rules|tests|bench|ext)/[\w/]+\.(?:py|pyx|pxi|pxd|h))`", text))
    have = modules()
    missing, stale = sorted(have - named), sorted(named - have)
    assert not missing and not stale, (
        "docs/layout.md is out of date:\n  missing (add a line): " + (", ".join(missing) or "none")
        + "\n  stale (no such file): " + (", ".join(stale) or "none"))
