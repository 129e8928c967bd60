# Link layers: Ethernet (802.1Q/QinQ), Linux SLL and SLL2, raw IP, NULL/loopback,
# MTP2 (140, 139 with pseudo-header), MTP3 (141), SCCP (142), bare SCTP (248).

cdef int link(Dec *d, uint32_t linktype, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t fam
    d.layer_in[L_LINK] += 1
    if linktype == 1:                                  # Ethernet
        if n < 14:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        return ethertype(d, be16(p + 12), p + 14, n - 14)
    if linktype == 113:                                # Linux cooked
        if n < 16:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        return ethertype(d, be16(p + 14), p + 16, n - 16)
    if linktype == 276:                                # Linux cooked v2
        if n < 20:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        return ethertype(d, be16(p), p + 20, n - 20)
    if linktype == 101 or linktype == 12 or linktype == 14 or linktype == 228 or linktype == 229:
        d.layer_ok[L_LINK] += 1
        return ip_any(d, p, n)
    if linktype == 0 or linktype == 108:               # NULL / OpenBSD loopback
        if n < 4:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        fam = le32(p)
        if fam > 0xFFFF:
            fam = be32(p)
        d.layer_ok[L_LINK] += 1
        if fam == 2:
            return ipv4(d, p + 4, n - 4)
        if fam == 24 or fam == 28 or fam == 30 or fam == 10:
            return ipv6(d, p + 4, n - 4)
        return anomaly(d, AN_LINK_NOT_IP, p)
    if linktype == 140:
        return mtp2(d, p, n, 0)
    if linktype == 139:                                # pseudo-header: sent, annex A used, link
        if n < 4:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        return mtp2(d, p + 4, n - 4, p[1])
    if linktype == 141:
        d.layer_ok[L_LINK] += 1
        return mtp3(d, p, n)
    if linktype == 142:
        d.layer_ok[L_LINK] += 1
        return sccp(d, p, n)
    if linktype == 248:
        d.layer_ok[L_LINK] += 1
        return sctp(d, p, n)
    return anomaly(d, AN_LINK_UNSUPPORTED, p)


cdef int ethertype(Dec *d, uint16_t et, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef int tags = 0
    while et == 0x8100 or et == 0x88A8 or et == 0x9100:
        if n < 4 or tags == 4:
            return anomaly(d, AN_LINK_TRUNCATED, p)
        et = be16(p + 2)
        p += 4
        n -= 4
        tags += 1
    if et == 0x0800:
        d.layer_ok[L_LINK] += 1
        return ipv4(d, p, n)
    if et == 0x86DD:
        d.layer_ok[L_LINK] += 1
        return ipv6(d, p, n)
    return anomaly(d, AN_LINK_NOT_IP, p)


cdef int mtp2(Dec *d, const uint8_t *p, Py_ssize_t n, int annex_a) noexcept nogil:
    """MTP2 signal unit without FCS: BSN, FSN, LI (Annex A: 12-bit numbers, 9-bit LI)."""
    cdef Py_ssize_t hdr = 6 if annex_a else 3
    cdef int li
    if n < hdr:
        return anomaly(d, AN_LINK_TRUNCATED, p)
    li = (le16(p + 4) & 0x1FF) if annex_a else (p[2] & 0x3F)
    if li < 3:
        return anomaly(d, AN_MTP2_NOT_MSU, p)
    d.layer_ok[L_LINK] += 1
    return mtp3(d, p + hdr, n - hdr)
