"""Campaign rules: load a rules directory, check every file, compile conditions to numpy masks.

    rules = load("rules/")            # never raises: bad input becomes rules.errors
    for e in rules.errors:
        print(e)                      # file:line: field: why
    pred = rules.campaigns[0].trigger.where
    mask = pred.mask(col)             # col(field name) -> the column of the candidate rows

The format is docs/rules.md. A directory holds campaign files (control.campaigns), one
places.yaml (control.places), one policy.yaml (control.policyfile) and one scorecard.yaml
(control.scorecard), each read through control.yamldoc so that every error names its file and line.
"""
import os
import stat
from dataclasses import dataclass

from yaml.nodes import MappingNode, ScalarNode

from .campaigns import read_campaign
from .places import PLACES_FILES, Places, read_places
from .policyfile import POLICY_FILES, Policy, read_policy
from .scorecard import SCORECARD_FILES, read_scorecard
from .yamldoc import Doc, Error, line_of, suggest


@dataclass(frozen=True)
class RuleSet:
    path: str
    campaigns: tuple                # the campaigns without errors, by file name
    places: Places
    errors: tuple                   # Error, by file and line
    policy: Policy = Policy()
    warnings: tuple = ()            # Error too: what could not be checked (list columns without lists)
    scorecard: object = None        # scorecard.yaml read (control.scorecard.Scorecard), None: none or errors

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Lists:
    """What is imported: list names and their columns, to check audiences against."""
    lists: frozenset
    names: frozenset                # every column of every list

    def __contains__(self, name):
        return name in self.names

    def __iter__(self):
        return iter(self.names)


SPECIAL = {"places": PLACES_FILES, "policy": POLICY_FILES, "scorecard": SCORECARD_FILES}     # the files no campaign is


def _rule_files(path: str) -> tuple:
    """The rule files' names, and an error for each *.yaml that is not a regular file: a broken
    link is a campaign gone missing, a fifo would hang the reader; neither is passed over quietly."""
    names, errors = [], []
    for n in sorted(os.listdir(path)):
        if not n.endswith((".yaml", ".yml")) or n.startswith("."):
            continue
        full = os.path.join(path, n)
        try:
            mode = os.stat(full).st_mode
        except OSError as e:
            why = f"a broken symbolic link (to {os.readlink(full)})" if os.path.islink(full) else e.strerror
            errors.append(Error(full, 0, "", f"{why}: not read"))
            continue
        if stat.S_ISREG(mode):
            names.append(n)
        elif not stat.S_ISDIR(mode):
            errors.append(Error(full, 0, "", "not a regular file (a fifo, a socket or a device): not read"))
    return names, errors


def load(path: str, lists: dict | None = None) -> RuleSet:
    """Read and check a rules directory: its *.yaml / *.yml campaigns (one per file), places.yaml,
    policy.yaml and scorecard.yaml; subdirectories and hidden files are not read. lists, when given, maps the
    imported list names to their columns: audiences are then checked against them.
    Never raises: every problem is in the result's errors."""
    columns = None if lists is None else Lists(frozenset(lists), frozenset(c for cs in lists.values() for c in cs))
    try:
        names, errors = _rule_files(path)
    except OSError as e:
        return RuleSet(path, (), Places(), (Error(path, 0, "", e.strerror or str(e)),))
    places, policy, scorecard, warnings = None, None, None, []
    special = {kind: next((n for n in names if n in files), None)      # the first; another is an error
               for kind, files in SPECIAL.items()}
    if special["places"]:
        places, errs = read_places(os.path.join(path, special["places"]))
        errors += errs
    if special["policy"]:
        policy = _read(os.path.join(path, special["policy"]), errors, warnings,
                       lambda doc, root: read_policy(doc, root, places, columns))
    if special["scorecard"]:
        segments = tuple(s for s, _ in (policy or Policy()).lifecycle)
        scorecard = _read(os.path.join(path, special["scorecard"]), errors, warnings,
                          lambda doc, root: read_scorecard(doc, root, segments))
    campaigns, ids = [], {}
    for name in names:
        kind = next((k for k, files in SPECIAL.items() if name in files), None)
        if kind:
            if name != special[kind]:
                errors.append(Error(os.path.join(path, name), 0, "", f"a second {kind} file: keep one, {kind}.yaml"))
            continue
        doc = Doc(os.path.join(path, name))
        c = _campaign_file(doc, places, columns, policy or Policy(), ids)
        errors += doc.sorted_errors()
        warnings += doc.warnings
        if c is not None:
            campaigns.append(c)
    errors += _unknown_contacts(campaigns, ids)
    return RuleSet(path, tuple(campaigns), places or Places(), tuple(errors), policy or Policy(), tuple(warnings),
                   scorecard)


def _read(file: str, errors: list, warnings: list, read):
    """read(doc, root) of one file through its Doc; its errors and warnings added to these."""
    doc = Doc(file)
    root = doc.root()
    got = doc.guard(lambda: read(doc, root)) if root is not None else None
    errors += doc.sorted_errors()
    warnings += doc.warnings
    return got


def _unknown_contacts(campaigns, ids: dict) -> list:
    """An audience's `contacted` must name a campaign of the folder (its messages are in the outbox)."""
    out = []
    for c in campaigns:
        for part, a in (("audience", c.audience), ("exclude", c.exclude)):
            for h in a.contacted:
                if h.campaign not in ids:
                    out.append(Error(c.file, h.line, f"{part}.contacted.campaign",
                                     f"no campaign {h.campaign!r} in this folder{suggest(h.campaign, ids)}"))
    return out


def _campaign_file(doc: Doc, places, columns, policy: Policy, ids: dict):
    """The campaign of one file, or None; ids: {id: (file, line)} of the files read before."""
    root = doc.root()
    if root is None:
        return None
    c = doc.guard(lambda: read_campaign(doc, root, places, columns, policy))
    cid = _id_of(root)
    if cid is not None:
        first = ids.setdefault(cid[0], (doc.file, cid[1]))
        if first != (doc.file, cid[1]):
            doc.err(cid[1], "id", f"{cid[0]!r} is already the id of the campaign in {first[0]}:{first[1]}")
            return None
    return c


def _id_of(root):
    """(id, line) of a campaign document, when it has one."""
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if getattr(k, "value", None) == "id" and isinstance(v, ScalarNode) and v.value:
                return v.value, line_of(v)
    return None
