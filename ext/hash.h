/* The one hash of the C core: splitmix64 (Steele, Lea, Flood 2014). Packed digits share long
 * runs of filler nibbles, so every table keyed by them mixes first. */
#ifndef TP_HASH_H
#define TP_HASH_H
#include <stdint.h>

#define TP_GOLDEN 0x9E3779B97F4A7C15ULL   /* splitmix64's increment: 2^64 / the golden ratio */

/* The finaliser: the bounded tables (decoder transactions, engine index) hash by it. */
static inline uint64_t tp_mix64(uint64_t x) {
    x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27; x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* One splitmix64 step: what the probe shards subscribers by (probe.shard). */
static inline uint64_t tp_splitmix64(uint64_t x) { return tp_mix64(x + TP_GOLDEN); }
#endif
