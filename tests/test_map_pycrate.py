"""MAP messages encoded by pycrate (the reference), decoded by probe._decode, fields compared.

Per-message mode (messages=True): one record per TCAP component, with the identity
fields of that component only (plus IMSI / MSISDN from the dialogue portion's
MAP-OpenInfo). Dialogue mode: one record per dialogue. Every value compared here
is what the test encoded, never what a decoder said.
"""
import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from touchpoint.probe import synth as S
from touchpoint.probe.synth.dialogues import _SMS_TEXTS, _USSD
from touchpoint.probe.synth.templates import _OP_AC
from touchpoint.probe.decode import decode_bytes
from touchpoint.probe.format import to_dicts

# No shrinking: a decoder bug then fails in seconds, and the failing example is printed as drawn.
SETTINGS = settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
DSETTINGS = settings(SETTINGS, max_examples=25)

# Fields checked strictly: equal when expected, absent when not expected.
STRICT = ("imsi", "msisdn", "imei", "peer", "ss_code", "mcc", "mnc", "lac_tac", "cell", "loc_type", "cause")

D = "0123456789"


def digits(lo, hi):
    return st.text(D, min_size=lo, max_size=hi)


imsis = digits(14, 15)
msisdns = digits(8, 15)
TYPES_OF_NUMBER = st.sampled_from([0x91, 0xA1, 0x81])   # international, national, unknown (ISDN plan)
COUNTRY_CODES = st.sampled_from(["", "86", "41", "1"])
numbers = digits(5, 15)
imeis = digits(15, 16)
tids = st.binary(min_size=4, max_size=4).filter(lambda b: b != b"\0\0\0\0")
styles = st.sampled_from(["definite", "definite", "long", "indefinite"])
# extensionContainer padding that pushes the invoke / result past 127 octets (long-form lengths)
pads = st.one_of(st.none(), st.integers(100, 130))
sccps = st.sampled_from(["udt", "xudt"])
mccs = digits(3, 3)
mncs = st.one_of(digits(2, 2), digits(3, 3))
u16 = st.integers(0, 0xFFFF)


# SCCP parties (gt, ssn)
VLR = ("861390020001", 7)
MSC = ("861390020002", 8)
HLR = ("861380010001", 6)
SGSN = ("861390030001", 149)
SMSC = ("861390040001", 8)
EIR = ("861390070001", 9)
SCF = ("861390060001", 147)
GMSC = ("861390050001", 8)

# Who sends the invoke to whom, per operation.
PARTIES = {2: (VLR, HLR), 3: (HLR, VLR), 7: (HLR, VLR), 10: (VLR, HLR), 11: (VLR, HLR), 12: (VLR, HLR),
           13: (VLR, HLR), 22: (GMSC, HLR), 23: (SGSN, HLR), 43: (MSC, EIR), 44: (SMSC, MSC),
           45: (SMSC, HLR), 46: (MSC, SMSC), 56: (VLR, HLR), 59: (VLR, HLR), 67: (VLR, HLR),
           70: (HLR, VLR), 71: (SCF, HLR)}
AC_X = {op: x[0] for op, x in _OP_AC.items()}


def _frame(tcap, src, dst, sccp="udt"):
    # UDT/XUDT carry at most 255 octets; LUDT has its own test (test_ludt_carries_long_messages)
    if len(tcap) > 255 and sccp != "ludt":
        assume(False)
    return S.frame_tcap(tcap, calling_gt=src[0], calling_ssn=src[1], called_gt=dst[0], called_ssn=dst[1],
                        sccp=sccp)


def decode(msgs, messages=True, sccp="udt", **options):
    """msgs: [(tcap, sender, receiver)] -> to_dicts of the decoded capture."""
    data = S.pcap_bytes([_frame(t, a, b, sccp) for t, a, b in msgs])
    return to_dicts(decode_bytes(data, messages=messages, **options))


def international(number, toa: int, cc: str):
    """What --country-code makes of an MSISDN: cc in front of a national one (type of number
    010), when it still fits in 16 digits."""
    return cc + number if number and (toa >> 4) & 7 == 2 and cc and len(cc) + len(number) <= 16 else number


def check(got: dict, want: dict, loose=(), tcap: bytes = b""):
    """want holds the fields the test knows; STRICT fields not in want must be absent
    (except those named in loose, which are compared only if the decoder gives them)."""
    where = f"got {got}\nwant {want}\ntcap {tcap.hex()}"
    for k, v in want.items():
        assert got.get(k) == v, f"{k}: {where}"
    for k in STRICT:
        if k not in want and k not in loose:
            assert k not in got, f"unexpected {k}: {where}"


def begin_end(op, v, arg, res, *, otid, style="definite", dest=None, orig=None, pad_note=None,
              err=None):
    """A Begin (invoke) and its End (returnResultLast, or returnError `err`)."""
    ac = (AC_X[op], v) if v >= 2 else None
    with S.ber_style(style):
        b = S.encode_begin(op, arg, ac=ac, dest_ref=dest, orig_ref=orig, otid=otid)
        if err is not None:
            comp = S.error(err, S.map_err(err))
        else:
            comp = S.result(op, res)
        e = S.encode_end(otid, [comp], ac=ac)
    src, dst = PARTIES[op]
    return [(b, src, dst), (e, dst, src)]


def req(op, v, kind=None, **f):
    d = {"op": op, "flags": ["request"], "proto": "map"}
    if kind:
        d["kind"] = kind
    if v >= 2:
        d["version"] = v
    d.update({k: x for k, x in f.items() if x is not None})
    return d


def resp(op, v, **f):
    d = {"op": op, "flags": ["response"], "proto": "map"}
    if v >= 2:
        d["version"] = v
    d.update({k: x for k, x in f.items() if x is not None})
    return d


def run_pair(msgs, want_inv, want_res, sccp="udt", loose_res=(), **options):
    got = decode(msgs, sccp=sccp, **options)
    assert len(got) == 2, (got, [t.hex() for t, _, _ in msgs])
    check(got[0], want_inv, tcap=msgs[0][0])
    check(got[1], want_res, loose=loose_res, tcap=msgs[1][0])
    return got


# --- one test per operation --------------------------------------------------

@SETTINGS
@given(imsi=imsis, msc=numbers, vlr=numbers, hlr=numbers, v=st.sampled_from([2, 3]), pad=pads,
       otid=tids, style=styles, sccp=sccps)
def test_update_location(imsi, msc, vlr, hlr, v, pad, otid, style, sccp):
    pad = pad if v >= 3 else None
    arg = S.map_arg(2, v, imsi=imsi, msc=msc, vlr=vlr, pad=pad)
    msgs = begin_end(2, v, arg, S.map_res(2, v, hlr=hlr, pad=pad), otid=otid, style=style)
    run_pair(msgs, req(2, v, "location_update", imsi=imsi, node=vlr), resp(2, v, kind="location_update"),
             sccp=sccp)


@settings(SETTINGS, max_examples=15)
@given(imsi=imsis, vlr=numbers, mcc=mccs, mnc=mncs, lac=u16, ci=u16, pad=st.integers(250, 600), otid=tids,
       style=styles)
def test_ludt_carries_long_messages(imsi, vlr, mcc, mnc, lac, ci, pad, otid, style):
    """PSI with results longer than UDT allows, carried in LUDT (2-octet pointers and length)."""
    arg = S.map_arg(70, 3, imsi=imsi, pad=pad)
    res = S.map_res(70, 3, vlr=vlr, cgi=S.cgi(mcc, mnc, lac, ci), pad=pad)
    msgs = begin_end(70, 3, arg, res, otid=otid, style=style)
    assert all(len(t) > 255 for t, _, _ in msgs)
    run_pair(msgs, req(70, 3, "subscriber_info", imsi=imsi),
             resp(70, 3, kind="subscriber_info", node=vlr, mcc=mcc, mnc=mnc, lac_tac=lac, cell=ci, loc_type="cgi"),
             sccp="ludt")


@SETTINGS
@given(imsi=imsis, v=st.sampled_from([2, 3]), pad=pads, otid=tids, style=styles)
def test_cancel_location(imsi, v, pad, otid, style):
    arg = S.map_arg(3, v, imsi=imsi, pad=pad if v >= 3 else None)
    msgs = begin_end(3, v, arg, S.map_res(3, v), otid=otid, style=style)
    run_pair(msgs, req(3, v, "cancel_location", imsi=imsi), resp(3, v, kind="cancel_location"))


@SETTINGS
@given(imsi=st.one_of(st.none(), imsis), msisdn=st.one_of(st.none(), msisdns), v=st.sampled_from([2, 3]),
       pad=pads, otid=tids, style=styles, toa=TYPES_OF_NUMBER, cc=COUNTRY_CODES)
def test_insert_subscriber_data(imsi, msisdn, v, pad, otid, style, toa, cc):
    arg = S.map_arg(7, v, imsi=imsi, msisdn=msisdn, msisdn_toa=toa, pad=pad if v >= 3 else None)
    msgs = begin_end(7, v, arg, S.map_res(7, v, sslist=True), otid=otid, style=style)
    run_pair(msgs, req(7, v, "insert_sub_data", imsi=imsi, msisdn=international(msisdn, toa, cc)),
             resp(7, v, kind="insert_sub_data"), country_code=cc)


@SETTINGS
@given(imsi=imsis, sgsn=numbers, hlr=numbers, gsn=st.binary(min_size=4, max_size=4), pad=pads, otid=tids,
       style=styles)
def test_update_gprs_location(imsi, sgsn, hlr, gsn, pad, otid, style):
    arg = S.map_arg(23, 3, imsi=imsi, sgsn=sgsn, gsn=gsn, pad=pad)
    msgs = begin_end(23, 3, arg, S.map_res(23, 3, hlr=hlr), otid=otid, style=style)
    run_pair(msgs, req(23, 3, "gprs_location_update", imsi=imsi, node=sgsn), resp(23, 3))


@SETTINGS
@given(imsi=imsis, node=numbers, by_sgsn=st.booleans(), v=st.sampled_from([2, 3]), pad=pads, otid=tids,
       style=styles)
def test_purge_ms(imsi, node, by_sgsn, v, pad, otid, style):
    if v >= 3 and by_sgsn:
        arg = S.map_arg(67, 3, imsi=imsi, sgsn=node, pad=pad)
    else:
        arg = S.map_arg(67, v, imsi=imsi, vlr=node, pad=pad if v >= 3 else None)
    msgs = begin_end(67, v, arg, S.map_res(67, v), otid=otid, style=style)
    run_pair(msgs, req(67, v, "purge_ms", imsi=imsi, node=node), resp(67, v, kind="purge_ms"))


@SETTINGS
@given(imsi=imsis, v=st.sampled_from([2, 3]), nvec=st.integers(1, 2), pad=pads, otid=tids, style=styles)
def test_send_authentication_info(imsi, v, nvec, pad, otid, style):
    arg = S.map_arg(56, v, imsi=imsi, nvec=nvec, pad=pad if v >= 3 else None)
    msgs = begin_end(56, v, arg, S.map_res(56, v, nvec=nvec), otid=otid, style=style)
    run_pair(msgs, req(56, v, "auth_info", imsi=imsi), resp(56, v, kind="auth_info"))


SS_CODES = st.sampled_from([0x20, 0x21, 0x28, 0x29, 0x2A, 0x2B])
SS_KIND = {10: "ss_register", 11: "ss_erase", 12: "ss_activate", 13: "ss_deactivate"}


@SETTINGS
@given(op=st.sampled_from([10, 11, 12, 13]), imsi=imsis, msisdn=msisdns, code=SS_CODES,
       ftn=st.one_of(st.none(), msisdns), refs=st.booleans(), otid=tids, style=styles)
def test_supplementary_services(op, imsi, msisdn, code, ftn, refs, otid, style):
    """The IMSI is only in destinationReference, the MSISDN only in originationReference."""
    v = 2
    kw = {"ss_code": code}
    if op == 10:
        kw["ftn"] = ftn
    arg = S.map_arg(op, v, **kw)
    dest = S.addr(imsi, 0x96) if refs else None
    orig = S.addr(msisdn) if refs else None
    msgs = begin_end(op, v, arg, S.map_res(op, v, **kw), otid=otid, style=style, dest=dest, orig=orig)
    want = req(op, v, SS_KIND[op], ss_code=code, imsi=imsi if refs else None, msisdn=msisdn if refs else None,
               peer=ftn if op == 10 else None)
    # the SS-Info result repeats the ss-Code (and forwardedToNumber): allowed, not required
    run_pair(msgs, want, resp(op, v, kind=SS_KIND[op]), loose_res=("ss_code", "peer"))


@SETTINGS
@given(msisdn=msisdns, gmsc=numbers, imsi=imsis, msrn=numbers, vmsc=st.one_of(st.none(), numbers),
       v=st.sampled_from([2, 3]), pad=pads, otid=tids, style=styles)
def test_send_routing_info(msisdn, gmsc, imsi, msrn, vmsc, v, pad, otid, style):
    arg = S.map_arg(22, v, msisdn=msisdn, gmsc=gmsc, pad=pad if v >= 3 else None)
    vmsc = vmsc if v >= 3 else None
    res = S.map_res(22, v, imsi=imsi, msrn=msrn, vmsc=vmsc, pad=pad if v >= 3 else None)
    msgs = begin_end(22, v, arg, res, otid=otid, style=style)
    run_pair(msgs, req(22, v, "sri", msisdn=msisdn),
             resp(22, v, kind="sri", imsi=imsi, peer=msrn, node=vmsc))


@SETTINGS
@given(msisdn=msisdns, sc=numbers, imsi=imsis, nnn=numbers, v=st.sampled_from([2, 3]), pad=pads,
       otid=tids, style=styles)
def test_send_routing_info_for_sm(msisdn, sc, imsi, nnn, v, pad, otid, style):
    arg = S.map_arg(45, v, msisdn=msisdn, sc=sc, pad=pad if v >= 3 else None)
    res = S.map_res(45, v, imsi=imsi, nnn=nnn, pad=pad if v >= 3 else None)
    msgs = begin_end(45, v, arg, res, otid=otid, style=style)
    run_pair(msgs, req(45, v, "sri_sm", msisdn=msisdn, peer=sc), resp(45, v, kind="sri_sm", imsi=imsi, node=nnn))


@SETTINGS
@given(msisdn=msisdns, sc=numbers, err=st.sampled_from([1, 6]), v=st.sampled_from([2, 3]), otid=tids)
def test_send_routing_info_for_sm_error(msisdn, sc, err, v, otid):
    arg = S.map_arg(45, v, msisdn=msisdn, sc=sc)
    msgs = begin_end(45, v, arg, None, otid=otid, err=err)
    got = decode(msgs)
    assert len(got) == 2, got
    check(got[0], req(45, v, "sri_sm", msisdn=msisdn, peer=sc))
    assert "error" in got[1]["flags"] and "request" not in got[1]["flags"], got[1]
    assert got[1].get("cause") == err, got[1]
    for k in ("imsi", "msisdn", "imei", "peer"):
        assert k not in got[1], got[1]


texts = st.sampled_from(list(_SMS_TEXTS) + ["x" * 60])


@SETTINGS
@given(imsi=imsis, sc=numbers, oa=digits(3, 15), text=texts, pad=pads, otid=tids, style=styles)
def test_mt_forward_sm(imsi, sc, oa, text, pad, otid, style):
    arg = S.map_arg(44, 3, imsi=imsi, sc=sc, ui=S.sms_deliver(oa, text), pad=pad)
    msgs = begin_end(44, 3, arg, S.map_res(44, 3), otid=otid, style=style)
    run_pair(msgs, req(44, 3, "mt_sms", imsi=imsi, peer=oa), resp(44, 3, kind="mt_sms"))


@SETTINGS
@given(msisdn=msisdns, sc=numbers, da=digits(3, 15), text=texts, pad=pads, otid=tids, style=styles)
def test_mo_forward_sm(msisdn, sc, da, text, pad, otid, style):
    arg = S.map_arg(46, 3, msisdn=msisdn, sc=sc, ui=S.sms_submit(da, text), pad=pad)
    msgs = begin_end(46, 3, arg, S.map_res(46, 3), otid=otid, style=style)
    run_pair(msgs, req(46, 3, "mo_sms", msisdn=msisdn, peer=da), resp(46, 3))


@SETTINGS
@given(mt=st.booleans(), imsi=imsis, msisdn=msisdns, sc=numbers, addr=digits(3, 15), text=texts, otid=tids,
       style=styles)
def test_forward_sm_v2(mt, imsi, msisdn, sc, addr, text, otid, style):
    """forwardSM (46) in v2 goes both ways: sm-RP-DA imsi makes it an MT SMS."""
    x = S.AC["shortMsgMT-Relay"] if mt else S.AC["shortMsgMO-Relay"]
    if mt:
        arg = S.map_arg(46, 2, imsi=imsi, sc=sc, ui=S.sms_deliver(addr, text))
        want = req(46, 2, "mt_sms", imsi=imsi, peer=addr)
    else:
        arg = S.map_arg(46, 2, msisdn=msisdn, sc=sc, ui=S.sms_submit(addr, text))
        want = req(46, 2, "mo_sms", msisdn=msisdn, peer=addr)
    with S.ber_style(style):
        b = S.encode_begin(46, arg, ac=(x, 2), otid=otid)
        e = S.encode_end(otid, [S.result(46, None)], ac=(x, 2))   # v2 forwardSM has no result parameter
    src, dst = (SMSC, MSC) if mt else (MSC, SMSC)
    got = decode([(b, src, dst), (e, dst, src)])
    assert len(got) == 2, got
    check(got[0], want)
    check(got[1], resp(46, 2))                      # op found through the invoke id


@SETTINGS
@given(imei=imeis, v=st.sampled_from([1, 2, 3]), status=st.sampled_from(["whiteListed", "greyListed"]),
       pad=pads, otid=tids, style=styles)
def test_check_imei(imei, v, status, pad, otid, style):
    arg = S.map_arg(43, v, imei=imei, pad=pad if v >= 3 else None)
    msgs = begin_end(43, v, arg, S.map_res(43, v, status=status), otid=otid, style=style)
    run_pair(msgs, req(43, v, "check_imei", imei=imei), resp(43, v, kind="check_imei"))


ussd_digits = st.text("0123456789*#", min_size=1, max_size=16)
ussd_text = st.text("0123456789*#ABCxyz ", min_size=1, max_size=40)


@SETTINGS
@given(imsi=imsis, msisdn=msisdns, s=st.one_of(ussd_digits, ussd_text), otid=tids, style=styles,
       toa=TYPES_OF_NUMBER, cc=COUNTRY_CODES)
def test_ussd(imsi, msisdn, s, otid, style, toa, cc):
    v = 2
    arg = S.map_arg(59, v, ussd=s)
    msgs = begin_end(59, v, arg, S.map_res(59, v, text="Balance 12.34"), otid=otid, style=style,
                     dest=S.addr(imsi, 0x96), orig=S.addr(msisdn, toa))
    numeric = len(s) <= 16 and set(s) <= set("0123456789*#")
    run_pair(msgs, req(59, v, "ussd", imsi=imsi, msisdn=international(msisdn, toa, cc), peer=s if numeric else None),
             resp(59, v, kind="ussd"), country_code=cc)




def _loc(use_lai, mcc, mnc, lac, ci):
    if use_lai:
        return {"lai": S.lai(mcc, mnc, lac)}, {"mcc": mcc, "mnc": mnc, "lac_tac": lac, "cell": 0, "loc_type": "lai"}
    return {"cgi": S.cgi(mcc, mnc, lac, ci)}, {"mcc": mcc, "mnc": mnc, "lac_tac": lac, "cell": ci, "loc_type": "cgi"}


@SETTINGS
@given(imsi=imsis, vlr=numbers, mcc=mccs, mnc=mncs, lac=u16, ci=u16, imei=st.one_of(st.none(), imeis),
       use_lai=st.booleans(), pad=pads, otid=tids, style=styles)
def test_provide_subscriber_info(imsi, vlr, mcc, mnc, lac, ci, imei, use_lai, pad, otid, style):
    lf, lw = _loc(use_lai, mcc, mnc, lac, ci)
    arg = S.map_arg(70, 3, imsi=imsi, want_imei=imei is not None, pad=pad)
    res = S.map_res(70, 3, vlr=vlr, imei=imei, pad=pad, **lf)
    msgs = begin_end(70, 3, arg, res, otid=otid, style=style)
    run_pair(msgs, req(70, 3, "subscriber_info", imsi=imsi),
             resp(70, 3, kind="subscriber_info", node=vlr, imei=imei, **lw))


@SETTINGS
@given(by_imsi=st.booleans(), imsi=imsis, msisdn=msisdns, scf=numbers, vlr=numbers, mcc=mccs, mnc=mncs,
       lac=u16, ci=u16, imei=st.one_of(st.none(), imeis), use_lai=st.booleans(), pad=pads, otid=tids,
       style=styles)
def test_any_time_interrogation(by_imsi, imsi, msisdn, scf, vlr, mcc, mnc, lac, ci, imei, use_lai, pad, otid,
                                style):
    lf, lw = _loc(use_lai, mcc, mnc, lac, ci)
    ident = {"imsi": imsi} if by_imsi else {"msisdn": msisdn}
    arg = S.map_arg(71, 3, scf=scf, want_imei=imei is not None, pad=pad, **ident)
    res = S.map_res(71, 3, vlr=vlr, imei=imei, pad=pad, **lf)
    msgs = begin_end(71, 3, arg, res, otid=otid, style=style)
    run_pair(msgs, req(71, 3, "subscriber_info", **ident),
             resp(71, 3, kind="subscriber_info", node=vlr, imei=imei, **lw))


# --- encodings really are what the tests claim ------------------------------

def test_long_and_indefinite_lengths_are_produced():
    arg = S.map_arg(70, 3, imsi="460001234567890", pad=100)
    plain = S.encode_begin(70, arg, ac=(28, 3), otid=b"\1\2\3\4")
    assert plain[1] in (0x81, 0x82)                              # long form because of the padding
    with S.ber_style("long"):
        lng = S.encode_begin(70, S.map_arg(70, 3, imsi="460001234567890"), ac=(28, 3), otid=b"\1\2\3\4")
    assert lng[1] == 0x82
    with S.ber_style("indefinite"):
        ind = S.encode_begin(70, S.map_arg(70, 3, imsi="460001234567890"), ac=(28, 3), otid=b"\1\2\3\4")
    assert ind[1] == 0x80 and ind.endswith(b"\0\0")
    # back to the default afterwards
    assert S.encode_begin(70, S.map_arg(70, 3, imsi="460001234567890"), ac=(28, 3), otid=b"\1\2\3\4")[1] < 0x80


# --- dialogue mode -----------------------------------------------------------

def _tid(b):
    return int.from_bytes(b, "big")


@DSETTINGS
@given(imsi=imsis, msisdn=msisdns, v=st.sampled_from([2, 3]), otid=tids, htid=tids, style=styles)
def test_dialogue_update_location_with_isd(imsi, msisdn, v, otid, htid, style):
    """Begin(UL) -> Continue(ISD invoke) -> Continue(ISD result) -> End(UL result): one record."""
    if htid == otid:
        return
    vlr, msc, hlr = "861390020001", "861390020002", "861380010001"
    ac = (S.AC["networkLocUp"], v)
    with S.ber_style(style):
        m1 = S.encode_begin(2, S.map_arg(2, v, imsi=imsi, msc=msc, vlr=vlr), ac=ac, otid=otid)
        m2 = S.encode_continue(htid, otid, [S.invoke(7, S.map_arg(7, v, msisdn=msisdn))], ac=ac)
        m3 = S.encode_continue(otid, htid, [S.result(7, S.map_res(7, v))])
        m4 = S.encode_end(otid, [S.result(2, S.map_res(2, v, hlr=hlr))])
    got = decode([(m1, VLR, HLR), (m2, HLR, VLR), (m3, VLR, HLR), (m4, HLR, VLR)], messages=False)
    assert len(got) == 1, got
    check(got[0], {"op": 2, "kind": "location_update", "flags": ["request", "response", "correlated"],
                   "imsi": imsi, "msisdn": msisdn, "node": vlr, "version": v, "tid": _tid(otid), "frame": 4})


@DSETTINGS
@given(msisdn=msisdns, imsi=imsis, sc=numbers, nnn=numbers, v=st.sampled_from([2, 3]), otid=tids)
def test_dialogue_sri_sm(msisdn, imsi, sc, nnn, v, otid):
    msgs = begin_end(45, v, S.map_arg(45, v, msisdn=msisdn, sc=sc), S.map_res(45, v, imsi=imsi, nnn=nnn),
                     otid=otid)
    got = decode(msgs, messages=False)
    assert len(got) == 1, got
    check(got[0], {"op": 45, "kind": "sri_sm", "flags": ["request", "response", "correlated"], "msisdn": msisdn,
                   "imsi": imsi, "peer": sc, "node": nnn, "version": v, "tid": _tid(otid), "frame": 2})


@DSETTINGS
@given(imsi=imsis, msisdn=msisdns, s=st.sampled_from(list(_USSD)), otid=tids)
def test_dialogue_ussd(imsi, msisdn, s, otid):
    msgs = begin_end(59, 2, S.map_arg(59, 2, ussd=s), S.map_res(59, 2), otid=otid,
                     dest=S.addr(imsi, 0x96), orig=S.addr(msisdn))
    got = decode(msgs, messages=False)
    assert len(got) == 1, got
    check(got[0], {"op": 59, "kind": "ussd", "flags": ["request", "response", "correlated"], "imsi": imsi,
                   "msisdn": msisdn, "peer": s, "node": VLR[0], "version": 2, "tid": _tid(otid), "frame": 2})


@DSETTINGS
@given(imsi=imsis, otid=tids, answer=st.sampled_from(["abort", "none"]))
def test_dialogue_abort_and_timeout(imsi, otid, answer):
    b = S.encode_begin(56, S.map_arg(56, 3, imsi=imsi), ac=(14, 3), otid=otid)
    msgs = [(b, VLR, HLR)]
    if answer == "abort":
        msgs.append((S.encode_abort(otid, 4), HLR, VLR))
    got = decode(msgs, messages=False)
    assert len(got) == 1, got
    flags = ["request", "abort"] if answer == "abort" else ["request", "timeout"]
    check(got[0], {"op": 56, "kind": "auth_info", "flags": flags, "imsi": imsi, "node": VLR[0], "version": 3,
                   "tid": _tid(otid), "frame": len(msgs)})


def test_dialogue_interleaved():
    """Two dialogues whose messages interleave still give one record each."""
    a, b = b"\xaa\0\0\1", b"\xbb\0\0\2"
    sai = S.encode_begin(56, S.map_arg(56, 3, imsi="460001111111111"), ac=(14, 3), otid=a)
    sri = S.encode_begin(45, S.map_arg(45, 3, msisdn="8613912345678", sc="8613800500"), ac=(20, 3), otid=b)
    sai_end = S.encode_end(a, [S.result(56, S.map_res(56, 3))], ac=(14, 3))
    sri_end = S.encode_end(b, [S.result(45, S.map_res(45, 3, imsi="460002222222222", nnn="861390020002"))],
                           ac=(20, 3))
    got = decode([(sai, VLR, HLR), (sri, SMSC, HLR), (sri_end, HLR, SMSC), (sai_end, HLR, VLR)], messages=False)
    got = sorted(got, key=lambda r: r["frame"])
    assert [(r["op"], r["frame"]) for r in got] == [(45, 3), (56, 4)]
    check(got[0], {"imsi": "460002222222222", "msisdn": "8613912345678", "peer": "8613800500",
                   "node": "861390020002", "tid": 0xBB000002})
    check(got[1], {"imsi": "460001111111111", "node": VLR[0], "tid": 0xAA000001})
