# The cursor every layer reads through, and the BER reader on top of it.
# Every length, pointer and tag is checked against the bytes that remain; a
# sub-cursor is clamped to its element's declared length.

cdef enum:
    BER_MAX_DEPTH = 16

cdef struct Cur:
    const uint8_t *p
    const uint8_t *end

cdef struct Tlv:
    uint32_t tag          # first octet; high tag numbers: (class|constructed) << 24 | number
    const uint8_t *at     # first octet of the element (for error offsets)
    const uint8_t *v      # value
    Py_ssize_t len        # value length (indefinite: up to the end-of-contents octets)
    const uint8_t *next   # first octet after the element


cdef inline Cur cur(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Cur c
    c.p = p
    c.end = p + n
    return c


cdef inline Cur inner(const Tlv *t) noexcept nogil:
    return cur(t.v, t.len)


cdef int ber_read(Cur *c, Tlv *t, int depth) noexcept nogil:
    """Read one element at c.p and step over it. Returns 0 or an anomaly code."""
    cdef const uint8_t *p = c.p
    cdef const uint8_t *end = c.end
    cdef uint32_t num = 0
    cdef int i, nb
    cdef uint8_t b, lb, x
    cdef Py_ssize_t ln = 0
    cdef Cur sub
    cdef Tlv child
    cdef int rc
    if p >= end:
        return AN_TCAP_TRUNCATED
    t.at = p
    b = p[0]
    p += 1
    if (b & 0x1F) == 0x1F:
        for i in range(4):
            if p >= end:
                return AN_TCAP_TRUNCATED
            x = p[0]
            num = (num << 7) | (x & 0x7F)
            p += 1
            if not (x & 0x80):
                break
        else:
            return AN_TCAP_MALFORMED
        t.tag = (<uint32_t>(b & 0xE0) << 24) | num
    else:
        t.tag = b
    if p >= end:
        return AN_TCAP_TRUNCATED
    lb = p[0]
    p += 1
    if lb < 0x80:
        ln = lb
    elif lb == 0x80:
        if not (b & 0x20) or depth >= BER_MAX_DEPTH:
            return AN_TCAP_TOO_DEEP if depth >= BER_MAX_DEPTH else AN_TCAP_MALFORMED
        sub = cur(p, end - p)
        while True:
            if sub.end - sub.p >= 2 and sub.p[0] == 0 and sub.p[1] == 0:
                break
            rc = ber_read(&sub, &child, depth + 1)
            if rc:
                return rc
        t.v = p
        t.len = sub.p - p
        t.next = sub.p + 2
        c.p = t.next
        return 0
    else:
        nb = lb & 0x7F
        if nb > 4:
            return AN_TCAP_MALFORMED
        if end - p < nb:
            return AN_TCAP_TRUNCATED
        for i in range(nb):
            ln = (ln << 8) | p[i]
        p += nb
    if ln > end - p:
        return AN_TCAP_TRUNCATED
    t.v = p
    t.len = ln
    t.next = p + ln
    c.p = t.next
    return 0


cdef inline uint64_t tbcd(const uint8_t *p, Py_ssize_t n, int ndigits) noexcept nogil:
    """TBCD (low nibble first) to packed digits; stops at filler, at ndigits, at 16."""
    cdef uint64_t v = 0
    cdef int k = 0
    cdef Py_ssize_t i
    cdef uint8_t x
    if ndigits < 0 or ndigits > 2 * n:
        ndigits = <int>(2 * n)
    if ndigits > 16:
        ndigits = 16
    for i in range(n):
        x = p[i] & 0xF
        if x == 0xF or k >= ndigits:
            break
        v = (v << 4) | x
        k += 1
        x = p[i] >> 4
        if x == 0xF or k >= ndigits:
            break
        v = (v << 4) | x
        k += 1
    if k == 0:
        return NO_DIGITS
    if k < 16:
        v = (v << (4 * (16 - k))) | ((<uint64_t>1 << (4 * (16 - k))) - 1)
    return v


cdef inline uint64_t address_digits(const Tlv *t) noexcept nogil:
    """AddressString: nature of address / numbering plan octet, then TBCD."""
    if t.len < 2:
        return NO_DIGITS
    return tbcd(t.v + 1, t.len - 1, -1)


cdef inline uint64_t with_country_code(const Dec *d, uint64_t v) noexcept nogil:
    """A national significant number as an international one: the --country-code in front, when
    one is set and the number still fits in 16 digits (else as signalled)."""
    cdef uint64_t low
    if d.cc_len == 0 or v == NO_DIGITS:
        return v
    low = (<uint64_t>1 << (4 * d.cc_len)) - 1
    if (v & low) != low:
        return v
    return d.cc | (v >> (4 * d.cc_len))


cdef inline bint ton_national(const Tlv *t) noexcept nogil:
    """An AddressString whose nature of address (type of number) is national: 010."""
    return t.len >= 2 and ((t.v[0] >> 4) & 7) == 2


cdef inline uint64_t msisdn_digits(const Dec *d, const Tlv *t) noexcept nogil:
    """An AddressString MSISDN, international (TS 29.002 ISDN-AddressString)."""
    cdef uint64_t v = address_digits(t)
    return with_country_code(d, v) if ton_national(t) else v


cdef inline uint64_t imsi_digits(const Tlv *t) noexcept nogil:
    return tbcd(t.v, t.len, -1)
