# IPv4 (with bounded fragment reassembly) and IPv6 (extension headers).

cdef int64_t FRAG_TIMEOUT_NS = 30000000000


cdef inline uint32_t fold6(const uint8_t *a) noexcept nogil:
    """An IPv6 address folded to 32 bits for the record's src/dst."""
    return be32(a) ^ be32(a + 4) ^ be32(a + 8) ^ be32(a + 12)


cdef int ip_any(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    if n < 1:
        return anomaly(d, AN_IP_TRUNCATED, p)
    if (p[0] >> 4) == 4:
        return ipv4(d, p, n)
    if (p[0] >> 4) == 6:
        return ipv6(d, p, n)
    d.layer_in[L_IP] += 1
    return anomaly(d, AN_IP_MALFORMED, p)


cdef int ipv4(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t ihl, tot
    cdef uint16_t fl
    d.layer_in[L_IP] += 1
    if n < 20:
        return anomaly(d, AN_IP_TRUNCATED, p)
    ihl = (p[0] & 0xF) * 4
    tot = be16(p + 2)
    if (p[0] >> 4) != 4 or ihl < 20 or tot < ihl:
        return anomaly(d, AN_IP_MALFORMED, p)
    if ihl > n:
        return anomaly(d, AN_IP_TRUNCATED, p)
    if tot > n:
        tot = n            # snapped: the layers above report what is missing
    d.pkt.ip_src = be32(p + 12)
    d.pkt.ip_dst = be32(p + 16)
    fl = be16(p + 6)
    if fl & 0x3FFF:        # more fragments, or an offset
        return ipv4_fragment(d, p, ihl, tot, fl)
    d.layer_ok[L_IP] += 1
    return l4(d, p[9], p + ihl, tot - ihl)


cdef int ipv4_fragment(Dec *d, const uint8_t *p, Py_ssize_t ihl, Py_ssize_t tot, uint16_t fl) noexcept nogil:
    cdef uint16_t ident = be16(p + 4)
    cdef uint8_t proto = p[9]
    cdef Py_ssize_t off = (fl & 0x1FFF) * 8
    cdef Py_ssize_t ln = tot - ihl
    cdef int i, slot = -1, free_slot = -1
    cdef Frag *f
    cdef int64_t now = d.pkt.ts_ns
    for i in range(FRAG_SLOTS):
        f = &d.frags[i]
        if f.used and now - f.first_ns > FRAG_TIMEOUT_NS:
            f.used = 0
            anomaly(d, AN_IP_FRAG_EVICTED, p)
        if f.used and f.src == d.pkt.ip_src and f.dst == d.pkt.ip_dst and f.id == ident and f.proto == proto:
            slot = i
        elif not f.used and free_slot < 0:
            free_slot = i
    if slot < 0:
        if free_slot >= 0:
            slot = free_slot
        else:
            slot = 0
            for i in range(1, FRAG_SLOTS):
                if d.frags[i].first_ns < d.frags[slot].first_ns:
                    slot = i
            anomaly(d, AN_IP_FRAG_EVICTED, p)
        f = &d.frags[slot]
        if f.buf == NULL:
            f.buf = <uint8_t *>malloc(FRAG_MAX)
            if f.buf == NULL:
                return anomaly(d, AN_IP_FRAG_EVICTED, p)
        f.used = 1
        f.src = d.pkt.ip_src
        f.dst = d.pkt.ip_dst
        f.id = ident
        f.proto = proto
        f.first_ns = now
        f.total = -1
        f.got = 0
    f = &d.frags[slot]
    if off + ln > FRAG_MAX or (f.total >= 0 and off + ln > f.total):
        f.used = 0
        return anomaly(d, AN_IP_FRAG_BAD, p)
    memcpy(f.buf + off, p + ihl, ln)
    f.got += <int32_t>ln
    if not (fl & 0x2000):
        f.total = <int32_t>(off + ln)
    if f.total < 0 or f.got < f.total:
        return anomaly(d, AN_IP_FRAG_HELD, p)
    f.used = 0             # the buffer stays valid while the datagram is decoded
    d.layer_ok[L_IP] += 1
    return l4(d, proto, f.buf, f.total)


cdef int ipv6(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t pos = 40, plen, hl
    cdef uint8_t nh
    cdef int hops = 0
    d.layer_in[L_IP] += 1
    if n < 40:
        return anomaly(d, AN_IP_TRUNCATED, p)
    plen = be16(p + 4)
    if 40 + plen < n:
        n = 40 + plen
    d.pkt.ip_src = fold6(p + 8)
    d.pkt.ip_dst = fold6(p + 24)
    nh = p[6]
    while nh == 0 or nh == 43 or nh == 60 or nh == 51 or nh == 44 or nh == 135:
        if nh == 44:
            return anomaly(d, AN_IP6_FRAGMENT, p + pos)
        if n - pos < 8 or hops == 8:
            return anomaly(d, AN_IP_TRUNCATED, p + pos)
        hl = (p[pos + 1] + 2) * 4 if nh == 51 else (p[pos + 1] + 1) * 8
        if n - pos < hl:
            return anomaly(d, AN_IP_TRUNCATED, p + pos)
        nh = p[pos]
        pos += hl
        hops += 1
    d.layer_ok[L_IP] += 1
    return l4(d, nh, p + pos, n - pos)


cdef int l4(Dec *d, uint8_t proto, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint8_t kind
    if proto == 132:
        return sctp(d, p, n)
    if proto == 17:
        if n < 8:
            return anomaly(d, AN_IP_UDP_TRUNCATED, p)
        d.pkt.sport = be16(p)
        d.pkt.dport = be16(p + 2)
        kind = d.gtp_port[d.pkt.dport] or d.gtp_port[d.pkt.sport]
        if kind:
            return gtp(d, kind, p + 8, n - 8)
    elif proto == 6 and n >= 4 and (d.gtp_port[be16(p + 2)] == PORT_GTPC or d.gtp_port[be16(p)] == PORT_GTPC):
        return tcp(d, p, n)
    return anomaly(d, AN_IP_NOT_SIGNALING, p)


cdef int tcp(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """A TCP segment to or from a GTP-C port (GTP-C is UDP, TS 29.274 4.2, but TCP is seen)."""
    cdef Py_ssize_t hl
    if n < 20:
        return anomaly(d, AN_IP_TCP_TRUNCATED, p)
    hl = (p[12] >> 4) * 4
    if hl < 20:
        return anomaly(d, AN_IP_TCP_MALFORMED, p)
    if hl > n:
        return anomaly(d, AN_IP_TCP_TRUNCATED, p)
    d.pkt.sport = be16(p)
    d.pkt.dport = be16(p + 2)
    if hl == n or p[13] & 0x04:                        # no data (handshake, ACK, FIN), or a reset
        return anomaly(d, AN_IP_NOT_SIGNALING, p)
    return gtp_tcp(d, p[13], be32(p + 4), p + hl, n - hl)
