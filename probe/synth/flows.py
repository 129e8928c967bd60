"""Flows: a GTP session, a call, a CAMEL dialogue, a multi-part SMS, each a list of steps made up
front; a step may carry the record it completes (`exp`), the tunnels it announces (`learn`) or,
for a G-PDU, the tunnel it counts on (`tun`)."""
from __future__ import annotations

import struct

from .cap_isup import (SSN_CAP, _b_acm, _b_anm, _b_cap_erb_answer, _b_cap_erb_end, _b_cap_idp, _b_cap_rrbe, _b_iam,
                       _b_rel, _b_rlc)
from .dialogues import _b_end_result, _flags, _Gen
from .digits import cgi, plmn, sms_addr, tbcd
from .gtp import (
    _b_g1_cpdp, _b_g1_cpdp_reject, _b_g1_cpdp_resp, _b_g1_dpdp, _b_g1_dpdp_resp, _b_g2_csr, _b_g2_csresp,
    _b_g2_csresp_reject, _b_g2_dsr, _b_g2_dsresp, _b_g2_mbr, _b_g2_mbresp,
)
from .network import SSN_MSC, Network
from .sms import _LONG_SMS, _MMS_SUBJECTS, MMS_PORT, _b_begin_mms, _b_begin_mt_part
from .templates import _imsi8, _isup_digits, _rai, _uli_cgi, _uli_tai_ecgi
from ..record import subject_hash

# --- flows --------------------------------------------------------------------

S_TCAP, S_ISUP, S_GTPC, S_GTPU = 0, 1, 2, 3


class _Step:
    """One packet of a flow. TCAP and ISUP steps go between Nodes over SCTP/M3UA;
    GTP steps between IPv4 addresses over UDP. exp: the record this packet completes;
    learn: [(tunnel key, identity)] the tunnels it announces; tun/size: the tunnel a
    G-PDU counts on and its inner IP length; answer: the call's answer ({"ts"}, set by the
    answering packet, read by the one that ends the call: its duration)."""
    __slots__ = ("kind", "builder", "disc", "vals", "src", "dst", "called", "calling", "exp", "learn", "tun", "size",
                 "free", "answers", "answer")

    def __init__(self, kind, builder, disc, vals, src, dst, called=None, calling=None, exp=None, learn=None,
                 tun=None, size=0, free=None, answers=None, answer=None):
        self.kind = kind
        self.builder = builder
        self.disc = disc
        self.vals = vals
        self.src = src
        self.dst = dst
        self.called = called
        self.calling = calling
        self.exp = exp
        self.learn = learn
        self.tun = tun
        self.size = size
        self.free = free                 # (set, item): the circuit this packet gives back
        self.answers = answers           # this packet answers the call
        self.answer = answer             # this packet ends the answered call


class _Flow:
    __slots__ = ("msgs", "pos", "sls", "cls")

    def __init__(self, msgs, sls, cls=0x81):
        self.msgs = msgs
        self.pos = 0
        self.sls = sls
        self.cls = cls


_ORDER_ALL = ("frame", "kind", "proto", "flags", "op", "cause", "imsi", "msisdn", "imei", "peer", "node",
              "mcc", "mnc", "lac_tac", "cell", "loc_type", "rat", "apn", "ss_code", "version", "tid",
              "packets", "octets", "service_key", "app_port", "sms_pid", "sms_dcs", "parts", "part", "event", "nai",
              "duration_ms", "mms_class", "subject_hash")


# what probe.format.to_dicts leaves out when zero
_IF_NONZERO = frozenset(("cause", "rat", "ss_code", "version", "packets", "octets", "service_key", "app_port",
                         "sms_pid", "sms_dcs", "parts", "part", "event", "nai", "duration_ms"))


def _finish_record(exp: dict, frame: int) -> dict:
    return _order_exp(dict(exp, frame=frame))


def _step_record(m: _Step, frame: int, tus: int) -> dict | None:
    """The record the step's packet (frame, at tus) completes, if any."""
    if m.answers is not None:
        m.answers["ts"] = tus
    if m.exp is None:
        return None
    if m.answer is not None and "ts" in m.answer:
        return _finish_record(dict(m.exp, duration_ms=(tus - m.answer["ts"]) // 1_000_000), frame)
    return _finish_record(m.exp, frame)


def _ip(a: int, b: int, c: int, d: int) -> int:
    return (a << 24) | (b << 16) | (c << 8) | d


class _GtpPlan:
    """The GTP nodes of one network (addresses only; MAP has its own Nodes)."""

    def __init__(self, net: Network):
        n = net.index + 1
        self.mmes = [_ip(10, n, 10, k) for k in (1, 2)]
        self.sgws = [(_ip(10, n, 11, k), _ip(10, n, 12, k)) for k in (1, 2)]     # (S11/S5-C, S1-U/S5-U)
        self.pgws = [(_ip(10, n, 13, k), _ip(10, n, 14, k)) for k in (1, 2)]
        self.sgsn_u = [_ip(10, n, 15, k) for k in (1, 2)]
        self.ggsns = [(_ip(10, n, 16, k), _ip(10, n, 17, k)) for k in (1, 2)]
        self.n = n

    def enb(self, enb_id: int) -> int:
        return _ip(10, self.n, 64 + (enb_id >> 8), enb_id & 0xFF)


_SERVERS = tuple(_ip(a, b, c, d) for a, b, c, d in (
    (203, 0, 113, 10), (203, 0, 113, 77), (198, 51, 100, 5), (198, 51, 100, 80), (192, 0, 2, 33),
    (203, 0, 113, 200), (198, 51, 100, 123), (192, 0, 2, 99)))
# (APN as the UE asks for it, the network identifier the record keeps)
_APNS_V2 = (("cmnet", "cmnet"), ("cmnet.mnc000.mcc460.gprs", "cmnet"), ("cmwap", "cmwap"), ("ims", "ims"),
            ("internet", "internet"))
_APNS_V1 = (("cmnet", "cmnet"), ("cmwap", "cmwap"), ("cmnet.mnc000.mcc460.gprs", "cmnet"))
_V2_REJECT = (73, 78, 83, 92, 64)      # no resources, missing/unknown APN, PDN type, auth failed, context not found
_HOTLINES = ("10086", "114", "12580", "10010", "95588")
_INNER_PAYLOAD = bytes((i * 7 + 3) & 0xFF for i in range(1600))


class _Mixed:
    """Flows beyond MAP for one generate() run, on the shared rng."""

    def __init__(self, gen: _Gen):
        self.gen = gen
        self.rng = gen.rng
        self.plans = {}
        self.teids = set()
        self.seqs = {}
        self.cics = {}
        self.ue_ips = set()
        self.mtu = 1400

    def plan(self, net) -> _GtpPlan:
        p = self.plans.get(net.index)
        if p is None:
            p = self.plans[net.index] = _GtpPlan(net)
        return p

    def teid(self) -> bytes:
        r = self.rng
        while True:
            t = r.getrandbits(32)
            if t and t not in self.teids:
                self.teids.add(t)
                return t.to_bytes(4, "big")

    def seq(self, ip: int, bits: int) -> int:
        """The next sequence number of the GTP entity at ip (one counter per node)."""
        s = self.seqs.get((ip, bits))
        if s is None:
            s = self.rng.getrandbits(bits)
        self.seqs[(ip, bits)] = (s + 1) & ((1 << bits) - 1)
        return s

    def ue_ip(self) -> bytes:
        r = self.rng
        while True:
            ip = _ip(100, 64 + r.randrange(64), r.randrange(256), 1 + r.randrange(254))
            if ip not in self.ue_ips:
                self.ue_ips.add(ip)
                return struct.pack(">I", ip)

    def _gpdus(self, n: int, up: tuple, down: tuple, ue: bytes, steps: list, down_ok: bool = True):
        """n G-PDUs of one subscriber's flows, both directions. up/down: (teid, src ip, dst ip)."""
        r = self.rng
        ue_i = int.from_bytes(ue, "big")
        server = r.choice(_SERVERS)
        mtu = self.mtu
        small = min(560, mtu - 39)
        ue_port = 49152 + r.randrange(16000)
        # server ports no tshark dissector claims: the inner payload is plain data to it
        srv_port = r.choice((5001, 5201, 9472, 34000 + r.randrange(900)))
        for _ in range(n):
            if down_ok and r.random() < 0.6:             # downlink: half of it full-size
                teid, s, d = down
                size = mtu if r.random() < 0.5 else 60 + r.randrange(mtu - 59)
                inner = (server, ue_i, srv_port, ue_port)
            else:                                         # uplink: mostly small (requests, acks)
                teid, s, d = up
                size = 40 + r.randrange(small) if r.random() < 0.8 else 40 + r.randrange(mtu - 39)
                inner = (ue_i, server, ue_port, srv_port)
            steps.append(_Step(S_GTPU, None, None, (teid, inner), s, d, tun=(int.from_bytes(teid, "big"), d),
                               size=size))

    # --- GTPv2-C: an LTE attach, a cell change, data, a detach -------------------
    def gtpv2_session(self, sub, budget: int, reject: bool = False):
        r = self.rng
        if budget < 2:
            return None
        if budget < 6:
            reject = True
        vnet, hnet = sub.vlr.net, sub.home
        vp, hp = self.plan(vnet), self.plan(hnet)
        mme = r.choice(vp.mmes)
        sgw_c, sgw_u = r.choice(vp.sgws)
        pgw_c, pgw_u = r.choice(hp.pgws)
        apn, apn_ni = r.choice(_APNS_V2)
        rat = 6
        tac = sub.lac
        enb = 1 + r.randrange(250)
        eci = (enb << 8) | r.randrange(1, 4)
        ip = lambda x: struct.pack(">I", x)
        teid_mme = self.teid()
        seq = self.seq(mme, 24)
        ident = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": sub.imei, "rat": rat, "apn": apn_ni}
        loc = {"mcc": sub.mcc, "mnc": sub.mnc, "lac_tac": tac, "cell": eci, "loc_type": "ecgi"}
        csr_vals = {"seq3": seq.to_bytes(3, "big"), "imsi": sub.imsi_t, "msisdn": sub.msisdn_t, "mei": sub.imei_t,
                    "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, tac, eci), "sn": plmn(sub.mcc, sub.mnc),
                    "teid_mme": teid_mme, "ip_mme": ip(mme), "ip_pgw": ip(pgw_c)}
        steps = [_Step(S_GTPC, _b_g2_csr, (apn, rat), csr_vals, mme, sgw_c,
                       learn=[((int.from_bytes(teid_mme, "big"), mme), ident)])]
        rec = dict(kind="session_create", proto="gtpv2c", op=32, **ident, **loc, tid=seq)
        if reject:
            cause = r.choice(_V2_REJECT)
            steps.append(_Step(S_GTPC, _b_g2_csresp_reject, (cause,), {"seq3": csr_vals["seq3"], "teid_mme": teid_mme},
                               sgw_c, mme, exp=dict(rec, flags=_flags("request", "response", "error", "correlated"),
                                                    cause=cause)))
            return steps
        teid_sgw, teid_pgw, teid_sgwu, teid_pgwu = self.teid(), self.teid(), self.teid(), self.teid()
        ue = self.ue_ip()
        resp_vals = {"seq3": csr_vals["seq3"], "teid_mme": teid_mme, "teid_sgw": teid_sgw, "ip_sgw": ip(sgw_c),
                     "teid_pgw": teid_pgw, "ip_pgw": ip(pgw_c), "ue_ip": ue, "teid_sgwu": teid_sgwu,
                     "ip_sgwu": ip(sgw_u), "teid_pgwu": teid_pgwu, "ip_pgwu": ip(pgw_u),
                     "charging_id": r.getrandbits(32).to_bytes(4, "big")}
        learned = [((int.from_bytes(t, "big"), a), ident) for t, a in
                   ((teid_sgw, sgw_c), (teid_pgw, pgw_c), (teid_sgwu, sgw_u), (teid_pgwu, pgw_u))]
        steps.append(_Step(S_GTPC, _b_g2_csresp, (), resp_vals, sgw_c, mme, learn=learned,
                           exp=dict(rec, flags=_flags("request", "response", "correlated"), cause=16)))
        # Modify Bearer: the eNodeB's S1-U tunnel and the cell now serving; a handover repeats it
        who = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": sub.imei}
        left = budget - 6
        handover = left >= 2 + 4 and r.random() < 0.3
        if handover:
            left -= 2
        n = min(left, max(0, int(r.expovariate(1 / 22.0))))
        n1 = r.randrange(n + 1) if handover else n
        for i in range(2 if handover else 1):
            enb = 1 + r.randrange(250)
            eci = (enb << 8) | r.randrange(1, 4)
            enb_ip = vp.enb(enb)
            teid_enb = self.teid()
            mseq = self.seq(mme, 24)
            mvals = {"seq3": mseq.to_bytes(3, "big"), "teid_sgw": teid_sgw,
                     "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, tac, eci), "teid_enb": teid_enb, "ip_enb": ip(enb_ip)}
            mrec = dict(kind="session_modify", proto="gtpv2c", op=34, cause=16, **who, mcc=sub.mcc, mnc=sub.mnc,
                        lac_tac=tac, cell=eci, loc_type="ecgi", rat=rat, tid=mseq,
                        flags=_flags("request", "response", "correlated"))
            steps.append(_Step(S_GTPC, _b_g2_mbr, (rat,), mvals, mme, sgw_c,
                               learn=[((int.from_bytes(teid_enb, "big"), enb_ip), dict(who, rat=rat))]))
            steps.append(_Step(S_GTPC, _b_g2_mbresp, (), {"seq3": mvals["seq3"], "teid_mme": teid_mme}, sgw_c, mme,
                               exp=mrec))
            k = n1 if (handover and i == 0) else (n - n1 if handover else n)
            self._gpdus(k, (teid_sgwu, enb_ip, sgw_u), (teid_enb, sgw_u, enb_ip), ue, steps)
        dseq = self.seq(mme, 24)
        steps.append(_Step(S_GTPC, _b_g2_dsr, (), {"seq3": dseq.to_bytes(3, "big"), "teid_sgw": teid_sgw}, mme, sgw_c))
        steps.append(_Step(S_GTPC, _b_g2_dsresp, (), {"seq3": dseq.to_bytes(3, "big"), "teid_mme": teid_mme},
                           sgw_c, mme,
                           exp=dict(kind="session_delete", proto="gtpv2c", op=36, cause=16, **who, tid=dseq,
                                    flags=_flags("request", "response", "correlated"))))
        return steps

    # --- GTPv1-C: a PDP context on Gn/Gp, data, its deletion ----------------------
    def gtpv1_pdp(self, sub, budget: int):
        r = self.rng
        if budget < 2:
            return None
        reject = budget < 4 or r.random() < 0.04
        # tshark 4.0 calls the 0xF filler octet of a 14-digit IMSI in the 8-octet IMSI TV
        # (TS 29.060 7.7.2) malformed: GTPv1 flows go to subscribers with 15-digit IMSIs
        for _ in range(64):
            if len(sub.imsi) == 15:
                break
            sub = r.choice(self.gen.subs)
        else:
            return None
        vnet, hnet = sub.vlr.net, sub.home
        vp, hp = self.plan(vnet), self.plan(hnet)
        sgsn_c = sub.sgsn.ip
        sgsn_u = vp.sgsn_u[vnet.sgsns.index(sub.sgsn) % len(vp.sgsn_u)]
        ggsn_c, ggsn_u = r.choice(hp.ggsns)
        apn, apn_ni = r.choice(_APNS_V1)
        rat = r.choice((1, 1, 2))
        lac, ci = sub.lac, sub.ci
        imeisv = sub.imei[:14] + f"{r.randrange(100):02d}"
        ip = lambda x: struct.pack(">I", x)
        seq = self.seq(sgsn_c, 16)
        teid_sgsnc, teid_sgsnu = self.teid(), self.teid()
        ident = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": imeisv, "rat": rat, "apn": apn_ni}
        vals = {"seq2": seq.to_bytes(2, "big"), "imsi8": _imsi8(sub.imsi), "rai": _rai(sub.mcc, sub.mnc, lac, 0x11),
                "teid_sgsnu": teid_sgsnu, "teid_sgsnc": teid_sgsnc, "ip_sgsnc": ip(sgsn_c), "ip_sgsnu": ip(sgsn_u),
                "msisdn": sub.msisdn_t, "uli1": _uli_cgi(sub.mcc, sub.mnc, lac, ci), "imeisv": tbcd(imeisv)}
        steps = [_Step(S_GTPC, _b_g1_cpdp, (apn, rat), vals, sgsn_c, ggsn_c,
                       learn=[((int.from_bytes(teid_sgsnc, "big"), sgsn_c), ident),
                              ((int.from_bytes(teid_sgsnu, "big"), sgsn_u), ident)])]
        rec = dict(kind="pdp_create", proto="gtpv1c", op=16, **ident, mcc=sub.mcc, mnc=sub.mnc, lac_tac=lac, cell=ci,
                   loc_type="cgi", tid=seq)
        if reject:
            cause = r.choice((199, 201, 209))
            steps.append(_Step(S_GTPC, _b_g1_cpdp_reject, (cause,), {"seq2": vals["seq2"], "teid_sgsnc": teid_sgsnc},
                               ggsn_c, sgsn_c, exp=dict(rec, cause=cause,
                                                        flags=_flags("request", "response", "error", "correlated"))))
            return steps
        teid_ggsnc, teid_ggsnu = self.teid(), self.teid()
        ue = self.ue_ip()
        rvals = {"seq2": vals["seq2"], "teid_sgsnc": teid_sgsnc, "teid_ggsnu": teid_ggsnu, "teid_ggsnc": teid_ggsnc,
                 "charging_id": r.getrandbits(32).to_bytes(4, "big"), "ue_ip": ue, "ip_ggsnc": ip(ggsn_c),
                 "ip_ggsnu": ip(ggsn_u)}
        steps.append(_Step(S_GTPC, _b_g1_cpdp_resp, (), rvals, ggsn_c, sgsn_c,
                           learn=[((int.from_bytes(teid_ggsnc, "big"), ggsn_c), ident),
                                  ((int.from_bytes(teid_ggsnu, "big"), ggsn_u), ident)],
                           exp=dict(rec, cause=128, flags=_flags("request", "response", "correlated"))))
        n = min(budget - 4, max(0, int(r.expovariate(1 / 16.0))))
        self._gpdus(n, (teid_ggsnu, sgsn_u, ggsn_u), (teid_sgsnu, ggsn_u, sgsn_u), ue, steps)
        dseq = self.seq(sgsn_c, 16)
        steps.append(_Step(S_GTPC, _b_g1_dpdp, (), {"seq2": dseq.to_bytes(2, "big"), "teid_ggsnc": teid_ggsnc},
                           sgsn_c, ggsn_c))
        steps.append(_Step(S_GTPC, _b_g1_dpdp_resp, (), {"seq2": dseq.to_bytes(2, "big"), "teid_sgsnc": teid_sgsnc},
                           ggsn_c, sgsn_c,
                           exp=dict(kind="pdp_delete", proto="gtpv1c", op=20, cause=128, imsi=sub.imsi,
                                    msisdn=sub.msisdn, imei=imeisv, tid=dseq,
                                    flags=_flags("request", "response", "correlated"))))
        return steps

    # --- CAP: a CAMEL call (InitialDP, RRBE + continue, ERB) ---------------------
    def cap_call(self, sub, budget: int, to=None):
        """to: an originating call to this number (short numbers national, NAI 3)."""
        r = self.rng
        if budget < 4:
            return None
        gen = self.gen
        scf = sub.home.scfs[0]
        x = r.random()
        variant = "bcd" if x < 0.6 else "isup" if x < 0.85 else "term"
        other = r.choice(gen.subs).msisdn
        hot = r.random() < 0.5 and variant != "term"
        if to is not None:
            variant = "bcd" if variant == "term" else variant
            hot = len(to) < 8
        if variant == "term":
            ssf = r.choice(gen.nets[0].gmscs)
            called, nai, calling = sub.msisdn, 4, other
        else:
            ssf = sub.msc
            called = to or (r.choice(_HOTLINES) if hot else other)
            nai = 3 if hot else 4
            calling = sub.msisdn
        sk = r.choice((11, 11, 20, 100))
        otid, dtid = gen.tid(), gen.tid()
        fields = {"otid": otid, "calling_isup": _isup_digits(calling), "imsi": sub.imsi_t, "msc": tbcd(ssf.gt),
                  "cref": r.getrandbits(64).to_bytes(8, "big")}
        ton = 0x81 if hot else 0x91
        if variant == "bcd":
            fields["cbcd"] = tbcd(called)
        else:
            fields["called_isup"] = _isup_digits(called)
        if variant != "term":
            fields["vlr"] = tbcd(sub.vlr.gt)
            fields["cgi"] = cgi(sub.mcc, sub.mnc, sub.lac, sub.ci)
        disc = (variant, sk, len(called), nai, len(calling), ton)
        a, b = (ssf.gt, SSN_CAP), (scf.gt, SSN_CAP)
        term = variant == "term"
        exp = dict(kind="call_attempt", proto="cap", flags=_flags("request"), op=0, imsi=sub.imsi,
                   msisdn=called if term else calling, peer=calling if term else called, node=ssf.gt,
                   version=2, tid=int.from_bytes(otid, "big"), service_key=sk,
                   event=12 if term else (2 if variant == "bcd" else 3))
        if variant != "term":
            exp.update(mcc=sub.mcc, mnc=sub.mnc, lac_tac=sub.lac, cell=sub.ci, loc_type="cgi")
        if variant != "bcd":
            exp["nai"] = nai
        answer = {}
        return [_Step(S_TCAP, _b_cap_idp, disc, fields, ssf, scf, called=b, calling=a, exp=_order_exp(exp)),
                _Step(S_TCAP, _b_cap_rrbe, (term,), {"otid": dtid, "dtid": otid}, scf, ssf, called=a, calling=b),
                _Step(S_TCAP, _b_cap_erb_answer, (term,), {"otid": otid, "dtid": dtid}, ssf, scf, called=b, calling=a,
                      answers=answer),
                _Step(S_TCAP, _b_cap_erb_end, (term,), {"dtid": dtid}, ssf, scf, called=b, calling=a,
                      exp=_order_exp(dict(exp, kind="call_end", flags=_flags("request", "answered"))), answer=answer)]

    # --- ISUP: IAM, ACM, ANM, REL, RLC; unanswered and busy calls ---------------
    def isup_call(self, sub, budget: int, to=None, answer=None):
        """to: call this number (short numbers national, NAI 3); answer: answered or not (no answer)."""
        r = self.rng
        if budget < 3:
            return None
        gen = self.gen
        o = sub.msc                                    # the serving MSC calls out ...
        t = r.choice(o.net.gmscs) if r.random() < 0.6 else r.choice(o.net.vlrs)[1]
        if t.pc == o.pc:
            t = o.net.gmscs[0]                         # ... to a gateway or another MSC of its network
        hot = r.random() < 0.4
        called = to or (r.choice(_HOTLINES) if hot else r.choice(gen.subs).msisdn)
        hot = len(called) < 8 if to else hot
        nai = 3 if hot else 4
        calling = sub.msisdn
        link = (min(o.pc, t.pc), max(o.pc, t.pc))
        busy = self.cics.setdefault(link, set())
        while True:
            cic = 1 + r.randrange(4000)
            if cic not in busy:
                busy.add(cic)
                break
        c = {"cic": struct.pack("<H", cic)}
        x = r.random()
        if answer is not None:
            x = 0.5 if answer else 0.85
        if budget < 4:
            x = 0.95                                   # busy: IAM, REL, RLC
        elif budget < 5:
            x = 0.85                                   # no answer: IAM, ACM, REL, RLC
        rec = dict(kind="call_attempt", proto="isup", op=1, msisdn=calling, peer=called, tid=cic, nai=nai,
                   flags=_flags("request"))
        iam = _Step(S_ISUP, _b_iam, (len(called), nai, len(calling)),
                    {"cic": c["cic"], "called_isup": _isup_digits(called), "calling_isup": _isup_digits(calling)}, o, t,
                    exp=_order_exp(rec))
        rec = dict(rec, kind="call_end")
        steps, answer = [iam], {}
        if x < 0.7:                                    # answered, released by either side
            cause = 16
            steps += [_Step(S_ISUP, _b_acm, (), c, t, o), _Step(S_ISUP, _b_anm, (), c, t, o, answers=answer)]
            a, b = (o, t) if r.random() < 0.5 else (t, o)
            rec.update(flags=_flags("request", "response", "correlated", "answered"), cause=16)
        elif x < 0.78:                                 # the caller gives up while it rings
            cause = 16
            steps.append(_Step(S_ISUP, _b_acm, (), c, t, o))
            a, b = o, t
            rec.update(flags=_flags("request"), cause=16)
        elif x < 0.9:                                  # no answer
            cause = 19
            steps.append(_Step(S_ISUP, _b_acm, (), c, t, o))
            a, b = t, o
            rec.update(flags=_flags("request", "error"), cause=19)
        else:                                          # busy
            cause = 17
            a, b = t, o
            rec.update(flags=_flags("request", "error"), cause=17)
        steps.append(_Step(S_ISUP, _b_rel, (cause,), c, a, b, exp=_order_exp(rec), answer=answer))
        steps.append(_Step(S_ISUP, _b_rlc, (), c, b, a, free=(busy, cic)))
        return steps

    # --- SMS: a concatenated MT SMS, an MMS notification --------------------------
    def mt_sms_concat(self, sub, budget: int):
        r = self.rng
        text = r.randrange(len(_LONG_SMS))
        dcs, parts = _LONG_SMS[text]
        if budget < 2 * len(parts):
            return None
        gen = self.gen
        smsc = r.choice(gen.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        oa = r.choice(gen.subs).msisdn
        ref = r.randrange(256)
        steps = []
        for i in range(len(parts)):
            otid = gen.tid()
            vals = {"otid": otid, "imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa),
                    "udh_cc": bytes([0, 3, ref, len(parts), i + 1])}
            exp = dict(kind="mt_sms", proto="map", flags=_flags("request", "response", "correlated"), op=44,
                       imsi=sub.imsi, peer=oa, node=msc.gt, version=3, tid=int.from_bytes(otid, "big"),
                       sms_dcs=dcs, parts=len(parts), part=i + 1)
            steps.append(_Step(S_TCAP, _b_begin_mt_part, (text, i), vals, smsc, msc, called=called, calling=calling))
            steps.append(_Step(S_TCAP, _b_end_result, (44, 3, ()), {"dtid": otid}, msc, smsc, called=calling,
                               calling=called, exp=_order_exp(exp)))
        return steps

    def mms_notification(self, sub, budget: int, sender=None, subject: str | None = None, size: int | None = None):
        r = self.rng
        if budget < 2:
            return None
        gen = self.gen
        smsc = r.choice(gen.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        sender = sender or r.choice(gen.subs).msisdn
        size = size or r.choice((12_000 + r.randrange(50_000), 70_000 + r.randrange(230_000)))
        size_b = size.to_bytes((size.bit_length() + 7) // 8, "big")
        alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
        otid = gen.tid()
        oa = r.choice(("10658000", "1065800000", "106575000"))
        vals = {"otid": otid, "imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa, 0x81),
                "mms_txn": "".join(r.choice(alnum) for _ in range(12)).encode(), "mms_from": sender.encode(),
                "mms_size": size_b, "mms_loc": "".join(r.choice(alnum) for _ in range(16)).encode()}
        subject = _MMS_SUBJECTS[r.randrange(len(_MMS_SUBJECTS))] if subject is None else subject
        hashed = subject_hash(subject)
        exp = dict(kind="mms_notification", proto="map", flags=_flags("request", "response", "correlated"), op=44,
                   imsi=sub.imsi, peer=sender, node=msc.gt, version=3, tid=int.from_bytes(otid, "big"), octets=size,
                   app_port=MMS_PORT, sms_dcs=0x04, mms_class="personal",
                   subject_hash=f"{hashed:016x}" if hashed else None)
        return [_Step(S_TCAP, _b_begin_mms, (subject, 1 + r.randrange(3)), vals, smsc, msc,
                      called=called, calling=calling),
                _Step(S_TCAP, _b_end_result, (44, 3, ()), {"dtid": otid}, msc, smsc, called=calling, calling=called,
                      exp=_order_exp(exp))]


def _order_exp(exp: dict) -> dict:
    return {k: exp[k] for k in _ORDER_ALL
            if k in exp and exp[k] is not None and (exp[k] or k not in _IF_NONZERO)}


_FLOW_SCENARIOS = {
    "gtpv2_session": lambda m, sub, budget: m.gtpv2_session(sub, budget),
    "gtpv2_reject": lambda m, sub, budget: m.gtpv2_session(sub, budget, reject=True),
    "gtpv1_pdp": lambda m, sub, budget: m.gtpv1_pdp(sub, budget),
    "cap_call": lambda m, sub, budget: m.cap_call(sub, budget),
    "isup_call": lambda m, sub, budget: m.isup_call(sub, budget),
    "mt_sms_concat": lambda m, sub, budget: m.mt_sms_concat(sub, budget),
    "mms_notification": lambda m, sub, budget: m.mms_notification(sub, budget),
}
