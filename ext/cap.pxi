# CAP (3GPP TS 29.078, phases 2-4): InitialDP, InitialDPSMS and InitialDPGPRS into records, and
# the answer of a call from its event reports; every other operation is recorded by its opcode only.

cdef inline uint32_t tag_hi(uint8_t cls_cons, uint32_t num) noexcept nogil:
    """The Tlv.tag of a high-numbered tag ([31] and up)."""
    return (<uint32_t>cls_cons << 24) | num


DEF ISUP_NATIONAL = 3           # nature of address indicator: national (significant) number


cdef uint64_t isup_number(const Tlv *t, uint8_t *nai) noexcept nogil:
    """ISUP-format number (Q.763 3.9/3.10): odd/even + NAI, NPI octet, BCD digits."""
    cdef int odd
    if t.len < 2:
        return NO_DIGITS
    odd = t.v[0] >> 7
    if nai != NULL:
        nai[0] = t.v[0] & 0x7F
    return tbcd(t.v + 2, t.len - 2, <int>(2 * (t.len - 2) - odd))


cdef inline uint32_t ber_uint(const Tlv *t) noexcept nogil:
    cdef uint32_t v = 0
    cdef Py_ssize_t i
    for i in range(t.len if t.len <= 4 else 4):
        v = (v << 8) | t.v[i]
    return v


cdef int cap_arg(const Dec *d, int op, const Tlv *prm, tp_record *r) noexcept nogil:
    cdef Cur c = inner(prm)
    cdef Tlv t
    cdef int rc
    cdef uint64_t called = NO_DIGITS, called_bcd = NO_DIGITS, calling = NO_DIGITS
    cdef uint8_t nai = 0, calling_nai = 0
    if op != 0 and op != 24 and op != 60 and op != 78:
        return 0
    if prm.tag != 0x30:
        return AN_CAMEL_MALFORMED
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if op == 24:                                   # eventReportBCSM: eventTypeBCSM [0]
            if t.tag == 0x80 and (ber_uint(&t) == 7 or ber_uint(&t) == 15):
                r.flags |= TP_F_ANSWERED               # oAnswer, tAnswer
        elif t.tag == 0x80:                            # serviceKey [0] in the InitialDPs
            r.service_key = ber_uint(&t)
        elif op == 0:                                  # InitialDP
            if t.tag == 0x82:
                called = isup_number(&t, &nai)
                r.nai = nai
            elif t.tag == 0x83:
                calling = isup_number(&t, &calling_nai)
            elif t.tag == 0x9C:
                r.event = <uint8_t>ber_uint(&t)
            elif t.tag == tag_hi(0x80, 50):
                r.imsi = tbcd(t.v, t.len, -1)
            elif t.tag == tag_hi(0xA0, 52):
                rc = location_info(r, &t, 0)
                if rc:
                    return rc
            elif t.tag == tag_hi(0x80, 55):
                r.node = address_digits(&t)
            elif t.tag == tag_hi(0x80, 56):
                called_bcd = address_digits(&t)
        elif op == 60:                                 # InitialDPSMS
            if t.tag == 0x81:
                r.peer = address_digits(&t)            # destinationSubscriberNumber
            elif t.tag == 0x82:
                r.msisdn = msisdn_digits(d, &t)        # callingPartyNumber
            elif t.tag == 0x83:
                r.event = <uint8_t>ber_uint(&t)
            elif t.tag == 0x84:
                r.imsi = tbcd(t.v, t.len, -1)
            elif t.tag == 0xA5:
                rc = location_info(r, &t, 0)
                if rc:
                    return rc
            elif t.tag == 0x8F or (t.tag == 0x90 and r.node == NO_DIGITS):
                r.node = address_digits(&t)            # mscAddress, sgsn-Number
        else:                                          # InitialDPGPRS
            if t.tag == 0x81:
                r.event = <uint8_t>ber_uint(&t)
            elif t.tag == 0x82:
                r.msisdn = msisdn_digits(d, &t)
            elif t.tag == 0x83:
                r.imsi = tbcd(t.v, t.len, -1)
            elif t.tag == 0x88:
                apn_labels(r, t.v, t.len)
            elif t.tag == 0xAC:
                rc = location_info(r, &t, 1)
                if rc:
                    return rc
    if op == 0:
        r.kind = TP_K_CALL_ATTEMPT
        if r.event >= 12:                              # terminating: the served subscriber is called
            r.msisdn = with_country_code(d, called) if nai == ISUP_NATIONAL else called
            r.peer = calling
        else:
            r.msisdn = with_country_code(d, calling) if calling_nai == ISUP_NATIONAL else calling
            r.peer = called_bcd if called_bcd != NO_DIGITS else called
    elif op == 60:
        r.kind = TP_K_MT_SMS if r.event >= 11 else TP_K_MO_SMS
    elif r.event == 11 or r.event == 12:               # pdp-ContextEstablishment(Acknowledgement)
        r.kind = TP_K_PDP_CREATE
    return 0
