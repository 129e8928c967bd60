"""MAP dialogues: every operation the decoder knows, in its v1/v2/v3 forms, with errors, aborts
and unanswered Begins; the traffic mixes."""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from .digits import addr, cgi, lai, sms_addr, tbcd
from .network import SERVING_SSNS, SSN_EIR, SSN_HLR, SSN_MSC, SSN_SCF, SSN_SGSN, SSN_VLR, Node
from .sms import sms_deliver, sms_submit
from .tcap_map import AC, encode_begin, encode_end, map_arg, map_res, result
from .templates import _OP_AC, _b_abort, _b_end_error, _b_ul_end, _b_ul_isd, _b_ul_isd_res, _Templates


@dataclass
class _Msg:
    builder: object
    disc: tuple
    vals: dict
    src: Node
    dst: Node
    called: tuple            # (gt, ssn)
    calling: tuple


class _Dialogue:
    __slots__ = ("msgs", "pos", "expect", "begin_frame", "sls", "cls")

    def __init__(self, msgs, expect, sls, cls):
        self.msgs = msgs
        self.pos = 0
        self.expect = expect
        self.begin_frame = 0
        self.sls = sls
        self.cls = cls


_KIND = {2: "location_update", 3: "cancel_location", 7: "insert_sub_data", 10: "ss_register",
         11: "ss_erase", 12: "ss_activate", 13: "ss_deactivate", 22: "sri", 23: "gprs_location_update",
         43: "check_imei", 44: "mt_sms", 45: "sri_sm", 46: "mo_sms", 56: "auth_info", 59: "ussd",
         67: "purge_ms", 70: "subscriber_info", 71: "subscriber_info"}
_FLAG_ORDER = ("request", "response", "error", "abort", "timeout", "partial", "correlated", "answered")


def _flags(*names) -> list:
    return [n for n in _FLAG_ORDER if n in names]


def _ssn_node(called: tuple, calling: tuple):
    """The serving node by SCCP: called party first, then calling, SSN 7, 8 or 149."""
    if called[1] in SERVING_SSNS:
        return called[0]
    if calling[1] in SERVING_SSNS:
        return calling[0]
    return None


_SMS_TEXTS = ("Your code is 482913", "See you at 7?", "Meeting moved to 3pm",
              "Happy birthday!", "Call me back please", "OK")
_USSD = ("*100#", "*101#", "*123*1#", "#111#", "*135#")
_SS_CODES = (0x21, 0x29, 0x2A, 0x2B)


class _Gen:
    """Builds dialogues (messages + expected record) for a population."""

    def __init__(self, rng: random.Random, nets: list, subs: list):
        self.rng = rng
        self.nets = nets
        self.subs = subs
        self.used_tids = set()

    def tid(self) -> bytes:
        r = self.rng
        while True:
            t = r.getrandbits(32)
            if t not in self.used_tids and t != 0:
                self.used_tids.add(t)
                return t.to_bytes(4, "big")

    # A dialogue: Begin from `a` to `b`, answered by `b`.
    def _two(self, sub, op, v, a, b, called, calling, begin_fields, begin_args, end, exp, dlg_refs=False,
             outcome="ok"):
        """Begin + End (or Abort / nothing). end: (builder, disc, vals-without-dtid) for the ok case."""
        otid = self.tid()
        vals = {"otid": otid}
        vals.update(begin_fields)
        msgs = [_Msg(_b_begin, (op, v, begin_args, dlg_refs), vals, a, b, called, calling)]
        exp = dict(exp)
        exp.update(op=op, kind=exp.get("kind", _KIND[op]), tid=int.from_bytes(otid, "big"),
                   version=v if v >= 2 else 1)
        if outcome == "timeout":
            exp["flags"] = _flags("request", "timeout")
        elif outcome == "abort":
            msgs.append(_Msg(_b_abort, (4,), {"dtid": otid}, b, a, calling, called))
            exp["flags"] = _flags("request", "abort")
        else:
            builder, disc, evals = end
            ev = {"dtid": otid}
            ev.update(evals)
            msgs.append(_Msg(builder, disc, ev, b, a, calling, called))
        return msgs, exp

    fail_rate = 0.03

    def _outcome(self, allow=True) -> str:
        if not allow:
            return "ok"
        r = self.rng.random()
        return "abort" if r < self.fail_rate / 2 else "timeout" if r < self.fail_rate else "ok"

    # --- scenarios -------------------------------------------------------
    def ul(self, sub, outcome):
        v = 3 if self.rng.random() < 0.8 else 2
        vlr, msc, hlr = sub.vlr, sub.msc, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        otid = self.tid()
        vals = {"otid": otid, "imsi": sub.imsi_t, "msc": tbcd(msc.gt), "vlr": tbcd(vlr.gt)}
        args = (("imsi", "imsi"), ("msc", "msc"), ("vlr", "vlr"))
        msgs = [_Msg(_b_begin, (2, v, args, False), vals, vlr, hlr, called, calling)]
        exp = {"op": 2, "kind": "location_update", "tid": int.from_bytes(otid, "big"), "version": v,
               "imsi": sub.imsi, "node": vlr.gt}
        if outcome == "abort":
            msgs.append(_Msg(_b_abort, (4,), {"dtid": otid}, hlr, vlr, calling, called))
            exp["flags"] = _flags("request", "abort")
        elif outcome == "timeout":
            exp["flags"] = _flags("request", "timeout")
        else:
            htid = self.tid()
            msgs.append(_Msg(_b_ul_isd, (v,), {"otid": htid, "dtid": otid, "msisdn": sub.msisdn_t},
                             hlr, vlr, calling, called))
            msgs.append(_Msg(_b_ul_isd_res, (v,), {"otid": otid, "dtid": htid}, vlr, hlr, called, calling))
            msgs.append(_Msg(_b_ul_end, (v,), {"dtid": otid, "hlr": tbcd(hlr.gt)}, hlr, vlr, calling, called))
            exp["msisdn"] = sub.msisdn
            exp["flags"] = _flags("request", "response", "correlated")
        return msgs, exp

    def _ok(self, exp, outcome):
        if outcome == "ok":
            exp["flags"] = _flags("request", "response", "correlated")
        return exp

    def cancel_location(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        end = (_b_end_result, (3, v, ()), {})
        msgs, exp = self._two(sub, 3, v, hlr, vlr, called, calling, {"imsi": sub.imsi_t},
                              (("imsi", "imsi"),), end, {"imsi": sub.imsi, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def purge_ms(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        end = (_b_end_result, (67, v, ()), {})
        msgs, exp = self._two(sub, 67, v, vlr, hlr, called, calling, {"imsi": sub.imsi_t, "vlr": tbcd(vlr.gt)},
                              (("imsi", "imsi"), ("vlr", "vlr")), end, {"imsi": sub.imsi, "node": vlr.gt},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sai(self, sub, outcome):
        v = 3 if self.rng.random() < 0.75 else 2
        gprs = self.rng.random() < 0.25
        asker = sub.sgsn if gprs else sub.vlr
        hlr = sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (asker.gt, asker.ssn)
        nvec = self.rng.choice((1, 2)) if v >= 3 else 1
        end = (_b_end_result, (56, v, ((None, ("nvec", nvec)),)), {})
        bargs = (("imsi", "imsi"), (None, ("nvec", nvec)))
        msgs, exp = self._two(sub, 56, v, asker, hlr, called, calling, {"imsi": sub.imsi_t}, bargs, end,
                              {"imsi": sub.imsi, "node": _ssn_node(called, calling)}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def isd(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        end = (_b_end_result, (7, v, ((None, ("sslist", True)),)), {})
        msgs, exp = self._two(sub, 7, v, hlr, vlr, called, calling,
                              {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t}, (("imsi", "imsi"), ("msisdn", "msisdn")),
                              end, {"imsi": sub.imsi, "msisdn": sub.msisdn, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ugl(self, sub, outcome):
        sgsn, hlr = sub.sgsn, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (sgsn.gt, SSN_SGSN)
        end = (_b_end_result, (23, 3, (("hlr", "hlr"),)), {"hlr": tbcd(hlr.gt)})
        gsn = struct.pack(">I", sgsn.ip)
        msgs, exp = self._two(sub, 23, 3, sgsn, hlr, called, calling,
                              {"imsi": sub.imsi_t, "sgsn": tbcd(sgsn.gt), "gsn": gsn},
                              (("imsi", "imsi"), ("sgsn", "sgsn"), ("gsn", "gsn")), end,
                              {"imsi": sub.imsi, "node": sgsn.gt}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ss(self, sub, outcome, op, code=None, ftn=None):
        v = 2                                          # networkFunctionalSs has no v3
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        if code is None:
            code = self.rng.choice(_SS_CODES)
        fields = {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t}
        args = [(None, ("ss_code", code))]
        rargs = [(None, ("ss_code", code))]
        e = {"imsi": sub.imsi, "msisdn": sub.msisdn, "ss_code": code, "node": _ssn_node(called, calling)}
        evals = {}
        if op == 10:
            if ftn is not None:
                pass
            elif self.rng.random() < 0.7:
                ftn = self.rng.choice(self.subs).msisdn      # another subscriber
            else:
                ftn = sub.home.node_prefix + "999"             # the voicemail platform
            fields["ftn"] = tbcd(ftn)
            args.append(("ftn", "ftn"))
            rargs.append(("ftn", "ftn"))
            evals["ftn"] = tbcd(ftn)
            e["peer"] = ftn
            if code == 0x2A:
                args.append((None, ("nrct", 20)))
        end = (_b_end_result, (op, v, tuple(rargs)), evals)
        msgs, exp = self._two(sub, op, v, vlr, hlr, called, calling, fields, tuple(args), end, e,
                              dlg_refs=True, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sri(self, sub, outcome):
        v = 3 if self.rng.random() < 0.75 else 2
        gmsc = self.rng.choice(self.nets[0].gmscs)
        hlr = sub.hlr
        called, calling = (sub.msisdn, SSN_HLR), (gmsc.gt, SSN_MSC)   # routed on the MSISDN
        vnet = sub.vlr.net
        msrn = vnet.msrn_prefix + "".join(self.rng.choice("0123456789")
                                          for _ in range(vnet.msrn_len - len(vnet.msrn_prefix)))
        e = {"msisdn": sub.msisdn}
        fields = {"msisdn": sub.msisdn_t}
        args = [("msisdn", "msisdn")]
        if v >= 3:
            fields["gmsc"] = tbcd(gmsc.gt)
            args.append(("gmsc", "gmsc"))
        rvals = {"imsi": sub.imsi_t, "msrn": tbcd(msrn)}
        rargs = [("imsi", "imsi"), ("msrn", "msrn")]
        if outcome == "ok":
            e.update(imsi=sub.imsi, peer=msrn)
            if v >= 3:
                rvals["vmsc"] = tbcd(sub.msc.gt)
                rargs.append(("vmsc", "vmsc"))
                e["node"] = sub.msc.gt
        end = (_b_end_result, (22, v, tuple(rargs)), rvals)
        msgs, exp = self._two(sub, 22, v, gmsc, hlr, called, calling, fields, tuple(args), end, e,
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sri_sm(self, sub, outcome, served=False):
        """served: the HLR answers with the serving MSC, never an error."""
        v = 3 if self.rng.random() < 0.8 else 2
        smsc = self.rng.choice(self.nets[0].smscs)
        hlr = sub.hlr
        called, calling = (sub.msisdn, SSN_HLR), (smsc.gt, SSN_MSC)
        e = {"msisdn": sub.msisdn, "peer": smsc.gt}
        r = self.rng.random()
        err = 0 if served else 6 if r < 0.10 else 1 if r < 0.13 else 0
        if err and outcome == "ok":
            end = (_b_end_error, (45, v, err), {})
        else:
            nnn = sub.msc if self.rng.random() < 0.85 or served else sub.sgsn
            end = (_b_end_result, (45, v, (("imsi", "imsi"), ("nnn", "nnn"))),
                   {"imsi": sub.imsi_t, "nnn": tbcd(nnn.gt)})
            if outcome == "ok":
                e.update(imsi=sub.imsi, node=nnn.gt)
        msgs, exp = self._two(sub, 45, v, smsc, hlr, called, calling,
                              {"msisdn": sub.msisdn_t, "sc": tbcd(smsc.gt)}, (("msisdn", "msisdn"), ("sc", "sc")),
                              end, e, outcome=outcome)
        if outcome == "ok":
            if err:
                exp["flags"] = _flags("request", "response", "error", "correlated")   # returnError answers
                exp["cause"] = err
            else:
                exp["flags"] = _flags("request", "response", "correlated")
        return msgs, exp

    def mt_sms(self, sub, outcome, v2=False, oa=None):
        v = 2 if v2 else 3
        smsc = self.rng.choice(self.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        oa = oa or self.rng.choice(self.subs).msisdn
        text = self.rng.randrange(len(_SMS_TEXTS))
        op = 46 if v2 else 44
        fields = {"imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa)}
        end = (_b_end_result, (op, v, ()), {}) if not v2 else (_b_end_empty, (op, v, AC["shortMsgMT-Relay"]), {})
        msgs, exp = self._two(sub, op, v, smsc, msc, called, calling, fields, (("imsi", "imsi"), ("sc", "sc"),
                              ("tp_oa", ("ui_deliver", text))), end,
                              {"kind": "mt_sms", "imsi": sub.imsi, "peer": oa, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        if v2:
            msgs[0].builder = _b_begin_fsm_v2
            msgs[0].disc = (text, AC["shortMsgMT-Relay"], "mt")
        return msgs, self._ok(exp, outcome)

    def mo_sms(self, sub, outcome, v2=False, da=None):
        v = 2 if v2 else 3
        smsc = self.rng.choice(sub.home.smscs)
        msc = sub.msc
        called, calling = (smsc.gt, SSN_MSC), (msc.gt, SSN_MSC)
        da = da or self.rng.choice(self.subs).msisdn
        text = self.rng.randrange(len(_SMS_TEXTS))
        fields = {"sc": tbcd(smsc.gt), "msisdn": sub.msisdn_t, "tp_da": sms_addr(da)}
        end = (_b_end_result, (46, v, ()), {}) if not v2 else (_b_end_empty, (46, v, AC["shortMsgMO-Relay"]), {})
        msgs, exp = self._two(sub, 46, v, msc, smsc, called, calling, fields,
                              (("sc", "sc"), ("msisdn", "msisdn"), ("tp_da", ("ui_submit", text))), end,
                              # the serving node of an MO SMS is the sending MSC, not the SMSC's (both SSN 8)
                              {"kind": "mo_sms", "msisdn": sub.msisdn, "peer": da, "node": msc.gt},
                              outcome=outcome)
        if v2:
            msgs[0].builder = _b_begin_fsm_v2
            msgs[0].disc = (text, AC["shortMsgMO-Relay"], "mo")
        return msgs, self._ok(exp, outcome)

    def check_imei(self, sub, outcome):
        r = self.rng.random()
        v = 3 if r < 0.6 else 2 if r < 0.9 else 1
        msc = sub.msc
        eir = sub.msc.net.eirs[0]
        called, calling = (eir.gt, SSN_EIR), (msc.gt, SSN_MSC)
        status = "whiteListed" if self.rng.random() < 0.95 else "greyListed"
        end = (_b_end_result, (43, v, ((None, ("status", status)),), v >= 2), {})
        msgs, exp = self._two(sub, 43, v, msc, eir, called, calling, {"imei": sub.imei_t}, (("imei", "imei"),),
                              end, {"imei": sub.imei, "node": _ssn_node(called, calling)}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ussd(self, sub, outcome, code=None):
        v = 2
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        s = code or self.rng.choice(_USSD)
        end = (_b_end_result, (59, v, ((None, ("text", "Balance 12.34 CNY")),)), {})
        msgs, exp = self._two(sub, 59, v, vlr, hlr, called, calling, {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t},
                              ((None, ("ussd", s)),), end,
                              {"imsi": sub.imsi, "msisdn": sub.msisdn, "peer": s, "node": _ssn_node(called, calling)},
                              dlg_refs=True, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def _location(self, sub, use_lai: bool, want_imei: bool):
        rvals, rargs, e = {}, [], {}
        rvals["vlr"] = tbcd(sub.vlr.gt)
        rargs.append(("vlr", "vlr"))
        e["node"] = sub.vlr.gt
        e["mcc"], e["mnc"], e["lac_tac"] = sub.mcc, sub.mnc, sub.lac
        if use_lai:
            rvals["lai"] = lai(sub.mcc, sub.mnc, sub.lac)
            rargs.append(("lai", "lai"))
            e["loc_type"], e["cell"] = "lai", 0
        else:
            rvals["cgi"] = cgi(sub.mcc, sub.mnc, sub.lac, sub.ci)
            rargs.append(("cgi", "cgi"))
            e["loc_type"], e["cell"] = "cgi", sub.ci
        if want_imei:
            rvals["imei"] = sub.imei_t
            rargs.append(("imei", "imei"))
            e["imei"] = sub.imei
        return rvals, tuple(rargs), e

    def psi(self, sub, outcome, want_imei=None):
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        if want_imei is None:
            want_imei = self.rng.random() < 0.5
        rvals, rargs, le = self._location(sub, False, want_imei)
        end = (_b_end_result, (70, 3, rargs), rvals)
        e = {"imsi": sub.imsi}
        e.update(le)
        msgs, exp = self._two(sub, 70, 3, hlr, vlr, called, calling, {"imsi": sub.imsi_t},
                              (("imsi", "imsi"), (None, ("want_imei", want_imei))), end, e, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ati(self, sub, outcome):
        scf = self.rng.choice(sub.home.scfs)
        hlr = sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (scf.gt, SSN_SCF)
        want_imei = self.rng.random() < 0.4
        by_imsi = self.rng.random() < 0.3
        rvals, rargs, le = self._location(sub, self.rng.random() < 0.3, want_imei)
        end = (_b_end_result, (71, 3, rargs), rvals)
        if by_imsi:
            fields, args, e = {"imsi": sub.imsi_t}, [("imsi", "imsi")], {"imsi": sub.imsi}
        else:
            fields, args, e = {"msisdn": sub.msisdn_t}, [("msisdn", "msisdn")], {"msisdn": sub.msisdn}
        fields["scf"] = tbcd(scf.gt)
        args.append(("scf", "scf"))
        args.append((None, ("want_imei", want_imei)))
        e.update(le)
        msgs, exp = self._two(sub, 71, 3, scf, hlr, called, calling, fields, tuple(args), end, e, outcome=outcome)
        return msgs, self._ok(exp, outcome)


def _b_end_empty(f, op, v, acx):
    """End with a returnResultLast that has no parameter (v2 operations without result)."""
    return encode_end(f["dtid"], [result(op, None)], ac=(acx, v))


def _b_begin_fsm_v2(f, text, acx, direction):
    """forwardSM (op 46) in MAP v2: shortMsgMT-Relay (sm-RP-DA imsi) or MO-Relay."""
    if direction == "mt":
        arg = map_arg(46, 2, imsi=f["imsi"], sc=f["sc"], ui=sms_deliver(f["tp_oa"], _SMS_TEXTS[text]))
    else:
        arg = map_arg(46, 2, msisdn=f["msisdn"], sc=f["sc"], ui=sms_submit(f["tp_da"], _SMS_TEXTS[text]))
    return encode_begin(46, arg, ac=(acx, 2), otid=f["otid"])


def _resolve_args(f, args):
    """Turn (field, kw) pairs into map_arg keywords; the sm-RP-UI pseudo-field builds a TPDU."""
    kw = {}
    for name, k in args:
        if name is None:
            kw[k[0]] = k[1]
        elif isinstance(k, tuple) and k[0] == "ui_deliver":
            kw["ui"] = sms_deliver(f[name], _SMS_TEXTS[k[1]])
        elif isinstance(k, tuple) and k[0] == "ui_submit":
            kw["ui"] = sms_submit(f[name], _SMS_TEXTS[k[1]])
        else:
            kw[k] = f[name]
    return kw


def _b_begin(f, op, v, args, dlg_refs=False):
    """Begin with one invoke. args: (field name, map_arg keyword) pairs, or
    (None, (keyword, constant)); dlg_refs puts imsi / msisdn into the MAP-OpenInfo."""
    kw = _resolve_args(f, args)
    dest = orig = None
    if dlg_refs:
        dest = addr(f["imsi"], 0x96) if "imsi" in f else None
        orig = addr(f["msisdn"]) if "msisdn" in f else None
    ac = (_OP_AC[op][0], v) if v >= 2 else None
    return encode_begin(op, map_arg(op, v, **kw), ac=ac, dest_ref=dest, orig_ref=orig, otid=f["otid"])


def _b_end_result(f, op, v, args, with_aare=True):
    """End with the AARE (v2+) and a returnResultLast built like _b_begin's invoke."""
    kw = _resolve_args(f, args)
    ac = (_OP_AC[op][0], v) if (with_aare and v >= 2) else None
    return encode_end(f["dtid"], [result(op, map_res(op, v, **kw))], ac=ac)


_TEMPLATES = _Templates()

# Scenario weights (per dialogue started): MAP only
MAP_MIX = {
    "sai": 18, "ul": 11, "sri_sm": 14, "mt_sms": 12, "mo_sms": 10, "sri": 8, "check_imei": 5,
    "ugl": 4, "psi": 3, "ati": 3, "isd": 3, "cancel_location": 3, "purge_ms": 3, "ussd": 3,
    "fsm_v2_mt": 2, "fsm_v2_mo": 1, "register_ss": 1, "activate_ss": 1, "deactivate_ss": 1,
    "erase_ss": 1,
}
_MAP_SCENARIOS = frozenset(MAP_MIX)
# MAP, CAP, ISUP and SMS flows and GTP sessions (per dialogue or flow started): about 60 % of
# the packets SS7, 40 % GTP-C and GTP-U
DEFAULT_MIX = dict(MAP_MIX, cap_call=10, isup_call=10, mt_sms_concat=3, mms_notification=3,
                   gtpv2_session=5.7, gtpv2_reject=0.7, gtpv1_pdp=3.3)
# The mixed golden: every flow kind often enough to show up in 400 packets
MIXED_SMALL_MIX = dict({k: v / 3 for k, v in MAP_MIX.items()}, cap_call=4, isup_call=4, mt_sms_concat=2,
                       mms_notification=2, gtpv2_session=3, gtpv2_reject=1, gtpv1_pdp=2)
SS_MIX = {"register_ss": 6, "activate_ss": 3, "deactivate_ss": 3, "erase_ss": 3, "ussd": 6,
          "psi": 4, "ati": 5, "ul": 1, "sai": 1}
# Scenarios that may get an Abort or no answer (their record fields do not depend on the answer).
_MAY_FAIL = frozenset(("sai", "ul", "ugl", "mt_sms", "mo_sms", "check_imei", "purge_ms"))


def _scenario(gen: _Gen, name: str, sub, outcome):
    build = _SCENARIO.get(name)
    if build is None:
        raise ValueError(f"unknown scenario {name!r}")
    return build(gen, sub, outcome)


# scenario name -> its dialogue: a _Gen method (gen, sub, outcome), or one with more arguments
_SCENARIO = {
    "sai": _Gen.sai, "ul": _Gen.ul, "sri_sm": _Gen.sri_sm, "mt_sms": _Gen.mt_sms, "mo_sms": _Gen.mo_sms,
    "sri": _Gen.sri, "check_imei": _Gen.check_imei, "ugl": _Gen.ugl, "psi": _Gen.psi, "ati": _Gen.ati,
    "isd": _Gen.isd, "cancel_location": _Gen.cancel_location, "purge_ms": _Gen.purge_ms, "ussd": _Gen.ussd,
    "fsm_v2_mt": lambda g, s, o: g.mt_sms(s, o, v2=True),
    "fsm_v2_mo": lambda g, s, o: g.mo_sms(s, o, v2=True),
    "register_ss": lambda g, s, o: g.ss(s, o, 10),
    "activate_ss": lambda g, s, o: g.ss(s, o, 12),
    "deactivate_ss": lambda g, s, o: g.ss(s, o, 13),
    "erase_ss": lambda g, s, o: g.ss(s, o, 11),
}


_ORDER = ("frame", "kind", "proto", "flags", "op", "cause", "imsi", "msisdn", "imei", "peer", "node",
          "mcc", "mnc", "lac_tac", "cell", "loc_type", "ss_code", "version", "tid")


def _finish_expect(exp: dict, frame: int) -> dict:
    exp["frame"] = frame
    exp["proto"] = "map"
    exp = {k: v for k, v in exp.items() if v is not None}
    return {k: exp[k] for k in _ORDER if k in exp}
