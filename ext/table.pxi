# Bounded tables: an open-addressing index of (k1, k2) -> entry, and a pool of
# entries kept in age order (oldest first) with a free list. Dialogues and
# GTP tunnels are both an Index plus a Pool plus their own entry array.

cdef int table_init(Index *x, Pool *p, int32_t cap) noexcept nogil:
    cdef uint32_t size = 1024
    cdef int32_t i
    while size < 2 * <uint32_t>cap:
        size <<= 1
    x.s = <Slot *>calloc(size, sizeof(Slot))
    x.mask = size - 1
    p.prev = <int32_t *>malloc(cap * sizeof(int32_t))
    p.next = <int32_t *>malloc(cap * sizeof(int32_t))
    p.free = <int32_t *>malloc(cap * sizeof(int32_t))
    if x.s == NULL or p.prev == NULL or p.next == NULL or p.free == NULL:
        return 1
    for i in range(cap):
        p.free[i] = cap - 1 - i
    p.cap = cap
    p.nfree = cap
    p.head = -1
    p.tail = -1
    p.live = 0
    return 0


cdef void table_free(Index *x, Pool *p) noexcept nogil:
    free(x.s)
    free(p.prev)
    free(p.next)
    free(p.free)


cdef inline uint32_t idx_home(const Index *x, uint64_t k1, uint64_t k2) noexcept nogil:
    return <uint32_t>(tp_mix64(k1 * TP_GOLDEN ^ k2) & x.mask)


cdef inline int32_t idx_slot(const Index *x, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint32_t i = idx_home(x, k1, k2)
    while x.s[i].v:
        if x.s[i].k1 == k1 and x.s[i].k2 == k2:
            return <int32_t>i
        i = (i + 1) & x.mask
    return -1


cdef inline int32_t idx_get(const Index *x, uint64_t k1, uint64_t k2) noexcept nogil:
    """The entry stored under (k1, k2), or -1."""
    cdef int32_t s = idx_slot(x, k1, k2)
    return -1 if s < 0 else x.s[s].v - 1


cdef inline void idx_put(Index *x, uint64_t k1, uint64_t k2, int32_t entry) noexcept nogil:
    cdef uint32_t i = idx_home(x, k1, k2)
    while x.s[i].v:
        i = (i + 1) & x.mask
    x.s[i].k1 = k1
    x.s[i].k2 = k2
    x.s[i].v = entry + 1


cdef void idx_del(Index *x, uint64_t k1, uint64_t k2) noexcept nogil:
    """Remove a key; shift the rest of its probe run back so lookups need no tombstones."""
    cdef int32_t s = idx_slot(x, k1, k2)
    cdef uint32_t i, j, k
    if s < 0:
        return
    i = <uint32_t>s
    j = i
    while True:
        j = (j + 1) & x.mask
        if x.s[j].v == 0:
            break
        k = idx_home(x, x.s[j].k1, x.s[j].k2)
        if (i <= j and i < k and k <= j) or (i > j and (i < k or k <= j)):
            continue
        x.s[i] = x.s[j]
        i = j
    x.s[i].v = 0


cdef inline int32_t pool_take(Pool *p) noexcept nogil:
    """A free entry, appended as the youngest; -1 when full."""
    cdef int32_t e
    if p.nfree == 0:
        return -1
    p.nfree -= 1
    e = p.free[p.nfree]
    p.next[e] = -1
    p.prev[e] = p.tail
    if p.tail >= 0:
        p.next[p.tail] = e
    else:
        p.head = e
    p.tail = e
    p.live += 1
    return e


cdef inline void pool_unlink(Pool *p, int32_t e) noexcept nogil:
    if p.prev[e] >= 0:
        p.next[p.prev[e]] = p.next[e]
    else:
        p.head = p.next[e]
    if p.next[e] >= 0:
        p.prev[p.next[e]] = p.prev[e]
    else:
        p.tail = p.prev[e]


cdef inline void pool_give(Pool *p, int32_t e) noexcept nogil:
    pool_unlink(p, e)
    p.free[p.nfree] = e
    p.nfree += 1
    p.live -= 1


cdef inline void pool_touch(Pool *p, int32_t e) noexcept nogil:
    """Make e the youngest (least recently used order)."""
    if p.tail == e:
        return
    pool_unlink(p, e)
    p.next[e] = -1
    p.prev[e] = p.tail
    p.next[p.tail] = e
    p.tail = e
