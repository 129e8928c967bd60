"""GTP in the public captures (/work/shared/pcaps-public), ours against tshark: message counts,
identities, locations and bearers per file, each known difference with its reason; and a TCP
retransmission as tshark shows it."""
import collections
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("touchpoint.probe._decode")

from touchpoint.probe.decode import Anomaly, Options, Stats, decode_file
from touchpoint.probe.format import to_dicts
from tests.gtp_messages import pcap_at, MME, SGW, csr, csresp, control, usage, bearer_fields, tcp_frame

# ---- public captures against tshark ---------------------------------------------
#
# Per file, in per-message mode, ours against `tshark -T fields` of the frames with GTP:
#   v2:<type>  GTPv2-C messages of each type the decoder records (RECORDED_V2),
#   v1:<type>  GTPv1-C messages of each type it records (RECORDED_V1),
#   v0:<type>  GTPv0 messages (tshark decodes them, ours counts GTP_V0: always 0),
#   tpdu       GTPv1-U G-PDUs (tshark: T-PDUs of the outer GTP layer; ours: the packets
#              of the data-usage records),
#   imsi, msisdn, imei, eci, tac  the sets of values (tshark: e212.imsi, e164.msisdn,
#              gtpv2.mei + gtp.ext_imeisv, gtpv2.ecgi_eci, gtpv2.tai_tac; ours: the GTP-C
#              records' fields, eci = cell when loc_type is ecgi, tac = lac_tac of a v2
#              record whose ULI had a TAI),
#   lac, rac, ci, sac  GTPv1 locations, RAI IE (TS 29.060 7.7.3) and ULI IE (7.7.51) (tshark:
#              gtp.lac, gtp.rai_rac, gtp.cgi_ci, gtp.sai_sac; ours: lac_tac of a v1 record whose
#              loc_type is rai, cgi or sai, cell when it is cgi (ci) or sai (sac); the record
#              keeps no RAC, so ours has none),
#   called     called numbers (tshark: gsm_a.dtap.cld_party_bcd_num, which only user-plane
#              payload carries here; ours: the peer of any record),
#   GTP_ECHO, GTP_OTHER_MESSAGE, GTPU_SIGNALLING  the GTPv1/v2 messages of the types outside
#              RECORDED_*, which the decoder counts and never records, by design: in number
#              against the --stats counters of those names (tshark: echo and version not supported,
#              types 1-3, and the other types, e.g. SGSN context, Bearer Resource Command, on
#              GTP-C; any type but the G-PDU on a GTP-U port).
# Every other difference is in KNOWN with its reason; a difference not there, or a known one
# that went away, fails.

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps-public"
TSHARK = shutil.which("tshark")
RECORDED_V2 = {32, 33, 34, 35, 36, 37, 95, 96, 97, 98, 99, 100, 170, 171, 176, 177}
RECORDED_V1 = {16, 17, 18, 19, 20, 21, 50, 51}
COUNTED = ("GTP_ECHO", "GTP_OTHER_MESSAGE", "GTPU_SIGNALLING")
GTPU_PORT = 2152

KNOWN = {
    "ndpi_gtp_c.pcap": {
        "eci": ((305419896,), (36984440,),
                "the ECGI's ECI octets are 0x12345678: TS 29.274 8.21.5 makes the top nibble spare and the ECI "
                "28 bits (0x2345678 = 36984440); tshark 4.0's gtpv2.ecgi_eci shows all 32 bits"),
    },
    "pcapplusplus_gtpv2.pcap": {
        "v2:34": (3, 2, "frame 6 is a Modify Bearer Request whose header says 42 octets and 8 follow: counted "
                        "GTP_TRUNCATED, no record (tshark dissects it as malformed)"),
    },
    "ndpi_gtp_false_positive.pcapng": {
        "GTP_ECHO": (2, 1, "frame 6 is a GTPv1 Version Not Supported (37 03 00 00) whose flags announce the "
                           "4 optional octets and an extension header where its length says 0 follow: counted "
                           "GTP_MALFORMED, not GTP_ECHO (tshark flags it malformed too)"),
    },
    "ndpi_gtp_prime.pcapng": {
        "imsi": (("310012000000000",), (),
                 "the IMSI is inside a charging data record of a GTP' Data Record Transfer Request: "
                 "GTP' is counted (GTP_PRIME), not decoded, by design"),
    },
    "zeek_gtp_control_prime.pcap": {
        "v0:1": (1, 0, "frames 5-10 are GTPv0 (TS 09.60, port 3386): counted GTP_V0, not decoded, by design"),
        "v0:2": (1, 0, "GTPv0 echo response, see v0:1"),
        "v0:16": (1, 0, "GTPv0 Create PDP Context Request, see v0:1"),
        "v0:17": (1, 0, "GTPv0 Create PDP Context Response, see v0:1"),
        "v0:255": (2, 0, "GTPv0 T-PDUs, see v0:1"),
    },
    "zeek_gtp_create_pdp_ctx.pcap": {
        "rac": ((255,), (),
                "frame 2's RAI IE (TS 29.060 7.7.3) is 03 64 f0 60 ff fe ff: MCC 460, MNC 06, LAC 0xfffe = 65534 "
                "(equal on both sides), RAC 0xff = 255 (tshark is right). The record keeps the area code in "
                "lac_tac and a cell identity (CI, SAC, ECI) in cell; an RAI has no cell, so cell is 0 and the "
                "RAC is not recorded, by design (README record fields, test_v1_rai_and_uli)"),
    },
    "arkime_gtp-iphone.pcap": {
        "called": (("7",), (),
                   "frame 90 is a SIP MESSAGE (SMS over IP, TS 24.341) inside a GTP-U tunnel (TEID 0x7e10b56d): "
                   "tshark's gsm_a.dtap.cld_party_bcd_num 7 is its RP-DATA's RP-Destination Address. User-plane "
                   "payload is not decoded, by design: GTP-U gives per-tunnel usage counters only"),
    },
}

TSHARK_FIELDS = ("gtp.flags.version", "gtp.message", "gtpv2.message_type", "e212.imsi", "e164.msisdn",
                 "gtpv2.mei", "gtp.ext_imeisv", "gtpv2.ecgi_eci", "gtpv2.tai_tac", "gtp.lac", "gtp.rai_rac",
                 "gtp.cgi_ci", "gtp.sai_sac", "gsm_a.dtap.cld_party_bcd_num", "udp.srcport", "udp.dstport")
VALUE_KEYS = ("imsi", "msisdn", "imei", "eci", "tac", "lac", "rac", "ci", "sac", "called")
NUMERIC = {"eci": "gtpv2.ecgi_eci", "tac": "gtpv2.tai_tac", "lac": "gtp.lac", "rac": "gtp.rai_rac",
           "ci": "gtp.cgi_ci", "sac": "gtp.sai_sac"}


def gtp_captures() -> list:
    """The files of the MANIFEST's GTP sections (every file with gtp in its name if there is none)."""
    manifest = PUBLIC / "MANIFEST.md"
    if not manifest.is_file():
        return sorted(p.name for p in PUBLIC.glob("*gtp*")) if PUBLIC.is_dir() else []
    names, section = [], ""
    for line in manifest.read_text().splitlines():
        if line.startswith("## "):
            section = line
        elif line.startswith("### ") and "GTP" in section:
            names.append(line[4:].strip())
    return names


def tshark_view(path: Path) -> dict:
    cmd = [TSHARK, "-n", "-r", str(path), "-Y", "gtp or gtpv2 or gtpprime", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=;"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    view = collections.Counter()
    ids = {k: set() for k in VALUE_KEYS}
    for line in out.splitlines():
        row = dict(zip(TSHARK_FIELDS, (c.split(";") if c else [] for c in line.split("\t"))))
        for layer, (ver, msg) in enumerate(zip(row["gtp.flags.version"], row["gtp.message"])):
            ver, msg = int(ver), int(msg, 0)
            if ver == 1 and msg == 255:
                if layer == 0:                          # the outer tunnel, not GTP inside it
                    view["tpdu"] += 1
            elif ver == 1 and msg in RECORDED_V1:
                view[f"v1:{msg}"] += 1
            elif ver == 0:
                view[f"v0:{msg}"] += 1
            elif ver == 1:
                view[counter(msg, row)] += 1
        for t in row["gtpv2.message_type"]:
            if int(t) in RECORDED_V2:
                view[f"v2:{int(t)}"] += 1
            else:
                view[counter(int(t), row)] += 1
        ids["imsi"] |= set(row["e212.imsi"])
        ids["msisdn"] |= set(row["e164.msisdn"])
        ids["imei"] |= set(row["gtpv2.mei"]) | set(row["gtp.ext_imeisv"])
        ids["called"] |= set(row["gsm_a.dtap.cld_party_bcd_num"])
        for key, f in NUMERIC.items():
            ids[key] |= {int(x, 0) for x in row[f]}
    return dict(view, **{k: tuple(sorted(v)) for k, v in ids.items()})


def counter(msg: int, row: dict) -> str:
    """The --stats counter of a message of a type the decoder does not record."""
    if GTPU_PORT in {int(p) for p in row["udp.srcport"][:1] + row["udp.dstport"][:1]}:
        return "GTPU_SIGNALLING"
    return "GTP_ECHO" if msg <= 3 else "GTP_OTHER_MESSAGE"


def our_view(path: Path) -> dict:
    st = Stats()
    recs = [r for batch in decode_file(path, Options(messages=True), stats=st) for r in to_dicts(batch)]
    ctrl = [r for r in recs if r["proto"] in ("gtpv1c", "gtpv2c")]
    view = collections.Counter(f"v{r['proto'][4]}:{r['op']}" for r in ctrl)
    view["tpdu"] = sum(r.get("packets", 0) for r in usage(recs))
    for name in COUNTED:
        view[name] = st.anomalies[Anomaly[name]]
    ids = {k: {r[k] for r in ctrl if k in r} for k in ("imsi", "msisdn", "imei")}
    ids["eci"] = {r["cell"] for r in ctrl if r.get("loc_type") == "ecgi"}
    ids["tac"] = {r["lac_tac"] for r in ctrl if r["proto"] == "gtpv2c" and r.get("loc_type") in ("ecgi", "tai")}
    v1 = [r for r in ctrl if r["proto"] == "gtpv1c"]
    ids["lac"] = {r["lac_tac"] for r in v1 if r.get("loc_type") in ("rai", "cgi", "sai")}
    ids["rac"] = set()                                  # the record keeps no RAC (README: lac_tac, cell)
    ids["ci"] = {r["cell"] for r in v1 if r.get("loc_type") == "cgi"}
    ids["sac"] = {r["cell"] for r in v1 if r.get("loc_type") == "sai"}
    ids["called"] = {r["peer"] for r in recs if "peer" in r}
    return dict(view, **{k: tuple(sorted(v)) for k, v in ids.items()})


def differences(theirs: dict, ours: dict) -> dict:
    empty = lambda k: () if k in VALUE_KEYS else 0
    return {k: (theirs.get(k, empty(k)), ours.get(k, empty(k))) for k in sorted(set(theirs) | set(ours))
            if theirs.get(k, empty(k)) != ours.get(k, empty(k))}


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not PUBLIC.is_dir(), reason=f"{PUBLIC} not present")
@pytest.mark.parametrize("name", gtp_captures())
def test_public_capture_against_tshark(name):
    path = PUBLIC / name
    if not path.is_file():
        pytest.skip(f"{name} listed in the MANIFEST but absent")
    theirs, ours = tshark_view(path), our_view(path)
    known = {k: (t, o) for k, (t, o, _why) in KNOWN.get(name, {}).items()}
    assert differences(theirs, ours) == known, f"tshark {theirs}\nours   {ours}"


def test_known_differences_name_listed_captures():
    assert set(KNOWN) <= set(gtp_captures()) or not PUBLIC.is_dir()


BEARER_FIELDS_TSHARK = ("gtp.flags.version", "gtp.message", "gtpv2.message_type", "gtpv2.ie_type", "gtpv2.ebi",
                        "gtpv2.bearer_qos_label_qci", "gtp.nsapi")


def tshark_bearers(path: Path) -> dict:
    """frame -> (bearers, ebi, qci) of the frames with exactly one GTP-C message, one we record:
    Bearer Context IEs (type 93), the first EBI that is not 0, the first Bearer QoS QCI; GTPv1:
    one bearer when an NSAPI is there, the first NSAPI."""
    cmd = [TSHARK, "-n", "-r", str(path), "-Y", "gtp or gtpv2", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=;", "-e", "frame.number"]
    for f in BEARER_FIELDS_TSHARK:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    view = {}
    for line in out.splitlines():
        num, *cols = line.split("\t")
        row = dict(zip(BEARER_FIELDS_TSHARK, (c.split(";") if c else [] for c in cols)))
        v1 = [int(m, 0) for ver, m in zip(row["gtp.flags.version"], row["gtp.message"]) if ver == "1"]
        v2 = [int(t) for t in row["gtpv2.message_type"]]
        if len(v1) + len(v2) != 1:
            continue
        if v2 and v2[0] in RECORDED_V2:
            ebis = [int(x) for x in row["gtpv2.ebi"] if int(x)]
            qcis = [int(x) for x in row["gtpv2.bearer_qos_label_qci"]]
            view[int(num)] = (row["gtpv2.ie_type"].count("93"), ebis[0] if ebis else 0, qcis[0] if qcis else 0)
        elif v1 and v1[0] in RECORDED_V1:
            nsapis = [int(x) for x in row["gtp.nsapi"] if int(x)]
            view[int(num)] = (1 if row["gtp.nsapi"] else 0, nsapis[0] if nsapis else 0, 0)
    return view


def our_bearers(path: Path) -> dict:
    recs = [r for batch in decode_file(path, Options(messages=True)) for r in to_dicts(batch)]
    per_frame = collections.defaultdict(list)
    for r in control(recs):
        per_frame[r["frame"]].append(bearer_fields(r))
    return {n: v[0] for n, v in per_frame.items() if len(v) == 1}


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not PUBLIC.is_dir(), reason=f"{PUBLIC} not present")
@pytest.mark.parametrize("name", gtp_captures())
def test_public_capture_bearers_against_tshark(name):
    """Per frame with one GTP-C message on both sides: bearer contexts, first EBI, first QCI as
    tshark shows them. Whether a frame gives a record at all is test_public_capture_against_tshark's
    (message counts, with their known reasons); a message piggybacked on an echo is two for tshark."""
    path = PUBLIC / name
    if not path.is_file():
        pytest.skip(f"{name} listed in the MANIFEST but absent")
    theirs, ours = tshark_bearers(path), our_bearers(path)
    both = set(theirs) & set(ours)
    assert {n: theirs[n] for n in both} == {n: ours[n] for n in both}
    assert both or not theirs


def test_public_captures_have_bearers():
    """The comparison above is not empty: the public captures hold bearer contexts, QCIs and NSAPIs."""
    if TSHARK is None or not PUBLIC.is_dir():
        pytest.skip("needs tshark and the public captures")
    seen = [v for name in gtp_captures() if (PUBLIC / name).is_file() for v in our_bearers(PUBLIC / name).values()]
    assert any(b > 0 and q > 0 for b, _e, q in seen) and any(e == 6 for _b, e, _q in seen)


def test_tcp_retransmission_against_tshark(tmp_path):
    if TSHARK is None:
        pytest.skip("tshark not installed")
    a = csr(seq=1)
    path = tmp_path / "retx.pcap"
    path.write_bytes(pcap_at(enumerate([tcp_frame(a, MME, SGW, 1000), tcp_frame(a, MME, SGW, 1000),
                                        tcp_frame(csresp(seq=1), SGW, MME, 1, 2123, 40000)])))
    theirs = tshark_view(path)
    assert (theirs.get("v2:32"), theirs.get("v2:33")) == (1, 1)
    ours = our_view(path)
    assert differences(theirs, ours) == {}
