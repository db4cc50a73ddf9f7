/*
 * vtpu_experts_q4: the `q4` experts' SwiGLU forward, y = down(silu(gate(x)) · up(x)), on the
 * weights exactly as engine/kernels/experts_graph.ts packs them (per output row, blocks of 128
 * along the input: 64 bytes of 4-bit codes, low nibble first, zero point 8, one float32 scale a
 * block; the last block zero-padded). Activations are quantised to int8 per block of 128
 * (scale max|x| / 127), as ONNX Runtime's MatMulNBits does at accuracy level 4, so results
 * match that path to float rounding.
 *
 * Why not ONNX Runtime: one decode step routes a token to 8 of 128 experts. A hand run on a 2-core
 * AVX2 VM (8 random 30B-A3B layers in the sidecar, 8 random experts a call, weights cold from
 * memory) took 3.1 ms a call in MatMulNBits over a 128-expert graph and 1.7 ms here (~0.9 ms since the loop prefetches): the work is
 * a 20 MB read, and the graph's per-kernel costs were most of the difference. The 48-layer runs
 * are in README's full-size section.
 *
 * One call runs every active expert of a layer: rows of x grouped by expert (`counts`), the
 * experts' weights as typed arrays. Work is split over a pool of threads made on first use;
 * idle threads spin ~50 µs, then sleep (the client computes between calls and must get the cores).
 * Plain C against Node-API; AVX2 kernels chosen at run time, a portable one otherwise.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <node_api.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#define KERNEL_FORMAT "q4"
#define KERNEL_USAGE "swiglu(H, I, threads, x, y, counts, guQ, guS, dnQ, dnS): H, I >= 1 and 1 <= threads <= 64"
#include "experts_call.h"

#define QB 128          /* weights (and activations) per quantisation block */
#define BLOB (QB / 2)   /* bytes of 4-bit codes a block */
#define MT 4            /* activation rows a weight block is applied to at once */
#define ROWS 64         /* weight rows a chunk of work (decode: ~10 µs) */
/* Bytes ahead the decode loop asks for: the hardware prefetcher alone left a 2-core Zen 3 VM at
 * ~15 GB/s of its ~30 (a standalone run over 256 MB cold: 15 -> 24 GB/s with two threads). */
#define PREFETCH 2048

/* One block of a quantised activation row: codes reordered per 64 as [32 even][32 odd] so that a
 * byte's low nibbles meet the even inputs and its high nibbles the odd ones. */
typedef struct { int8_t q[QB]; float d; int32_t sum; } qact_t;

/* ---- quantisation and dot products ---- */

/* x (K floats) to nb blocks (zero-padded past K). */
static void quant_row(const float *x, int K, int nb, qact_t *out) {
  for (int b = 0; b < nb; b++) {
    float v[QB];
    int len = K - b * QB < QB ? K - b * QB : QB;
    memcpy(v, x + b * QB, sizeof(float) * len);
    for (int j = len; j < QB; j++) v[j] = 0;
    float m = 0;
    for (int j = 0; j < QB; j++) m = fmaxf(m, fabsf(v[j]));
    float d = m / 127.f, inv = d > 0 ? 1.f / d : 0.f;
    int32_t s = 0;
    for (int h = 0; h < QB; h += 64)
      for (int j = 0; j < 32; j++) {
        int e = (int)lrintf(v[h + 2 * j] * inv), o = (int)lrintf(v[h + 2 * j + 1] * inv);
        out[b].q[h + j] = (int8_t)e;
        out[b].q[h + 32 + j] = (int8_t)o;
        s += e + o;
      }
    out[b].d = d;
    out[b].sum = s;
  }
}

/* y[m·ys] = Σ_b scale[b]·d_m,b·(Σ codes·q - 8·sum) for rows m < M of `a` (stride nb blocks):
 * one weight row (nb blocks at w, scales s) against M activation rows. */
typedef void (*dot_fn)(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys);

static void dot_portable(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  for (int m = 0; m < M; m++) {
    const qact_t *r = a + (size_t)m * nb;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
      const uint8_t *c = w + (size_t)b * BLOB;
      int32_t t = 0;
      for (int h = 0; h < 2; h++)
        for (int j = 0; j < 32; j++) {
          uint8_t byte = c[h * 32 + j];
          t += (byte & 15) * r[b].q[h * 64 + j] + (byte >> 4) * r[b].q[h * 64 + 32 + j];
        }
      acc += s[b] * r[b].d * (float)(t - 8 * r[b].sum);
    }
    y[m * ys] = acc;
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

/* One weight block's 128 codes against one activation block, as 8 int32 partial sums. */
__attribute__((target("avx2,fma"))) static inline __m256i block_dot(__m256i lo0, __m256i hi0, __m256i lo1, __m256i hi1, const qact_t *q) {
  const __m256i ones = _mm256_set1_epi16(1);
  /* codes ≤ 15 and |q| ≤ 127: a pair's sum fits int16 (VPMADDUBSW saturates past it) */
  __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo0, _mm256_loadu_si256((const __m256i *)q->q)),
                               _mm256_maddubs_epi16(hi0, _mm256_loadu_si256((const __m256i *)(q->q + 32))));
  __m256i u = _mm256_add_epi16(_mm256_maddubs_epi16(lo1, _mm256_loadu_si256((const __m256i *)(q->q + 64))),
                               _mm256_maddubs_epi16(hi1, _mm256_loadu_si256((const __m256i *)(q->q + 96))));
  return _mm256_madd_epi16(_mm256_add_epi16(p, u), ones);
}

/* One weight block's codes and the integer dot with activation block q, less 8·Σq (the zero
 * point, folded in as an integer: no float correction chain). */
__attribute__((target("avx2,fma"))) static inline __m256i block_at(const uint8_t *c, const qact_t *q) {
  const __m256i m4 = _mm256_set1_epi8(15);
  __m256i r0 = _mm256_loadu_si256((const __m256i *)c), r1 = _mm256_loadu_si256((const __m256i *)(c + 32));
  __m256i t = block_dot(_mm256_and_si256(r0, m4), _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4),
                        _mm256_and_si256(r1, m4), _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4), q);
  return _mm256_sub_epi32(t, _mm256_setr_epi32(8 * q->sum, 0, 0, 0, 0, 0, 0, 0));
}

__attribute__((target("avx2,fma"))) static void dot_avx2(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  const __m256i m4 = _mm256_set1_epi8(15);
  if (M == 1) { /* decode: its own loop, two accumulators (the FMA latency), codes fetched PREFETCH ahead */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < nb; b += 2) {
      const uint8_t *c = w + (size_t)b * BLOB;
      _mm_prefetch((const char *)(c + PREFETCH), _MM_HINT_T0);
      _mm_prefetch((const char *)(c + BLOB + PREFETCH), _MM_HINT_T0);
      acc0 = _mm256_fmadd_ps(_mm256_set1_ps(s[b] * a[b].d), _mm256_cvtepi32_ps(block_at(c, a + b)), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_set1_ps(s[b + 1] * a[b + 1].d), _mm256_cvtepi32_ps(block_at(c + BLOB, a + b + 1)), acc1);
    }
    if (b < nb) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(s[b] * a[b].d), _mm256_cvtepi32_ps(block_at(w + (size_t)b * BLOB, a + b)), acc0);
    y[0] = hsum8(_mm256_add_ps(acc0, acc1));
    return;
  }
  for (int m0 = 0; m0 < M; m0 += MT) { /* prefill: each weight block unpacked once for MT rows */
    int mt = M - m0 < MT ? M - m0 : MT;
    __m256 acc[MT];
    for (int r = 0; r < MT; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
      const uint8_t *c = w + (size_t)b * BLOB;
      _mm_prefetch((const char *)(c + PREFETCH), _MM_HINT_T0);
      __m256i r0 = _mm256_loadu_si256((const __m256i *)c), r1 = _mm256_loadu_si256((const __m256i *)(c + 32));
      __m256i lo0 = _mm256_and_si256(r0, m4), hi0 = _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4);
      __m256i lo1 = _mm256_and_si256(r1, m4), hi1 = _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4);
      for (int r = 0; r < mt; r++) {
        const qact_t *q = a + (size_t)(m0 + r) * nb + b;
        __m256i t = _mm256_sub_epi32(block_dot(lo0, hi0, lo1, hi1, q), _mm256_setr_epi32(8 * q->sum, 0, 0, 0, 0, 0, 0, 0));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s[b] * q->d), _mm256_cvtepi32_ps(t), acc[r]);
      }
    }
    for (int r = 0; r < mt; r++) y[(size_t)(m0 + r) * ys] = hsum8(acc[r]);
  }
}
#endif

static dot_fn dot = dot_portable;

/* ---- one layer's call ---- */

typedef struct {
  int H, I, n, rows, nbH, nbI;
  const float *x;
  float *y, *h;              /* y (rows, H); h (rows, 2I) gate and up */
  qact_t *qx, *qm;           /* (rows, nbH), (rows, nbI) */
  const int32_t *counts;     /* rows per expert */
  int32_t *first;            /* first row of each expert (n + 1) */
  const uint8_t **guQ, **dnQ;
  const float **guS, **dnS;
} job_t;

static void quant_x(void *c, int part, int parts) { /* a chunk a row */
  job_t *j = c;
  int a, b;
  span(j->rows, part, parts, &a, &b);
  for (int r = a; r < b; r++) quant_row(j->x + (size_t)r * j->H, j->H, j->nbH, j->qx + (size_t)r * j->nbH);
}

/* out = qa · Wᵀ for every active expert's rows (codes Q, scales S: N weight rows of nb blocks).
 * Their output rows form one index space (expert e's N rows, then e+1's), cut in chunks of ROWS. */
static void linear_rows(const job_t *j, int part, int parts, const uint8_t **Q, const float **S, int N, int nb, const qact_t *qa, float *out) {
  int a, b;
  span(j->n * N, part, parts, &a, &b);
  for (int i = a; i < b; i++) {
    int e = i / N, o = i % N, M = j->counts[e];
    if (M) dot(Q[e] + (size_t)o * nb * BLOB, S[e] + (size_t)o * nb, nb, qa + (size_t)j->first[e] * nb, M, out + (size_t)j->first[e] * N + o, N);
  }
}

static void gate_up(void *c, int part, int parts) {
  job_t *j = c;
  linear_rows(j, part, parts, j->guQ, j->guS, 2 * j->I, j->nbH, j->qx, j->h);
}

static void act(void *c, int part, int parts) { /* a chunk a row */
  job_t *j = c;
  int a, b, I = j->I;
  span(j->rows, part, parts, &a, &b);
  for (int r = a; r < b; r++) {
    float *h = j->h + (size_t)r * 2 * I; /* silu(gate) · up into the gate half */
    for (int i = 0; i < I; i++) h[i] = h[i] / (1.f + expf(-h[i])) * h[I + i];
    quant_row(h, I, j->nbI, j->qm + (size_t)r * j->nbI);
  }
}

static void down(void *c, int part, int parts) {
  job_t *j = c;
  linear_rows(j, part, parts, j->dnQ, j->dnS, j->H, j->nbI, j->qm, j->y);
}

/* ---- Node-API ---- */

/* swiglu(H, I, threads, x, y, counts, guQ[], guS[], dnQ[], dnS[]): the lists hold expert j's packed
 * gate_up (2I rows of H) and down (H rows of I): Uint8Array codes, Float32Array scales
 * (experts_call.h has the rest). */
static int spec_of(int H, int I, tensor_spec *s) {
  if (s) {
    size_t nbH = (H + QB - 1) / QB, nbI = (I + QB - 1) / QB;
    s[0] = (tensor_spec){ napi_uint8_array, (size_t)2 * I * nbH * BLOB, "gate_up codes" };
    s[1] = (tensor_spec){ napi_float32_array, (size_t)2 * I * nbH, "gate_up scales" };
    s[2] = (tensor_spec){ napi_uint8_array, (size_t)H * nbI * BLOB, "down codes" };
    s[3] = (tensor_spec){ napi_float32_array, (size_t)H * nbI, "down scales" };
  }
  return 4;
}

static int compute(call_t *c) {
  job_t j = { .H = c->H, .I = c->I, .n = c->n, .rows = c->rows, .counts = c->counts, .first = c->first, .x = c->x, .y = c->y };
  j.nbH = (j.H + QB - 1) / QB, j.nbI = (j.I + QB - 1) / QB;
  size_t n = (size_t)c->n;
  j.guQ = (const uint8_t **)c->ptrs, j.guS = (const float **)(c->ptrs + n), j.dnQ = (const uint8_t **)(c->ptrs + 2 * n), j.dnS = (const float **)(c->ptrs + 3 * n);
  j.h = grown(1, sizeof(float) * j.rows * 2 * j.I);
  j.qx = grown(2, sizeof(qact_t) * ((size_t)j.rows * j.nbH + (size_t)j.rows * j.nbI));
  if (!j.h || !j.qx) return -1;
  j.qm = j.qx + (size_t)j.rows * j.nbH;
  int outs = j.n * 2 * j.I, ins = j.n * j.H; /* output rows of gate_up and of down */
  parallel(quant_x, &j, j.rows, c->nt);
  parallel(gate_up, &j, (outs + ROWS - 1) / ROWS, c->nt);
  parallel(act, &j, j.rows, c->nt);
  parallel(down, &j, (ins + ROWS - 1) / ROWS, c->nt);
  return pool.helpers + 1;
}

static void set_isa(int avx2) {
  dot = dot_portable, avx2_on = 0;
#if defined(__x86_64__)
  if (avx2) dot = dot_avx2, avx2_on = 1;
#endif
}

NAPI_MODULE_INIT() {
  set_isa(has_avx2());
  return define_exports(env, exports, NULL, 0);
}
