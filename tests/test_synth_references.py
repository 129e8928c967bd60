"""The generator's captures against independent references: tshark decodes every packet and agrees
with the expected records; pycrate reads every generated message back."""
import collections
import shutil
import struct
import subprocess

import pytest

pytest.importorskip("pycrate_asn1dir")

from touchpoint.probe import synth
from touchpoint.probe.synth.templates import _bcd_text
from touchpoint.probe.record import subject_hash
from tests.synth_captures import load_jsonl, m3ua_user, pcap_frames, udp_payload


# --- tshark as the independent reference ------------------------------------

TSHARK = shutil.which("tshark")
FIELDS = ("frame.number", "frame.protocols", "tcap.otid", "tcap.dtid", "tcap.p_abortCause",
          "tcap.application_context_name", "gsm_old.localValue", "e212.imsi", "e164.msisdn",
          "gsm_map.tbcd_digits", "gsm_sms.tp-oa", "gsm_sms.tp-da", "gsm_map.ussd_string",
          "gsm_map.ss.ss_Code", "sccp.digits", "_ws.malformed", "_ws.expert.severity",
          "ip.checksum.status", "sctp.checksum.status")


def _tshark(path):
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "sctp.checksum:CRC-32C",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"] + [a for f in FIELDS for a in ("-e", f)],
        check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        rows.append({f: [x for x in c.split("|") if x] for f, c in zip(FIELDS, cols)})
    return rows


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_decodes_every_packet(small):
    p, e, st = small
    rows = _tshark(p)
    assert len(rows) == st["packets"]
    for r in rows:
        n = r["frame.number"][0]
        protos = r["frame.protocols"][0].split(":")
        assert protos[:6] == ["eth", "ethertype", "ip", "sctp", "m3ua", "sccp"], n
        assert "tcap" in protos, n
        if not r["tcap.p_abortCause"]:
            assert "gsm_map" in protos, n
        assert not r["_ws.malformed"], n
        assert not r["_ws.expert.severity"], (n, r["_ws.expert.severity"])
        assert r["ip.checksum.status"] == ["1"] and r["sctp.checksum.status"] == ["1"], n


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_agrees_with_expectations(small):
    p, e, _ = small
    rows = _tshark(p)
    exp = load_jsonl(e)
    by_tid = {r["tid"]: r for r in exp}
    frames = collections.defaultdict(list)          # dialogue tid -> tshark rows
    for r in rows:
        tids = {int(t.replace(":", ""), 16) for t in r["tcap.otid"] + r["tcap.dtid"]}
        owner = [t for t in tids if t in by_tid]
        assert len(owner) == 1, r["frame.number"]
        frames[owner[0]].append(r)
    assert set(frames) == set(by_tid)

    begin_ops = collections.Counter()
    for tid, x in by_tid.items():
        fr = frames[tid]
        nums = [int(r["frame.number"][0]) for r in fr]
        begin = fr[0]
        assert begin["tcap.otid"] and not begin["tcap.dtid"]
        op = int(begin["gsm_old.localValue"][0])
        begin_ops[op] += 1
        assert op == x["op"]
        if "timeout" in x["flags"]:
            assert nums == [x["frame"]]
        else:
            assert nums[-1] == x["frame"]
        if "abort" in x["flags"]:
            assert fr[-1]["tcap.p_abortCause"]
        acn = begin["tcap.application_context_name"]
        if x["version"] >= 2:
            assert acn and int(acn[0].split(".")[-1]) == x["version"]
        else:
            assert not acn
        seen = {k: set() for k in FIELDS}
        for r in fr:
            for k in FIELDS:
                seen[k].update(r[k])
        assert seen["e212.imsi"] == ({x["imsi"]} if "imsi" in x else set()), x
        numbers = seen["e164.msisdn"] | seen["sccp.digits"]
        if "msisdn" in x:
            assert x["msisdn"] in seen["e164.msisdn"], x
        if "node" in x:
            assert x["node"] in numbers, x
        if "imei" in x:
            assert x["imei"] in seen["gsm_map.tbcd_digits"], x
        if "ss_code" in x:
            assert {int(c) for c in seen["gsm_map.ss.ss_Code"]} == {x["ss_code"]}
        if "peer" in x:
            if x["kind"] == "mt_sms":
                assert seen["gsm_sms.tp-oa"] == {x["peer"]}
            elif x["kind"] == "mo_sms":
                assert seen["gsm_sms.tp-da"] == {x["peer"]}
            elif x["kind"] == "ussd":
                # tshark shows the CR padding of 7-spare-bit strings (TS 23.038) as "\\r"
                assert x["peer"] in {u.replace("\\r", "") for u in seen["gsm_map.ussd_string"]}
            else:
                assert x["peer"] in numbers, x
    assert begin_ops == collections.Counter(x["op"] for x in exp)


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_operation_statistics(small):
    """tshark's own MAP statistics count the invokes we expect."""
    p, e, _ = small
    out = subprocess.run([TSHARK, "-n", "-q", "-z", "gsm_map,operation", "-r", str(p)],
                         check=True, capture_output=True, text=True).stdout
    invokes = {}
    for line in out.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) > 3 and cols[0].isdigit():
            invokes[int(cols[0])] = int(cols[2])
    exp = load_jsonl(e)
    want = collections.Counter(r["op"] for r in exp)
    want[7] += sum(1 for r in exp if r["op"] == 2 and "response" in r["flags"])   # ISD inside UL
    for op, n in want.items():
        assert invokes.get(op) == n, (op, invokes.get(op), n)


def test_pycrate_decodes_every_generated_message(tmp_path):
    """pycrate (the reference) reads back every patched template as a valid TCAP/MAP message."""
    from pycrate_asn1dir import TCAP_MAPv2v3
    t = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    p, e = tmp_path / "p.pcap", tmp_path / "p.jsonl"
    synth.generate(p, packets=400, seed=13, subscribers=50, expected_path=e, failures=0.1, mix=synth.MAP_MIX)
    imsis = set()
    for _, f in pcap_frames(p.read_bytes()):
        plen = struct.unpack_from(">H", f, 72)[0]          # M3UA Protocol Data length
        sccp = f[86:70 + plen]
        assert sccp[0] == 0x09                              # UDT
        at = 4 + sccp[4]
        tcap = sccp[at + 1:at + 1 + sccp[at]]
        assert len(tcap) == sccp[at] and at + 1 + len(tcap) == len(sccp)
        t.from_ber(tcap)
        assert t.to_ber() == tcap                            # canonical: what pycrate would encode
        kind, v = t.get_val()
        for c in v.get("components", []):
            x = c[1][1]
            prm = x.get("argument") or (x.get("result") or {}).get("result")
            if prm and isinstance(prm[1], dict) and isinstance(prm[1].get("imsi"), bytes):
                imsis.add(prm[1]["imsi"].hex())
    want = {synth.tbcd(r["imsi"]).hex() for r in load_jsonl(e) if "imsi" in r}
    assert imsis and imsis <= want


def test_pycrate_reads_every_mixed_message(mixed):
    """pycrate parses every GTP-C, GTP-U header, ISUP and TCAP (CAP, MAP) message back
    to the same octets: the patched templates are still what pycrate would encode."""
    import pycrate_mobile.TS29060_GTP as G1
    import pycrate_mobile.TS29274_GTPC as G2
    import pycrate_mobile.TS29281_GTPU as GU
    from pycrate_asn1dir import TCAP_CAP, TCAP_MAPv2v3
    from pycrate_mobile import ISUP
    cap = TCAP_CAP.TCAP_CAP_Messages.TCAP_CAP_Message
    tmap = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    p, _, st = mixed
    seen = collections.Counter()
    for _, f in pcap_frames(p.read_bytes()):
        u = udp_payload(f)
        if u is not None:
            port, g = u
            if port == 2152:
                m, err = GU.parse_GTPU(g)
                assert err == 0 and m[0]["TEID"].get_val() == struct.unpack_from(">I", g, 4)[0]
                seen["gtpu"] += 1
            elif g[0] >> 5 == 2:
                m, err = G2.parse_GTPC(g)
                assert err == 0 and m.to_bytes() == g
                seen["gtpv2c"] += 1
            else:
                m, err = G1.parse_GTP(g)
                assert err == 0 and m.to_bytes() == g
                seen["gtpv1c"] += 1
            continue
        si, user = m3ua_user(f)
        if si == 5:
            m = ISUP.ISUPTypeClasses[user[2]]()
            m.from_bytes(user)
            assert m.to_bytes() == user
            seen["isup"] += 1
        else:
            at = 4 + user[4]
            tcap = user[at + 1:at + 1 + user[at]]
            ssn = user[2 + user[2] + 2]                        # called party: length, indicator, SSN
            t = cap if ssn == synth.SSN_CAP else tmap
            t.from_ber(tcap)
            assert t.to_ber() == tcap
            seen["cap" if ssn == synth.SSN_CAP else "map"] += 1
    assert seen == collections.Counter(st["by_proto"])


MIX_FIELDS = (
    "frame.number", "frame.protocols", "_ws.malformed", "_ws.expert.severity", "ip.checksum.status",
    "sctp.checksum.status", "ip.len", "ip.dst", "gtp.message", "gtp.teid", "gtp.seq_number", "gtp.cause",
    "gtp.apn", "gtp.ext_imeisv", "gtp.ext_rat_type", "gtp.lac", "gtp.cgi_ci", "gtp.teid_data", "gtp.teid_cp",
    "gtpv2.message_type", "gtpv2.teid", "gtpv2.seq", "gtpv2.cause", "gtpv2.mei", "gtpv2.apn", "gtpv2.rat_type",
    "gtpv2.tai_tac", "gtpv2.ecgi_eci", "gtpv2.f_teid_interface_type", "gtpv2.f_teid_gre_key", "e212.imsi",
    "e164.msisdn", "e212.tai.mcc", "e212.tai.mnc", "e212.cgi.mcc", "e212.cgi.mnc", "tcap.otid", "tcap.dtid",
    "camel.local", "camel.serviceKey", "camel.eventTypeBCSM", "camel.calledPartyBCDNumber", "isup.cic",
    "isup.message_type", "isup.called", "isup.calling", "isup.cause_indicator",
    "isup.called_party_nature_of_address_indicator", "gsm_sms.tp-oa", "gsm_sms.tp-dcs",
    "gsm_sms.udh.mm.msg_parts", "gsm_sms.udh.mm.msg_part", "gsm_sms.destination_port", "mmse.from",
    "mmse.message_size", "mmse.subject", "mmse.message_class.id", "gsm_old.localValue", "tcap.p_abortCause")


@pytest.fixture(scope="module")
def mixed_tshark(mixed):
    if TSHARK is None:
        pytest.skip("tshark not installed")
    p, _, _ = mixed
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(p), "-o", "ip.check_checksum:TRUE", "-o", "sctp.checksum:CRC-32C",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"] + [a for f in MIX_FIELDS for a in ("-e", f)],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(MIX_FIELDS) - len(cols))
        r = {f: [x for x in c.split("|") if x] for f, c in zip(MIX_FIELDS, cols)}
        rows[int(r["frame.number"][0])] = r
    return rows


def _one(r, f, conv=str):
    assert len(r[f]) == 1, (r["frame.number"], f, r[f])
    return conv(r[f][0])


def _hex(x):
    return int(x, 0)


def test_tshark_decodes_every_mixed_packet(mixed, mixed_tshark):
    """Every packet of every protocol decodes in tshark, with no malformed or expert item and
    good checksums (the IPv4 headers inside G-PDUs too)."""
    _, _, st = mixed
    rows = mixed_tshark
    assert len(rows) == st["packets"]
    seen = collections.Counter()
    for n, r in rows.items():
        protos = r["frame.protocols"][0].split(":")
        assert not r["_ws.malformed"], n
        assert not r["_ws.expert.severity"], (n, r["_ws.expert.severity"])
        assert r["ip.checksum.status"] and set(r["ip.checksum.status"]) == {"1"}, n
        if protos[3] == "sctp":
            assert r["sctp.checksum.status"] == ["1"], n
            if protos[5] == "isup":
                seen["isup"] += 1
            else:
                assert protos[5:7] == ["sccp", "tcap"], (n, protos)
                if r["tcap.p_abortCause"]:                  # a MAP dialogue's Abort: TCAP only
                    assert len(protos) == 7, n
                    seen["map"] += 1
                else:
                    assert protos[7] in ("gsm_map", "camel"), (n, protos)
                    seen["cap" if protos[7] == "camel" else "map"] += 1
        else:
            assert protos[3:5] == ["udp", "gtp"], (n, protos)
            if r["gtpv2.message_type"]:
                assert protos[5:] == ["gtpv2"], (n, protos)
                seen["gtpv2c"] += 1
            elif _one(r, "gtp.message", _hex) == 0xFF:
                assert protos[5:] == ["ip", "udp", "data"], (n, protos)
                seen["gtpu"] += 1
            else:
                assert _one(r, "gtp.message", _hex) in (0x10, 0x11, 0x14, 0x15), n
                seen["gtpv1c"] += 1
    assert seen == collections.Counter(st["by_proto"])


def _apn_ni(apn: str) -> str:
    return apn.split(".mnc")[0]


def test_tshark_agrees_on_gtp(mixed, mixed_tshark):
    """Each GTP-C record against tshark's fields of its request and response; the subscriber
    of Modify Bearer / Delete Session / Delete PDP Context and of every data usage record
    followed through the TEIDs as tshark shows them (header TEIDs and F-TEIDs)."""
    _, e, st = mixed
    rows = mixed_tshark
    exp = load_jsonl(e)
    v2, v1, gpdu = {}, {}, []                        # (type, seq) -> [frame]; G-PDU frames
    for n, r in sorted(rows.items()):
        if r["gtpv2.message_type"]:
            v2.setdefault((_one(r, "gtpv2.message_type", int), _one(r, "gtpv2.seq", _hex)), []).append(n)
        elif r["gtp.message"]:
            t = _one(r, "gtp.message", _hex)
            if t == 0xFF:
                gpdu.append(n)
            else:
                v1.setdefault((t, _one(r, "gtp.seq_number", _hex)), []).append(n)

    def pair(table, op, seq, frame):
        resp = [n for n in table[(op + 1, seq)] if n == frame]
        req = [n for n in table[(op, seq)] if n < frame]
        assert resp and req, (op, seq, frame)
        return rows[req[-1]], rows[resp[0]]

    owner = {}                                        # TEID announced -> IMSI, as tshark shows them
    checked = collections.Counter()
    for x in sorted(exp, key=lambda r: r["frame"]):
        if x["proto"] == "gtpv2c":
            q, a = pair(v2, x["op"], x["tid"], x["frame"])
            assert int(a["gtpv2.cause"][0]) == x["cause"]        # the message's (then the bearer's)
            if x["op"] == 32:
                assert _one(q, "e212.imsi") == x["imsi"] and _one(q, "e164.msisdn") == x["msisdn"]
                assert _one(q, "gtpv2.mei") == x["imei"] and _apn_ni(_one(q, "gtpv2.apn")) == x["apn"]
                assert _one(q, "gtpv2.rat_type", int) == x["rat"]
                who = x["imsi"]
                for t in q["gtpv2.f_teid_gre_key"] + a["gtpv2.f_teid_gre_key"]:
                    owner[_hex(t)] = who
            else:
                assert not q["e212.imsi"]                 # only the tunnel names the subscriber
                who = owner[_one(q, "gtpv2.teid", _hex)]
                assert who == x["imsi"]
                for t in q["gtpv2.f_teid_gre_key"]:
                    owner[_hex(t)] = who
            if "loc_type" in x:
                assert (_one(q, "gtpv2.tai_tac", _hex), _one(q, "gtpv2.ecgi_eci", int)) == (x["lac_tac"], x["cell"])
                assert (_one(q, "e212.tai.mcc", int), _one(q, "e212.tai.mnc", int)) == (int(x["mcc"]), int(x["mnc"]))
            checked["gtpv2c"] += 1
        elif x["proto"] == "gtpv1c":
            q, a = pair(v1, x["op"], x["tid"], x["frame"])
            assert _one(a, "gtp.cause", int) == x["cause"]
            if x["op"] == 16:
                assert _one(q, "e212.imsi") == x["imsi"] and _one(q, "e164.msisdn") == x["msisdn"]
                assert _one(q, "gtp.ext_imeisv") == x["imei"] and _apn_ni(_one(q, "gtp.apn")) == x["apn"]
                assert _one(q, "gtp.ext_rat_type", int) == x["rat"]
                assert _one(q, "gtp.cgi_ci", int) == x["cell"] and x["lac_tac"] in {int(v) for v in q["gtp.lac"]}
                for t in q["gtp.teid_data"] + q["gtp.teid_cp"] + a["gtp.teid_data"] + a["gtp.teid_cp"]:
                    owner[_hex(t)] = x["imsi"]
            else:
                assert not q["e212.imsi"] and owner[_one(q, "gtp.teid", _hex)] == x["imsi"]
            checked["gtpv1c"] += 1
    # data usage: per TEID, the G-PDUs since the tunnel's previous record
    last = collections.defaultdict(int)
    for x in sorted((r for r in exp if r["kind"] == "data_usage"), key=lambda r: r["frame"]):
        teid = x["tid"]
        mine = [n for n in gpdu if last[teid] < n <= x["frame"] and _one(rows[n], "gtp.teid", _hex) == teid]
        assert len(mine) == x["packets"], x
        assert sum(int(rows[n]["ip.len"][1]) for n in mine) == x["octets"], x
        assert owner[teid] == x["imsi"], x
        last[teid] = x["frame"]
        checked["data_usage"] += 1
    assert checked["gtpv2c"] and checked["gtpv1c"] and checked["data_usage"]


def test_tshark_agrees_on_cap_isup_sms(mixed, mixed_tshark):
    """CAP InitialDP, ISUP calls, multi-part MT SMS and MMS notifications against tshark."""
    _, e, _ = mixed
    rows = mixed_tshark
    exp = load_jsonl(e)
    begins = {}
    for _n, r in rows.items():
        for t in r["tcap.otid"]:
            if not r["tcap.dtid"]:
                begins[int(t.replace(":", ""), 16)] = r
    checked = collections.Counter()
    for x in exp:
        if x["proto"] == "cap":
            b = begins[x["tid"]]
            assert b["camel.local"] == ["0"]
            assert _one(b, "camel.serviceKey", int) == x["service_key"]
            assert _one(b, "camel.eventTypeBCSM", int) == x["event"]
            assert _one(b, "e212.imsi") == x["imsi"]
            called = b["isup.called"] or [_bcd_text(b["camel.calledPartyBCDNumber"][0])]
            if x["event"] == 12:
                assert (called, b["isup.calling"]) == ([x["msisdn"]], [x["peer"]])
            else:
                assert (called, b["isup.calling"]) == ([x["peer"]], [x["msisdn"]])
            assert x["node"] in b["e164.msisdn"]
            if "nai" in x:
                assert _one(b, "isup.called_party_nature_of_address_indicator", int) == x["nai"]
            if x["kind"] == "call_attempt":
                assert rows[x["frame"]] is b                          # at the InitialDP
            else:
                assert "24" in rows[x["frame"]]["camel.local"]       # the End: eventReportBCSM
                reports = [v for r in rows.values() if r["tcap.dtid"] and r["camel.local"] == ["24"]
                           and [int(t.replace(":", ""), 16) for t in r["tcap.otid"]] == [x["tid"]]
                           for v in r["camel.eventTypeBCSM"]]
                assert bool({"7", "15"} & set(reports)) == ("answered" in x["flags"])     # o/tAnswer
            checked[x["kind"]] += 1
        elif x["proto"] == "isup" and x["kind"] == "call_attempt":
            iam = rows[x["frame"]]
            assert _one(iam, "isup.message_type", int) == 1 and _one(iam, "isup.cic", int) == x["tid"]
            assert iam["isup.called"] == [x["peer"]] and iam["isup.calling"] == [x["msisdn"]]
            checked["isup"] += 1
        elif x["proto"] == "isup":
            rel = rows[x["frame"]]
            assert _one(rel, "isup.message_type", int) == 12 and _one(rel, "isup.cic", int) == x["tid"]
            assert _one(rel, "isup.cause_indicator", int) == x["cause"]
            call = [n for n in range(1, x["frame"]) if rows[n]["isup.cic"] == [str(x["tid"])]]
            iam = max(n for n in call if rows[n]["isup.message_type"] == ["1"])
            assert rows[iam]["isup.called"] == [x["peer"]] and rows[iam]["isup.calling"] == [x["msisdn"]]
            assert _one(rows[iam], "isup.called_party_nature_of_address_indicator", int) == x["nai"]
            answered = any(rows[n]["isup.message_type"] == ["9"] for n in call if n > iam)
            assert answered == ("response" in x["flags"]) == ("answered" in x["flags"])
            checked["isup_end"] += 1
        elif x["kind"] == "mt_sms" and "parts" in x:
            b = begins[x["tid"]]
            assert _one(b, "e212.imsi") == x["imsi"] and _one(b, "gsm_sms.tp-oa") == x["peer"]
            assert (_one(b, "gsm_sms.udh.mm.msg_parts", int), _one(b, "gsm_sms.udh.mm.msg_part", int)) == \
                (x["parts"], x["part"])
            assert _one(b, "gsm_sms.tp-dcs", int) == x.get("sms_dcs", 0)
            checked["concat"] += 1
        elif x["kind"] == "mms_notification":
            b = begins[x["tid"]]
            assert _one(b, "e212.imsi") == x["imsi"]
            assert _one(b, "mmse.from") == "+" + x["peer"] + "/TYPE=PLMN"
            assert _one(b, "mmse.message_size", int) == x["octets"]
            assert f"{subject_hash(_one(b, 'mmse.subject')):016x}" == x["subject_hash"]     # Wireshark's subject
            assert {0x80: "personal", 0x81: "advertisement", 0x82: "informational", 0x83: "auto"}[
                _one(b, "mmse.message_class.id", _hex)] == x["mms_class"]
            assert _one(b, "gsm_sms.destination_port", int) == x["app_port"] == 2948
            assert _one(b, "gsm_sms.tp-dcs", int) == x["sms_dcs"] == 4
            checked["mms"] += 1
    assert all(checked[k] for k in ("call_attempt", "call_end", "isup", "isup_end", "concat", "mms")), checked
