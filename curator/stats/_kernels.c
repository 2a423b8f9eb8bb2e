/* Compiled loops of the n-gram statistics engine (loaded with ctypes by curator/stats/kernels.py).

   Each function here is one fused pass that the numpy code (the fallback, and the reference the
   tests compare against) does in several: the tokenizer classifies bytes, finds token bounds and
   hashes tokens in one walk over the text; the block functions read a block's sorted n-gram
   positions once and emit its partial state. A few loops serve the ingest side too (the reader's
   newline index, the md5 of the content ids). Definitions (the token hash, what a repeat is) are
   those of tokenize.py and blocks.py; the results are bit for bit the same as the numpy code's.

   Plain C with no Python headers: built by hatch_build.py into curator/stats/_kernels.so. Bump
   CURATOR_KERNELS_ABI (here and in kernels.py) whenever a signature or a meaning changes, so that
   a stale library is refused instead of misread. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define CURATOR_KERNELS_ABI 7

#define MIX1 0xBF58476D1CE4E5B9ULL
#define MIX2 0x94D049BB133111EBULL
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define WORD_SEED 0x243F6A8885A308D3ULL

int64_t curator_kernels_abi(void) { return CURATOR_KERNELS_ABI; }

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * MIX1;
    z = (z ^ (z >> 27)) * MIX2;
    return z ^ (z >> 31);
}

/* Per byte: 1 = ASCII letter or digit (a word byte), 0 = other ASCII (a separator), 2 = a byte of a
   multi-byte code point (decided by the code point table). */
static uint8_t BYTE_CLASS[256];
static int byte_class_ready = 0;

static void init_byte_class(void) {
    for (int b = 0; b < 256; b++)
        BYTE_CLASS[b] = b >= 0x80 ? 2 : ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'));
    byte_class_ready = 1;
}

/* Width in bytes of the code point at p (p < end) and whether it is a word character. Arrow
   strings are valid UTF-8; a stray continuation byte or a cut sequence is a one-byte separator. */
static inline int64_t code_point(const uint8_t* p, const uint8_t* end, const uint8_t* cp_word, int* word) {
    uint32_t b0 = p[0];
    if (b0 < 0x80) {
        *word = BYTE_CLASS[b0];
        return 1;
    }
    int64_t w = b0 < 0xC0 ? 0 : (b0 < 0xE0 ? 2 : (b0 < 0xF0 ? 3 : 4));
    if (w == 0 || cp_word == 0 || p + w > end) {
        *word = 0;
        return 1;
    }
    uint32_t cp;
    if (w == 2)
        cp = ((b0 & 0x1F) << 6) | (p[1] & 0x3F);
    else if (w == 3)
        cp = ((b0 & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    else
        cp = ((b0 & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    if (cp > 0x10FFFF) cp = 0x10FFFF;
    *word = cp_word[cp];
    return w;
}

/* The m (1..8) bytes at q as a little-endian word, zero-padded and ASCII-lowercased. Inside a
   token every ASCII byte is a letter or a digit, for which lowercase is "set bit 5"; bytes >= 0x80
   keep theirs: (~y >> 2) moves each byte's inverted bit 7 onto its bit 5. */
static inline uint64_t token_word(const uint8_t* q, const uint8_t* limit, int64_t m) {
    uint64_t y = 0;
    if (q + 8 <= limit)
        memcpy(&y, q, 8);
    else
        for (int64_t j = 0; j < m; j++) y |= (uint64_t)q[j] << (8 * j);
    y |= (~y >> 2) & 0x2020202020202020ULL;
    if (m < 8) y &= (1ULL << (8 * m)) - 1;
    return y;
}

/* Byte classes 64 bytes at a time (the tokenizer's inner loops). A branch per byte mispredicts
   at every word end; bit masks of a 64-byte window and a count of trailing zeros find a run's end
   without one. word: bit i set when byte i is an ASCII letter or digit (class 1); sep: when it is
   any other ASCII byte (class 0). Bytes >= 0x80 (class 2) are in neither. */
#define WINDOW 64
struct window {
    int64_t at; /* offset of the window's first byte in the data, or -WINDOW before the first */
    uint64_t word, sep;
};

static inline int ctz64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    while (!(x & 1)) { x >>= 1; n++; }
    return n;
#endif
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_WINDOWS 1
/* Unsigned "x - lo < width" per byte, as a movemask: the subtraction wraps, and xor 0x80 turns the
   unsigned comparison into SSE2's signed one. */
static inline uint32_t in_range16(__m128i x, char lo, int width) {
    __m128i v = _mm_xor_si128(_mm_sub_epi8(x, _mm_set1_epi8(lo)), _mm_set1_epi8((char)0x80));
    return (uint32_t)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8((char)(0x80 + width))));
}

static inline void load_window(const uint8_t* q, struct window* w) {
    uint64_t word = 0, high = 0;
    for (int j = 0; j < 4; j++) {
        __m128i x = _mm_loadu_si128((const __m128i*)(q + 16 * j));
        uint64_t letters = in_range16(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 26);
        uint64_t digits = in_range16(x, '0', 10);
        word |= (letters | digits) << (16 * j);
        high |= (uint64_t)(uint32_t)_mm_movemask_epi8(x) << (16 * j);
    }
    w->word = word;
    w->sep = ~(word | high);
}
#else
#define HAVE_WINDOWS 0
static inline void load_window(const uint8_t* q, struct window* w) { (void)q; (void)w; }
#endif

/* The first position from p (p < limit) whose byte is not of class cls (0 or 1), or limit. May pass
   the current document's end: callers clamp. */
static inline const uint8_t* skip_class(const uint8_t* data, const uint8_t* limit, const uint8_t* p,
                                        struct window* w, int cls) {
    for (;;) {
        int64_t off = (p - data) - w->at;
        if (off < 0 || off >= WINDOW) {
            if (!HAVE_WINDOWS || p + WINDOW > limit) break;
            w->at = p - data;
            load_window(p, w);
            off = 0;
        }
        uint64_t rest = ~((cls ? w->word : w->sep) >> off); /* bits past the window read as "stop" */
        int64_t run = rest ? ctz64(rest) : WINDOW;
        p += run;
        if (off + run < WINDOW) return p;
        if (p >= limit) return limit;
    }
    while (p < limit && BYTE_CLASS[*p] == cls) p++; /* the last bytes of the data: one at a time */
    return p;
}

/* word_v1 over documents data[offsets[d]:offsets[d+1]] (d < ndocs; data holds nbytes bytes, already
   lowercased where it is not ASCII). cp_word: one byte per code point (1 = letter, mark or number),
   or NULL when the data is all ASCII. Writes every token's byte bounds and hash, and the token
   offsets of the documents (ndocs + 1); returns the token count. The output arrays must hold
   nbytes / 2 + ndocs + 1 tokens (a token takes a byte and is followed by a separator or a
   document start). */
static inline uint64_t word_hash(const uint8_t* st, const uint8_t* limit, int64_t len) {
    uint64_t h = mix64((WORD_SEED + (uint64_t)len * GOLDEN) ^ token_word(st, limit, len < 8 ? len : 8));
    const uint8_t* p = st + len;
    for (const uint8_t* q = st + 8; q < p; q += 8) h = mix64(h ^ token_word(q, limit, p - q < 8 ? p - q : 8));
    return h;
}

/* The tokens of the 64 bytes at p (p + 64 <= limit), n of them inside the document (n <= 64), when none
   of those n bytes is >= 0x80: each run of word bytes is a token, and bit tricks on the window's masks
   find them all without a branch per byte or per run end. Returns how far it got: n, or the start of a
   run that reaches the window's last byte while the document goes on (it may continue past the window:
   the caller starts the next window there); 0 with nothing written when the window has a byte >= 0x80
   or is one run of word bytes from end to end (the caller's byte-wise path takes it). p must be at a
   token boundary (a document start, or just after a token or a separator). */
#if HAVE_WINDOWS
static inline int64_t ascii_window(const uint8_t* data, const uint8_t* limit, const uint8_t* p, int64_t n,
                                   int more, int64_t* starts, int64_t* ends, uint64_t* hashes, int64_t* count) {
    struct window w;
    load_window(p, &w);
    uint64_t valid = n >= 64 ? ~0ULL : (1ULL << n) - 1;
    if (~(w.word | w.sep) & valid) return 0; /* a byte >= 0x80 */
    uint64_t word = w.word & valid;
    uint64_t first = word & ~(word << 1); /* the first byte of each run */
    uint64_t last = word & ~(word >> 1);  /* the last byte of each run (bit 63: maybe not) */
    int64_t c = *count, base = p - data;
    while (first) {
        int64_t s = ctz64(first), e = ctz64(last);
        first &= first - 1;
        last &= last - 1;
        if (e == 63 && more) {
            if (s == 0) return 0;
            *count = c;
            return s;
        }
        starts[c] = base + s;
        ends[c] = base + e + 1;
        hashes[c] = word_hash(p + s, limit, e + 1 - s);
        c++;
    }
    *count = c;
    return n;
}
#endif

/* word_v1 over documents data[offsets[d]:offsets[d+1]] (d < ndocs; data holds nbytes bytes, already
   lowercased where it is not ASCII). cp_word: one byte per code point (1 = letter, mark or number),
   or NULL when the data is all ASCII. Writes every token's byte bounds and hash, and the token
   offsets of the documents (ndocs + 1); returns the token count. The output arrays must hold
   nbytes / 2 + ndocs + 1 tokens (a token takes a byte and is followed by a separator or a
   document start). Windows of 64 ASCII bytes go the bit-mask way (ascii_window); the rest, and
   whatever such a window hands back, one token at a time. */
int64_t curator_tokenize_words(const uint8_t* data, int64_t nbytes, const int64_t* offsets, int64_t ndocs,
                               const uint8_t* cp_word, int64_t* starts, int64_t* ends, uint64_t* hashes,
                               int64_t* doc_tok) {
    if (!byte_class_ready) init_byte_class();
    const uint8_t* limit = data + nbytes;
    struct window win = {-WINDOW, 0, 0};
    int64_t count = 0;
    for (int64_t d = 0; d < ndocs; d++) {
        doc_tok[d] = count;
        const uint8_t* p = data + offsets[d];
        const uint8_t* end = data + offsets[d + 1];
        while (p < end) {
#if HAVE_WINDOWS
            if (p + WINDOW <= limit) {
                int64_t n = end - p < WINDOW ? end - p : WINDOW;
                int64_t done = ascii_window(data, limit, p, n, end - p > WINDOW, starts, ends, hashes, &count);
                if (done) {
                    p += done;
                    continue;
                }
            }
#endif
            p = skip_class(data, limit, p, &win, 0);
            if (p >= end) break;
            const uint8_t* st = p;
            if (BYTE_CLASS[*p] == 1) {
                /* The common case: a run of ASCII word bytes (it may run on into the next document). */
                p = skip_class(data, limit, p, &win, 1);
                if (p > end) p = end;
            }
            if (p < end && BYTE_CLASS[*p] == 2) {
                /* Code point by code point from here (p may still be st). */
                int word;
                while (p < end) {
                    int64_t w = code_point(p, end, cp_word, &word);
                    if (!word) break;
                    p += w;
                }
                if (p == st) {
                    int64_t w = code_point(p, end, cp_word, &word);
                    p += w;
                    continue;
                }
            }
            starts[count] = st - data;
            ends[count] = p - data;
            hashes[count] = word_hash(st, limit, p - st);
            count++;
        }
    }
    doc_tok[ndocs] = count;
    return count;
}

/* The md5 digest of each string data[offsets[i]:offsets[i+1]] (i < n) as 32 lowercase hex digits, back to
   back into out (32 n bytes). md5: the address of a one-shot md5 function with OpenSSL's MD5() signature
   (the caller finds it in the C library that hashlib uses; its assembly runs faster than portable C). */
typedef unsigned char* (*curator_md5_fn)(const unsigned char*, size_t, unsigned char*);

int64_t curator_md5_hex(const uint8_t* data, const int64_t* offsets, int64_t n, uint64_t md5, char* out) {
    static const char hex[] = "0123456789abcdef";
    curator_md5_fn fn = (curator_md5_fn)(uintptr_t)md5;
    unsigned char digest[16];
    for (int64_t i = 0; i < n; i++) {
        fn(data + offsets[i], (size_t)(offsets[i + 1] - offsets[i]), digest);
        char* o = out + 32 * i;
        for (int j = 0; j < 16; j++) {
            o[2 * j] = hex[digest[j] >> 4];
            o[2 * j + 1] = hex[digest[j] & 15];
        }
    }
    return n;
}

/* Positions of the newline bytes of data[0:n], ascending, into out (up to cap of them); returns how many
   there are (a caller whose cap was smaller calls again with more room). memchr is vectorised in every C
   library: a line costs one call, not a test per byte. */
int64_t curator_newlines(const uint8_t* data, int64_t n, int64_t* out, int64_t cap) {
    int64_t count = 0;
    const uint8_t* p = data;
    const uint8_t* end = data + n;
    while (p < end) {
        const uint8_t* q = memchr(p, '\n', (size_t)(end - p));
        if (q == 0) break;
        if (count < cap) out[count] = q - data;
        count++;
        p = q + 1;
    }
    return count;
}

/* The documents data[offsets[d]:offsets[d+1]] (d < ndocs) that hold a byte >= 0x80, into docs (ascending),
   and the positions of their code points' lead bytes (>= 0xC0) into lead, up to lead_cap of them;
   out[0] = how many lead bytes there are (a caller whose lead_cap was smaller calls again with more room).
   Returns the number of such documents. In valid UTF-8 every byte >= 0x80 belongs to a code point of
   its own document, whose lead byte is >= 0xC0. */
int64_t curator_non_ascii(const uint8_t* data, const int64_t* offsets, int64_t ndocs, int64_t* docs, int64_t* lead,
                          int64_t lead_cap, int64_t* out) {
    int64_t nd = 0, nl = 0;
    for (int64_t d = 0; d < ndocs; d++) {
        const uint8_t* p = data + offsets[d];
        const uint8_t* end = data + offsets[d + 1];
        int high = 0;
#if defined(__SSE2__)
        __m128i acc = _mm_setzero_si128();
        for (; p + 64 <= end && !high; p += 64) {
            acc = _mm_or_si128(_mm_or_si128(_mm_loadu_si128((const __m128i*)p), _mm_loadu_si128((const __m128i*)(p + 16))),
                               _mm_or_si128(_mm_loadu_si128((const __m128i*)(p + 32)), _mm_loadu_si128((const __m128i*)(p + 48))));
            high = _mm_movemask_epi8(acc) != 0;
        }
#endif
        for (; p < end && !high; p++) high = *p >= 0x80;
        if (!high) continue;
        docs[nd++] = d;
        const uint8_t* q = data + offsets[d];
#if defined(__SSE2__)
        /* Bytes >= 0xC0: the sign bit set and, as signed bytes, above -65. */
        for (; q + 16 <= end; q += 16) {
            __m128i x = _mm_loadu_si128((const __m128i*)q);
            uint32_t bits = (uint32_t)_mm_movemask_epi8(_mm_and_si128(x, _mm_cmpgt_epi8(x, _mm_set1_epi8(-65))));
            while (bits) {
                if (nl < lead_cap) lead[nl] = q - data + ctz64(bits);
                nl++;
                bits &= bits - 1;
            }
        }
#endif
        for (; q < end; q++) {
            if (*q >= 0xC0) {
                if (nl < lead_cap) lead[nl] = q - data;
                nl++;
            }
        }
    }
    out[0] = nl;
    return nd;
}

/* Advances a block's n-gram values from n - 1 to n and builds their sort keys (blocks.py).
   For i < count: s[i] = prev[i] * mult + tok[i + n - 1] (n >= 2; for n = 1, s is the tokens and is
   left alone), then key[i] = (s[i] & ~low) | i, or all ones where no n-gram starts (the last n - 1
   positions of each document; doc_end[d] = the end position of document d, the last one ending at or
   after count): those sort last. key may be NULL (values only). Returns the number of positions that
   start no n-gram. One pass writes values and keys; the few positions without an n-gram are then
   overwritten document by document, which costs less than testing every position. */
int64_t curator_block_keys(const uint64_t* prev, uint64_t* s, const uint64_t* tok, int64_t count, int64_t n,
                           uint64_t mult, const int64_t* doc_end, uint64_t low, uint64_t* key) {
    const uint64_t* next = tok + n - 1;
    uint64_t high = ~low;
    if (key == 0) {
        if (n >= 2)
            for (int64_t i = 0; i < count; i++) s[i] = prev[i] * mult + next[i];
        return 0;
    }
    if (n >= 2) {
        for (int64_t i = 0; i < count; i++) {
            uint64_t v = prev[i] * mult + next[i];
            s[i] = v;
            key[i] = (v & high) | (uint64_t)i;
        }
    } else {
        for (int64_t i = 0; i < count; i++) key[i] = (s[i] & high) | (uint64_t)i;
        return 0; /* every token starts a 1-gram */
    }
    int64_t dropped = 0, start = 0;
    for (int64_t d = 0; start < count; d++) {
        int64_t end = doc_end[d];
        int64_t from = end - (n - 1) > start ? end - (n - 1) : start;
        int64_t to = end < count ? end : count;
        for (int64_t i = from; i < to; i++) key[i] = ~0ULL;
        dropped += to > from ? to - from : 0;
        start = end;
    }
    return dropped;
}

/* Occurrence form of one block (blocks.py): order = the block's sort keys (value prefix | position,
   sorted; masked with low in place, after which they are the positions sorted by value, then
   position), s = the n-gram value at each position, doc = its document. Writes hs = s[order] (k),
   the values of in-document repeats (an occurrence in the same document as the previous
   occurrence of its value), and per value seen at least twice its value, count and first position.
   out = [positions repeating their predecessor's value, repeats, values seen twice or more].
   Returns -1 at the first decrease of s[order] (values sharing a sort-key prefix interleave: the
   caller repairs the order and calls again), else 0. */
int64_t curator_block_occurrences(int64_t* order, int64_t k, uint64_t low, const uint64_t* s, const int32_t* doc,
                                  uint64_t* hs, uint64_t* repeats, uint64_t* top_v, int64_t* top_c,
                                  int64_t* top_first, int64_t* out) {
    int64_t nd = 0, nr = 0, nt = 0;
    if (k > 0) {
        order[0] &= low;
        hs[0] = s[order[0]];
    }
    for (int64_t i = 1; i < k; i++) {
        int64_t q = order[i] &= low;
        uint64_t w = s[q], v = hs[i - 1];
        hs[i] = w;
        if (w == v) {
            int64_t p = order[i - 1];
            nd++;
            if (doc[q] == doc[p]) repeats[nr++] = w;
            if (nt > 0 && top_v[nt - 1] == w) {
                top_c[nt - 1]++;
            } else {
                top_v[nt] = w;
                top_c[nt] = 2;
                top_first[nt] = p;
                nt++;
            }
        } else if (w < v) {
            return -1;
        }
    }
    out[0] = nd;
    out[1] = nr;
    out[2] = nt;
    return 0;
}

/* Row form of one block (blocks.py), from the same inputs: values seen once (value, position) and
   the others (value, count, doc_freq, first position), each in ascending value order.
   out = [values seen once, values seen more often, 1 if some doc_freq differs from its count].
   Returns -1 at the first decrease of s[order], as above, else 0. */
int64_t curator_block_rows(int64_t* order, int64_t k, uint64_t low, const uint64_t* s, const int32_t* doc,
                           uint64_t* singles, int64_t* single_pos, uint64_t* multi, int64_t* count,
                           int64_t* doc_freq, int64_t* first, int64_t* out) {
    int64_t ns = 0, nm = 0, differs = 0;
    int64_t i = 0;
    if (k > 0) order[0] &= low;
    while (i < k) {
        int64_t p = order[i];
        uint64_t v = s[p];
        int32_t d = doc[p];
        int64_t c = 1, f = 1, j = i + 1;
        for (; j < k; j++) {
            int64_t q = order[j] &= low;
            uint64_t w = s[q];
            if (w != v) {
                if (w < v) return -1;
                break;
            }
            c++;
            if (doc[q] != d) {
                f++;
                d = doc[q];
            }
        }
        if (c == 1) {
            singles[ns] = v;
            single_pos[ns] = p;
            ns++;
        } else {
            multi[nm] = v;
            count[nm] = c;
            doc_freq[nm] = f;
            first[nm] = p;
            differs |= f != c;
            nm++;
        }
        i = j;
    }
    out[0] = ns;
    out[1] = nm;
    out[2] = differs;
    return 0;
}

/* Copies the slices [lo[i], hi[i]) of narrays arrays of 8-byte elements (addrs[i]: the address of
   array i) one after another into out; returns the elements written. The spill writes one value
   range of hundreds of sorted runs at a time: one call instead of a Python slice per run. */
int64_t curator_gather(const uint64_t* addrs, const int64_t* lo, const int64_t* hi, int64_t narrays, uint64_t* out) {
    int64_t at = 0;
    for (int64_t i = 0; i < narrays; i++) {
        int64_t m = hi[i] - lo[i];
        if (m > 0) {
            memcpy(out + at, (const uint64_t*)(uintptr_t)addrs[i] + lo[i], 8 * (size_t)m);
            at += m;
        }
    }
    return at;
}

/* Distinct values of a sorted array and how often each occurs; returns their number. Branch-free
   (most values are distinct, but not predictably so): every element rewrites its run's value and
   count, and the run index moves on where the value changes. */
int64_t curator_run_counts(const uint64_t* sorted, int64_t m, uint64_t* values, int64_t* counts) {
    if (m <= 0) return 0;
    int64_t u = 0, start = 0;
    values[0] = sorted[0];
    for (int64_t i = 1; i < m; i++) {
        int64_t change = sorted[i] != sorted[i - 1];
        counts[u] = i - start;
        u += change;
        start = change ? i : start;
        values[u] = sorted[i];
    }
    counts[u] = m - start;
    return u + 1;
}

/* In-place selection (Hoare partition, median of three): afterwards a[r] holds the value it would
   hold if a were sorted, with nothing larger before it and nothing smaller after it. */
#define SELECT_FN(NAME, T)                                                         \
    static void NAME(T* a, int64_t len, int64_t r) {                               \
        int64_t lo = 0, hi = len - 1;                                              \
        while (hi > lo) {                                                          \
            int64_t mid = lo + (hi - lo) / 2;                                      \
            T x = a[lo], y = a[mid], z = a[hi];                                    \
            T pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y)); \
            int64_t i = lo, j = hi;                                                \
            while (i <= j) {                                                       \
                while (a[i] < pivot) i++;                                          \
                while (a[j] > pivot) j--;                                          \
                if (i <= j) {                                                      \
                    T t = a[i];                                                    \
                    a[i] = a[j];                                                   \
                    a[j] = t;                                                      \
                    i++;                                                           \
                    j--;                                                           \
                }                                                                  \
            }                                                                      \
            if (r <= j)                                                            \
                hi = j;                                                            \
            else if (r >= i)                                                       \
                lo = i;                                                            \
            else                                                                   \
                return;                                                            \
        }                                                                          \
    }
SELECT_FN(select_i64, int64_t)
SELECT_FN(select_u64, uint64_t)

/* Indices of the k rows with the highest count, ties at the k-th count broken by the smallest final
   hash mix64(value ^ salt) (salt = n * GOLDEN), in ascending index order; m > k >= 1 rows of
   distinct values. tmp_i: m int64, tmp_u: m uint64 of scratch; they may be the same memory (tmp_i is done
   with before tmp_u is first written). Returns k. */
int64_t curator_top_rows(const uint64_t* values, const int64_t* counts, int64_t m, int64_t k, uint64_t salt,
                         int64_t* out, int64_t* tmp_i, uint64_t* tmp_u) {
    /* The k-th largest count from a histogram of the counts (one pass; block counts are small), or,
       when it lies in the open top bin, by selection. */
    enum { BINS = 1024 };
    int64_t hist[BINS] = {0};
    for (int64_t i = 0; i < m; i++) {
        uint64_t c = (uint64_t)counts[i];
        hist[c < BINS - 1 ? c : BINS - 1]++;
    }
    int64_t kth = BINS - 1, seen = hist[BINS - 1];
    while (seen < k)
        seen += hist[--kth];
    if (kth == BINS - 1) {
        memcpy(tmp_i, counts, m * sizeof(int64_t));
        select_i64(tmp_i, m, m - k);
        kth = tmp_i[m - k];
    }
    int64_t above = 0, tied = 0;
    for (int64_t i = 0; i < m; i++) {
        above += counts[i] > kth;
        tied += counts[i] == kth;
    }
    int64_t need = k - above;
    uint64_t limit = ~0ULL; /* the need-th smallest hash among the tied rows */
    if (tied > need) {
        /* The hashes are uniform, so the need smallest of the tied ones are almost surely below twice
           their expected bound: select among those few; all of them if that guess falls short. */
        double share = 2.0 * (double)need / (double)tied;
        uint64_t guess = share >= 1.0 ? ~0ULL : (uint64_t)(share * 18446744073709551616.0);
        for (int pass = 0; pass < 2; pass++) {
            int64_t t = 0;
            for (int64_t i = 0; i < m; i++) {
                if (counts[i] == kth) {
                    uint64_t h = mix64(values[i] ^ salt);
                    tmp_u[t] = h;
                    t += h <= guess;
                }
            }
            if (t >= need) {
                select_u64(tmp_u, t, need - 1);
                limit = tmp_u[need - 1];
                break;
            }
            guess = ~0ULL;
        }
    }
    int64_t o = 0;
    for (int64_t i = 0; i < m; i++) {
        if (counts[i] > kth || (counts[i] == kth && (tied <= need || mix64(values[i] ^ salt) <= limit)))
            out[o++] = i;
    }
    return o;
}

/* hash % d for a fixed d >= 2, by a multiply: with M = floor(2^64 / d), q = floor(hash * M / 2^64) is
   floor(hash / d) or one less, so one correction step gives the remainder exactly. */
static inline uint64_t mod_by(uint64_t x, uint64_t d, uint64_t magic) {
#if defined(__SIZEOF_INT128__)
    uint64_t q = (uint64_t)(((unsigned __int128)x * magic) >> 64);
    uint64_t r = x - q * d;
    return r >= d ? r - d : r;
#else
    (void)magic;
    return x % d;
#endif
}

/* Folds one value range's rows (fold.py) into a dense bucket histogram: h[i] = mix64(v[i] ^ salt)
   (the n-gram's final hash), hist[h[i] % buckets] += c[i], and the indices of the rows with h[i] <
   limit (the sample; limit 0: none) into keep. Returns how many were kept. */
int64_t curator_fold_rows(const uint64_t* v, const int64_t* c, int64_t m, uint64_t salt, uint64_t buckets,
                          int64_t* hist, uint64_t limit, uint64_t* h, int64_t* keep) {
#if defined(__SIZEOF_INT128__)
    uint64_t magic = buckets > 1 ? (uint64_t)(((unsigned __int128)1 << 64) / buckets) : 0;
#else
    uint64_t magic = 0;
#endif
    int64_t nk = 0;
    for (int64_t i = 0; i < m; i++) {
        uint64_t x = mix64(v[i] ^ salt);
        h[i] = x;
        hist[buckets > 1 ? mod_by(x, buckets, magic) : 0] += c[i];
        keep[nk] = i;
        nk += x < limit;
    }
    return nk;
}
