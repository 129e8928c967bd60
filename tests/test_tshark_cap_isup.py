"""tshark as the second reference for CAP (CAMEL) and ISUP/BICC on the public captures.

For every SS7/SIGTRAN file of ../shared/pcaps-public that carries CAP, ISUP or BICC, tshark (with
the MANIFEST's prefs, or the ones the file needs, see CAPTURES) and our decoder in per-message
mode (`Options(messages=True, cap_ssns=(146, 152, 200))`) must agree, per file, on
  (a) the CAP components: per frame, (invoke | result | error | reject, opcode or error code),
  (b) the ISUP messages: per frame, the message type of every IAM/ACM/CON/ANM/REL/RLC (the types
      that become records); the other types (CFN, a reserved 0, ...) in number, against ours'
      ISUP_OTHER_MESSAGE count; BICC messages against ours' ISUP_BICC count, and no record at a
      BICC frame (BICC is counted, not decoded),
  (c) the subscriber values, each as a set of (frame, value):
      imsi     e212.imsi inside camel        | the IMSI of our cap records
      calling  isup.calling (CAP callingPartyNumber, ISUP IAM calling party)
               | CAP InitialDP: msisdn for an originating event (eventTypeBCSM < 12), peer for a
                 terminating one; ISUP IAM: msisdn
      called   isup.called (CAP calledPartyNumber, ISUP IAM called party) and
               gsm_a.dtap.cld_party_bcd_num (CAP calledPartyBCDNumber)
               | CAP InitialDP: peer for an originating event, msisdn for a terminating one
                 (the README: peer = calledPartyBCDNumber, else calledPartyNumber); ISUP IAM: peer
               tshark's calling and called numbers of BICC messages are read too: BICC is counted,
               not decoded, so they are in KNOWN (reason BICC_NOT_DECODED)
      key      camel.serviceKey              | service_key of our cap records
      cgi      gsm_map.cellGlobalIdOrServiceAreaIdFixedLength as MCC-MNC-LAC-CI
               | mcc-mnc-lac_tac-cell of our cap records with loc_type cgi
      node     e164.msisdn under camel.mscAddress | node of our cap records
Files without CAP, ISUP or BICC are negative controls: neither side shows any.

What tshark is read from: `-T pdml -J "camel isup bicc"` of the frames matching
`-Y "camel or isup or bicc"`. A `camel` proto element is one component (tshark repeats the
element per component); its kind is its first child (camel.invoke_element, ...) and its opcode the
first camel.local inside it (camel.errcode/local for a returnError). ISUP is a top-level `isup`
proto element; the same fields under a `bicc` element are BICC.

Normalisation: tshark writes the ST (end of pulsing, Q.763 3.9 address signal 1111) that ends an
en-bloc called number as a final 'F' (tcpdump_isup: "4891F"). Our records pack digits 4 bits
each with 0xF as the filler (probe/record.py), so a trailing ST cannot be told from the filler
and is not kept: one trailing 'F' of tshark's called numbers is dropped before comparing. No
other digit is touched.

Differences that are understood are in KNOWN with the reason, verified on the bytes; any other
difference, or a known one that went away, fails.
"""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from touchpoint.probe.decode import Anomaly, Options, Stats, decode_file
from touchpoint.probe.format import to_dicts
from tests.fidelity import Known, compare

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps-public"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(not PUBLIC.is_dir() or TSHARK is None,
                                reason="needs ../shared/pcaps-public and tshark")

CAP_SSNS = (146, 152, 200)                  # ours: 146 (tshark's camel.tcap.ssn default) + the MANIFEST's 152, 200
DRAFT6 = "m3ua.version:Internet draft version 6"
ISUP_RECORDED = {1, 6, 7, 9, 12, 16}        # IAM ACM CON ANM REL RLC: the types that become records
ISUP_ABBREV = {"IAM": 1, "ACM": 6, "CON": 7, "ANM": 9, "REL": 12, "RLC": 16, "CFN": 47}


@dataclass
class Capture:
    name: str
    prefs: tuple = ()             # tshark -o prefs
    # (prefs, frames): these frames are read from a second tshark run with these prefs. For a file
    # that mixes RFC 4666 and draft-6 M3UA: tshark's m3ua.version is one setting for the whole file,
    # ours recognises both framings in one pass.
    alt: tuple = ()
    mtp3: str = "itu"             # our Options.mtp3
    positive: bool = True         # False: negative control (no CAP, ISUP or BICC)
    manifest_prefs: bool = True   # prefs are the MANIFEST's (its message counts apply)


CAMEL_152_200 = ("tcap.ssn:152,200", "camel.tcap.ssn:152,200")
# velyfw_ss7_traffic replays several Wireshark samples in one file: velyfw_camel (SSNs 152/200),
# velyfw_camel2 (SSN 146), tcpdump_isup (draft-6 M3UA) and velyfw_bicc (RFC 4666 M3UA). The MANIFEST
# counts it with default prefs; here tshark gets what each part needs, as ours does by its options.
SS7_TRAFFIC_CAMEL = ("tcap.ssn:152,200", "camel.tcap.ssn:146,152,200")

CAPTURES = [
    Capture("velyfw_camel.pcap", CAMEL_152_200),
    Capture("velyfw_camel2.pcap"),
    # frame 81 is M3UA DATA with a draft-6 Protocol Data parameter (tag 2): only tshark's draft-6
    # setting dissects it, which loses the RFC 4666 frames of the same file.
    Capture("arkime_m3ua_synthetic.pcap", alt=((DRAFT6,), frozenset({81}))),
    Capture("velyfw_2001_SCAPv2.pcap"),
    # frames 79-83 are the tcpdump_isup call (draft-6 M3UA); frame 52 (BICC) is RFC 4666 M3UA.
    Capture("velyfw_ss7_traffic_20250522_114431.pcap", SS7_TRAFFIC_CAMEL,
            alt=((DRAFT6,) + SS7_TRAFFIC_CAMEL, frozenset(range(79, 84))), manifest_prefs=False),
    Capture("tcpdump_isup.pcap", (DRAFT6,)),
    Capture("velyfw_isup_load_generator.pcap"),
    Capture("velyfw_bicc.pcap"),
    # negative controls: the other SS7/SIGTRAN files of the MANIFEST
    Capture("velyfw_output.pcap", positive=False),
    Capture("velyfw_gsm_map_with_ussd_string.pcap", positive=False),
    Capture("velyfw_japan_tcap_over_m2pa.pcap", ("mtp3.standard:Japan",), mtp3="japan", positive=False),
    Capture("velyfw_ansi_map_ota.pcap", positive=False),
    Capture("velyfw_complete_conf_cer_cea_gmt0.pcap", positive=False),
    Capture("velyfw_complete_conf_cer_cea_gmt1.pcap", positive=False),
    Capture("suricata_sctp-keywords_input.pcap", positive=False),
]
BY_NAME = {c.name: c for c in CAPTURES}


BCD_3A = (
    "calledPartyBCDNumber is 11 14 87 08 50 40 f7. CAP (TS 29.078 CalledPartyBCDNumber) takes the "
    "encoding of TS 24.008 10.5.4.7, whose octet 3 (type of number, numbering plan) is followed directly "
    "by the digits (its bit 8 is a fixed 1): there is no octet 3a in a Called party BCD number. tshark 4.0 "
    "(de_cld_party_bcd_num) calls de_bcd_num, the routine the Calling party BCD number uses, for which "
    "octet 3 bit 8 = 0 means an octet 3a follows; it takes 0x14 for presentation/screening and shows "
    "788005047. The digits are 41788005047 (a Swiss +41 78 number, "
    "like the calling party 41789005047 and the IMSI 41787552689 of the same InitialDP)")
CONNECT = (
    "isup.called 972201 is the destinationRoutingAddress of the Connect (opcode 20) in the same dialogue; "
    "ours records CAP operations other than InitialDP, InitialDPSMS and InitialDPGPRS by opcode only "
    "(README), by design")
BICC_NOT_DECODED = (
    "BICC (SI 13) is counted (ISUP_BICC), not decoded, by design (issue 3: BICC recognised and counted): "
    "the numbers of a BICC IAM are not in our records")
SERVICE_KEY_7_OCTETS = (
    "every InitialDP of this synthetic file encodes serviceKey [0] as a 7-octet INTEGER (the Arkime "
    "writer put an E.164 address in it: 80 07 91 21 43 65 87 09 f1), outside ServiceKey's range "
    "0..2147483647 (TS 29.078). tshark keeps the last 4 octets (0x658709f1 = 1703348721), ours the "
    "first 4 (0x91214365 = 2434876261): neither is a service key")


def _keys(pairs):
    return {(f, str(v)) for f, v in pairs}


# The service keys of arkime_m3ua_synthetic: frame -> (tshark: last 4 octets, ours: first 4 octets).
ARKIME_KEYS = {
    5: (1703348721, 2434876261), 20: (1431655925, 2438288725), 21: (1703348721, 2434876261),
    22: (1703348721, 2434876261), 51: (1431655925, 2438288725), 52: (1431655925, 2438288725),
    66: (286331377, 2433814801), 67: (572662514, 2434933282), 68: (858993651, 2436051763),
    73: (2004318199, 2440525687), 74: (2290649336, 2441644168), 75: (2576980473, 2442762649),
    78: (1703348721, 2434876261), 81: (2004318199, 2440525687), 86: (2290649336, 2441644168),
    90: (2576980473, 2442762649),
}

KNOWN = {
    "velyfw_camel.pcap": [
        Known("called", only_tshark={(1, "788005047")}, only_ours={(1, "41788005047")}, reason=BCD_3A),
    ],
    "velyfw_camel2.pcap": [Known("called", only_tshark={(2, "972201")}, reason=CONNECT)],
    "velyfw_ss7_traffic_20250522_114431.pcap": [
        Known("called", only_tshark={(63, "972201"), (65, "788005047")}, only_ours={(65, "41788005047")},
              reason=f"frames 62-64 replay velyfw_camel2: {CONNECT}; frames 65-68 replay velyfw_camel: {BCD_3A}"),
        Known("called", only_tshark={(52, "8019")}, reason=f"frame 52 replays velyfw_bicc: {BICC_NOT_DECODED}"),
        Known("calling", only_tshark={(52, "13408000018F")},
              reason=f"frame 52 replays velyfw_bicc: {BICC_NOT_DECODED}"),
    ],
    "velyfw_bicc.pcap": [
        Known("called", only_tshark={(1, "8019")}, reason=BICC_NOT_DECODED),
        Known("calling", only_tshark={(1, "13408000018F")}, reason=BICC_NOT_DECODED),
    ],
    "arkime_m3ua_synthetic.pcap": [
        Known("key", only_tshark=_keys((f, t) for f, (t, _o) in ARKIME_KEYS.items()),
              only_ours=_keys((f, o) for f, (_t, o) in ARKIME_KEYS.items()), reason=SERVICE_KEY_7_OCTETS),
    ],
}

# What a file checks beyond the obvious, printed when its comparison fails.
NOTES = {
    "arkime_m3ua_synthetic.pcap": (
        "every CAP frame's TCAP Begin says 62 50 (80 content octets) where the SCCP data parameter (0x4e "
        "octets) leaves 76 after its tag and length: ours counts TCAP_TRUNCATED and decodes what is there "
        "(flag partial), tshark dissects it too; the components and numbers must be the same. Frame 81 is "
        "draft-6 M3UA (see CAPTURES)."),
    "velyfw_ss7_traffic_20250522_114431.pcap": (
        "frame 52 is BICC (SI 13): ours must count ISUP_BICC and give no record"),
}


# --- tshark side -----------------------------------------------------------------------------

@dataclass
class TsharkView:
    comps: Counter = field(default_factory=Counter)     # (frame, kind, op) -> n
    isup: Counter = field(default_factory=Counter)      # (frame, message type) -> n
    bicc: Counter = field(default_factory=Counter)      # (frame, message type) -> n
    values: dict = field(default_factory=lambda: {k: set() for k in VALUES})
    op_names: Counter = field(default_factory=Counter)  # CAP operation name -> n, for the MANIFEST check
    frames: set = field(default_factory=set)            # frames with camel, isup or bicc


VALUES = ("imsi", "calling", "called", "key", "cgi", "node")
CAMEL_KIND = {"camel.invoke_element": "invoke", "camel.returnResult_element": "result",
              "camel.returnError_element": "error", "camel.reject_element": "reject"}


def run_tshark(path: Path, prefs=()) -> TsharkView:
    args = [TSHARK, "-n", "-r", str(path)]
    for p in prefs:
        args += ["-o", p]
    args += ["-Y", "camel or isup or bicc", "-T", "pdml", "-J", "camel isup bicc"]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / "touchpoint-no-ws-prefs"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    view = TsharkView()
    try:
        for _ev, pkt in ET.iterparse(proc.stdout, events=("end",)):
            if pkt.tag != "packet":
                continue
            _packet(pkt, view)
            pkt.clear()
    finally:
        proc.stdout.close()
        rc = proc.wait()
    assert rc == 0, f"tshark failed on {path.name}: {args}"
    return view


def _all(node, name):
    """Every field of that name under node, in document order."""
    return [f for f in node.iter("field") if f.get("name") == name]


def _packet(pkt, view: TsharkView) -> None:
    frame = int(pkt.find("proto[@name='geninfo']/field[@name='num']").get("show"))
    view.frames.add(frame)
    for proto in pkt.findall("proto"):
        name = proto.get("name")
        if name == "camel":
            _camel(proto, frame, view)
        elif name in ("isup", "bicc"):
            for mt in _all(proto, "isup.message_type"):
                (view.isup if name == "isup" else view.bicc)[(frame, int(mt.get("show")))] += 1
            _numbers(proto, frame, view)


def _camel(proto, frame, view: TsharkView) -> None:
    comp = next((f for f in proto.findall("field") if f.get("name") in CAMEL_KIND), None)
    if comp is None:
        return
    kind = CAMEL_KIND[comp.get("name")]
    lv = next(iter(_all(comp, "camel.local")), None)
    op = int(lv.get("show")) if lv is not None and kind != "reject" else None
    view.comps[(frame, kind, op)] += 1
    if lv is not None and kind == "invoke":
        view.op_names[lv.get("showname", "").split(": ", 1)[-1].rsplit(" (", 1)[0]] += 1
    for f in _all(comp, "e212.imsi"):
        view.values["imsi"].add((frame, f.get("show")))
    for f in _all(comp, "camel.serviceKey"):
        view.values["key"].add((frame, f.get("show")))
    for f in _all(comp, "gsm_map.cellGlobalIdOrServiceAreaIdFixedLength"):
        view.values["cgi"].add((frame, cgi_text(bytes.fromhex(f.get("show").replace(":", "")))))
    for f in _all(comp, "gsm_a.dtap.cld_party_bcd_num"):
        view.values["called"].add((frame, f.get("show")))
    for msc in _all(comp, "camel.mscAddress"):
        view.values["node"] |= {(frame, f.get("show")) for f in _all(msc, "e164.msisdn")}
    _numbers(comp, frame, view)


def _numbers(node, frame, view: TsharkView) -> None:
    for f in _all(node, "isup.calling"):
        view.values["calling"].add((frame, f.get("show")))
    for f in _all(node, "isup.called"):
        digits = f.get("show")
        view.values["called"].add((frame, digits[:-1] if digits.endswith("F") else digits))


def cgi_text(b: bytes) -> str:
    """A 7-octet CGI (TS 24.008 10.5.1.3 PLMN, LAC, CI) as MCC-MNC-LAC-CI."""
    d = [b[0] & 0xF, b[0] >> 4, b[1] & 0xF, b[2] & 0xF, b[2] >> 4, b[1] >> 4]
    mcc = "".join(map(str, d[:3]))
    mnc = "".join(map(str, d[3:5])) + ("" if d[5] == 0xF else str(d[5]))
    return f"{mcc}-{mnc}-{int.from_bytes(b[3:5], 'big')}-{int.from_bytes(b[5:7], 'big')}"


def tshark_view(c: Capture) -> TsharkView:
    """The main run, with the frames of Capture.alt taken from the second run."""
    path = PUBLIC / c.name
    view = run_tshark(path, c.prefs)
    if not c.alt:
        return view
    prefs, frames = c.alt
    seen = frames & view.frames
    assert not seen, f"{c.name}: frames {sorted(seen)} already dissected by the main run: drop them from alt"
    other = run_tshark(path, prefs)
    assert frames <= other.frames, f"{c.name}: {sorted(frames - other.frames)} not dissected with {prefs}"
    view.comps += Counter({k: n for k, n in other.comps.items() if k[0] in frames})
    view.isup += Counter({k: n for k, n in other.isup.items() if k[0] in frames})
    view.bicc += Counter({k: n for k, n in other.bicc.items() if k[0] in frames})
    for k in VALUES:
        view.values[k] |= {v for v in other.values[k] if v[0] in frames}
    view.frames |= frames
    return view


# --- our side --------------------------------------------------------------------------------

@dataclass
class OursView:
    comps: Counter = field(default_factory=Counter)
    isup: Counter = field(default_factory=Counter)
    values: dict = field(default_factory=lambda: {k: set() for k in VALUES})
    frames: set = field(default_factory=set)              # frames that gave a cap or isup record
    stats: Stats = field(default_factory=Stats)
    partial: set = field(default_factory=set)             # frames of cap records flagged partial


def our_kind(flags) -> str:
    if "request" in flags:
        return "invoke"
    if "response" in flags:
        return "error" if "error" in flags else "result"
    return "reject" if "error" in flags else "?"


def run_ours(c: Capture) -> OursView:
    view = OursView()
    opts = Options(messages=True, cap_ssns=CAP_SSNS, mtp3=c.mtp3)
    for batch in decode_file(PUBLIC / c.name, opts, stats=view.stats):
        for r in to_dicts(batch):
            frame, proto = r["frame"], r["proto"]
            if proto not in ("cap", "isup"):
                continue
            view.frames.add(frame)
            vals = view.values
            if proto == "isup":
                view.isup[(frame, r["op"])] += 1
                if r["op"] == 1:
                    if "msisdn" in r:
                        vals["calling"].add((frame, r["msisdn"]))
                    if "peer" in r:
                        vals["called"].add((frame, r["peer"]))
                continue
            kind = our_kind(r["flags"])
            op = {"invoke": r["op"], "result": r["op"], "error": r.get("cause", 0)}.get(kind)
            view.comps[(frame, kind, op)] += 1
            if "partial" in r["flags"]:
                view.partial.add(frame)
            if "imsi" in r:
                vals["imsi"].add((frame, r["imsi"]))
            if "service_key" in r:
                vals["key"].add((frame, str(r["service_key"])))
            if "node" in r:
                vals["node"].add((frame, r["node"]))
            if r.get("loc_type") == "cgi":
                vals["cgi"].add((frame, f"{r['mcc']}-{r['mnc']}-{r['lac_tac']}-{r['cell']}"))
            if kind == "invoke" and r["op"] == 0:              # InitialDP: the README's roles
                terminating = r.get("event", 0) >= 12
                calling, called = ("peer", "msisdn") if terminating else ("msisdn", "peer")
                if calling in r:
                    vals["calling"].add((frame, r[calling]))
                if called in r:
                    vals["called"].add((frame, r[called]))
    return view


# --- fixtures and comparison -----------------------------------------------------------------

@pytest.fixture(scope="module")
def views():
    """name -> (tshark view, our view); tshark runs once per file (twice with alt), lazily."""
    cache = {}

    def get(name):
        if name not in cache:
            c = BY_NAME[name]
            if not (PUBLIC / name).is_file():
                pytest.skip(f"{name} not in {PUBLIC}")
            cache[name] = (tshark_view(c), run_ours(c))
        return cache[name]
    return get


def _diff(what, ts, ours, name: str) -> list:
    """Problems with tshark's values vs ours once the known differences are taken out."""
    return compare(what, ts, ours, KNOWN.get(name, [])).problems()


def compared(ts: TsharkView, ours: OursView) -> dict:
    """what -> (tshark's, ours): what the tests below hold against each other (and
    bench/fidelity.py tabulates). ISUP messages of the types that become records are compared per
    frame, the others in number against ours' ISUP_OTHER_MESSAGE; BICC against ISUP_BICC."""
    recorded = Counter({k: n for k, n in ts.isup.items() if k[1] in ISUP_RECORDED})
    others = sum(n for k, n in ts.isup.items() if k[1] not in ISUP_RECORDED)
    return {"comps": (ts.comps, ours.comps), "isup": (recorded, ours.isup),
            "isup other": (Counter(other=others), Counter(other=ours.stats.anomalies[Anomaly.ISUP_OTHER_MESSAGE])),
            "bicc": (Counter(bicc=sum(ts.bicc.values())), Counter(bicc=ours.stats.anomalies[Anomaly.ISUP_BICC])),
            **{k: (ts.values[k], ours.values[k]) for k in VALUES}}


def _summary(c: Counter) -> Counter:
    out = Counter()
    for (_frame, *key), n in c.items():
        out[tuple(key)] += n
    return out


POSITIVE = [c.name for c in CAPTURES if c.positive]
NEGATIVE = [c.name for c in CAPTURES if not c.positive]


@pytest.mark.parametrize("name", POSITIVE)
def test_cap_components_match_tshark(views, name):
    ts, ours = views(name)
    problems = _diff("comps", *compared(ts, ours)["comps"], name)
    assert not problems, (f"{name}: tshark {dict(_summary(ts.comps))} vs ours {dict(_summary(ours.comps))}; "
                          f"{NOTES.get(name, '')}\n" + "\n".join(problems))


@pytest.mark.parametrize("name", POSITIVE)
def test_isup_messages_match_tshark(views, name):
    ts, ours = views(name)
    sides = compared(ts, ours)
    problems = _diff("isup", *sides["isup"], name)
    assert not problems, f"{name}: tshark {dict(_summary(ts.isup))} vs ours {dict(_summary(ours.isup))}\n" + \
        "\n".join(problems)
    # the types that are not folded into calls are counted, not recorded
    others, counted = sides["isup other"]
    assert counted == others, f"{name}: tshark shows {others['other']} ISUP messages of other types: {sorted(ts.isup)}"


@pytest.mark.parametrize("name", POSITIVE)
def test_bicc_is_counted_not_decoded(views, name):
    ts, ours = views(name)
    bicc, counted = compared(ts, ours)["bicc"]
    assert counted == bicc, f"{name}: tshark BICC {dict(ts.bicc)}; {NOTES.get(name, '')}"
    assert not {f for f, _mt in ts.bicc} & ours.frames, f"{name}: a record at a BICC frame"


@pytest.mark.parametrize("what", VALUES)
@pytest.mark.parametrize("name", POSITIVE)
def test_values_match_tshark(views, name, what):
    ts, ours = views(name)
    problems = _diff(what, *compared(ts, ours)[what], name)
    known = [k.reason for k in KNOWN.get(name, []) if k.what == what]
    assert not problems, f"{name} {what}: known: {known}; {NOTES.get(name, '')}\n" + "\n".join(problems)


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_controls(views, name):
    ts, ours = views(name)
    assert not ts.frames, f"tshark sees camel/isup/bicc in {name}: {sorted(ts.frames)[:10]}"
    assert not ours.frames, f"{name}: ours gives cap/isup records at frames {sorted(ours.frames)[:10]}"
    assert not ours.stats.anomalies[Anomaly.ISUP_BICC]


def test_truncated_tcap_is_decoded_as_partial(views):
    """arkime_m3ua_synthetic: each TCAP Begin declares 80 content octets (62 50) where its SCCP data
    parameter of 0x4e octets leaves 76. The components are all there: ours counts TCAP_TRUNCATED
    once per such frame and still records the InitialDP, flagged partial (the comparisons above show
    its values equal tshark's)."""
    ts, ours = views("arkime_m3ua_synthetic.pcap")
    cap_frames = {f for f, _k, _op in ts.comps}
    assert len(cap_frames) == 16
    assert ours.partial == cap_frames
    assert ours.stats.anomalies[Anomaly.TCAP_TRUNCATED] == len(cap_frames)


def _frames(path: Path):
    """(frame number, bytes) of a little-endian microsecond pcap."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    pos, n = 24, 0
    while pos + 16 <= len(data):
        incl = int.from_bytes(data[pos + 8:pos + 12], "little")
        n += 1
        yield n, data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def test_known_service_keys_are_what_the_bytes_say():
    """The KNOWN service-key difference of arkime_m3ua_synthetic, from the bytes: every InitialDP
    argument starts 30 12 80 07 with a 7-octet serviceKey; tshark's value is its last 4 octets,
    ours its first 4."""
    path = PUBLIC / "arkime_m3ua_synthetic.pcap"
    if not path.is_file():
        pytest.skip("capture missing")
    got = {}
    for n, frame in _frames(path):
        i = frame.find(b"\x30\x12\x80\x07")
        if i >= 0:
            key = frame[i + 4:i + 11]
            got[n] = (int.from_bytes(key[-4:], "big"), int.from_bytes(key[:4], "big"))
    assert got == ARKIME_KEYS


def test_known_called_bcd_number_is_what_the_bytes_say():
    """The KNOWN called-number difference of velyfw_camel: InitialDP calledPartyBCDNumber [56] is
    9f 38 07 11 14 87 08 50 40 f7; TS 24.008 10.5.4.7 (no octet 3a) gives 41788005047."""
    path = PUBLIC / "velyfw_camel.pcap"
    if not path.is_file():
        pytest.skip("capture missing")
    frame = dict(_frames(path))[1]
    i = frame.find(b"\x9f\x38\x07")
    v = frame[i + 3:i + 10]
    assert v[0] == 0x11                                 # type of number international, E.164 plan
    digits = "".join(f"{b & 0xF:x}{b >> 4:x}" for b in v[1:]).rstrip("f")
    assert digits == "41788005047"


def test_known_names_listed_captures():
    assert set(KNOWN) <= set(POSITIVE) and set(NOTES) <= set(POSITIVE)


def test_positive_files_are_the_manifests():
    """Every SS7 file whose MANIFEST entry lists CAP ops or ISUP/BICC messages is compared here."""
    manifest = (PUBLIC / "MANIFEST.md").read_text()
    section, listed = None, set()
    for line in manifest.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
        elif line.startswith("- Messages:") and ("CAP ops" in line or "ISUP/BICC msgs" in line):
            listed.add(section)
    assert listed == set(POSITIVE), (f"in the MANIFEST, not compared here: {listed - set(POSITIVE)}; "
                                     f"compared here, not in the MANIFEST: {set(POSITIVE) - listed}")


def test_tshark_extraction_agrees_with_manifest(views):
    """The MANIFEST's CAP operation and ISUP message counts, as a check on how the PDML is read."""
    manifest = (PUBLIC / "MANIFEST.md").read_text()
    section, checked = None, 0
    for line in manifest.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
            continue
        c = BY_NAME.get(section)
        if c is None or not c.positive or not c.manifest_prefs or not line.startswith("- Messages:"):
            continue
        ts = run_tshark(PUBLIC / c.name, c.prefs) if c.alt else views(c.name)[0]
        for part in line.split(": ", 1)[1].split("; "):
            label, _, body = part.partition(": ")
            if label == "CAP ops":
                want = Counter({n: int(k) for n, k in (item.rsplit(" ", 1) for item in body.split(", "))})
                assert want == ts.op_names, f"{c.name}: MANIFEST {dict(want)} vs PDML {dict(ts.op_names)}"
                checked += 1
            elif label == "ISUP/BICC msgs":
                want = Counter()
                for item in body.split(", "):
                    mt, n = item.rsplit(" ", 1)
                    want[ISUP_ABBREV.get(mt) if mt in ISUP_ABBREV else int(mt)] += int(n)
                got = _summary(ts.isup) + _summary(ts.bicc)
                assert want == Counter({k[0]: n for k, n in got.items()}), f"{c.name}: MANIFEST {dict(want)}"
                checked += 1
    assert checked >= 7


def test_country_code_makes_national_calling_numbers_international():
    """--country-code on a real ISUP capture whose calling party numbers are national (NAI 3):
    each IAM's MSISDN is the country code and tshark's isup.calling; any other NAI is kept."""
    path = PUBLIC / "velyfw_isup_load_generator.pcap"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    out = subprocess.run([TSHARK, "-r", str(path), "-Y", "isup.message_type == 1 and isup.calling", "-T", "fields",
                          "-e", "frame.number", "-e", "isup.calling_party_nature_of_address_indicator",
                          "-e", "isup.calling"], capture_output=True, text=True, timeout=300, check=True).stdout
    want = {}
    for line in out.splitlines():
        frame, nai, calling = line.split("\t")
        want[int(frame)] = ("41" if nai == "3" else "") + calling
    assert len(want) > 100 and any(v.startswith("41") for v in want.values())
    recs = [r for recs in decode_file(str(path), Options(messages=True, country_code="41")) for r in to_dicts(recs)]
    got = {r["frame"]: r.get("msisdn") for r in recs if r["proto"] == "isup" and r["op"] == 1}
    assert got == want
