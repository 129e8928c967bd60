# SCTP: every DATA chunk of a packet, chunk padding, and reassembly of
# fragmented user messages (B/E flags) per association and stream, bounded.

cdef int64_t SCTP_TIMEOUT_NS = 60000000000


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
            elif (cflags & 3) == 3:
                sigtran(d, be32(p + pos + 12), p + pos + 16, clen - 16)
            else:
                sctp_fragment(d, p + pos, clen, cflags)
        elif ctype == 64:
            anomaly(d, AN_SCTP_IDATA, p + pos)
        pos += (clen + 3) & ~3
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


cdef int sigtran(Dec *d, uint32_t ppid, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """Dispatch an SCTP user message on its PPID (or the well-known port when PPID is 0)."""
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
    if ppid == 3:
        return m3ua(d, p, n)
    if ppid == 2:
        return m2ua(d, p, n)
    if ppid == 5:
        return m2pa(d, p, n)
    if ppid == 4:
        return anomaly(d, AN_SCTP_SUA, p)
    return anomaly(d, AN_SCTP_PPID_OTHER, p)
