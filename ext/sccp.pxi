# SCCP connectionless (Q.713): UDT, XUDT, LUDT with relative pointers, party
# addresses (GT indicator 1-4, TT, NP, ES, NAI, digits, SSN, PC), and bounded
# reassembly of segmented XUDT messages.

cdef int64_t SEG_TIMEOUT_NS = 30000000000


cdef int sccp_param(const uint8_t *p, Py_ssize_t n, Py_ssize_t ptr_at, int wide,
                    const uint8_t **v, Py_ssize_t *vlen) noexcept nogil:
    """Follow the pointer at ptr_at (relative to itself) to a length-prefixed parameter."""
    cdef Py_ssize_t o, ln
    if wide:                                           # 2-octet pointers count from their second octet
        if ptr_at + 2 > n:
            return 1
        o = ptr_at + 1 + le16(p + ptr_at)
    else:
        if ptr_at + 1 > n:
            return 1
        o = ptr_at + p[ptr_at]
    if o == ptr_at + (1 if wide else 0) or o >= n:
        return 1
    if wide == 2:                                      # LUDT long data: 2-octet length
        if o + 2 > n:
            return 1
        ln = le16(p + o)
        o += 2
    else:
        ln = p[o]
        o += 1
    if o + ln > n:
        return 1
    v[0] = p + o
    vlen[0] = ln
    return 0


cdef int sccp_address(Dec *d, const uint8_t *p, Py_ssize_t n, Addr *a) noexcept nogil:
    cdef uint8_t ai
    cdef Py_ssize_t pos = 1
    cdef int odd = 0, ndig, pc_ind, ssn_ind
    a.gt = NO_DIGITS
    a.has_pc = 0
    a.ssn = 0
    if n < 1:
        return 1
    ai = p[0]
    if d.mtp3 == MTP3_ANSI:
        ssn_ind = ai & 1
        pc_ind = ai & 2
        if ssn_ind:
            if pos + 1 > n:
                return 1
            a.ssn = p[pos]
            pos += 1
        if pc_ind:
            if pos + 3 > n:
                return 1
            a.pc = le24(p + pos)
            a.has_pc = 1
            pos += 3
    else:
        pc_ind = ai & 1
        ssn_ind = ai & 2
        if pc_ind:
            if pos + 2 > n:
                return 1
            a.pc = le16(p + pos) if d.mtp3 == MTP3_JAPAN else (le16(p + pos) & 0x3FFF)
            a.has_pc = 1
            pos += 2
        if ssn_ind:
            if pos + 1 > n:
                return 1
            a.ssn = p[pos]
            pos += 1
    a.gti = (ai >> 2) & 0xF
    if a.gti == 0:
        return 0
    if d.mtp3 == MTP3_ANSI:
        # ANSI: 1 = TT + numbering plan/encoding, 2 = TT only
        if a.gti == 1:
            if pos + 2 > n:
                return 1
            a.tt = p[pos]
            odd = (p[pos + 1] & 0xF) == 1
            pos += 2
        elif a.gti == 2:
            if pos + 1 > n:
                return 1
            a.tt = p[pos]
            pos += 1
        else:
            return 0
    elif a.gti == 1:                                   # odd/even + NAI
        if pos + 1 > n:
            return 1
        odd = p[pos] >> 7
        pos += 1
    elif a.gti == 2:                                   # TT
        if pos + 1 > n:
            return 1
        a.tt = p[pos]
        pos += 1
    elif a.gti == 3:                                   # TT, NP/ES
        if pos + 2 > n:
            return 1
        a.tt = p[pos]
        odd = (p[pos + 1] & 0xF) == 1
        pos += 2
    elif a.gti == 4:                                   # TT, NP/ES, NAI
        if pos + 3 > n:
            return 1
        a.tt = p[pos]
        odd = (p[pos + 1] & 0xF) == 1
        pos += 3
    else:
        return 0
    ndig = <int>(2 * (n - pos) - odd)
    a.gt = tbcd(p + pos, n - pos, ndig)
    return 0


cdef int sccp(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint8_t mt
    cdef const uint8_t *called
    cdef const uint8_t *calling
    cdef const uint8_t *data
    cdef const uint8_t *opt = NULL
    cdef Py_ssize_t called_n, calling_n, data_n, opt_at = 0
    d.layer_in[L_SCCP] += 1
    if n < 1:
        return anomaly(d, AN_SCCP_TRUNCATED, p)
    mt = p[0]
    if mt == 0x09:                                     # UDT
        if n < 5:
            return anomaly(d, AN_SCCP_TRUNCATED, p)
        if (sccp_param(p, n, 2, 0, &called, &called_n) or sccp_param(p, n, 3, 0, &calling, &calling_n)
                or sccp_param(p, n, 4, 0, &data, &data_n)):
            return anomaly(d, AN_SCCP_BAD_POINTER, p)
    elif mt == 0x11:                                   # XUDT
        if n < 7:
            return anomaly(d, AN_SCCP_TRUNCATED, p)
        if (sccp_param(p, n, 3, 0, &called, &called_n) or sccp_param(p, n, 4, 0, &calling, &calling_n)
                or sccp_param(p, n, 5, 0, &data, &data_n)):
            return anomaly(d, AN_SCCP_BAD_POINTER, p)
        if p[6]:
            opt_at = 6 + p[6]
    elif mt == 0x13:                                   # LUDT
        if n < 11:
            return anomaly(d, AN_SCCP_TRUNCATED, p)
        if (sccp_param(p, n, 3, 1, &called, &called_n) or sccp_param(p, n, 5, 1, &calling, &calling_n)
                or sccp_param(p, n, 7, 2, &data, &data_n)):
            return anomaly(d, AN_SCCP_BAD_POINTER, p)
        if le16(p + 9):
            opt_at = 10 + le16(p + 9)
    elif mt == 0x0A or mt == 0x12 or mt == 0x14:
        return anomaly(d, AN_SCCP_SERVICE, p)
    elif mt >= 0x01 and mt <= 0x10:
        return anomaly(d, AN_SCCP_CONNECTION, p)
    else:
        return anomaly(d, AN_SCCP_UNKNOWN_TYPE, p)
    if sccp_address(d, called, called_n, &d.pkt.called) or sccp_address(d, calling, calling_n, &d.pkt.calling):
        return anomaly(d, AN_SCCP_BAD_ADDRESS, p)
    if d.pkt.called.ssn == 1:
        return anomaly(d, AN_SCCP_MANAGEMENT, p)
    if opt_at:
        while opt_at < n and p[opt_at] != 0:           # optional parameters until end-of-optional
            if opt_at + 2 > n or opt_at + 2 + p[opt_at + 1] > n:
                return anomaly(d, AN_SCCP_BAD_POINTER, p + opt_at)
            if p[opt_at] == 0x10 and p[opt_at + 1] == 4:
                opt = p + opt_at + 2
                break
            opt_at += 2 + p[opt_at + 1]
    if opt != NULL and not ((opt[0] & 0x80) and (opt[0] & 0x0F) == 0):
        return sccp_segment(d, opt, data, data_n)
    d.layer_ok[L_SCCP] += 1
    return tcap(d, data, data_n)


cdef inline uint64_t addr_key(const Addr *a, uint32_t mtp_pc) noexcept nogil:
    """A party's identity for table keys: its GT digits, else PC and SSN."""
    if a.gt != NO_DIGITS:
        return a.gt
    return 0xE000000000000000ULL | (<uint64_t>(a.pc if a.has_pc else mtp_pc) << 8) | a.ssn


cdef int sccp_segment(Dec *d, const uint8_t *seg, const uint8_t *data, Py_ssize_t n) noexcept nogil:
    cdef int first = seg[0] & 0x80
    cdef uint8_t remaining = seg[0] & 0x0F
    cdef uint32_t ref = be24(seg + 1)
    cdef uint64_t key = addr_key(&d.pkt.calling, d.pkt.opc) ^ (<uint64_t>d.pkt.opc << 40)
    cdef int i, slot = -1, free_slot = -1
    cdef SccpSeg *s
    cdef int64_t now = d.pkt.ts_ns
    for i in range(SEG_SLOTS):
        s = &d.segs[i]
        if s.used and now - s.first_ns > SEG_TIMEOUT_NS:
            s.used = 0
            anomaly(d, AN_SCCP_SEG_EVICTED, seg)
        if s.used and s.key == key and s.ref == ref:
            slot = i
        elif not s.used and free_slot < 0:
            free_slot = i
    if first:
        if slot < 0:
            if free_slot >= 0:
                slot = free_slot
            else:
                slot = 0
                for i in range(1, SEG_SLOTS):
                    if d.segs[i].first_ns < d.segs[slot].first_ns:
                        slot = i
                anomaly(d, AN_SCCP_SEG_EVICTED, seg)
        s = &d.segs[slot]
        if s.buf == NULL:
            s.buf = <uint8_t *>malloc(SEG_MAX)
            if s.buf == NULL:
                return anomaly(d, AN_SCCP_SEG_EVICTED, seg)
        s.used = 1
        s.key = key
        s.ref = ref
        s.first_ns = now
        s.len = 0
    elif slot < 0 or d.segs[slot].remaining != remaining + 1:
        if slot >= 0:
            d.segs[slot].used = 0
        return anomaly(d, AN_SCCP_SEG_LOST, seg)
    s = &d.segs[slot]
    if s.len + n > SEG_MAX:
        s.used = 0
        return anomaly(d, AN_SCCP_SEG_LOST, seg)
    memcpy(s.buf + s.len, data, n)
    s.len += <int32_t>n
    s.remaining = remaining
    if remaining:
        return anomaly(d, AN_SCCP_SEG_HELD, seg)
    s.used = 0
    d.layer_ok[L_SCCP] += 1
    return tcap(d, s.buf, s.len)
