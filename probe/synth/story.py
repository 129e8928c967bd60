"""Stories: subscribers and what they do over time, rendered into a capture.

A story (YAML, see "Stories" in docs/rules.md) names its subscribers and a timeline of
high-level steps for each (attach, move, change handset, forward calls, call, SMS, data,
...). `render()` turns every step into the signaling a probe would see for it, with the
encoders and templates of `touchpoint.probe.synth`, mixes it by time with background subscribers
doing ordinary things, and writes one pcap. The same story and seed give the same bytes.

What each step becomes (dialogue records as `touchpoint decode` reports them):

- attach / power_on (cs): MAP updateLocation VLR -> HLR with insertSubscriberData (IMSI, MSISDN,
  VLR), then provideSubscriberInfo HLR -> VLR (location, IMEI)
- attach (gprs): MAP updateGprsLocation SGSN -> HLR
- attach (lte): GTPv2 Create Session (IMSI, MSISDN, MEI, ULI, RAT, APN), the session stays open
- power_off: MAP purgeMS VLR -> HLR; on LTE, Delete Session of every open session
- move / roam_to: a new VLR: updateLocation + cancelLocation to the old VLR; then
  provideSubscriberInfo with the new cell. On LTE: Modify Bearer with the new ULI
- change_handset: checkIMEI MSC -> EIR (IMEI only), provideSubscriberInfo with the new IMEI; on LTE
  a re-attach: Delete Session, Create Session with the new MEI
- register_cf ...: MAP registerSS / activateSS / deactivateSS / eraseSS (IMSI and MSISDN in the
  MAP-OpenInfo)
- call: CAP InitialDP (IMSI, calling MSISDN, location) and/or ISUP IAM ... REL (MSISDN only)
- sms_mo: mo-forwardSM (MSISDN only)
- sms_mt: sendRoutingInfoForSM (MSISDN -> IMSI), mt-forwardSM (IMSI, originator or alphanumeric
  sender)
- mms_mt: mt-forwardSM carrying the WAP push of an m-notification-ind
- ussd: processUnstructuredSS-Request
- data: GTPv2 Create Session, G-PDUs over the duration, Delete Session; data_usage records

`render()` returns the steps with the records each produced (ts_ns and frame included);
the command line writes them with `--expect`.
"""
from __future__ import annotations

import bisect
import heapq
import json
import random
import struct
import zlib

from .dialogues import _TEMPLATES, _finish_expect, _flags, _Gen, _Msg
from .digits import luhn, plmn, tbcd
from .flows import S_GTPC, S_ISUP, S_TCAP, _Mixed, _order_exp, _Step, _step_record
from .framer import _Framer, _PcapOut
from .gtp import _b_g2_csr, _b_g2_csresp, _b_g2_dsr, _b_g2_dsresp, _b_g2_mbr, _b_g2_mbresp
from .network import _TACS, SSN_MSC, SSN_VLR, Network, Node, Subscriber, _networks
from .storyfile import GAP_NS, RATS, Region, Step, Story, StoryError, load
from .templates import _uli_tai_ecgi
from .user_plane import _TunnelModel

__all__ = ["render", "load", "StoryError", "Story"]


# ---------------------------------------------------------------------------
# The world the story happens in: networks, nodes, subscribers
# ---------------------------------------------------------------------------

class _Actor:
    """One subscriber as the network sees it: its synth.Subscriber (where it is now) and
    what is open (attach, LTE sessions)."""

    def __init__(self, name: str, sub: Subscriber, story: bool):
        self.name = name
        self.sub = sub
        self.story = story
        self.attached = None                 # None, "cs", "gprs" or "lte"
        self.sessions = []                   # open LTE sessions (_Session)


class _Ev:
    """One packet of the capture: a MAP dialogue's _Msg or a flow's _Step, when, and the
    record it completes for which step."""
    __slots__ = ("ts", "seq", "item", "sls", "cls", "exp", "owner")

    def __init__(self, ts, seq, item, sls, cls, exp, owner):
        self.ts, self.seq, self.item, self.sls, self.cls, self.exp, self.owner = ts, seq, item, sls, cls, exp, owner


class _World:
    def __init__(self, story: Story, seed: int):
        self.story = story
        self.places = story.places
        self.rng = random.Random(seed)
        self.nets = _networks()
        home = self.nets[0]
        if story.places.home:
            mm = story.places.home[0]
            home.mcc, home.mnc, home.imsi_prefix = mm[:3], mm[3:], mm
        self.gen = _Gen(self.rng, self.nets, [])
        self.mixed = _Mixed(self.gen)
        self.events = []
        self.vlrs = {}                       # GT -> (VLR node, MSC node): one MSC/VLR, one number
        self.cic_release = []                # heap of (time, busy set, cic)
        self.teid_owner = {}

    # --- nodes and places --------------------------------------------------
    def net(self, mccmnc: str) -> Network:
        for n in self.nets:
            if n.mcc + n.mnc == mccmnc:
                return n
        n = Network(f"n{mccmnc}", "99", mccmnc[:3], mccmnc[3:], mccmnc, ("99" + mccmnc,), (10,),
                      "99" + mccmnc, "99" + mccmnc + "7", 13, (0x0100,))
        n.index = len(self.nets)
        base = self.nets[0]
        for k in ("hlrs", "sgsns", "smscs", "gmscs", "scfs", "eirs"):   # shares the core of the first network
            setattr(n, k, getattr(base, k))
        self.nets.append(n)
        return n

    def vlr(self, gt: str, net: Network) -> tuple:
        v = self.vlrs.get(gt)
        if v is None:
            k = len(self.vlrs) + 1
            ip = (10 << 24) | ((net.index + 1) << 16) | ((200 + k // 250) << 8) | (k % 250 + 1)
            pc = 5000 + k
            v = self.vlrs[gt] = (Node(gt, SSN_VLR, pc, ip, net, "2"), Node(gt, SSN_MSC, pc, ip, net, "2"))
            net.vlrs.append(v)
        return v

    def foreign(self, excluded) -> Network:
        for n in self.nets[1:]:
            if not any((n.mcc + n.mnc).startswith(x) for x in list(excluded) + self.places.home):
                return n
        raise StoryError(f"{self.story.path}:0: no foreign network outside {', '.join(excluded)}")

    def region_vlr(self, r: Region, net: Network) -> str:
        """A VLR GT in the region: its first GT, or first prefix completed to 12 digits."""
        if r.nodes:
            p = r.nodes[0]
            return p[:-1] + "1".rjust(max(2, 13 - len(p)), "0") if p.endswith("*") else p
        return net.vlrs[0][0].gt

    def locate(self, a: _Actor, args: dict, first: bool) -> tuple:
        """(VLR GT, serving network, lac, cell) of a step's location keys. A region gives the
        VLR (its GT prefix) and the network, an area a cell; what the step leaves out stays as
        it was (first: where a subscriber starts, the first region of the home network)."""
        sub, rng, places = a.sub, self.rng, self.places
        region = places.regions.get(args.get("region"))
        lac = cell = None
        lte = bool(a.sessions) or args.get("via") == "lte"
        if "area" in args:
            spans = places.areas[args["area"]]
            # a cell of the radio the subscriber is on: LAC for 2G/3G, TAC for 4G/5G, when places says
            lac, f, last = rng.choice([x for x in spans if places.region_by_lac(x[0], lte)] or spans)
            cell = f + rng.randrange(last - f + 1)
            region = region or places.region_by_lac(lac, lte)
        if region is None and first and "vlr" not in args and "mccmnc" not in args:
            region = next((r for r in places.regions.values() if not r.not_mccmnc
                           and (not r.mccmnc or r.mccmnc[0] in places.home)), None)
        if region is not None:
            net = (self.net(region.mccmnc[0]) if region.mccmnc else
                   self.foreign(region.not_mccmnc) if region.not_mccmnc else self.nets[0])
            gt = self.region_vlr(region, net)
            ranges = (region.tacs if lte else region.lacs) or region.lacs or region.tacs
            if lac is None and ranges:
                if not first and gt == sub.vlr.gt and any(f <= sub.lac <= last for f, last in ranges):
                    lac = sub.lac                # already there: only the cell changes
                else:
                    f, last = ranges[0]
                    lac = f + rng.randrange(min(last - f + 1, 64))
        elif first:
            net, gt = self.nets[0], None
        else:
            net, gt = sub.vlr.net, sub.vlr.gt
            if lac is None and "lac" not in args and "mccmnc" not in args:
                lac = sub.lac
                cell = sub.ci if "cell" not in args else None
        if "mccmnc" in args:
            net = self.net(args["mccmnc"])
        gt = args.get("vlr") or gt or net.vlrs[0][0].gt
        lac = args.get("lac", lac)
        if lac is None:
            lac = rng.choice(net.lacs)
        cell = args.get("cell", cell)
        if cell is None:
            cell = 1 + rng.randrange(60000)
        if not a.story and places.area_of(lac, cell) is not None:
            cell = (cell + 30011) % 65000 + 1   # background subscribers stay out of the story's areas
        return gt, net, lac, cell

    def place(self, a: _Actor, loc: tuple):
        gt, net, lac, cell = loc
        sub = a.sub
        sub.vlr, sub.msc = self.vlr(gt, net)
        sub.mcc, sub.mnc, sub.lac, sub.ci = net.mcc, net.mnc, lac, cell
        sub.sgsn = net.sgsns[0]

    # --- subscribers -------------------------------------------------------
    def actor(self, name: str, imsi=None, msisdn=None, imei=None, network=None, story=True) -> _Actor:
        r = random.Random(zlib.crc32(f"{name}/{self.rng.random()}".encode()))
        if network is None and imsi is not None:
            network = next((n.mcc + n.mnc for n in self.nets if imsi.startswith(n.imsi_prefix)), None)
        net = self.net(network) if network else self.nets[0]
        imsi = imsi or net.imsi_prefix + "".join(r.choice("0123456789") for _ in range(15 - len(net.imsi_prefix)))
        if msisdn is None:
            p = net.msisdn_prefixes[0]
            msisdn = p + "".join(r.choice("0123456789") for _ in range(len(net.cc) + net.msisdn_len[0] - len(p)))
        imei = imei or luhn(r.choice(_TACS) + "".join(r.choice("0123456789") for _ in range(6)))
        if len(imei) == 14:
            imei = luhn(imei)
        vlr, msc = net.vlrs[0]
        sub = Subscriber(imsi, msisdn, imei, net, net.hlrs[0], vlr, msc, net.sgsns[0], net.mcc, net.mnc,
                           net.lacs[0], 1, tbcd(imsi), tbcd(msisdn), tbcd(imei))
        self.gen.subs.append(sub)
        a = _Actor(name, sub, story)
        self.place(a, self.locate(a, {}, first=True))
        return a

    # --- putting packets on the timeline -----------------------------------
    def dialogue(self, t: int, msgs_exp: tuple, owner: Step, fix=None) -> int:
        """A MAP dialogue from _Gen starting at t; its record completes at the last message."""
        msgs, exp = msgs_exp
        if fix:
            fix(exp)
        sls = self.rng.randrange(16)
        for i, m in enumerate(msgs):
            self.events.append(_Ev(t, len(self.events), m, sls, 0x81, exp if i == len(msgs) - 1 else None, owner))
            t += GAP_NS
        return t

    def flow(self, times: list, steps: list, owner: Step) -> int:
        """A flow's steps at the given times (a _Step's exp is the record it completes)."""
        sls = self.rng.randrange(16)
        for t, m in zip(times, steps):
            self.events.append(_Ev(t, len(self.events), m, sls, 0x81, None, owner))
            if m.learn is not None:
                for key, _ in m.learn:
                    self.teid_owner[key[0]] = owner
        return times[-1] + GAP_NS if times else 0


def _spaced(t: int, n: int) -> list:
    return [t + i * GAP_NS for i in range(n)]


def _apn_ni(apn: str) -> str:
    """The APN network identifier, as the record keeps it (without the operator identifier)."""
    labels = apn.split(".")
    if len(labels) >= 3 and labels[-1] == "gprs" and labels[-3].startswith("mnc"):
        labels = labels[:-3]
    return ".".join(labels)[:24]


# ---------------------------------------------------------------------------
# LTE sessions (GTPv2-C on S11, GTP-U on S1-U)
# ---------------------------------------------------------------------------

class _Session:
    """One PDN connection, MME <-> SGW, its tunnels named to the decoder by the F-TEIDs."""

    def __init__(self, w: _World, a: _Actor, apn: str, rat: int):
        m = w.mixed
        sub = a.sub
        vp, hp = m.plan(sub.vlr.net), m.plan(sub.home)
        self.w, self.a, self.apn, self.rat = w, a, apn, rat
        self.mme, (self.sgw_c, self.sgw_u), (pgw_c, pgw_u) = vp.mmes[0], vp.sgws[0], hp.pgws[0]
        self.vp = vp
        ip = lambda x: struct.pack(">I", x)
        self.teid_mme = m.teid()
        self.teid_sgw, teid_pgw, self.teid_sgwu, teid_pgwu = m.teid(), m.teid(), m.teid(), m.teid()
        self.ue = m.ue_ip()
        self.ident = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": sub.imei, "rat": rat, "apn": _apn_ni(apn)}
        seq = m.seq(self.mme, 24)
        tac, eci = sub.lac, sub.ci
        csr = {"seq3": seq.to_bytes(3, "big"), "imsi": sub.imsi_t, "msisdn": sub.msisdn_t, "mei": sub.imei_t,
               "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, tac, eci), "sn": plmn(sub.mcc, sub.mnc),
               "teid_mme": self.teid_mme, "ip_mme": ip(self.mme), "ip_pgw": ip(pgw_c)}
        resp = {"seq3": csr["seq3"], "teid_mme": self.teid_mme, "teid_sgw": self.teid_sgw, "ip_sgw": ip(self.sgw_c),
                "teid_pgw": teid_pgw, "ip_pgw": ip(pgw_c), "ue_ip": self.ue, "teid_sgwu": self.teid_sgwu,
                "ip_sgwu": ip(self.sgw_u), "teid_pgwu": teid_pgwu, "ip_pgwu": ip(pgw_u),
                "charging_id": w.rng.getrandbits(32).to_bytes(4, "big")}
        rec = dict(kind="session_create", proto="gtpv2c", op=32, cause=16, **self.ident, mcc=sub.mcc, mnc=sub.mnc,
                   lac_tac=tac, cell=eci, loc_type="ecgi", tid=seq, flags=_flags("request", "response", "correlated"))
        learned = [((int.from_bytes(t, "big"), x), self.ident) for t, x in
                   ((self.teid_sgw, self.sgw_c), (teid_pgw, pgw_c), (self.teid_sgwu, self.sgw_u), (teid_pgwu, pgw_u))]
        self.create = [_Step(S_GTPC, _b_g2_csr, (apn, rat), csr, self.mme, self.sgw_c,
                               learn=[((int.from_bytes(self.teid_mme, "big"), self.mme), self.ident)]),
                       _Step(S_GTPC, _b_g2_csresp, (), resp, self.sgw_c, self.mme, learn=learned,
                               exp=_order_exp(rec))]
        self.enb = None

    def modify(self) -> list:
        """Modify Bearer: the cell now serving and the eNodeB's S1-U tunnel."""
        m, sub = self.w.mixed, self.a.sub
        enb_ip = self.vp.enb(1 + (sub.ci >> 8) % 250)
        teid_enb = m.teid()
        self.enb = (teid_enb, enb_ip)
        seq = m.seq(self.mme, 24).to_bytes(3, "big")
        who = {k: self.ident[k] for k in ("imsi", "msisdn", "imei")}
        rec = dict(kind="session_modify", proto="gtpv2c", op=34, cause=16, **who, mcc=sub.mcc, mnc=sub.mnc,
                   lac_tac=sub.lac, cell=sub.ci, loc_type="ecgi", rat=self.rat, tid=int.from_bytes(seq, "big"),
                   flags=_flags("request", "response", "correlated"))
        vals = {"seq3": seq, "teid_sgw": self.teid_sgw, "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, sub.lac, sub.ci),
                "teid_enb": teid_enb, "ip_enb": struct.pack(">I", enb_ip)}
        return [_Step(S_GTPC, _b_g2_mbr, (self.rat,), vals, self.mme, self.sgw_c,
                        learn=[((int.from_bytes(teid_enb, "big"), enb_ip), dict(who, rat=self.rat))]),
                _Step(S_GTPC, _b_g2_mbresp, (), {"seq3": seq, "teid_mme": self.teid_mme}, self.sgw_c, self.mme,
                        exp=_order_exp(rec))]

    def usage(self, n: int) -> list:
        steps = []
        teid_enb, enb_ip = self.enb
        self.w.mixed._gpdus(n, (self.teid_sgwu, enb_ip, self.sgw_u), (teid_enb, self.sgw_u, enb_ip), self.ue, steps)
        return steps

    def delete(self) -> list:
        seq = self.w.mixed.seq(self.mme, 24).to_bytes(3, "big")
        rec = dict(kind="session_delete", proto="gtpv2c", op=36, cause=16,
                   **{k: self.ident[k] for k in ("imsi", "msisdn", "imei")}, tid=int.from_bytes(seq, "big"),
                   flags=_flags("request", "response", "correlated"))
        return [_Step(S_GTPC, _b_g2_dsr, (), {"seq3": seq, "teid_sgw": self.teid_sgw}, self.mme, self.sgw_c),
                _Step(S_GTPC, _b_g2_dsresp, (), {"seq3": seq, "teid_mme": self.teid_mme}, self.sgw_c, self.mme,
                        exp=_order_exp(rec))]


# ---------------------------------------------------------------------------
# Actions: one step -> its signaling
# ---------------------------------------------------------------------------

def _attach(w: _World, a: _Actor, t: int, p: dict, st: Step) -> int:
    old = a.sub.vlr
    w.place(a, w.locate(a, p, first=False))
    via = p.get("via", "cs")
    if via == "lte":
        s = _Session(w, a, p.get("apn", "ims"), p.get("rat", RATS["eutran"]))
        t = w.flow(_spaced(t, 2), s.create, st)
        t = w.flow(_spaced(t, 2), s.modify(), st)
        a.sessions.append(s)
    elif via == "gprs":
        t = w.dialogue(t, w.gen.ugl(a.sub, "ok"), st)
    else:
        t = w.dialogue(t, w.gen.ul(a.sub, "ok"), st)
        if a.attached == "cs" and old is not a.sub.vlr:
            t = _cancel(w, a, old, t, st)
        t = w.dialogue(t, w.gen.psi(a.sub, "ok", want_imei=True), st)
    a.attached = via
    return t


def _cancel(w, a, old, t, st) -> int:
    """cancelLocation HLR -> the VLR the subscriber left."""
    here = a.sub.vlr
    a.sub.vlr = old
    try:
        return w.dialogue(t, w.gen.cancel_location(a.sub, "ok"), st)
    finally:
        a.sub.vlr = here


def _power_off(w, a, t, p, st) -> int:
    if a.sessions:
        for s in a.sessions:
            t = w.flow(_spaced(t, 2), s.delete(), st)
        a.sessions = []
    else:
        t = w.dialogue(t, w.gen.purge_ms(a.sub, "ok"), st)
    a.attached = None
    return t


def _move(w, a, t, p, st) -> int:
    old = a.sub.vlr
    w.place(a, w.locate(a, p, first=False))
    if a.sessions:
        s = a.sessions[0]
        return w.flow(_spaced(t, 2), s.modify(), st)
    if old is not a.sub.vlr:
        t = w.dialogue(t, w.gen.ul(a.sub, "ok"), st)
        t = _cancel(w, a, old, t, st)
    return w.dialogue(t, w.gen.psi(a.sub, "ok", want_imei=False), st)


def _change_handset(w, a, t, p, st) -> int:
    sub = a.sub
    old = sub.imei
    if "imei" in p:
        new = p["imei"] if len(p["imei"]) == 15 else luhn(p["imei"])
    else:
        tac = old[:8] if p.get("same_tac") else p.get("tac") or w.rng.choice([x for x in _TACS if x != old[:8]])
        new = old
        while new[:14] == old[:14]:
            new = luhn(tac + "".join(w.rng.choice("0123456789") for _ in range(6)))
    sub.imei, sub.imei_t = new, tbcd(new)
    if a.sessions:                                    # LTE: the new handset attaches again
        apns = [(s.apn, s.rat) for s in a.sessions]
        t = _power_off(w, a, t, p, st)
        for apn, rat in apns:
            s = _Session(w, a, apn, rat)
            t = w.flow(_spaced(t, 2), s.create, st)
            t = w.flow(_spaced(t, 2), s.modify(), st)
            a.sessions.append(s)
        a.attached = "lte"
        return t
    t = w.dialogue(t, w.gen.check_imei(sub, "ok"), st)
    return w.dialogue(t, w.gen.psi(sub, "ok", want_imei=True), st)


_SS_OP = {"register_cf": 10, "erase_cf": 11, "activate_cf": 12, "deactivate_cf": 13}


def _cf(w, a, t, p, st) -> int:
    return w.dialogue(t, w.gen.ss(a.sub, "ok", _SS_OP[st.do], code=p["ss"], ftn=p.get("to")), st)


def _call(w, a, t, p, st) -> int:
    dur = p.get("duration", 60 * 10**9)
    ring = 5 * 10**9                                   # from the set-up to the answer
    end = t
    while w.cic_release and w.cic_release[0][0] <= t:
        _, busy, cic = heapq.heappop(w.cic_release)
        busy.discard(cic)
    if p.get("via", "cap") in ("cap", "both"):
        steps = w.mixed.cap_call(a.sub, 4, to=p["to"])
        end = max(end, w.flow([t, t + GAP_NS, t + ring, t + ring + dur], steps, st))
    if p.get("via", "cap") in ("isup", "both"):
        answer = p.get("answer", True)
        steps = w.mixed.isup_call(a.sub, 5, to=p["to"], answer=answer)
        if len(steps) == 5:
            times = [t, t + 10**9, t + ring, t + ring + dur, t + ring + dur + GAP_NS]
        else:
            times = [t, t + 10**9, t + 30 * 10**9, t + 30 * 10**9 + GAP_NS]
        heapq.heappush(w.cic_release, (times[-1] + 1, steps[-1].free[0], steps[-1].free[1]))
        end = max(end, w.flow(times, steps, st))
    return end


def _sms_mo(w, a, t, p, st) -> int:
    return w.dialogue(t, w.gen.mo_sms(a.sub, "ok", da=p["to"]), st)


def _alpha(exp):
    if not exp["peer"].isdigit():
        exp["peer_alpha"] = exp.pop("peer")[:12]


def _sms_mt(w, a, t, p, st) -> int:
    sender = p.get("from") or w.rng.choice(w.gen.subs).msisdn
    t = w.dialogue(t, w.gen.sri_sm(a.sub, "ok", served=True), st)
    return w.dialogue(t, w.gen.mt_sms(a.sub, "ok", oa=sender), st, fix=_alpha)


def _mms_mt(w, a, t, p, st) -> int:
    steps = w.mixed.mms_notification(a.sub, 2, sender=p.get("from"), subject=p.get("subject"), size=p.get("size"))
    return w.flow(_spaced(t, 2), steps, st)


def _ussd(w, a, t, p, st) -> int:
    return w.dialogue(t, w.gen.ussd(a.sub, "ok", code=p.get("code", "*100#")), st)


def _data(w, a, t, p, st) -> int:
    s = _Session(w, a, p.get("apn", "cmnet"), p.get("rat", RATS["eutran"]))
    t = w.flow(_spaced(t, 2), s.create, st)
    t = w.flow(_spaced(t, 2), s.modify(), st)
    n = p.get("packets", 20)
    dur = p.get("duration", 600 * 10**9)
    steps = s.usage(n)
    t = w.flow([t + (i + 1) * dur // (n + 1) for i in range(n)], steps, st) if n else t
    return w.flow(_spaced(max(t, st.t_abs + dur), 2), s.delete(), st)


_RENDER = {
    "attach": _attach, "power_on": _attach, "power_off": _power_off, "move": _move, "roam_to": _move,
    "change_handset": _change_handset, "register_cf": _cf, "activate_cf": _cf, "deactivate_cf": _cf,
    "erase_cf": _cf, "call": _call, "sms_mo": _sms_mo, "sms_mt": _sms_mt, "mms_mt": _mms_mt, "ussd": _ussd,
    "data": _data,
}


# ---------------------------------------------------------------------------
# Background: other subscribers doing ordinary things
# ---------------------------------------------------------------------------

_BG_ACTIONS = (("sms_mo", 3), ("sms_mt", 3), ("call", 3), ("data", 2), ("move", 2), ("ussd", 0.5), ("mms_mt", 0.5))


def _background(w: _World, story: Story) -> list:
    """Background steps, each (t, actor, Step): an attach in the first ten minutes, then
    actions at random times (Poisson, `activity` an hour) until the story ends. They stay
    out of the story's areas and never call its hotlines or forward calls."""
    rng = w.rng
    out = []
    regions = [n for n, r in w.places.regions.items() if not r.not_mccmnc] or [None]
    names = [n for n, _ in _BG_ACTIONS]
    cum, acc = [], 0.0
    for _, x in _BG_ACTIONS:
        acc += x
        cum.append(acc)
    actors = []
    for i in range(story.background):
        foreign = rng.random() < 0.1
        a = w.actor(f"bg{i}", network=rng.choice(w.nets[1:3]).imsi_prefix if foreign else None, story=False)
        actors.append(a)
    for a in actors:
        t = rng.randrange(600 * 10**9)
        region = rng.choice(regions)
        out.append(Step(a.name, 1, "attach", "", t, {"region": region} if region else {}, 0))
        k = 2
        while story.activity > 0:
            t += int(rng.expovariate(story.activity / 3600) * 1e9)
            if t >= story.end_ns:
                break
            do = names[bisect.bisect_right(cum, rng.random() * acc)]
            other = actors[rng.randrange(len(actors))].sub.msisdn
            args = {
                "call": {"to": other, "via": rng.choice(("cap", "isup")), "duration": rng.randrange(5, 300) * 10**9},
                "sms_mo": {"to": other},
                "sms_mt": {"from": other},
                "mms_mt": {"from": other},
                "data": {"duration": rng.randrange(30, 900) * 10**9, "packets": rng.randrange(3, 30)},
                "move": {"region": rng.choice(regions)} if regions[0] else {},
                "ussd": {},
            }[do]
            out.append(Step(a.name, k, do, "", t, args, 0))
            k += 1
    return [(s.t_ns, actors[int(s.subscriber[2:])], s) for s in out]


# ---------------------------------------------------------------------------
# Rendering and writing
# ---------------------------------------------------------------------------

def render(story: Story | str, path, *, seed: int = 1, expect_path=None, expected_path=None) -> dict:
    """Write the story's capture to `path`. expect_path: one JSON line per story step
    (subscriber, step, action, time, and the records it must decode to); expected_path:
    every record of the capture (story and background) as `touchpoint decode --format
    jsonl` prints them, in frame order. Returns {"packets", "steps", "records", "bytes"}."""
    if isinstance(story, str):
        story = load(story)
    w = _World(story, seed)
    plan = []
    for p in story.people:
        a = w.actor(p.name, p.imsi, p.msisdn, p.imei, p.network)
        plan += [(s.t_ns, a, s) for s in p.steps]
    plan += _background(w, story)
    plan.sort(key=lambda x: x[0])             # stable: story steps first at equal times
    for t, a, st in plan:
        st.t_abs = story.start_ns + t
        _RENDER[st.do](w, a, st.t_abs, st.args, st)
    stats = _write(w, path)
    steps = [s for p in story.people for s in p.steps]
    if expect_path is not None:
        with open(expect_path, "w") as f:
            for s in steps:
                f.write(json.dumps({"subscriber": s.subscriber, "step": s.index, "do": s.do, "at": s.at,
                                    "ts_ns": story.start_ns + s.t_ns, "line": s.line, "records": s.records}) + "\n")
    if expected_path is not None:
        recs = sorted((r for _, _, s in plan for r in s.records), key=lambda r: (r["frame"], r.get("tid", 0)))
        with open(expected_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)
    stats["steps"] = len(steps)
    return stats


def _write(w: _World, path) -> dict:
    ev = sorted(w.events, key=lambda e: (e.ts, e.seq))
    framer = _Framer(_TEMPLATES)
    tunnels = _TunnelModel()
    usage = []
    nrec = 0

    def owe(recs, ts):
        nonlocal nrec
        for r in recs:
            owner = w.teid_owner.get(r["tid"])
            if owner is not None:
                owner.records.append(dict(r, ts_ns=ts))
                nrec += 1
        recs.clear()

    with open(path, "wb") as out:
        pcap = _PcapOut(out)
        frame_no, tus = 0, 0
        for frame_no, e in enumerate(ev, 1):
            m = e.item
            if isinstance(m, _Msg):
                pcap.add(framer.tcap(m, e.sls, e.cls), e.ts, True)
            else:
                pcap.add(framer.step(m, e.sls, e.cls)[0], e.ts, m.kind in (S_TCAP, S_ISUP))
            tus = e.ts // 1000 * 1000
            tunnels.sweep(tus, frame_no, usage)
            owe(usage, tus)
            if e.exp is not None:
                rec = _finish_expect(dict(e.exp), frame_no)
                for k in ("peer_alpha",):
                    if k in e.exp:
                        rec[k] = e.exp[k]
            elif not isinstance(m, _Msg):
                rec = _step_record(m, frame_no, tus)
            else:
                rec = None
            if rec is not None:
                e.owner.records.append(dict(rec, ts_ns=tus))
                nrec += 1
            if not isinstance(m, _Msg):
                if m.learn is not None:
                    for key, who in m.learn:
                        tunnels.learn(key, who, tus)
                if m.tun is not None:
                    tunnels.count(m.tun, m.size, tus, frame_no, usage)
                    owe(usage, tus)
            if len(pcap.frames) >= 4096:
                pcap.flush()
        tunnels.flush(frame_no, usage)
        owe(usage, tus)
        pcap.flush()
    return {"packets": len(ev), "records": nrec, "bytes": pcap.nbytes}
