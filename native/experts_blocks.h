/*
 * What the block-quantised experts kernels share (native/experts_q4.c, native/experts_q8.c): one
 * call runs every active expert of a layer, rows of x grouped by expert (`counts`), each expert's
 * gate_up and down as MatMulNBits blocks (engine/kernels/experts_graph.ts `quantizeBlocks`: per
 * output row, blocks of QB weights along the input, one float32 scale a block, the last block
 * zero-padded). Activations are quantised to int8 per block of QB (scale max|x| / 127), as ONNX
 * Runtime's MatMulNBits does at accuracy level 4, so results match that path to float rounding.
 *
 *   quantise x -> gate_up (2I rows) -> silu(gate) · up, quantised -> down (H rows)
 *
 * The including file defines, before this header: QB (weights a block), BLOB (bytes of codes a
 * block), ACT_AT(j) (where a block's j-th activation goes in qact_t.q, the order its dots read)
 * and KERNEL_FORMAT; after it, `codes_dot` and, on x86, `unpack` and `wdot` (below).
 */
#ifndef VTPU_EXPERTS_BLOCKS_H
#define VTPU_EXPERTS_BLOCKS_H
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <node_api.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#define KERNEL_USAGE "swiglu(H, I, threads, x, y, counts, guQ, guS, dnQ, dnS): H, I >= 1 and 1 <= threads <= 64"
#include "experts_call.h"

#define ROWS 64 /* fewest weight rows a chunk of work */

/* One block of a quantised activation row: its codes (in ACT_AT order), scale and code sum. */
typedef struct { int8_t q[QB]; float d; int32_t sum; } qact_t;

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
    for (int j = 0; j < QB; j++) {
      int c = (int)lrintf(v[j] * inv);
      out[b].q[ACT_AT(j)] = (int8_t)c;
      s += c;
    }
    out[b].d = d;
    out[b].sum = s;
  }
}

/* ---- dot products ---- */

#define MT 4          /* activation rows a weight block is applied to at once (prefill) */
/* Bytes ahead the decode loop asks for: the hardware prefetcher alone left a 2-core Zen 3 VM at
 * ~15 GB/s of its ~30 (a standalone run over 256 MB cold: 15 -> 24 GB/s with two threads). */
#define PREFETCH 2048
#define STEP (128 / BLOB) /* blocks a decode step: two cache lines of codes */

/* y[m·ys] = Σ_b scale[b]·d_m,b·(integer dot of block b less the zero point's share) for rows
 * m < M of `a` (stride nb blocks): one weight row (nb blocks at w, scales s) against M
 * activation rows. */
typedef void (*dot_fn)(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys);
static dot_fn dot;

/* The including file's, defined after this header: the integer dot of the block at c with
 * activation block q, less the zero point's share. */
static inline int32_t codes_dot(const uint8_t *c, const qact_t *q);

static void dot_portable(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  for (int m = 0; m < M; m++) {
    const qact_t *r = a + (size_t)m * nb;
    float acc = 0;
    for (int b = 0; b < nb; b++) acc += s[b] * r[b].d * (float)codes_dot(w + (size_t)b * BLOB, r + b);
    y[m * ys] = acc;
  }
}

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma")))

/* The sum of v's 8 lanes (each dot's accumulators at the end of a row). */
AVX2 static inline float hsum8(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

/* The including file's, defined after this header: a weight block as its dot reads it (`unpack`,
 * once per block however many rows use it), and that block's integer dot with activation block
 * q less the zero point's share, as 8 int32 partial sums (`wdot`). */
typedef struct { __m256i v[4]; } wblock_t;
AVX2 static inline wblock_t unpack(const uint8_t *c);
AVX2 static inline __m256i wdot(const wblock_t *u, const qact_t *q);

/* acc + s·d · (the dot of the block at c with q) */
AVX2 static inline __m256 block_fma(const uint8_t *c, float s, const qact_t *q, __m256 acc) {
  wblock_t u = unpack(c);
  return _mm256_fmadd_ps(_mm256_set1_ps(s * q->d), _mm256_cvtepi32_ps(wdot(&u, q)), acc);
}

AVX2 static void dot_avx2(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  if (M == 1) { /* decode: two cache lines a step, two accumulators (the FMA latency), codes fetched PREFETCH ahead */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + STEP <= nb; b += STEP) {
      const uint8_t *c = w + (size_t)b * BLOB;
      _mm_prefetch((const char *)(c + PREFETCH), _MM_HINT_T0);
      _mm_prefetch((const char *)(c + 64 + PREFETCH), _MM_HINT_T0);
      for (int k = 0; k < STEP; k += 2) {
        acc0 = block_fma(c + k * BLOB, s[b + k], a + b + k, acc0);
        acc1 = block_fma(c + (k + 1) * BLOB, s[b + k + 1], a + b + k + 1, acc1);
      }
    }
    for (; b < nb; b++) acc0 = block_fma(w + (size_t)b * BLOB, s[b], a + b, acc0);
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
      wblock_t u = unpack(c);
      for (int r = 0; r < mt; r++) {
        const qact_t *q = a + (size_t)(m0 + r) * nb + b;
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s[b] * q->d), _mm256_cvtepi32_ps(wdot(&u, q)), acc[r]);
      }
    }
    for (int r = 0; r < mt; r++) y[(size_t)(m0 + r) * ys] = hsum8(acc[r]);
  }
}
#endif

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
 * Their output rows form one index space (expert e's N rows, then e+1's), cut in `parts` chunks. */
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

/* Chunks of a phase over `rows` weight rows on `nt` threads: about four a thread (a late helper
 * still gets work), of at least ROWS rows. Long runs of contiguous rows let the hardware
 * prefetcher ramp up: a 30B-A3B layer's 8 routed experts, cold, took 0.82 ms (q4) and 1.5 ms
 * (q8) a call in 64-row chunks on a 2-core Zen 4 VM, 0.65 and 1.3 in ~1500-row ones (hand runs). */
static int chunks_of(int rows, int nt) {
  int per = (rows + 4 * nt - 1) / (4 * nt);
  if (per < ROWS) per = ROWS;
  return (rows + per - 1) / per;
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
  parallel(gate_up, &j, chunks_of(outs, c->nt), c->nt);
  parallel(act, &j, j.rows, c->nt);
  parallel(down, &j, chunks_of(ins, c->nt), c->nt);
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

#endif
