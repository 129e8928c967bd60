"""Capture filters for live interfaces: classic BPF programs for SO_ATTACH_FILTER.

The default filter keeps what the decoder reads - SCTP (SIGTRAN), and UDP or TCP on the GTP-C
and GTP-U ports - over IPv4 and IPv6, IP fragments (the decoder reassembles them), and the same
behind a VLAN tag the kernel left in the frame (QinQ: it takes the outer tag out itself). It is
assembled here, so it needs no libpcap and works on any link type: it reads the protocol the
kernel found (SKF_AD_PROTOCOL) and the packet from its network header (SKF_NET_OFF).

Any other expression is compiled by libpcap (`pcap_open_dead` + `pcap_compile`, which is what
`pcap_compile_nopcap` does, keeping libpcap's error text) through ctypes, when libpcap is
installed (Debian libpcap0.8, which tshark and tcpreplay bring).
"""
import ctypes
import ctypes.util
import struct

LINKTYPE_ETHERNET = 1
DLT_RAW = 12                    # libpcap's number for packets that start with the IP header

# classic BPF (linux/filter.h)
LD, LDX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x04, 0x05, 0x06, 0x07
H, B = 0x08, 0x10
ABS, IND = 0x20, 0x40
JEQ, JSET = 0x10, 0x40
AND, LSH = 0x50, 0x60
TAX = 0x00
SKF_AD_PROTOCOL = -0x1000       # SKF_AD_OFF + SKF_AD_PROTOCOL: skb->protocol
SKF_NET_OFF = -0x100000         # offsets from the network header
KEEP = 0x40000                  # bytes of a packet kept: all of it


class FilterError(ValueError):
    """An expression that cannot be compiled, or no libpcap to compile it."""


def default_filter(gtpc_ports=(2123,), gtpu_ports=(2152,)) -> bytes:
    """The program keeping SCTP, UDP/TCP on the given ports, and IPv4/IPv6 fragments."""
    ports = sorted(set(gtpc_ports) | set(gtpu_ports))
    a = Assembler()
    a.ld(H | ABS, SKF_AD_PROTOCOL)
    a.jeq(0x0800, "ip4_0")
    a.jeq(0x86DD, "ip6_0")
    a.jeq(0x8100, "vlan")
    a.jeq(0x88A8, "vlan")
    a.ret(0)
    a.label("vlan")
    a.ld(H | ABS, SKF_NET_OFF + 2)
    a.jeq(0x0800, "ip4_4")
    a.jeq(0x86DD, "ip6_4")
    a.ret(0)
    for base in (0, 4):
        net = SKF_NET_OFF + base
        a.label(f"ip4_{base}")
        a.ld(B | ABS, net + 9)
        a.jeq(132, "keep")
        a.ld(H | ABS, net + 6)
        a.jset(0x3FFF, "keep")                  # more fragments, or not the first
        a.ld(B | ABS, net + 9)
        a.jeq(17, f"ports4_{base}")
        a.jeq(6, f"ports4_{base}")
        a.ret(0)
        a.label(f"ports4_{base}")
        a.ld(B | ABS, net)                      # X = IPv4 header length
        a.alu(AND, 0x0F)
        a.alu(LSH, 2)
        a.misc(TAX)
        for off in (0, 2):                      # source port, then destination port
            a.ld(H | IND, net + off)
            for p in ports:
                a.jeq(p, "keep")
        a.ret(0)
        a.label(f"ip6_{base}")
        a.ld(B | ABS, net + 6)                  # next header
        a.jeq(132, "keep")
        a.jeq(44, "keep")                       # fragment header
        a.jeq(17, f"ports6_{base}")
        a.jeq(6, f"ports6_{base}")
        a.ret(0)
        a.label(f"ports6_{base}")
        for off in (40, 42):
            a.ld(H | ABS, net + off)
            for p in ports:
                a.jeq(p, "keep")
        a.ret(0)
    a.label("keep")
    a.ret(KEEP)
    return a.program()


def default_expression(gtpc_ports=(2123,), gtpu_ports=(2152,)) -> str:
    """What the default filter keeps, in tcpdump's words (for people; the program is built above)."""
    ports = " or ".join(str(p) for p in sorted(set(gtpc_ports) | set(gtpu_ports)))
    core = f"sctp or ((udp or tcp) and port ({ports})) or (ip[6:2] & 0x3fff != 0) or ip6[6] == 44"
    return f"{core} or (vlan and ({core}))"


class Assembler:
    """Classic BPF with forward jumps to labels (taken; not taken falls through)."""

    def __init__(self):
        self.code: list = []            # [op, jt label or 0, jf, k]
        self.labels: dict = {}

    def ld(self, mode, k):
        self.code.append([LD | mode, 0, 0, k])

    def alu(self, op, k):
        self.code.append([ALU | op, 0, 0, k])

    def misc(self, op):
        self.code.append([MISC | op, 0, 0, 0])

    def ret(self, k):
        self.code.append([RET, 0, 0, k])

    def jeq(self, k, label):
        self.code.append([JMP | JEQ, label, 0, k])

    def jset(self, k, label):
        self.code.append([JMP | JSET, label, 0, k])

    def label(self, name):
        self.labels[name] = len(self.code)

    def program(self) -> bytes:
        out = bytearray()
        for i, (op, jt, jf, k) in enumerate(self.code):
            if isinstance(jt, str):
                jt = self.labels[jt] - i - 1
                if not 0 <= jt < 256:
                    raise ValueError("BPF jump out of reach")
            out += struct.pack("=HBBI", op, jt, jf, k & 0xFFFFFFFF)
        return bytes(out)


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def libpcap():
    """libpcap through ctypes, or None."""
    name = ctypes.util.find_library("pcap")
    for candidate in filter(None, (name, "libpcap.so.1", "libpcap.so.0.8")):
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def compile_expression(expr: str, ethernet: bool = True) -> bytes:
    """A tcpdump filter expression as a classic BPF program, for frames that start with an
    Ethernet header (or, ethernet=False, with the IP header)."""
    lib = libpcap()
    if lib is None:
        raise FilterError("compiling a filter expression needs libpcap (Debian: apt-get install libpcap0.8); "
                          "without it only the default filter is available")
    handle = lib.pcap_open_dead(LINKTYPE_ETHERNET if ethernet else DLT_RAW, KEEP)
    if not handle:
        raise FilterError("libpcap could not open a handle to compile with")
    prog = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, 0xFFFFFFFF) != 0:
            raise FilterError(f"{expr!r}: {lib.pcap_geterr(handle).decode(errors='replace')}")
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
