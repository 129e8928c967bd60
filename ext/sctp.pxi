# SCTP: every DATA chunk of a packet, chunk padding, and reassembly of
# fragmented user messages (B/E flags) per association and stream, bounded.

cdef int64_t SCTP_TIMEOUT_NS = 60000000000


cdef int tsn_seen(Dec *d, uint32_t vtag, uint32_t tsn) noexcept nogil:
    """Whether this DATA chunk's TSN was seen before on the association (a retransmission).

    Associations are keyed by verification tag and ports, not addresses: a multi-homed peer
    retransmits on another path. The last 256 TSNs below the highest are remembered. Chunks
    with verification tag 0 are not checked: no live association sends those, but text2pcap
    and replay tools do, with repeated TSNs (tshark does not check them either)."""
    cdef Assocs *x = &d.assoc
    cdef uint64_t ports = (<uint64_t>d.pkt.sport << 16) | d.pkt.dport
    cdef int32_t i = idx_get(&x.idx, vtag, ports)
    cdef Assoc *a
    cdef int32_t diff
    cdef int k, w, b
    if i < 0:
        i = pool_take(&x.pool)
        if i < 0:                                      # full: forget the least recently used
            a = &x.e[x.pool.head]
            idx_del(&x.idx, a.vtag, a.ports)
            pool_give(&x.pool, x.pool.head)
            i = pool_take(&x.pool)
        idx_put(&x.idx, vtag, ports, i)
        a = &x.e[i]
        a.vtag = vtag
        a.ports = ports
        a.top = tsn
        a.seen[0] = 1
        a.seen[1] = 0
        a.seen[2] = 0
        a.seen[3] = 0
        return 0
    pool_touch(&x.pool, i)
    a = &x.e[i]
    diff = <int32_t>(a.top - tsn)
    if diff < 0:                                       # newer: slide the window up
        k = -diff
        if k >= 256:
            a.seen[0] = a.seen[1] = a.seen[2] = a.seen[3] = 0
        else:
            w = k >> 6
            b = k & 63
            for i in range(3, -1, -1):
                a.seen[i] = (a.seen[i - w] << b if i - w >= 0 else 0) | \
                    ((a.seen[i - w - 1] >> (64 - b)) if b and i - w - 1 >= 0 else 0)
        a.top = tsn
        a.seen[0] |= 1
        return 0
    if diff >= 256:                                    # older than the window: cannot tell
        return 0
    w = diff >> 6
    b = diff & 63
    if a.seen[w] & (<uint64_t>1 << b):
        return 1
    a.seen[w] |= <uint64_t>1 << b
    return 0


cdef int sctp(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t pos = 12, clen
    cdef uint8_t ctype, cflags
    d.layer_in[L_SCTP] += 1
    if n < 12:
        return anomaly(d, AN_SCTP_TRUNCATED, p)
    d.pkt.sport = be16(p)
    d.pkt.dport = be16(p + 2)
    d.layer_ok[L_SCTP] += 1
    while n - pos >= 4:
        ctype = p[pos]
        cflags = p[pos + 1]
        clen = be16(p + pos + 2)
        if clen < 4:
            return anomaly(d, AN_SCTP_BAD_CHUNK, p + pos)
        if clen > n - pos:
            return anomaly(d, AN_SCTP_TRUNCATED, p + pos)
        if ctype == 0:
            if clen < 16:
                anomaly(d, AN_SCTP_BAD_CHUNK, p + pos)
            elif be32(p + 4) and tsn_seen(d, be32(p + 4), be32(p + pos + 4)):
                anomaly(d, AN_SCTP_RETRANSMISSION, p + pos)
            elif (cflags & 3) == 3:
                sigtran(d, be32(p + pos + 12), p + pos + 16, clen - 16)
            elif not ss7_ppid(d, be32(p + pos + 12)):  # every fragment names its PPID: no need to keep others
                anomaly(d, AN_SCTP_PPID_OTHER, p + pos)
            else:
                sctp_fragment(d, p + pos, clen, cflags)
        elif ctype == 64:
            anomaly(d, AN_SCTP_IDATA, p + pos)
        pos += (clen + 3) & ~3
    if pos == 12 or (pos < n and n - pos < 4):        # no chunk at all, or the start of one cut off
        return anomaly(d, AN_SCTP_TRUNCATED, p + pos)
    return 0


cdef int sctp_fragment(Dec *d, const uint8_t *c, Py_ssize_t clen, uint8_t cflags) noexcept nogil:
    cdef uint32_t tsn = be32(c + 4)
    cdef uint16_t sid = be16(c + 8)
    cdef const uint8_t *data = c + 16
    cdef Py_ssize_t dlen = clen - 16
    cdef int i, slot = -1, free_slot = -1
    cdef SctpPart *s
    cdef int64_t now = d.pkt.ts_ns
    for i in range(SCTP_SLOTS):
        s = &d.sctp[i]
        if s.used and now - s.first_ns > SCTP_TIMEOUT_NS:
            s.used = 0
            anomaly(d, AN_SCTP_FRAG_EVICTED, c)
        if (s.used and s.sid == sid and s.src == d.pkt.ip_src and s.dst == d.pkt.ip_dst
                and s.sport == d.pkt.sport and s.dport == d.pkt.dport):
            slot = i
        elif not s.used and free_slot < 0:
            free_slot = i
    if cflags & 2:                                     # first fragment
        if slot >= 0:
            anomaly(d, AN_SCTP_FRAG_LOST, c)
        elif free_slot >= 0:
            slot = free_slot
        else:
            slot = 0
            for i in range(1, SCTP_SLOTS):
                if d.sctp[i].first_ns < d.sctp[slot].first_ns:
                    slot = i
            anomaly(d, AN_SCTP_FRAG_EVICTED, c)
        s = &d.sctp[slot]
        if s.buf == NULL:
            s.buf = <uint8_t *>malloc(SCTP_MAX)
            if s.buf == NULL:
                return anomaly(d, AN_SCTP_FRAG_EVICTED, c)
        s.used = 1
        s.src = d.pkt.ip_src
        s.dst = d.pkt.ip_dst
        s.sport = d.pkt.sport
        s.dport = d.pkt.dport
        s.sid = sid
        s.ppid = be32(c + 12)
        s.first_ns = now
        s.len = 0
    elif slot < 0 or d.sctp[slot].next_tsn != tsn:
        if slot >= 0:
            d.sctp[slot].used = 0
        return anomaly(d, AN_SCTP_FRAG_LOST, c)
    s = &d.sctp[slot]
    if s.len + dlen > SCTP_MAX:
        s.used = 0
        return anomaly(d, AN_SCTP_FRAG_TOO_BIG, c)
    memcpy(s.buf + s.len, data, dlen)
    s.len += <int32_t>dlen
    s.next_tsn = tsn + 1
    if not (cflags & 1):
        return anomaly(d, AN_SCTP_FRAG_HELD, c)
    s.used = 0
    return sigtran(d, s.ppid, s.buf, s.len)


cdef uint32_t ss7_ppid(Dec *d, uint32_t ppid) noexcept nogil:
    """The PPID, or for PPID 0 the one the well-known port implies; 0 when not SS7."""
    cdef uint16_t sp = d.pkt.sport, dp = d.pkt.dport
    if ppid == 0:
        if sp == 2905 or dp == 2905:
            ppid = 3
        elif sp == 3565 or dp == 3565:
            ppid = 5
        elif sp == 2904 or dp == 2904:
            ppid = 2
        elif sp == 14001 or dp == 14001:
            ppid = 4
    return ppid if 2 <= ppid <= 5 else 0


cdef int sigtran(Dec *d, uint32_t ppid, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """Dispatch an SCTP user message on its PPID (or the well-known port when PPID is 0)."""
    ppid = ss7_ppid(d, ppid)
    if ppid == 3:
        return m3ua(d, p, n)
    if ppid == 2:
        return m2ua(d, p, n)
    if ppid == 5:
        return m2pa(d, p, n)
    if ppid == 4:
        return anomaly(d, AN_SCTP_SUA, p)
    return anomaly(d, AN_SCTP_PPID_OTHER, p)
