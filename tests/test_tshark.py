"""tshark as the second reference on real captures (../shared/pcaps-public).

For every SS7/SIGTRAN file of the public-capture MANIFEST, tshark (run once per file, with
the MANIFEST's prefs) and our decoder in per-message mode must agree on
  (a) the GSM MAP components: per frame, (invoke | result | error | reject, opcode),
  (b) the set of IMSIs, (c) the set of subscriber MSISDNs,
of the frames that carry gsm_map. Files without GSM MAP (ANSI MAP, CAMEL, ISUP, BICC,
M3UA management) are negative controls: tshark shows no gsm_map and ours gives no MAP record.

What tshark is read from: `-T pdml -J "tcap gsm_map"` of the frames matching `-Y gsm_map`.
  * components: each `gsm_map.old.Component` (1 invoke, 2 returnResultLast, 3 returnError,
    4 reject, 7 returnResultNotLast) with the first `gsm_old.opCode/gsm_old.localValue` inside it
    (the opcode of an invoke or of a result's resultretres; for a returnError the same field
    under `gsm_old.errorCode` is the error code, compared with our `cause`).
  * IMSIs: `e212.imsi` anywhere in the tcap / gsm_map layers (the MAP-OpenInfo destinationReference
    of the dialogue portion included), except those in NON_SUBSCRIBER_IMSI below.
  * MSISDNs: tshark puts every E.164 AddressString of MAP into `e164.msisdn`, subscriber or not.
    The honest comparison is on the ones whose parent field is a subscriber MSISDN
    (SUBSCRIBER_MSISDN_FIELDS); the others are node addresses (NODE_ADDRESS_FIELDS, each with
    the reason). An `e164.msisdn` under any other parent fails the test until it is classified.

Differences that are understood are listed in KNOWN with the reason; any other difference, or
a known one that went away, fails.
"""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from touchpoint.probe.decode import Options, Stats, decode_file
from touchpoint.probe.format import to_dicts
from tests.fidelity import Known, compare

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps-public"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(not PUBLIC.is_dir() or TSHARK is None,
                                reason="needs ../shared/pcaps-public and tshark")

MAP_SSNS_TSHARK = "6-9,145,148-150"          # tshark 4.0's default gsm_map.tcap.ssn


@dataclass
class Capture:
    name: str
    prefs: tuple = ()                        # tshark -o prefs from the MANIFEST
    mtp3: str = "itu"                        # our Options.mtp3
    has_map: bool = True                     # False: negative control


CAPTURES = [
    Capture("tcpdump_isup.pcap", ("m3ua.version:Internet draft version 6",), has_map=False),
    Capture("velyfw_output.pcap"),
    Capture("velyfw_camel.pcap", ("tcap.ssn:152,200", "camel.tcap.ssn:152,200"), has_map=False),
    Capture("velyfw_camel2.pcap", has_map=False),
    Capture("velyfw_gsm_map_with_ussd_string.pcap"),
    Capture("velyfw_japan_tcap_over_m2pa.pcap", ("mtp3.standard:Japan",), mtp3="japan"),
    Capture("velyfw_bicc.pcap", has_map=False),
    Capture("velyfw_isup_load_generator.pcap", has_map=False),
    Capture("velyfw_ansi_map_ota.pcap", has_map=False),
    Capture("velyfw_2001_SCAPv2.pcap"),
    Capture("velyfw_complete_conf_cer_cea_gmt0.pcap"),
    Capture("velyfw_complete_conf_cer_cea_gmt1.pcap"),
    Capture("velyfw_ss7_traffic_20250522_114431.pcap"),
    Capture("arkime_m3ua_synthetic.pcap", has_map=False),
    Capture("suricata_sctp-keywords_input.pcap", has_map=False),
]
BY_NAME = {c.name: c for c in CAPTURES}

# Parents of e164.msisdn that hold the subscriber's own number (tshark's MSISDN-typed MAP fields).
SUBSCRIBER_MSISDN_FIELDS = {
    "gsm_map.msisdn",            # SubscriberIdentity msisdn (ATI, ...)
    "gsm_map.ss.msisdn",         # USSD argument msisdn
    "gsm_map.sm.msisdn",         # SRI-SM argument, ...
    "gsm_map.sm.storedMSISDN",   # informServiceCentre
    "gsm_map.ms.msisdn",         # insertSubscriberData, ...
    "gsm_map.ms.additionalMSISDN",
    "gsm_map.ch.msisdn",         # sendRoutingInfo
    "gsm_map.lcs.msisdn",
    "gsm_old.msisdn",            # MAP v1 forms
}

# Parents of e164.msisdn that are network-node addresses, not subscribers: left out of (c).
NODE_ADDRESS_FIELDS = {
    # SRI-SM result LocationInfoWithLMSI.networkNode-Number: the serving MSC/SGSN. Ours puts it
    # in `node` (checked below), not in `msisdn`.
    "gsm_map.sm.networkNode_Number": "node",
    # ATI argument gsmSCF-Address: the number of the gsmSCF that asks. Not the subscriber and not
    # a serving node: ours does not record it.
    "gsm_map.ms.gsmSCF_Address": None,
}

# e212.imsi inside these elements is not a subscriber IMSI: left out of (b), listed in KNOWN.
NON_SUBSCRIBER_IMSI = {
    # ATI/PSI result SubscriberInfo.mnpInfoRes.imsi (TS 29.002 MNPInfoRes, TS 23.066): the
    # number-portability answer, "MCC+MNC of the subscription network + dummy MSIN" (here
    # 272030000000000). Ours does not take it as the subscriber's IMSI: it would make every
    # subscriber of that network one subscriber.
    "gsm_map.ms.mnpInfoRes_element",
}


MNP_IMSI = ("tshark shows e212.imsi 272030000000000 from the ATI result's SubscriberInfo.mnpInfoRes; "
            "it is the MNP dummy-MSIN IMSI, not the subscriber's (see NON_SUBSCRIBER_IMSI)")

KNOWN = {
    "velyfw_japan_tcap_over_m2pa.pcap": [
        Known("ops", only_ours={(3, "invoke", 1)}, reason=(
            "frame 3 is a TCAP Begin from SSN 6 (HLR) to SSN 5 without a dialogue portion. tshark "
            "picks the TCAP user by the called SSN only (5 is not in gsm_map.tcap.ssn, so the component "
            "is shown as Data); ours takes MAP when the called or the calling SSN is a MAP SSN. With "
            "gsm_map.tcap.ssn including 5 tshark shows the same invoke: see "
            "test_japan_with_ssn_5_as_map_is_identical.")),
    ],
    "velyfw_2001_SCAPv2.pcap": [Known("imsi", only_tshark={"272030000000000"}, reason=MNP_IMSI)],
    "velyfw_complete_conf_cer_cea_gmt0.pcap": [Known("imsi", only_tshark={"272030000000000"}, reason=MNP_IMSI)],
    "velyfw_complete_conf_cer_cea_gmt1.pcap": [Known("imsi", only_tshark={"272030000000000"}, reason=MNP_IMSI)],
}

# What a file checks beyond the obvious, printed when its comparison fails (both were decoder
# bugs found by this test, fixed in ext/sctp.pxi).
NOTES = {
    "velyfw_complete_conf_cer_cea_gmt1.pcap": (
        "frame 3906 is an SCTP retransmission (same association, verification tag 0x567102ad, "
        "TSN 3331600, sent again on the other path from 10.51.11.145) of frame 3898's ATI invoke. "
        "tshark does not dissect a retransmitted DATA chunk; ours must not give a second invoke record "
        "(3906, invoke, 71): a duplicate message is not a second event."),
    "velyfw_ss7_traffic_20250522_114431.pcap": (
        "frames 62-78 are text2pcap packets: verification tag 0 and TSN 0 in every one. tshark does no "
        "TSN analysis when the verification tag is 0 (packet-sctp.c get_half_assoc), so the 10 "
        "processUnstructuredSS-Request invokes of frames 69-78 are all decoded; ours must not take them "
        "for retransmissions of each other."),
}


# --- tshark side -----------------------------------------------------------------------------

@dataclass
class TsharkView:
    comps: Counter            # (frame, kind, op) -> n
    imsis: set
    imsis_excluded: set
    msisdns: set
    node_numbers: dict        # parent field -> set of digits
    unclassified: list        # (frame, parent, digits) of e164.msisdn under no known parent
    op_names: Counter         # (kind, name) -> n, to check against the MANIFEST
    frames: int


KIND = {"1": "invoke", "2": "result", "3": "error", "4": "reject", "7": "result"}


def run_tshark(path: Path, prefs=()) -> TsharkView:
    args = [TSHARK, "-n", "-r", str(path)]
    for p in prefs:
        args += ["-o", p]
    args += ["-Y", "gsm_map", "-T", "pdml", "-J", "tcap gsm_map"]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / "touchpoint-no-ws-prefs"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    view = TsharkView(Counter(), set(), set(), set(), {}, [], Counter(), 0)
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


def _packet(pkt, view: TsharkView) -> None:
    view.frames += 1
    frame = int(pkt.find("proto[@name='geninfo']/field[@name='num']").get("show"))
    for proto in pkt.findall("proto"):
        if proto.get("name") not in ("tcap", "gsm_map"):
            continue
        _walk(proto, frame, [], view)


def _walk(node, frame, parents, view: TsharkView) -> None:
    for f in node.findall("field"):
        name = f.get("name", "")
        if name == "gsm_map.old.Component":
            kind = KIND.get(f.get("show"), f.get("show"))
            lv = f.find(".//field[@name='gsm_old.localValue']")
            op = int(lv.get("show")) if lv is not None else None
            view.comps[(frame, kind, op if kind != "reject" else None)] += 1
            if lv is not None and kind in ("invoke", "result"):
                view.op_names[(kind, lv.get("showname", "").split(": ", 1)[-1].rsplit(" (", 1)[0])] += 1
        elif name == "e212.imsi":
            if any(p in NON_SUBSCRIBER_IMSI for p in parents):
                view.imsis_excluded.add(f.get("show"))
            else:
                view.imsis.add(f.get("show"))
        elif name == "e164.msisdn":
            parent = next((p for p in reversed(parents) if p not in ("e164.msisdn",)), "")
            digits = f.get("show")
            if parent in SUBSCRIBER_MSISDN_FIELDS:
                view.msisdns.add(digits)
            elif parent in NODE_ADDRESS_FIELDS:
                view.node_numbers.setdefault(parent, set()).add(digits)
            else:
                view.unclassified.append((frame, parent, digits))
        _walk(f, frame, parents + [name], view)


# --- our side --------------------------------------------------------------------------------

@dataclass
class OursView:
    comps: Counter
    imsis: set
    msisdns: set
    nodes: set
    records: int
    map_records: int


def our_kind(flags) -> str:
    if "request" in flags:
        return "invoke"
    if "response" in flags:
        return "error" if "error" in flags else "result"
    return "reject" if "error" in flags else "?"


def run_ours(path: Path, mtp3="itu", map_ssns=None) -> OursView:
    kw = {"messages": True, "mtp3": mtp3}
    if map_ssns is not None:
        kw["map_ssns"] = map_ssns
    view = OursView(Counter(), set(), set(), set(), 0, 0)
    st = Stats()
    for batch in decode_file(path, Options(**kw), stats=st):
        view.records += len(batch)
        for r in to_dicts(batch):
            if r["proto"] != "map":
                continue
            view.map_records += 1
            kind = our_kind(r["flags"])
            op = {"invoke": r["op"], "result": r["op"], "error": r.get("cause", 0), "reject": None}.get(kind)
            view.comps[(r["frame"], kind, op)] += 1
            for key, out in (("imsi", view.imsis), ("msisdn", view.msisdns), ("node", view.nodes)):
                if key in r:
                    out.add(r[key])
    return view


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def views():
    """name -> (tshark view, our view); tshark runs once per file, lazily."""
    cache = {}

    def get(name):
        if name not in cache:
            c = BY_NAME[name]
            path = PUBLIC / name
            if not path.is_file():
                pytest.skip(f"{name} not in {PUBLIC}")
            cache[name] = (run_tshark(path, c.prefs), run_ours(path, c.mtp3))
        return cache[name]
    return get


def _diff(what, ts, ours, name: str) -> list:
    """Problems with tshark's values vs ours once the known differences are taken out.

    ts and ours are sets or Counters (multiplicity counts for components)."""
    return compare(what, ts, ours, KNOWN.get(name, [])).problems()


def compared(ts: TsharkView, ours: OursView) -> dict:
    """what -> (tshark's, ours): what the tests below hold against each other (and
    bench/fidelity.py tabulates)."""
    return {"ops": (ts.comps, ours.comps),           # per frame, with multiplicity
            "imsi": (ts.imsis | ts.imsis_excluded, ours.imsis),
            "msisdn": (ts.msisdns, ours.msisdns)}


def _summary(c: Counter) -> Counter:
    """(frame, kind, op) -> n  to  (kind, op) -> n."""
    out = Counter()
    for (_frame, kind, op), n in c.items():
        out[(kind, op)] += n
    return out


MAP_FILES = [c.name for c in CAPTURES if c.has_map]
NEGATIVE = [c.name for c in CAPTURES if not c.has_map]


@pytest.mark.parametrize("name", MAP_FILES)
def test_map_operations_match_tshark(views, name):
    ts, ours = views(name)
    known_ops = [k for k in KNOWN.get(name, []) if k.what == "ops"]
    problems = _diff("ops", *compared(ts, ours)["ops"], name)
    detail = (f"{name}: tshark {dict(_summary(ts.comps))} vs ours {dict(_summary(ours.comps))}; "
              f"known: {[k.reason for k in known_ops]}; {NOTES.get(name, '')}")
    assert not problems, detail + "\n" + "\n".join(problems)
    # The per-file counts by (kind, opcode), known differences applied.
    want = _summary(ts.comps)
    for k in known_ops:
        for (_f, kind, op) in k.only_ours:
            want[(kind, op)] += 1
        for (_f, kind, op) in k.only_tshark:
            want[(kind, op)] -= 1
    assert +want == +_summary(ours.comps), detail


@pytest.mark.parametrize("name", MAP_FILES)
def test_imsis_match_tshark(views, name):
    ts, ours = views(name)
    problems = _diff("imsi", *compared(ts, ours)["imsi"], name)
    assert not problems, f"{name}: " + "\n".join(problems)
    # Everything tshark shows outside NON_SUBSCRIBER_IMSI is a subscriber IMSI ours must have.
    assert ts.imsis <= ours.imsis


@pytest.mark.parametrize("name", MAP_FILES)
def test_msisdns_match_tshark(views, name):
    ts, ours = views(name)
    assert not ts.unclassified, (
        f"{name}: e164.msisdn under a parent field not classified as subscriber or node: "
        f"{ts.unclassified[:5]} -- add it to SUBSCRIBER_MSISDN_FIELDS or NODE_ADDRESS_FIELDS")
    problems = _diff("msisdn", *compared(ts, ours)["msisdn"], name)
    assert not problems, f"{name}: " + "\n".join(problems)
    # Node addresses that ours records as `node` must be there.
    for parent, digits in ts.node_numbers.items():
        if NODE_ADDRESS_FIELDS[parent] == "node":
            assert digits <= ours.nodes, f"{name}: {parent} {sorted(digits - ours.nodes)} not in ours' node"
        # and never as a subscriber MSISDN
        assert not (digits - ts.msisdns) & ours.msisdns, f"{name}: node address {parent} reported as msisdn"


@pytest.mark.parametrize("name", NEGATIVE)
def test_no_gsm_map_in_negative_controls(views, name):
    ts, ours = views(name)
    assert ts.frames == 0, f"tshark sees gsm_map in {name}"
    assert ours.map_records == 0, f"{name}: ours gives {ours.map_records} MAP records: {dict(_summary(ours.comps))}"


def test_tshark_extraction_agrees_with_manifest(views):
    """The MANIFEST's `-z gsm_map,operation` counts, as a check on how the PDML is read here."""
    manifest = (PUBLIC / "MANIFEST.md").read_text()
    section, checked = None, 0
    for line in manifest.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
        elif section in BY_NAME and line.startswith("- Messages: MAP ops (invoke/returnResult): "):
            body = line.split(": ", 2)[2].split(";")[0]
            want = Counter()
            for item in body.split(", "):
                op_name, counts = item.rsplit(" ", 1)
                inv, res = (int(x) for x in counts.split("/"))
                want[("invoke", op_name)] += inv
                want[("result", op_name)] += res
            ts, _ = views(section)
            got = Counter({(k, n.replace("-", "_")): v for (k, n), v in ts.op_names.items()})
            assert +want == +got, f"{section}: MANIFEST {dict(want)} vs PDML {dict(got)}"
            checked += 1
    assert checked >= 6


def test_japan_with_ssn_5_as_map_is_identical():
    """With SSN 5 added to gsm_map.tcap.ssn, tshark decodes the Begin too and agrees exactly."""
    path = PUBLIC / "velyfw_japan_tcap_over_m2pa.pcap"
    if not path.is_file():
        pytest.skip("capture missing")
    ts = run_tshark(path, ("mtp3.standard:Japan", f"gsm_map.tcap.ssn:5,{MAP_SSNS_TSHARK}"))
    ours = run_ours(path, "japan", map_ssns=(5, 6, 7, 8, 9, 145, 148, 149, 150))
    assert ts.comps == ours.comps == Counter({(3, "invoke", 1): 1, (5, "result", 1): 1})
    assert ts.imsis == ours.imsis and ts.msisdns == ours.msisdns
