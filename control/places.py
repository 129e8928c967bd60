"""places.yaml: the home networks, the regions, the areas and the hotlines a rules folder names,
with lookup tables as numpy arrays (read-only) for vectorised or native use.

    places, errors = read_places("rules/places.yaml")        # errors: file:line: field: why
    region = places.region_of(records)                        # region index of each record, 0: none

The rules (control.rules) and the capture generator's stories read places through read_places.
"""
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from yaml.nodes import MappingNode, SequenceNode

from touchpoint.probe.record import Loc, pack

from .predicates import frozen, isin
from .yamldoc import BAD, Doc, line_of

PLACES_FILES = ("places.yaml", "places.yml")

LAC_LOCS = (Loc.CGI, Loc.SAI, Loc.RAI, Loc.LAI)
TAC_LOCS = (Loc.TAI, Loc.ECGI)
LIMITS = {"lac": 0xFFFF, "tac": 0xFFFFFF, "cell": 0xFFFFFFFF}
NO_PLMN = 0xFFFF


@dataclass(frozen=True)
class Region:
    name: str
    index: int                      # 1-based, in file order; 0 is "no region"
    node: tuple = ()                # GT prefixes of the serving node ('8613900010*') or whole GTs
    mccmnc: tuple = ()              # serving networks, 'MCCMNC'
    negate: bool = False            # mccmnc is {not: [...]}: any known network but these
    lac: tuple = ()                 # ((first, last), ...) inclusive, in home networks
    tac: tuple = ()
    line: int = 0


@dataclass(frozen=True)
class Area:
    name: str
    index: int                      # 1-based, in file order; 0 is "no area"
    cells: tuple = ()               # ((lac_tac, first_cell, last_cell), ...) inclusive
    line: int = 0


_PREFIX_DT = np.dtype([("region", "<u2"), ("value", "<u8"), ("digits", "u1")])
_NETWORK_DT = np.dtype([("region", "<u2"), ("mcc", "<u2"), ("mnc", "<u2"), ("negate", "?")])
_RANGE_DT = np.dtype([("region", "<u2"), ("tac", "?"), ("first", "<u4"), ("last", "<u4")])
_AREA_DT = np.dtype([("first", "<u8"), ("last", "<u8"), ("area", "<u2")])
_PLMN_DT = np.dtype([("mcc", "<u2"), ("mnc", "<u2")])


def _plmn(mccmnc: str) -> tuple:
    """'46000' -> (mcc, mnc) packed as the record packs them (uint16, 4 digits, 0xF filler)."""
    return int(pack(mccmnc[:3], 4)), int(pack(mccmnc[3:], 4))


@dataclass(frozen=True, eq=False)
class Places:
    """places.yaml, with lookup tables as numpy arrays (read-only) for vectorised or native use:

    home_table    (mcc, mnc) of the home networks
    prefix_table  (region, value, digits): node GT prefixes, value packed as probe.record.pack
    network_table (region, mcc, mnc, negate): serving networks of a region
    range_table   (region, tac, first, last): LAC (tac false) or TAC ranges, home networks only
    area_table    (first, last, area): sorted, disjoint ranges of key = lac_tac << 32 | cell

    A region's tests are alternatives; the first region (lowest index) that matches wins.
    """
    home: tuple = ()
    regions: tuple = ()
    areas: tuple = ()
    hotlines: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> numbers
    file: str = ""
    home_table: np.ndarray = field(init=False, repr=False)
    prefix_table: np.ndarray = field(init=False, repr=False)
    network_table: np.ndarray = field(init=False, repr=False)
    range_table: np.ndarray = field(init=False, repr=False)
    area_table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, frozen(v))
        set_("home_table", np.array([_plmn(p) for p in self.home], _PLMN_DT))
        set_("prefix_table", np.array([(r.index, pack(p.rstrip("*")), len(p.rstrip("*")))
                                       for r in self.regions for p in r.node], _PREFIX_DT))
        set_("network_table", np.array([(r.index, *_plmn(p), r.negate) for r in self.regions for p in r.mccmnc],
                                       _NETWORK_DT))
        set_("range_table", np.array([(r.index, tac, a, b) for r in self.regions
                                      for tac, ranges in ((False, r.lac), (True, r.tac)) for a, b in ranges],
                                     _RANGE_DT))
        areas = sorted(((lac << 32 | a), (lac << 32 | b), area.index) for area in self.areas
                       for lac, a, b in area.cells)
        set_("area_table", np.array(areas, _AREA_DT))

    def region_index(self, name: str) -> int:
        return next((r.index for r in self.regions if r.name == name), 0)

    def area_index(self, name: str) -> int:
        return next((a.index for a in self.areas if a.name == name), 0)

    def region_of(self, records: np.ndarray) -> np.ndarray:
        """Region index (0: none) of each record's serving location (node, mcc, mnc, lac_tac,
        loc_type: a RECORD_DTYPE array, or a mapping of these names to columns)."""
        node, mcc, mnc = records["node"].astype(np.uint64), records["mcc"], records["mnc"]
        lac_tac, loc_type = records["lac_tac"], records["loc_type"]
        known = mcc != NO_PLMN
        home = ~known if len(self.home_table) else np.ones(len(node), bool)
        for h in self.home_table:
            home |= (mcc == h["mcc"]) & (mnc == h["mnc"])
        is_lac, is_tac = isin(loc_type, LAC_LOCS) & home, isin(loc_type, TAC_LOCS) & home
        out = np.zeros(len(node), np.uint16)
        for r in reversed(self.regions):                 # the first region listed wins
            hit = np.zeros(len(node), bool)
            for p in self.prefix_table[self.prefix_table["region"] == r.index]:
                shift = np.uint64(4 * (16 - int(p["digits"])))
                hit |= (node >> shift) == (p["value"] >> shift)
            nets = self.network_table[self.network_table["region"] == r.index]
            if len(nets):
                same = np.zeros(len(node), bool)
                for net in nets:
                    same |= (mcc == net["mcc"]) & (mnc == net["mnc"])
                hit |= known & (~same if r.negate else same)
            for rg in self.range_table[self.range_table["region"] == r.index]:
                hit |= (is_tac if rg["tac"] else is_lac) & (lac_tac >= rg["first"]) & (lac_tac <= rg["last"])
            out[hit] = r.index
        return out

    def area_of(self, lac_tac, cell) -> np.ndarray:
        """Area index (0: none) of each (LAC or TAC, cell)."""
        key = np.asarray(lac_tac, np.uint64) << np.uint64(32) | np.asarray(cell, np.uint64)
        t = self.area_table
        i = np.searchsorted(t["first"], key, side="right") - 1
        j = np.maximum(i, 0)
        hit = (i >= 0) & (key <= t["last"][j]) if len(t) else np.zeros(len(key), bool)
        return np.where(hit, t["area"][j] if len(t) else 0, 0).astype(np.uint16)


# --- reading places.yaml ---------------------------------------------------------------------------

def _places(doc: Doc, root) -> Places:
    top = doc.mapping(root, "", ("home", "regions", "areas", "hotlines"))
    if top is None:
        return Places(file=doc.file)
    home = ()
    if "home" in top:
        home = tuple(v for i, n in enumerate(doc.items(top["home"], "home"))
                     if (v := doc.mccmnc(n, f"home[{i}]")) is not BAD)
    regions = tuple(_region(doc, i + 1, k, v) for i, (k, v) in enumerate(doc.named(top.get("regions"), "regions")))
    areas = tuple(_area(doc, i + 1, k, v) for i, (k, v) in enumerate(doc.named(top.get("areas"), "areas")))
    _check_overlaps(doc, areas)
    hotlines = {}
    for knode, node in doc.named(top.get("hotlines"), "hotlines"):
        path = f"hotlines.{knode.value}"
        nums = [doc.digits(n, f"{path}[{i}]") for i, n in enumerate(doc.items(node, path))]
        hotlines[knode.value] = tuple(d + ("*" if star else "") for d, star in (x for x in nums if x is not BAD))
    return Places(home, regions, areas, MappingProxyType(hotlines), doc.file)


def _region(doc, index, knode, node) -> Region:
    name, path = knode.value, f"regions.{knode.value}"
    keys = doc.mapping(node, path, ("node", "mccmnc", "lac", "tac")) or {}
    if not keys and isinstance(node, MappingNode):
        doc.err(node, path, "a region needs node, mccmnc, lac or tac")
    nodes = []
    for i, n in enumerate(doc.items(keys["node"], f"{path}.node") if "node" in keys else ()):
        d = doc.digits(n, f"{path}.node[{i}]")
        if d is not BAD:
            nodes.append(d[0] + ("*" if d[1] else ""))
    networks, negate = (), False
    if "mccmnc" in keys:
        net = keys["mccmnc"]
        if isinstance(net, MappingNode):
            inner = doc.mapping(net, f"{path}.mccmnc", ("not",), required=("not",)) or {}
            net, negate = inner.get("not"), True
        if net is not None:
            networks = tuple(v for i, n in enumerate(doc.items(net, f"{path}.mccmnc"))
                             if (v := doc.mccmnc(n, f"{path}.mccmnc[{i}]")) is not BAD)
    ranges = {k: _ranges(doc, keys[k], f"{path}.{k}", (k,)) if k in keys else () for k in ("lac", "tac")}
    return Region(name, index, tuple(nodes), networks, negate, ranges["lac"], ranges["tac"], line_of(knode))


def _ranges(doc, node, path, parts) -> tuple:
    """[[first, last], ...] (parts: what each number is, e.g. ('lac',) or ('lac', 'cell'))."""
    out = []
    if not isinstance(node, SequenceNode):
        doc.err(node, path, f"must be a list of [{', '.join(parts[:-1] + ('first', 'last'))}]")
        return ()
    want = len(parts) + 1
    names = parts[:-1] + (f"first {parts[-1]}", f"last {parts[-1]}")
    for i, item in enumerate(node.value):
        ipath = f"{path}[{i}]"
        if not isinstance(item, SequenceNode) or len(item.value) != want:
            doc.err(item, ipath, f"must be [{', '.join(names)}]")
            continue
        limits = [LIMITS[p] for p in parts[:-1]] + [LIMITS[parts[-1]]] * 2
        nums = [doc.integer(n, ipath, 0, hi) for n, hi in zip(item.value, limits)]
        if BAD in nums:
            continue
        if nums[-2] > nums[-1]:
            doc.err(item, ipath, f"{names[-2]} {nums[-2]} is above {names[-1]} {nums[-1]}")
            continue
        out.append(tuple(nums))
    return tuple(out)


def _area(doc, index, knode, node) -> Area:
    name, path = knode.value, f"areas.{knode.value}"
    keys = doc.mapping(node, path, ("cells", "ranges")) or {}
    if not keys and isinstance(node, MappingNode):
        doc.err(node, path, "an area needs cells or ranges")
    cells = [(lac, c, c) for lac, c in _ranges_pairs(doc, keys.get("cells"), f"{path}.cells")]
    if "ranges" in keys:
        cells += _ranges(doc, keys["ranges"], f"{path}.ranges", ("lac", "cell"))
    return Area(name, index, tuple(cells), line_of(knode))


def _ranges_pairs(doc, node, path) -> list:
    """cells: [[lac, cell], ...]."""
    if node is None:
        return []
    if not isinstance(node, SequenceNode):
        doc.err(node, path, "must be a list of [lac, cell]")
        return []
    out = []
    for i, item in enumerate(node.value):
        ipath = f"{path}[{i}]"
        if not isinstance(item, SequenceNode) or len(item.value) != 2:
            doc.err(item, ipath, "must be [lac, cell]")
            continue
        lac = doc.integer(item.value[0], ipath, 0, LIMITS["lac"])
        cell = doc.integer(item.value[1], ipath, 0, LIMITS["cell"])
        if BAD not in (lac, cell):
            out.append((lac, cell))
    return out


def _check_overlaps(doc, areas):
    """Two areas sharing a cell make the area of a location ambiguous."""
    spans = sorted(((lac << 32 | a, lac << 32 | b, area) for area in areas for lac, a, b in area.cells),
                   key=lambda span: span[:2])
    for (_a0, b0, x), (a1, _b1, y) in zip(spans, spans[1:]):
        if a1 <= b0 and x is not y:
            later = max(x, y, key=lambda ar: ar.index)
            other = x if later is y else y
            doc.err(later.line, f"areas.{later.name}",
                    f"shares cells with area {other.name!r} (line {other.line}): LAC/TAC {a1 >> 32}, "
                    f"cell {a1 & 0xFFFFFFFF}")


def read_places(path: str, key: str | None = None) -> tuple:
    """(Places or None, errors) of a places.yaml, or of the mapping under `key` in another YAML
    file (a story's own places), checked as `load` checks a rules directory's."""
    doc = Doc(path)
    root = doc.root()
    places = None
    if key is not None and isinstance(root, MappingNode):
        root = next((v for k, v in root.value if getattr(k, "value", None) == key), None)
    if root is not None:
        places = doc.guard(lambda: _places(doc, root))
    return places, tuple(doc.sorted_errors())
