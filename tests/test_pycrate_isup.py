"""ISUP encoded by pycrate (IAM / ACM / CON / ANM / REL / RLC by pycrate_mobile.ISUP, over
MTP3 and M3UA), decoded by probe._decode, fields compared; and every message cut at every length.
"""
import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import given
from hypothesis import strategies as st
from pycrate_mobile import ISUP

from tests import packets as P
from tests.pycrate_messages import (
    COUNTRY_CODES, FEW, SETTINGS, _tsn, assert_prefixes, check, decode, digits, international, want_of,
)

# ---------------------------------------------------------------------------
# 2. ISUP

def iam(cic, c):
    m = ISUP.InitialAddress()
    m["CIC"].set_val(cic)
    m["CallingPartyCat"].set_val(10)
    num = m["CalledPartyNum"]["CalledPartyNum"]
    num["NAI"].set_val(c["called_nai"])
    num["NumPlan"].set_val(1)
    num.set_num(c["called"])
    opt = m["Opt"]
    if c["calling"]:
        opt["CallingPartyNum"].set_trans(False)
        cpn = opt["CallingPartyNum"]["CallingPartyNum"]
        cpn["NAI"].set_val(c["calling_nai"])
        cpn["NumPlan"].set_val(1)
        cpn["ScreeningInd"].set_val(3)
        cpn.set_num(c["calling"])
    if c["extras"]:                                        # optional parameters around the calling number
        for name in ("TransitNetworkSel", "OptForwardCallInd", "HopCounter"):
            opt[name].set_trans(False)
    opt["EOO"].set_trans(c["calling"] is None and not c["extras"])
    return m.to_bytes()


def simple(cls, cic):
    m = cls()
    m["CIC"].set_val(cic)
    return m.to_bytes()


def rel(cic, cause, location):
    m = ISUP.Release()
    m["CIC"].set_val(cic)
    ci = m["CauseInd"]["CauseInd"]
    ci[0].set_val(1)                                       # ext: no octet 3a (pycrate's default is 0)
    ci["Location"].set_val(location)
    ci["Class"].set_val(cause >> 4)
    ci["Cause"].set_val(cause & 0xF)
    return m.to_bytes()


calls = st.fixed_dictionaries({
    "called": digits(3, 15), "called_nai": st.integers(1, 127),
    "calling": st.one_of(st.none(), digits(3, 15)), "calling_nai": st.integers(1, 127),
    "extras": st.booleans(),
    "acm": st.booleans(),
    "answer": st.sampled_from([None, "ANM", "CON"]),
    "release": st.one_of(st.none(), st.integers(1, 127), st.sampled_from([16, 31])),
    "location": st.integers(0, 15),
    "rel_back": st.booleans(),
    "rlc": st.booleans(),
})
OP = {"IAM": 1, "ACM": 6, "CON": 7, "ANM": 9, "REL": 12, "RLC": 16}


def call_messages(cic, c):
    """[(name, isup bytes, forward?)] for one call."""
    out = [("IAM", iam(cic, c), True)]
    if c["acm"] and c["answer"] != "CON":
        out.append(("ACM", simple(ISUP.AddressComplete, cic), False))
    if c["answer"] == "ANM":
        out.append(("ANM", simple(ISUP.Answer, cic), False))
    elif c["answer"] == "CON":
        out.append(("CON", simple(ISUP.Connect, cic), False))
    if c["release"] is not None:
        out.append(("REL", rel(cic, c["release"], c["location"]), not c["rel_back"]))
        if c["rlc"]:
            out.append(("RLC", simple(ISUP.ReleaseComplete, cic), c["rel_back"]))
    return out


def isup_frame(msg, forward, opc, dpc, carrier):
    a, b = (opc, dpc) if forward else (dpc, opc)
    if carrier == "mtp3":
        return P.mtp3(msg, opc=a, dpc=b, si=5)
    _tsn[0] += 1
    return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(msg, opc=a, dpc=b, si=5), tsn=_tsn[0]))))


def isup_capture(cics, cs, opc, dpc, carrier):
    """Calls interleaved round-robin; returns frames and [(frame no, cic, name, msg, forward)]."""
    queues = [[(cic, *m) for m in call_messages(cic, c)] for cic, c in zip(cics, cs)]
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    frames = [isup_frame(msg, fwd, opc, dpc, carrier) for _cic, _n, msg, fwd in order]
    return frames, [(i + 1, *o) for i, o in enumerate(order)]


isup_calls = st.lists(st.integers(0, 0xFFF), min_size=1, max_size=4, unique=True).flatmap(
    lambda cics: st.tuples(st.just(cics), st.lists(calls, min_size=len(cics), max_size=len(cics))))
pcs = st.integers(1, 0x3FFF)
carriers = st.sampled_from(["mtp3", "m3ua"])


@SETTINGS
@given(cc=isup_calls, opc=pcs, dpc=pcs, carrier=carriers, country=COUNTRY_CODES)
def test_isup_calls_dialogue(cc, opc, dpc, carrier, country):
    cics, cs = cc
    frames, order = isup_capture(cics, cs, opc, dpc, carrier)
    recs, stats = decode(frames, 141 if carrier == "mtp3" else 1, messages=False, country_code=country)
    where = "\n".join(f"{n} {name} {msg.hex()}" for n, _c, name, msg, _f in order)
    # a call: its attempt at the IAM, its end at the release (or the time-out)
    assert sorted((r["tid"], r["kind"]) for r in recs) == sorted(
        (cic, kind) for cic in cics for kind in ("call_attempt", "call_end")), (recs, stats.anomalies, where)
    by_cic = {(r["tid"], r["kind"]): r for r in recs}
    for cic, c in zip(cics, cs):
        mine = [o for o in order if o[1] == cic]
        frame = {name: n for n, _cic, name, _m, _f in mine}
        answered = c["answer"] is not None
        released = c["release"] is not None
        flags = {"request"}
        if answered:
            flags |= {"response", "correlated", "answered"}
        if released and not answered and c["release"] not in (16, 31):
            flags.add("error")
        if not released:
            flags.add("timeout")
        last = [o[0] for o in mine if o[2] != "RLC"][-1]
        call = want_of(proto="isup", op=1, tid=cic, peer=c["called"], nai=c["called_nai"],
                       msisdn=international(c["calling"], c["calling_nai"] == 3, country), src=opc, dst=dpc)
        setup, end = by_cic[cic, "call_attempt"], by_cic[cic, "call_end"]
        check(setup, dict(call, kind="call_attempt", frame=frame["IAM"], flags=["request"]), where=where)
        talk = (frame["REL"] - frame[c["answer"]]) * 1000 if answered and released else None   # a frame a second
        check(end, dict(call, kind="call_end", cause=c["release"], frame=last, duration_ms=talk), where=where)
        assert set(end["flags"]) == flags, (end, where)


@SETTINGS
@given(cc=isup_calls, opc=pcs, dpc=pcs, carrier=carriers)
def test_isup_per_message(cc, opc, dpc, carrier):
    cics, cs = cc
    frames, order = isup_capture(cics, cs, opc, dpc, carrier)
    recs, stats = decode(frames, 141 if carrier == "mtp3" else 1, messages=True)
    where = "\n".join(f"{n} {name} {msg.hex()}" for n, _c, name, msg, _f in order)
    assert len(recs) == len(order), (recs, stats.anomalies, where)
    call = dict(zip(cics, cs))
    for r, (n, cic, name, msg, fwd) in zip(recs, order):
        c = call[cic]
        a, b = (opc, dpc) if fwd else (dpc, opc)
        w = want_of(proto="isup", kind="call_attempt", op=OP[name], tid=cic, src=a, dst=b, frame=n)
        flags = []
        if name == "IAM":
            w.update(want_of(msisdn=c["calling"], peer=c["called"], nai=c["called_nai"]))
            flags = ["request"]
        elif name in ("ANM", "CON"):
            flags = ["response"]
        elif name == "REL":
            w["cause"] = c["release"]
            flags = ["response"] if c["release"] in (16, 31) else ["error"]
        check(r, dict(w, flags=flags), where=f"{name} {msg.hex()}")


@FEW
@given(cc=isup_calls, opc=pcs, dpc=pcs)
def test_truncated_isup(cc, opc, dpc):
    cics, cs = cc
    for name, msg, _fwd in call_messages(cics[0], cs[0]):
        mk = (lambda m: P.mtp3(m, opc=opc, dpc=dpc, si=5))
        full, _ = decode([mk(msg)], 141)
        assert len(full) == 1, (name, msg.hex())
        assert_prefixes(msg, mk, 141, full)
