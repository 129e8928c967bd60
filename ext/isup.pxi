# ISUP (ITU-T Q.763): a call gives a call-attempt record at its IAM and a call-end record at its
# release, with the answer (ANM/CON), its time and the release cause (REL) folded in; calls are
# keyed by point codes and CIC.

cdef enum:
    ISUP_IAM = 0x01
    ISUP_ACM = 0x06
    ISUP_CON = 0x07
    ISUP_ANM = 0x09
    ISUP_REL = 0x0C
    ISUP_RLC = 0x10


cdef inline int isup_var(const uint8_t *p, Py_ssize_t n, Py_ssize_t ptr_at, const uint8_t **v,
                         Py_ssize_t *vlen) noexcept nogil:
    """Mandatory variable parameter through its pointer (relative to the pointer octet)."""
    cdef Py_ssize_t o
    if ptr_at >= n or p[ptr_at] == 0:
        return 1
    o = ptr_at + p[ptr_at]
    if o >= n or o + 1 + p[o] > n:
        return 1
    v[0] = p + o + 1
    vlen[0] = p[o]
    return 0


cdef int isup(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t cic
    cdef uint8_t mt
    cdef const uint8_t *b
    cdef const uint8_t *v
    cdef Py_ssize_t bn, vlen, o
    cdef tp_record r
    cdef tp_record *out
    cdef Tlv num
    cdef Dlg *e
    cdef uint64_t key, pcs
    cdef uint32_t lo = d.pkt.opc, hi = d.pkt.dpc
    cdef uint8_t calling_nai = 0
    d.layer_in[L_ISUP] += 1
    if n < 3:
        return anomaly(d, AN_ISUP_TRUNCATED, p)
    cic = le16(p) & (0x3FFF if d.mtp3 == MTP3_ANSI else 0x0FFF)
    mt = p[2]
    b = p + 3
    bn = n - 3
    if mt != ISUP_IAM and mt != ISUP_ACM and mt != ISUP_CON and mt != ISUP_ANM and mt != ISUP_REL and mt != ISUP_RLC:
        return anomaly(d, AN_ISUP_OTHER_MESSAGE, p)
    memcpy(&r, &d.tmpl, sizeof(tp_record))
    r.ts_ns = d.pkt.ts_ns
    r.frame = <uint32_t>d.frame
    r.proto = TP_PROTO_ISUP
    r.op = mt
    r.kind = TP_K_CALL_ATTEMPT
    r.tid = cic
    r.src = d.pkt.opc
    r.dst = d.pkt.dpc
    if mt == ISUP_IAM:
        # fixed: nature of connection, forward call indicators (2), calling category, TMR
        if bn < 7:
            return anomaly(d, AN_ISUP_TRUNCATED, p)
        if isup_var(b, bn, 5, &v, &vlen):
            return anomaly(d, AN_ISUP_MALFORMED, p)
        num.v = v
        num.len = vlen
        r.peer = isup_number(&num, &r.nai)
        r.flags = TP_F_REQUEST
        if b[6] and 6 + b[6] >= bn:                    # optional part announced but cut off
            anomaly(d, AN_ISUP_TRUNCATED, p)
            r.flags |= TP_F_PARTIAL
        elif b[6]:                                     # optional part
            o = 6 + b[6]
            while True:                                # parameters up to end-of-optional-parameters
                if o >= bn or o + 2 > bn or o + 2 + b[o + 1] > bn:
                    if o >= bn or b[o] != 0:
                        anomaly(d, AN_ISUP_TRUNCATED, b + o if o < bn else p + n)
                        r.flags |= TP_F_PARTIAL
                    break
                if b[o] == 0:
                    break
                if b[o] == 0x0A:                       # calling party number
                    num.v = b + o + 2
                    num.len = b[o + 1]
                    r.msisdn = isup_number(&num, &calling_nai)
                    if calling_nai == ISUP_NATIONAL:
                        r.msisdn = with_country_code(d, r.msisdn)
                o += 2 + b[o + 1]
    elif mt == ISUP_REL:
        if isup_var(b, bn, 0, &v, &vlen) or vlen < 2 or (not (v[0] & 0x80) and vlen < 3):
            return anomaly(d, AN_ISUP_MALFORMED, p)
        r.cause = v[1 if v[0] & 0x80 else 2] & 0x7F    # octet 1a (recommendation) when octet 1 extends
        r.flags = TP_F_RESPONSE if r.cause == 16 or r.cause == 31 else TP_F_ERROR
    elif mt == ISUP_ANM or mt == ISUP_CON:
        r.flags = TP_F_RESPONSE
    d.layer_ok[L_ISUP] += 1
    if d.messages:
        out = emit(d)
        if out != NULL:
            memcpy(out, &r, sizeof(tp_record))
    # the call: keyed by CIC and the point-code pair, whichever side speaks
    if lo > hi:
        lo, hi = hi, lo
    key = (<uint64_t>2 << 40) | cic
    pcs = (<uint64_t>lo << 32) | hi
    e = dlg_find(&d.dlg, key, pcs)
    if mt == ISUP_IAM:
        if e != NULL:                                  # a new call on the circuit ends the old one
            dlg_emit(d, e, TP_F_TIMEOUT)
            dlg_release(&d.dlg, e)
        e = dlg_new(d, key, pcs)
        memcpy(&e.rec, &r, sizeof(tp_record))
        call_setup(d, e)
        return 0
    if e == NULL:
        if mt != ISUP_RLC:
            anomaly(d, AN_ISUP_UNMATCHED, p)
        return 0
    e.rec.frame = r.frame
    e.rec.ts_ns = r.ts_ns
    if mt == ISUP_ANM or mt == ISUP_CON:
        e.rec.flags |= TP_F_RESPONSE
        call_answered(d, e)
    elif mt == ISUP_REL or mt == ISUP_RLC:
        if mt == ISUP_REL:
            e.rec.cause = r.cause
            if not (e.rec.flags & TP_F_RESPONSE) and r.cause != 16 and r.cause != 31:
                e.rec.flags |= TP_F_ERROR
        dlg_emit(d, e, 0)
        dlg_release(&d.dlg, e)
    return 0


cdef void call_setup(Dec *d, Dlg *e) noexcept nogil:
    """The call's set-up (an IAM, a CAP InitialDP) goes out at once as its call attempt, so a
    campaign can answer while the phone rings; the dialogue goes on as the call, to its end."""
    cdef tp_record *out
    if not d.messages:
        out = emit(d)
        if out != NULL:
            memcpy(out, &e.rec, sizeof(tp_record))
            out.kind = TP_K_CALL_ATTEMPT
    e.rec.kind = TP_K_CALL_END


cdef void call_answered(Dec *d, Dlg *e) noexcept nogil:
    """An answered call lives on (up to --call-timeout): its clock restarts at the answer."""
    e.rec.flags |= TP_F_ANSWERED
    if not e.answer_ns:
        e.answer_ns = d.pkt.ts_ns
    e.start_ns = d.pkt.ts_ns
    pool_touch(&d.dlg.pool, <int32_t>(e - d.dlg.e))
