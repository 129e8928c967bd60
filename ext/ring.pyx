# AF_PACKET TPACKET_V3 capture on Linux: a memory-mapped receive ring per socket, read as a
# pcap byte stream (nanosecond records) that probe.decode.Decoder.feed() takes as it is.
#
# The kernel fills blocks of the ring and hands each one over when it is full or its retire
# timeout passes; gather() copies every handed-over block into the caller's buffer as pcap
# records and gives the block back at once, so the ring is free again before decoding starts.
# No Python object per packet; the copy and the poll run without the GIL.

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset, strncpy
from libc.errno cimport errno
from posix.unistd cimport close

import os

cdef extern from "<sys/socket.h>" nogil:
    enum: AF_PACKET, SOCK_RAW, SOL_SOCKET, SO_ERROR, SO_ATTACH_FILTER, SOL_PACKET
    ctypedef unsigned int socklen_t
    struct sockaddr:
        unsigned short sa_family
    int socket(int, int, int)
    int setsockopt(int, int, int, const void *, socklen_t)
    int getsockopt(int, int, int, void *, socklen_t *)
    int bind(int, const sockaddr *, socklen_t)

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int, unsigned long, ...)

cdef extern from "<net/if.h>" nogil:
    enum: IFNAMSIZ, SIOCGIFHWADDR
    struct ifreq:
        char ifr_name[16]
        sockaddr ifr_hwaddr
    unsigned int if_nametoindex(const char *)

cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)

cdef extern from "<poll.h>" nogil:
    enum: POLLIN, POLLERR
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *, unsigned long, int)

cdef extern from "<sys/mman.h>" nogil:
    enum: PROT_READ, PROT_WRITE, MAP_SHARED, MAP_POPULATE
    void *MAP_FAILED
    void *mmap(void *, size_t, int, int, int, long)
    int munmap(void *, size_t)

cdef extern from "<time.h>" nogil:
    enum: CLOCK_MONOTONIC
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int, timespec *)

cdef extern from "<linux/if_ether.h>" nogil:
    enum: ETH_P_ALL

cdef extern from "<linux/filter.h>" nogil:
    struct sock_filter:
        uint16_t code
        uint8_t jt
        uint8_t jf
        uint32_t k
    struct sock_fprog:
        unsigned short len
        sock_filter *filter

cdef extern from "<linux/if_packet.h>" nogil:
    enum:
        PACKET_VERSION, PACKET_RX_RING, PACKET_STATISTICS, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC
        PACKET_FANOUT, PACKET_FANOUT_HASH, PACKET_FANOUT_FLAG_DEFRAG, PACKET_FANOUT_FLAG_UNIQUEID
        TPACKET_V3, PACKET_OUTGOING, TP_STATUS_KERNEL, TP_STATUS_USER, TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID
    struct sockaddr_ll:
        unsigned short sll_family
        unsigned short sll_protocol
        int sll_ifindex
        unsigned short sll_hatype
        unsigned char sll_pkttype
        unsigned char sll_halen
        unsigned char sll_addr[8]
    struct packet_mreq:
        int mr_ifindex
        unsigned short mr_type
        unsigned short mr_alen
        unsigned char mr_address[8]
    struct tpacket_req3:
        unsigned int tp_block_size
        unsigned int tp_block_nr
        unsigned int tp_frame_size
        unsigned int tp_frame_nr
        unsigned int tp_retire_blk_tov
        unsigned int tp_sizeof_priv
        unsigned int tp_feature_req_word
    struct tpacket_stats_v3:
        unsigned int tp_packets
        unsigned int tp_drops
        unsigned int tp_freeze_q_cnt
    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr
    struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
        uint32_t tp_vlan_tci
        uint16_t tp_vlan_tpid
    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net
        tpacket_hdr_variant1 hv1
    size_t TPACKET_ALIGN(size_t)

cdef extern from *:
    """
    /* The block status word is shared with the kernel: acquire before reading the block,
       release when handing it back. */
    static inline uint32_t tp_status_load(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void tp_status_give_back(uint32_t *p) { __atomic_store_n(p, TP_STATUS_KERNEL, __ATOMIC_RELEASE); }
    """
    uint32_t tp_status_load(uint32_t *p) nogil
    void tp_status_give_back(uint32_t *p) nogil


ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
cdef enum:
    SLL_HDR_LEN = 16
    DEFAULT_BLOCK = 1 << 20
    MAX_RINGS = 64
cdef uint32_t PCAP_NS_MAGIC = 0xA1B23C4D
ETHER_LINKS = (ARPHRD_ETHER, ARPHRD_LOOPBACK)     # frames that start with an Ethernet header
NEW_GROUP = -1          # Ring(fanout=NEW_GROUP) founds a fanout group; a group's id may be 0

cdef sock_filter REJECT_ALL[1]
REJECT_ALL[0].code = 0x06      # BPF_RET | BPF_K, k = 0: keep nothing (until the real filter is on)
REJECT_ALL[0].jt = 0
REJECT_ALL[0].jf = 0
REJECT_ALL[0].k = 0


cdef struct RingState:
    int fd
    uint8_t *map
    size_t map_len
    uint32_t block_size
    uint32_t block_nr
    uint32_t cur                # the next block to read
    bint cooked                 # write Linux cooked (SLL) records instead of the frames as they are
    bint loopback               # each packet passes twice, going out and coming in: keep one
    uint64_t outgoing           # of those, skipped
    uint64_t packets            # copied out of the ring
    uint64_t bytes
    uint64_t blocks
    uint64_t copy_ns            # time spent copying blocks out (the cost of this format)
    uint64_t errors             # socket errors polled (the interface went down, ...)
    int last_errno


cdef inline void put32(uint8_t *p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)            # native order: the pcap magic is written in it too


cdef inline void put16be(uint8_t *p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF


cdef inline uint64_t now_ns() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return <uint64_t>t.tv_sec * 1000000000 + <uint64_t>t.tv_nsec


cdef Py_ssize_t copy_block(RingState *s, tpacket_block_desc *bd, uint8_t *out) noexcept nogil:
    """The block's packets as pcap records at out; returns the bytes written (at most the block
    size: a packet takes more room in the block than its pcap record header, VLAN tag and SLL
    header together)."""
    cdef uint32_t n = bd.hdr.bh1.num_pkts
    cdef tpacket3_hdr *h = <tpacket3_hdr *>(<uint8_t *>bd + bd.hdr.bh1.offset_to_first_pkt)
    cdef sockaddr_ll *ll
    cdef uint8_t *data
    cdef uint8_t *rec
    cdef uint32_t i, caplen, origlen, skip
    cdef Py_ssize_t pos = 0
    for i in range(n):
        ll = <sockaddr_ll *>(<uint8_t *>h + TPACKET_ALIGN(sizeof(tpacket3_hdr)))
        if s.loopback and ll.sll_pkttype == PACKET_OUTGOING:        # as libpcap does
            s.outgoing += 1
            h = <tpacket3_hdr *>(<uint8_t *>h + h.tp_next_offset)
            continue
        rec = out + pos
        put32(rec, h.tp_sec)
        put32(rec + 4, h.tp_nsec)
        data = <uint8_t *>h + h.tp_mac
        caplen = h.tp_snaplen
        origlen = h.tp_len
        if s.cooked:
            # what libpcap writes for "any" and non-Ethernet devices: a 16-byte header made of
            # the socket address, then the packet from its network header on
            skip = h.tp_net - h.tp_mac if h.tp_net > h.tp_mac else 0
            if skip > caplen:
                skip = caplen
            caplen -= skip
            origlen -= skip if skip < origlen else origlen
            put16be(rec + 16, ll.sll_pkttype)
            put16be(rec + 18, ll.sll_hatype)
            put16be(rec + 20, ll.sll_halen)
            memset(rec + 22, 0, 8)
            memcpy(rec + 22, ll.sll_addr, ll.sll_halen if ll.sll_halen <= 8 else 8)
            memcpy(rec + 30, &ll.sll_protocol, 2)            # network order already
            memcpy(rec + 32, data + skip, caplen)
            caplen += SLL_HDR_LEN
            origlen += SLL_HDR_LEN
        elif h.tp_status & TP_STATUS_VLAN_VALID and caplen >= 12:
            # the kernel took the 802.1Q tag out of the frame: put it back where it was
            memcpy(rec + 16, data, 12)
            put16be(rec + 28, h.hv1.tp_vlan_tpid if h.tp_status & TP_STATUS_VLAN_TPID_VALID else 0x8100)
            put16be(rec + 30, <uint16_t>h.hv1.tp_vlan_tci)
            memcpy(rec + 32, data + 12, caplen - 12)
            caplen += 4
            origlen += 4
        else:
            memcpy(rec + 16, data, caplen)
        put32(rec + 8, caplen)
        put32(rec + 12, origlen)
        pos += 16 + caplen
        s.packets += 1
        s.bytes += caplen
        h = <tpacket3_hdr *>(<uint8_t *>h + h.tp_next_offset)
    s.blocks += 1
    return pos


cdef Py_ssize_t drain(RingState **rings, int nrings, uint8_t *out, Py_ssize_t room) noexcept nogil:
    """Every handed-over block that fits, ring after ring, block by block."""
    cdef Py_ssize_t pos = 0
    cdef int i
    cdef bint more = True
    cdef RingState *s
    cdef tpacket_block_desc *bd
    cdef uint64_t t0
    while more:
        more = False
        for i in range(nrings):
            s = rings[i]
            if s.map == NULL or room - pos < s.block_size:
                continue
            bd = <tpacket_block_desc *>(s.map + <size_t>s.cur * s.block_size)
            if not (tp_status_load(&bd.hdr.bh1.block_status) & TP_STATUS_USER):
                continue
            t0 = now_ns()
            pos += copy_block(s, bd, out + pos)
            tp_status_give_back(&bd.hdr.bh1.block_status)
            s.cur = (s.cur + 1) % s.block_nr
            s.copy_ns += now_ns() - t0
            more = True
    return pos


def gather(list rings, uint8_t[::1] out not None, int timeout_ms):
    """Copy what the rings have ready into out as pcap records (no file header); when none is
    ready, wait up to timeout_ms for one. Returns the bytes written. out must hold at least one
    block of each ring."""
    cdef RingState *st[MAX_RINGS]
    cdef pollfd pfd[MAX_RINGS]
    cdef int n = len(rings), i, err
    cdef socklen_t len_ = sizeof(int)
    cdef Py_ssize_t got
    cdef Ring r
    if n > MAX_RINGS:
        raise ValueError(f"at most {MAX_RINGS} rings")
    for i in range(n):
        r = rings[i]
        if out.shape[0] < r.s.block_size:
            raise ValueError(f"the buffer holds {out.shape[0]} bytes, less than a block ({r.s.block_size})")
        st[i] = &r.s
        pfd[i].fd = r.s.fd
        pfd[i].events = POLLIN | POLLERR
        pfd[i].revents = 0
    if n == 0:
        return 0
    with nogil:
        got = drain(st, n, &out[0], out.shape[0])
        if got == 0:
            if poll(pfd, n, timeout_ms) > 0:
                for i in range(n):
                    if pfd[i].revents & POLLERR:    # read (and so clear) the socket's error
                        err = 0
                        getsockopt(st[i].fd, SOL_SOCKET, SO_ERROR, &err, &len_)
                        st[i].errors += 1
                        st[i].last_errno = err
            got = drain(st, n, &out[0], out.shape[0])
    return got


def file_header(int linktype, int snaplen=262144):
    """The pcap file header gather()'s records follow: nanosecond timestamps, native byte order."""
    cdef uint8_t h[24]
    put32(h, PCAP_NS_MAGIC)
    (<uint16_t *>(h + 4))[0] = 2
    (<uint16_t *>(h + 6))[0] = 4
    put32(h + 8, 0)
    put32(h + 12, 0)
    put32(h + 16, snaplen)
    put32(h + 20, linktype)
    return bytes(h[:24])


cdef class Ring:
    """One AF_PACKET socket on one interface with a TPACKET_V3 receive ring of `ring_bytes`.

    A new ring keeps nothing until set_filter() is called (with None for everything), so the
    members of a fanout group can all join first and no packet reaches a member twice.
    fanout: None (alone), NEW_GROUP (found a group with an id the kernel picks; PACKET_FANOUT_HASH
    with defragmentation: each flow, both ways, to one member) or a group id 0 to 65535 to join
    (`fanout_id` of the founder; 0 is an id like any other, which the kernel may well pick).
    cooked: write Linux cooked (SLL) records; the default for interfaces that are not Ethernet.
    """
    cdef RingState s
    cdef readonly str iface
    cdef readonly int ifindex
    cdef readonly int hatype
    cdef readonly int fanout_id
    cdef readonly bint promisc
    cdef uint64_t k_packets, k_drops, k_freezes

    def __cinit__(self):
        self.s.fd = -1
        self.s.map = NULL

    def __init__(self, str iface, *, Py_ssize_t ring_bytes=64 << 20, uint32_t block_size=DEFAULT_BLOCK,
                 int retire_ms=50, bint promisc=True, fanout=None, cooked=None):
        cdef ifreq ifr
        cdef tpacket_req3 req
        cdef packet_mreq mr
        cdef sockaddr_ll sll
        cdef sock_fprog prog
        cdef int val
        cdef socklen_t vlen = sizeof(int)
        cdef bytes name = iface.encode()
        if not 0 < len(name) < IFNAMSIZ:
            raise ValueError(f"{iface!r} is not an interface name")
        if fanout is not None and fanout != NEW_GROUP and not 0 <= fanout <= 0xFFFF:
            raise ValueError(f"fanout group {fanout}: an id is 0 to 65535, or NEW_GROUP")
        if block_size < 65536 or block_size & (block_size - 1):
            raise ValueError("the block size is a power of two of at least 64 KiB")
        if ring_bytes < block_size:
            raise ValueError(f"the ring holds at least one block ({block_size} bytes)")
        self.iface = iface
        self.promisc = promisc
        self.fanout_id = -1
        self.ifindex = if_nametoindex(name)
        if self.ifindex == 0:
            self._fail(iface)
        # Protocol 0: nothing arrives before bind(), and bind() comes once the filter is on.
        self.s.fd = socket(AF_PACKET, SOCK_RAW, 0)
        if self.s.fd < 0:
            self._fail(f"{iface}: AF_PACKET socket (needs CAP_NET_RAW)")
        memset(&ifr, 0, sizeof(ifr))
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1)
        if ioctl(self.s.fd, SIOCGIFHWADDR, &ifr) < 0:
            self._fail(f"{iface}: hardware type")
        self.hatype = ifr.ifr_hwaddr.sa_family
        self.s.cooked = self.hatype not in ETHER_LINKS if cooked is None else cooked
        self.s.loopback = self.hatype == ARPHRD_LOOPBACK
        val = TPACKET_V3
        if setsockopt(self.s.fd, SOL_PACKET, PACKET_VERSION, &val, sizeof(val)) < 0:
            self._fail(f"{iface}: TPACKET_V3")
        # Nothing passes until the members of a fanout group have joined and the real filter is on.
        self._attach(REJECT_ALL, 1)
        memset(&req, 0, sizeof(req))
        req.tp_block_size = block_size
        req.tp_block_nr = <unsigned int>(ring_bytes // block_size)
        req.tp_frame_size = 2048        # TPACKET_V3 packs packets in blocks; the kernel only checks this
        req.tp_frame_nr = req.tp_block_nr * (block_size // req.tp_frame_size)
        req.tp_retire_blk_tov = retire_ms
        if setsockopt(self.s.fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0:
            self._fail(f"{iface}: receive ring of {req.tp_block_nr} blocks of {block_size} bytes")
        self.s.block_size = block_size
        self.s.block_nr = req.tp_block_nr
        self.s.map_len = <size_t>block_size * req.tp_block_nr
        cdef void *m = mmap(NULL, self.s.map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, self.s.fd, 0)
        if m == MAP_FAILED:
            self._fail(f"{iface}: mapping the receive ring ({self.s.map_len} bytes)")
        self.s.map = <uint8_t *>m
        memset(&sll, 0, sizeof(sll))
        sll.sll_family = AF_PACKET
        sll.sll_protocol = htons(ETH_P_ALL)
        sll.sll_ifindex = self.ifindex
        if bind(self.s.fd, <sockaddr *>&sll, sizeof(sll)) < 0:
            self._fail(f"{iface}: bind")
        if promisc:
            memset(&mr, 0, sizeof(mr))
            mr.mr_ifindex = self.ifindex
            mr.mr_type = PACKET_MR_PROMISC
            if setsockopt(self.s.fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0:
                self._fail(f"{iface}: promiscuous mode")
        if fanout is not None:
            val = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16
            if fanout == NEW_GROUP:
                val |= PACKET_FANOUT_FLAG_UNIQUEID << 16
            else:
                val |= <int>fanout
            if setsockopt(self.s.fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0:
                self._fail(f"{iface}: fanout group {'(new)' if fanout == NEW_GROUP else fanout}")
            if getsockopt(self.s.fd, SOL_PACKET, PACKET_FANOUT, &val, &vlen) < 0:
                self._fail(f"{iface}: fanout group id")
            self.fanout_id = val & 0xFFFF

    cdef _attach(self, const sock_filter *insns, int n):
        cdef sock_fprog prog
        prog.len = n
        prog.filter = <sock_filter *>insns
        if setsockopt(self.s.fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0:
            self._fail(f"{self.iface}: attaching the BPF filter")

    def set_filter(self, bytes program):
        """Replace the filter: a classic BPF program, or None to keep every packet. Call it on
        every member of a fanout group once all have joined."""
        cdef const uint8_t[::1] p
        cdef sock_filter accept[1]
        if program is not None and (len(program) == 0 or len(program) % 8 or len(program) > 8 * 4096):
            raise ValueError("a BPF program is 1 to 4096 instructions of 8 bytes")
        if program is None:
            accept[0].code = 0x06                   # BPF_RET | BPF_K: the whole packet
            accept[0].jt = accept[0].jf = 0
            accept[0].k = 0x40000
            self._attach(accept, 1)
        else:
            p = program
            self._attach(<const sock_filter *>&p[0], len(program) // 8)

    def _fail(self, what):
        err = errno
        self.close()
        raise OSError(err, f"{what}: {os.strerror(err)}")

    @property
    def linktype(self):
        return LINKTYPE_LINUX_SLL if self.s.cooked else LINKTYPE_ETHERNET

    @property
    def cooked(self):
        return self.s.cooked

    @cooked.setter
    def cooked(self, bint value):
        self.s.cooked = value

    @property
    def block_size(self):
        return self.s.block_size

    @property
    def blocks(self):
        return self.s.block_nr

    @property
    def closed(self):
        return self.s.fd < 0

    def stats(self):
        """Counters since the socket opened. The kernel's: packets that passed the filter
        (kernel_packets), of them dropped because the ring had no free block (kernel_drops), and
        how often the ring filled up (ring_full); this side's: packets, bytes and blocks copied
        out, the time spent copying (copy_s), socket errors."""
        cdef tpacket_stats_v3 st
        cdef socklen_t n = sizeof(st)
        if self.s.fd >= 0 and getsockopt(self.s.fd, SOL_PACKET, PACKET_STATISTICS, &st, &n) == 0:
            # the kernel counts since the last read and includes the drops in tp_packets
            self.k_packets += st.tp_packets
            self.k_drops += st.tp_drops
            self.k_freezes += st.tp_freeze_q_cnt
        return {"kernel_packets": self.k_packets, "kernel_drops": self.k_drops, "ring_full": self.k_freezes,
                "packets": self.s.packets, "bytes": self.s.bytes, "blocks": self.s.blocks,
                "copy_s": self.s.copy_ns / 1e9, "socket_errors": self.s.errors, "outgoing_skipped": self.s.outgoing,
                "last_error": os.strerror(self.s.last_errno) if self.s.last_errno else None}

    def close(self):
        """Closes the socket and unmaps the ring; the counters stay readable."""
        if self.s.fd >= 0:
            self.stats()
        if self.s.map != NULL:
            munmap(self.s.map, self.s.map_len)
            self.s.map = NULL
        if self.s.fd >= 0:
            close(self.s.fd)
            self.s.fd = -1

    def __dealloc__(self):
        if self.s.map != NULL:
            munmap(self.s.map, self.s.map_len)
        if self.s.fd >= 0:
            close(self.s.fd)
