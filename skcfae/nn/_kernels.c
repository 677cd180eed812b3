/* CPU kernels of skcfae's sparse layers (skcfae/nn/_sparse.py), compiled on first use by
 * skcfae/nn/_native.py with the machine's C compiler and called through ctypes.
 *
 * A layer's connectivity is a CSR pattern (n_items x K: indptr, cols) with one float per
 * connection (w). The batch's b users are processed in tiles of 32 (four 8-float vectors held
 * in registers). Item-side operands are rows of b users, one per item; neuron-side operands
 * (K rows) are stored tile after tile, (b_pad / 32, K, 32) with b_pad = b rounded up to 32,
 * so that a tile's K x 32 floats lie together and stay in the core's cache while an item
 * sweep reads them (rows of b floats instead, b a power of two, fall into a few cache sets
 * and ran 1.3x slower than torch's kernels).
 *
 * Each kernel splits its items (or batch rows) into the n ranges cuts[0..n] given by the caller
 * and runs them on n OpenMP threads. Linked against libgomp.so.1, the library shares the
 * OpenMP runtime (and the threads) that torch's CPU build has already loaded: threads of a
 * second pool would compete for the cores with torch's, which keep spinning after each of
 * torch's parallel operations (measured: one of two threads ran 2x slower). The outputs of
 * different ranges never overlap, except the neuron accumulator of skcfae_neuron_side, of
 * which the caller gives each range its own.
 *
 * GCC/Clang vector extensions and OpenMP only: no intrinsics, no other libraries. */
#include <stdint.h>
#include <string.h>

#define TILE 32

typedef float v8 __attribute__((vector_size(32)));

static inline v8 ld(const float *p) {
    v8 x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void st(float *p, v8 x) { memcpy(p, &x, sizeof x); }

typedef float v4 __attribute__((vector_size(16)));

static inline float hsum(v8 x) { /* a tree, so that it compiles to two vector additions */
    v4 lo, hi;
    memcpy(&lo, &x, sizeof lo);
    memcpy(&hi, (const char *)&x + sizeof lo, sizeof hi);
    v4 q = lo + hi;
    return (q[0] + q[2]) + (q[1] + q[3]);
}

int skcfae_kernels_version(void) { return 2; }

#ifdef __AVX512F__
/* With AVX-512, groups of tiles (up to four: 128 users, eight 16-float vectors) are swept
 * together: each connection's index and weight are read once for all of them, and a
 * connection gradient takes one horizontal sum instead of one per tile. Measured on ML-20M's
 * shape (20,108 items, K=1000, R=100, batch 128, 2 threads): forward 5.2 -> 4.8 ms, the fused
 * backward 16.0 -> 13.9 ms; a Sw-dae epoch 3.50 -> 3.06 s. The backward's group holds at
 * most 1 MiB of neuron-side operands (2 tiles at K=2000: the four of them took 7.3 ms instead
 * of 6.2 on ml-1m's 3,706 items, two 5.5), so that they stay in the core's L2 cache. The
 * tiles left over take the loops below. Each returns the users it did. */
#define WIDE 4
typedef float v16 __attribute__((vector_size(64)));

static inline v16 ld16(const float *p) {
    v16 x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void st16(float *p, v16 x) { memcpy(p, &x, sizeof x); }

static inline float hsum16(v16 x) {
    v8 lo, hi;
    memcpy(&lo, &x, sizeof lo);
    memcpy(&hi, (const char *)&x + sizeof lo, sizeof hi);
    return hsum(lo + hi);
}

static int64_t item_major_wide(int64_t lo, int64_t hi, int64_t b, int64_t K, int64_t ldd,
                               const int64_t *indptr, const int64_t *cols, const float *w,
                               const float *bias, const float *src, float *dst) {
    int64_t done = b - b % (WIDE * TILE), tk = K * TILE; /* tk: floats between tiles */
    for (int64_t s = 0; s < done; s += WIDE * TILE) {
        const float *tiles = src + s * K;
        for (int64_t i = lo; i < hi; i++) {
            v16 a[2 * WIDE] = {{0}};
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
                const float *x = tiles + cols[c] * TILE;
                float wc = w[c];
                for (int j = 0; j < WIDE; j++) {
                    a[2 * j] += wc * ld16(x + j * tk);
                    a[2 * j + 1] += wc * ld16(x + j * tk + 16);
                }
            }
            float *y = dst + i * ldd + s, bi = bias ? bias[i] : 0.0f;
            for (int j = 0; j < 2 * WIDE; j++) st16(y + 16 * j, a[j] + bi);
        }
    }
    return done;
}

static inline __attribute__((always_inline)) int64_t
neuron_side_group(int group, int64_t lo, int64_t hi, int64_t b, int64_t K, int64_t ldi,
                  const int64_t *indptr, const int64_t *cols, const float *w, const float *items,
                  const float *dense, float *acc, float *dots) {
    int64_t done = b - b % (group * TILE), tk = K * TILE;
    for (int64_t s = 0; s < done; s += group * TILE) {
        float *acc_tiles = acc ? acc + s * K : NULL;
        const float *dense_tiles = dense ? dense + s * K : NULL;
        for (int64_t i = lo; i < hi; i++) {
            v16 g[2 * WIDE];
            for (int j = 0; j < 2 * group; j++) g[j] = ld16(items + i * ldi + s + 16 * j);
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
                int64_t k = cols[c];
                if (acc_tiles) {
                    float *a = acc_tiles + k * TILE;
                    float wc = w[c];
                    for (int j = 0; j < group; j++) {
                        st16(a + j * tk, ld16(a + j * tk) + wc * g[2 * j]);
                        st16(a + j * tk + 16, ld16(a + j * tk + 16) + wc * g[2 * j + 1]);
                    }
                }
                if (dense_tiles) {
                    const float *h = dense_tiles + k * TILE;
                    v16 q = g[0] * ld16(h), r = g[1] * ld16(h + 16);
                    for (int j = 1; j < group; j++) {
                        q += g[2 * j] * ld16(h + j * tk);
                        r += g[2 * j + 1] * ld16(h + j * tk + 16);
                    }
                    float d = hsum16(q + r);
                    dots[c] = s ? dots[c] + d : d;
                }
            }
        }
    }
    return done;
}

static int64_t neuron_side_wide(int64_t lo, int64_t hi, int64_t b, int64_t K, int64_t ldi,
                                const int64_t *indptr, const int64_t *cols, const float *w,
                                const float *items, const float *dense, float *acc,
                                float *dots) {
    if (!dense) return 0; /* the accumulation alone gains nothing: 8.8 -> 10.0 ms at K=1000 */
    int64_t tile_bytes = K * TILE * (int64_t)sizeof(float) * ((acc != NULL) + 1);
    if (WIDE * tile_bytes <= (1 << 20))
        return neuron_side_group(WIDE, lo, hi, b, K, ldi, indptr, cols, w, items, dense, acc,
                                 dots);
    if (2 * tile_bytes <= (1 << 20))
        return neuron_side_group(2, lo, hi, b, K, ldi, indptr, cols, w, items, dense, acc, dots);
    return 0;
}
#else
#define item_major_wide(...) 0
#define neuron_side_wide(...) 0
#endif

/* dst[i, u] = sum over item i's connections c of w[c] * src[cols[c], u], plus bias[i] (when
 * bias is not NULL, added last as in h Wᵀ + b), for i in [lo, hi) and the b users u.
 * src: K-side tiles (b_pad / 32, K, 32), zero-padded; dst: (n_items, ldd).
 * The decoder's forward product (with its bias: a separate addition wrote a second
 * n_items x b block) and the encoder's input gradient. */
static void item_major(int64_t lo, int64_t hi, int64_t b, int64_t K, int64_t ldd,
                       const int64_t *indptr, const int64_t *cols, const float *w,
                       const float *bias, const float *src, float *dst) {
    int64_t full = b - b % TILE;
    int64_t first = item_major_wide(lo, hi, b, K, ldd, indptr, cols, w, bias, src, dst);
    for (int64_t s = first; s < full; s += TILE) {
        const float *tile = src + s * K;
        for (int64_t i = lo; i < hi; i++) {
            v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
                const float *x = tile + cols[c] * TILE;
                float wc = w[c];
                a0 += wc * ld(x);
                a1 += wc * ld(x + 8);
                a2 += wc * ld(x + 16);
                a3 += wc * ld(x + 24);
            }
            float *y = dst + i * ldd + s, bi = bias ? bias[i] : 0.0f;
            st(y, a0 + bi);
            st(y + 8, a1 + bi);
            st(y + 16, a2 + bi);
            st(y + 24, a3 + bi);
        }
    }
    if (full == b) return;
    const float *tile = src + full * K;
    for (int64_t i = lo; i < hi; i++) {
        float *y = dst + i * ldd + full;
        for (int64_t u = 0; u < b - full; u++) y[u] = 0.0f;
        for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
            const float *x = tile + cols[c] * TILE;
            float wc = w[c];
            for (int64_t u = 0; u < b - full; u++) y[u] += wc * x[u];
        }
        if (bias)
            for (int64_t u = 0; u < b - full; u++) y[u] += bias[i];
    }
}

/* For items i in [lo, hi) and each connection c = (i, k):
 *   acc[k, :] += w[c] * items[i, :]          (when acc is not NULL)
 *   dots[c]    = <items[i, :], dense[k, :]>   (when dots is not NULL)
 * items: (n_items, ldi) rows of b users; dense and acc: K-side tiles (b_pad / 32, K, 32),
 * dense zero-padded. With items = the logits' gradient and dense = the hidden layer this is
 * the decoder's whole backward pass in one sweep (acc: the hidden gradient, dots: the
 * connection gradient); with acc alone it is the encoder's forward product for a dense
 * input, with dots alone the encoder's connection gradient. */
static void neuron_side(int64_t lo, int64_t hi, int64_t b, int64_t K, int64_t ldi,
                        const int64_t *indptr, const int64_t *cols, const float *w,
                        const float *items, const float *dense, float *acc, float *dots) {
    int64_t full = b - b % TILE;
    int64_t first = neuron_side_wide(lo, hi, b, K, ldi, indptr, cols, w, items, dense, acc, dots);
    for (int64_t s = first; s < full; s += TILE) {
        float *acc_tile = acc ? acc + s * K : NULL;
        const float *dense_tile = dense ? dense + s * K : NULL;
        for (int64_t i = lo; i < hi; i++) {
            const float *g = items + i * ldi + s;
            v8 g0 = ld(g), g1 = ld(g + 8), g2 = ld(g + 16), g3 = ld(g + 24);
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
                int64_t k = cols[c];
                if (acc_tile) {
                    float *a = acc_tile + k * TILE;
                    float wc = w[c];
                    st(a, ld(a) + wc * g0);
                    st(a + 8, ld(a + 8) + wc * g1);
                    st(a + 16, ld(a + 16) + wc * g2);
                    st(a + 24, ld(a + 24) + wc * g3);
                }
                if (dense_tile) {
                    const float *h = dense_tile + k * TILE;
                    float d = hsum(g0 * ld(h) + g1 * ld(h + 8) + g2 * ld(h + 16) + g3 * ld(h + 24));
                    dots[c] = s ? dots[c] + d : d;
                }
            }
        }
    }
    if (full == b) return;
    float *acc_tile = acc ? acc + full * K : NULL;
    const float *dense_tile = dense ? dense + full * K : NULL;
    for (int64_t i = lo; i < hi; i++) {
        const float *g = items + i * ldi + full;
        for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) {
            int64_t k = cols[c];
            if (acc_tile) {
                float *a = acc_tile + k * TILE;
                float wc = w[c];
                for (int64_t u = 0; u < b - full; u++) a[u] += wc * g[u];
            }
            if (dense_tile) {
                const float *h = dense_tile + k * TILE;
                float d = 0.0f;
                for (int64_t u = 0; u < b - full; u++) d += g[u] * h[u];
                dots[c] = full ? dots[c] + d : d;
            }
        }
    }
}

/* The encoder's forward product for a sparse batch, rows r in [lo, hi):
 *   out[r, cols[c]] += x * w[c] for each stored entry (r, i, x) and connection c of item i.
 * The batch is row-major (offsets, counts, items, vals); out: (n_rows, K), zeroed. */
static void sparse_rows(int64_t lo, int64_t hi, int64_t K, const int64_t *indptr,
                        const int64_t *cols, const float *w, const int64_t *offsets,
                        const int64_t *counts, const int64_t *items, const float *vals,
                        float *out) {
    for (int64_t r = lo; r < hi; r++) {
        float *h = out + r * K;
        for (int64_t e = offsets[r]; e < offsets[r] + counts[r]; e++) {
            int64_t i = items[e];
            float x = vals[e];
            if (x == 0.0f) continue; /* an entry dropped by dropout */
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) h[cols[c]] += x * w[c];
        }
    }
}

/* Its connection gradient: grad[c] = sum of x * gh[r, cols[c]] over the stored entries
 * (r, i, x) whose item i lies in [lo, hi) (so that threads given disjoint item ranges write
 * disjoint connections), zero for the items of no entry. gh: (n_rows, K); grad: (nnz,),
 * zeroed here, range by range (torch's fill of the 2,010,800 floats of ML-20M's shape
 * took 0.45 ms a batch, on one thread). */
static void sparse_rows_grad(int64_t lo, int64_t hi, int64_t n_rows, int64_t K,
                             const int64_t *indptr, const int64_t *cols, const int64_t *offsets,
                             const int64_t *counts, const int64_t *items, const float *vals,
                             const float *gh, float *grad) {
    memset(grad + indptr[lo], 0, (size_t)(indptr[hi] - indptr[lo]) * sizeof(float));
    for (int64_t r = 0; r < n_rows; r++) {
        const float *g = gh + r * K;
        for (int64_t e = offsets[r]; e < offsets[r] + counts[r]; e++) {
            int64_t i = items[e];
            float x = vals[e];
            if (i < lo || i >= hi || x == 0.0f) continue;
            for (int64_t c = indptr[i]; c < indptr[i + 1]; c++) grad[c] += x * g[cols[c]];
        }
    }
}

/* The logistic loss of Sw-dae's decoder (skcfae/nn/_losses.py) over elements [lo, hi) of a
 * block of logits z, in one pass: sig[j] = sigmoid(z[j]) * scale (the loss's 1 / b, so that
 * its gradient needs no second pass over the block), and the sum of softplus(z[j]) =
 * max(z, 0) + log1p(exp(-|z|)) returned in double. exp is a degree-6 polynomial after a
 * Cody-Waite reduction (Cephes' expf; arguments below -87.3 give exp(-87.3), 1e-38), log1p
 * 2 atanh(e / (2 + e)) as a series in s = e / (2 + e) <= 1/3, so small e stay exact; both
 * within a few float32 ulps. NaN propagates. torch's softplus and sigmoid took three passes
 * and 2.8 ms for the 128 x 20,108 logits of an ML-20M-shaped batch. With AVX-512 the lanes
 * are 16 floats (the same sigmoids to the bit; the sums in another order): 2.55 -> 1.55 ms
 * a batch inside a Sw-dae fit (1.29 -> 1.06 ms timed alone, on data in cache). */
#ifdef __AVX512F__ /* 16 floats a vector (v16, ld16, st16, hsum16 above) */
#define LW 16
#define VL v16
#define LDL ld16
#define STL st16
#define HSUML hsum16
#else
#define LW 8
#define VL v8
#define LDL ld
#define STL st
#define HSUML hsum
#endif
typedef int32_t il __attribute__((vector_size(4 * LW)));

static inline VL selectl(il mask, VL a, VL b) { /* mask ? a : b, lane by lane */
    il ai, bi;
    memcpy(&ai, &a, sizeof ai);
    memcpy(&bi, &b, sizeof bi);
    ai = (mask & ai) | (~mask & bi);
    memcpy(&a, &ai, sizeof a);
    return a;
}

static inline VL logistic_lanes(VL z, VL *sig) {
    VL zero = {0}, one = zero + 1.0f;
    il neg = z < zero;
    VL x = selectl(neg, z, -z); /* -|z| */
    x = selectl(x < -87.3f, zero - 87.3f, x);
    il n = __builtin_convertvector(x * 1.44269504f - 0.5f, il); /* round(x / ln 2), x <= 0 */
    VL nf = __builtin_convertvector(n, VL);
    VL r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
    VL q = 1.9875691500e-4f * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    il bits = (n + 127) << 23;
    VL scale;
    memcpy(&scale, &bits, sizeof scale);
    VL e = q * scale; /* exp(-|z|) */
    VL t = e / (e + 2.0f), t2 = t * t;
    VL p = zero + 1.0f / 15.0f;
    p = p * t2 + 1.0f / 13.0f;
    p = p * t2 + 1.0f / 11.0f;
    p = p * t2 + 1.0f / 9.0f;
    p = p * t2 + 1.0f / 7.0f;
    p = p * t2 + 1.0f / 5.0f;
    p = p * t2 + 1.0f / 3.0f;
    p = p * t2 + 1.0f;
    VL inv = one / (one + e);
    *sig = selectl(neg, e * inv, inv);
    return selectl(neg, zero, z) + 2.0f * t * p;
}

static double logistic(int64_t lo, int64_t hi, const float *z, float scale, float *sig) {
    double total = 0.0;
    int64_t j = lo;
    while (j + LW <= hi) { /* blocks of up to 512 summed in float, then in double */
        VL acc = {0};
        for (int64_t end = j + 512 < hi ? j + 512 : hi; j + LW <= end; j += LW) {
            VL sg;
            acc += logistic_lanes(LDL(z + j), &sg);
            STL(sig + j, sg * scale);
        }
        total += HSUML(acc);
    }
    if (j < hi) {
        float buf[LW] = {0}, out[LW];
        memcpy(buf, z + j, (size_t)(hi - j) * sizeof(float));
        VL sg, sp = logistic_lanes(LDL(buf), &sg);
        STL(out, sg * scale);
        memcpy(sig + j, out, (size_t)(hi - j) * sizeof(float));
        STL(buf, sp);
        for (int64_t u = 0; u < hi - j; u++) total += buf[u];
    }
    return total;
}

/* The entry points: one range of cuts per OpenMP thread. */
#define PARALLEL_RANGES _Pragma("omp parallel for num_threads(n) schedule(static, 1) if (n > 1)")

void skcfae_item_major(int n, const int64_t *cuts, int64_t b, int64_t K, int64_t ldd,
                       const int64_t *indptr, const int64_t *cols, const float *w,
                       const float *bias, const float *src, float *dst) {
    PARALLEL_RANGES
    for (int r = 0; r < n; r++)
        item_major(cuts[r], cuts[r + 1], b, K, ldd, indptr, cols, w, bias, src, dst);
}

/* acc (when given) holds one K-side tile array per range, acc_stride floats apart. */
void skcfae_neuron_side(int n, const int64_t *cuts, int64_t b, int64_t K, int64_t ldi,
                        const int64_t *indptr, const int64_t *cols, const float *w,
                        const float *items, const float *dense, float *acc, int64_t acc_stride,
                        float *dots) {
    PARALLEL_RANGES
    for (int r = 0; r < n; r++)
        neuron_side(cuts[r], cuts[r + 1], b, K, ldi, indptr, cols, w, items, dense,
                    acc ? acc + r * acc_stride : NULL, dots);
}

/* cuts: ranges of batch rows. */
void skcfae_sparse_rows(int n, const int64_t *cuts, int64_t K, const int64_t *indptr,
                        const int64_t *cols, const float *w, const int64_t *offsets,
                        const int64_t *counts, const int64_t *items, const float *vals,
                        float *out) {
    PARALLEL_RANGES
    for (int r = 0; r < n; r++)
        sparse_rows(cuts[r], cuts[r + 1], K, indptr, cols, w, offsets, counts, items, vals, out);
}

/* cuts: ranges of items. */
void skcfae_sparse_rows_grad(int n, const int64_t *cuts, int64_t n_rows, int64_t K,
                             const int64_t *indptr, const int64_t *cols, const int64_t *offsets,
                             const int64_t *counts, const int64_t *items, const float *vals,
                             const float *gh, float *grad) {
    PARALLEL_RANGES
    for (int r = 0; r < n; r++)
        sparse_rows_grad(cuts[r], cuts[r + 1], n_rows, K, indptr, cols, offsets, counts, items,
                         vals, gh, grad);
}

/* cuts: ranges of elements; sig: the sigmoids times scale; sums[r]: the softplus sum of
 * range r. */
void skcfae_logistic(int n, const int64_t *cuts, const float *z, float scale, float *sig,
                     double *sums) {
    PARALLEL_RANGES
    for (int r = 0; r < n; r++) sums[r] = logistic(cuts[r], cuts[r + 1], z, scale, sig);
}
