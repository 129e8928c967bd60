/* An MMS subject as the record keeps it: a 64-bit hash of its normalised text, never the text.
 * What a forward changes is taken off first, so a seed and its forwards hash alike:
 *   - leading and trailing white space (space, tab, CR, LF, U+3000 ideographic space);
 *   - forward prefixes, repeatedly: "Fwd", "FW" (ASCII case folded) or "转发", then ':' or '：'.
 * The hash is FNV-1a 64 of the rest in UTF-8; 0 means no subject (an empty one included), so a
 * hash of 0 becomes 1. probe.record.subject_hash is the same in Python: tests hold them equal. */
#ifndef TP_SUBJECT_H
#define TP_SUBJECT_H
#include <stddef.h>
#include <stdint.h>

#define TP_FNV_OFFSET 0xCBF29CE484222325ULL
#define TP_FNV_PRIME 0x100000001B3ULL

/* The length of the white space at p (0: none). */
static inline size_t tp_space(const uint8_t *p, size_t n) {
    if (n && (p[0] == ' ' || p[0] == '\t' || p[0] == '\r' || p[0] == '\n'))
        return 1;
    if (n >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80)         /* U+3000 */
        return 3;
    return 0;
}

/* The length of a forward prefix at p, its colon included (0: none). */
static inline size_t tp_forward_prefix(const uint8_t *p, size_t n) {
    size_t k = 0;
    if (n >= 2 && (p[0] | 0x20) == 'f' && (p[1] | 0x20) == 'w')
        k = (n >= 3 && (p[2] | 0x20) == 'd') ? 3 : 2;
    else if (n >= 6 && p[0] == 0xE8 && p[1] == 0xBD && p[2] == 0xAC && p[3] == 0xE5 && p[4] == 0x8F && p[5] == 0x91)
        k = 6;                                                           /* 转发 */
    if (!k)
        return 0;
    if (k < n && p[k] == ':')
        return k + 1;
    if (k + 3 <= n && p[k] == 0xEF && p[k + 1] == 0xBC && p[k + 2] == 0x9A)   /* '：' U+FF1A */
        return k + 3;
    return 0;
}

/* The hash of the UTF-8 subject p[0:n]. */
static inline uint64_t tp_subject_hash(const uint8_t *p, size_t n) {
    size_t k;
    uint64_t h = TP_FNV_OFFSET;
    for (;;) {
        if ((k = tp_space(p, n)) || (k = tp_forward_prefix(p, n))) {
            p += k;
            n -= k;
        } else {
            break;
        }
    }
    while (n) {                                                          /* trailing white space */
        if (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n')
            n -= 1;
        else if (n >= 3 && p[n - 3] == 0xE3 && p[n - 2] == 0x80 && p[n - 1] == 0x80)
            n -= 3;
        else
            break;
    }
    if (!n)
        return 0;
    for (k = 0; k < n; k++)
        h = (h ^ p[k]) * TP_FNV_PRIME;
    return h ? h : 1;
}
#endif
