# M3UA (RFC 4666), M2UA (RFC 3331), M2PA (RFC 4165) and the MTP3 routing label
# (ITU 14-bit, ANSI 24-bit, Japanese 16-bit point codes).

cdef int m3ua(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t ln, pos = 8, plen
    cdef uint16_t tag
    d.layer_in[L_M3UA] += 1
    if n < 8:
        return anomaly(d, AN_M3UA_TRUNCATED, p)
    ln = be32(p + 4)
    if p[0] != 1 or ln < 8:
        return anomaly(d, AN_M3UA_MALFORMED, p)
    if ln > n:
        return anomaly(d, AN_M3UA_TRUNCATED, p)
    if p[2] != 1 or p[3] != 1:                         # transfer class, DATA
        return anomaly(d, AN_M3UA_NOT_DATA, p)
    while ln - pos >= 4:
        tag = be16(p + pos)
        plen = be16(p + pos + 2)
        if plen < 4:
            return anomaly(d, AN_M3UA_MALFORMED, p + pos)
        if plen > ln - pos:
            return anomaly(d, AN_M3UA_TRUNCATED, p + pos)
        if tag == 0x0210:                              # Protocol Data
            if plen < 16:
                return anomaly(d, AN_M3UA_MALFORMED, p + pos)
            d.pkt.opc = be32(p + pos + 4)
            d.pkt.dpc = be32(p + pos + 8)
            d.pkt.si = p[pos + 12]
            d.layer_ok[L_M3UA] += 1
            return mtp_user(d, p[pos + 12], p + pos + 16, plen - 16)
        if (tag == 0x0002 or tag == 0x0003) and plen > 5:
            # draft-ietf-sigtran-m3ua-06 Protocol Data 1 / 2: a whole MTP3 message (2: priority
            # octet first). RFC 4666 leaves these tags unassigned, so no option is needed.
            d.layer_ok[L_M3UA] += 1
            return mtp3(d, p + pos + (4 if tag == 0x0002 else 5), plen - (4 if tag == 0x0002 else 5))
        pos += (plen + 3) & ~3
    return anomaly(d, AN_M3UA_NO_DATA, p)


cdef int m2ua(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t ln, pos = 8, plen
    cdef uint16_t tag
    d.layer_in[L_M2UA] += 1
    if n < 8:
        return anomaly(d, AN_M2UA_TRUNCATED, p)
    ln = be32(p + 4)
    if p[0] != 1 or ln < 8:
        return anomaly(d, AN_M2UA_MALFORMED, p)
    if ln > n:
        return anomaly(d, AN_M2UA_TRUNCATED, p)
    if p[2] != 6 or p[3] != 1:                         # MAUP DATA
        return anomaly(d, AN_M2UA_NOT_DATA, p)
    while ln - pos >= 4:
        tag = be16(p + pos)
        plen = be16(p + pos + 2)
        if plen < 4:
            return anomaly(d, AN_M2UA_MALFORMED, p + pos)
        if plen > ln - pos:
            return anomaly(d, AN_M2UA_TRUNCATED, p + pos)
        if tag == 0x0300:                              # Protocol Data 1
            d.layer_ok[L_M2UA] += 1
            return mtp3(d, p + pos + 4, plen - 4)
        if tag == 0x0301 and plen > 5:                 # Protocol Data 2 (TTC): priority octet first
            d.layer_ok[L_M2UA] += 1
            return mtp3(d, p + pos + 5, plen - 5)
        pos += (plen + 3) & ~3
    return anomaly(d, AN_M2UA_NOT_DATA, p)


cdef int m2pa(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t ln
    d.layer_in[L_M2PA] += 1
    if n < 16:
        return anomaly(d, AN_M2PA_TRUNCATED, p)
    ln = be32(p + 4)
    if p[0] != 1 or p[2] != 11 or ln < 16:
        return anomaly(d, AN_M2PA_MALFORMED, p)
    if ln > n:
        return anomaly(d, AN_M2PA_TRUNCATED, p)
    if p[3] != 1 or ln <= 17:                          # link status, or user data without data
        return anomaly(d, AN_M2PA_NOT_DATA, p)
    d.layer_ok[L_M2PA] += 1
    return mtp3(d, p + 17, ln - 17)                    # priority octet, then the MTP3 message


cdef int mtp3(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint8_t si
    cdef uint32_t label
    cdef Py_ssize_t hdr
    d.layer_in[L_MTP3] += 1
    hdr = 8 if d.mtp3 == MTP3_ANSI else (6 if d.mtp3 == MTP3_JAPAN else 5)
    if n < hdr:
        return anomaly(d, AN_MTP3_TRUNCATED, p)
    si = p[0] & 0xF
    if d.mtp3 == MTP3_ANSI:
        d.pkt.dpc = le24(p + 1)
        d.pkt.opc = le24(p + 4)
    elif d.mtp3 == MTP3_JAPAN:
        d.pkt.dpc = le16(p + 1)
        d.pkt.opc = le16(p + 3)
    else:
        label = le32(p + 1)
        d.pkt.dpc = label & 0x3FFF
        d.pkt.opc = (label >> 14) & 0x3FFF
    d.pkt.si = si
    d.layer_ok[L_MTP3] += 1
    return mtp_user(d, si, p + hdr, n - hdr)


cdef int mtp_user(Dec *d, uint8_t si, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    if si == 3:
        return sccp(d, p, n)
    if si == 5:
        return isup(d, p, n)
    if si == 13:
        d.layer_in[L_ISUP] += 1
        return anomaly(d, AN_ISUP_BICC, p)
    if si <= 2:
        return anomaly(d, AN_MTP3_MANAGEMENT, p)
    return anomaly(d, AN_MTP3_OTHER_SI, p)
