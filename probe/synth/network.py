"""The simulated networks: their nodes (HLR, VLR, MSC, SGSN, GGSN, ...) and their subscribers."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .digits import luhn, tbcd

SSN_HLR, SSN_VLR, SSN_MSC, SSN_EIR, SSN_SCF, SSN_SGSN = 6, 7, 8, 9, 147, 149
SERVING_SSNS = (SSN_VLR, SSN_MSC, SSN_SGSN)


@dataclass
class Node:
    gt: str
    ssn: int
    pc: int
    ip: int
    net: "Network" = None
    kind: str = ""


@dataclass
class Network:
    name: str
    cc: str
    mcc: str
    mnc: str
    imsi_prefix: str
    msisdn_prefixes: tuple
    msisdn_len: tuple          # national significant number lengths after the CC
    node_prefix: str
    msrn_prefix: str
    msrn_len: int
    lacs: tuple
    index: int = 0
    hlrs: list = field(default_factory=list)
    vlrs: list = field(default_factory=list)   # (vlr node, msc number)
    sgsns: list = field(default_factory=list)
    smscs: list = field(default_factory=list)
    gmscs: list = field(default_factory=list)
    scfs: list = field(default_factory=list)
    eirs: list = field(default_factory=list)


def _networks() -> list:
    nets = [
        Network("cn", "86", "460", "00", "46000", ("86138", "86139", "86135"), (11,),
                "8613900", "8613944", 13, (0x2A01, 0x2A02, 0x2A03, 0x5C10)),
        Network("uk", "44", "234", "15", "23415", ("447700", "447711"), (10,),
                "4477009", "447785", 12, (0x0101, 0x0203)),
        Network("us", "1", "310", "260", "310260", ("1206", "1425"), (10,),
                "120655", "120677", 11, (0x1F40, 0x1F41)),
    ]
    for i, n in enumerate(nets):
        n.index = i
        width = 12 if n.cc != "1" else 11
        serial = [0]

        def mk(kind, ssn, n=n, i=i, width=width, serial=serial):
            serial[0] += 1
            k = serial[0]
            gt = (n.node_prefix + kind).ljust(width - 3, "0") + f"{k:03d}"
            return Node(gt, ssn, pc=(i + 1) * 1000 + k, ip=(10 << 24) | ((i + 1) << 16) | k, net=n, kind=kind)

        n.hlrs = [mk("1", SSN_HLR) for _ in range(2)]
        for _ in range(3):
            vlr = mk("2", SSN_VLR)
            msc = mk("2", SSN_MSC)
            msc.ip, msc.pc = vlr.ip, vlr.pc         # one MSC/VLR box, two numbers
            n.vlrs.append((vlr, msc))
        n.sgsns = [mk("3", SSN_SGSN) for _ in range(2)]
        n.smscs = [mk("4", SSN_MSC)]
        n.gmscs = [mk("5", SSN_MSC)]
        n.scfs = [mk("6", SSN_SCF)]
        n.eirs = [mk("7", SSN_EIR)]
    return nets


@dataclass
class Subscriber:
    imsi: str
    msisdn: str
    imei: str
    home: Network
    hlr: Node
    vlr: Node
    msc: Node
    sgsn: Node
    mcc: str
    mnc: str
    lac: int
    ci: int
    imsi_t: bytes = b""
    msisdn_t: bytes = b""
    imei_t: bytes = b""


_TACS = ("35332509", "35391110", "86769503", "35290611", "01326300", "35875505")


def _subscribers(rng: random.Random, nets: list, count: int) -> list:
    subs = []
    seen_imsi, seen_msisdn = set(), set()
    home = nets[0]
    while len(subs) < count:
        r = rng.random()
        net = home if r < 0.8 else nets[1] if r < 0.92 else nets[2]
        ilen = 15 if rng.random() < 0.85 else 14
        imsi = net.imsi_prefix + "".join(rng.choice("0123456789") for _ in range(ilen - len(net.imsi_prefix)))
        p = rng.choice(net.msisdn_prefixes)
        nsn = rng.choice(net.msisdn_len)
        if net is home and rng.random() < 0.1:
            nsn -= 1                                # a few shorter (10-digit) national numbers
        msisdn = p + "".join(rng.choice("0123456789") for _ in range(len(net.cc) + nsn - len(p)))
        if imsi in seen_imsi or msisdn in seen_msisdn:
            continue
        seen_imsi.add(imsi)
        seen_msisdn.add(msisdn)
        imei = luhn(rng.choice(_TACS) + "".join(rng.choice("0123456789") for _ in range(6)))
        # where is the subscriber: mostly at home, some roaming out, roamers in
        if net is home:
            vnet = home if rng.random() < 0.9 else rng.choice(nets[1:])
        else:
            vnet = home if rng.random() < 0.7 else net
        vlr, msc = rng.choice(vnet.vlrs)
        s = Subscriber(imsi, msisdn, imei, net, rng.choice(net.hlrs), vlr, msc, rng.choice(vnet.sgsns),
                       vnet.mcc, vnet.mnc, rng.choice(vnet.lacs), rng.randrange(1, 65535))
        s.imsi_t, s.msisdn_t, s.imei_t = tbcd(imsi), tbcd(msisdn), tbcd(imei)
        subs.append(s)
    return subs
