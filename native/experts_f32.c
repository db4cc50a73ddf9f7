/*
 * vtpu_experts_f32: the `fp32` experts' SwiGLU forward, y = down(silu(gate(x)) · up(x)), in
 * float32 throughout. Weights are held in panels (`pack`): a matrix W of N output rows and K
 * inputs becomes ceil(N/16) panels, panel p holding rows 16p..16p+15 as [K][16] (rows past N
 * zero), so a tile of 16 outputs reads one contiguous stream and a row of x meets 16 weights
 * with one broadcast. A tile is up to 6 rows of x against one panel: 12 accumulators, 2 loads
 * and 6 broadcasts for 12 FMAs a step (the usual AVX2 SGEMM register block); one row of x (a
 * decode token) gets its own loop, two steps at a time (prefill tiles prefetch the panel 2 KB ahead).
 *
 * The same panels and tiles serve a dense matrix (`linear`, a model's lm_head or attention
 * projections held beside its experts): a decode token's 151,936 × 2048 product is a 1.2 GB
 * stream, and torch's one-row product reads it on one core while this splits the panels over the
 * pool. A dense matrix may also be held in bfloat16 panels (same layout, 2-byte elements, widened
 * to float32 exactly as they are loaded; the sums stay float32): the product is a memory stream,
 * so half the bytes is nearly half the time.
 *
 * Why not ONNX Runtime: a decode step routes a token to 8 of 128 experts, a 19 MB read a
 * 30B-A3B layer, and ORT's graph of 128 experts (Split, 256 Gemm kernels, Concat) cost ~3 ms of
 * its own a call; its prepacked weights also stay private to its session, so the event loop
 * could not answer decode calls from them. Here the packed experts live in shared memory and
 * the same arrays serve decode (inline) and prefill (the expert thread).
 *
 * One call runs every active expert of a layer: rows of x grouped by expert (`counts`), each
 * expert's packed gate_up and down. Work is split over the pool in pool.h. Plain C against
 * Node-API; the AVX2 tile chosen at run time, a portable one otherwise.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#define KERNEL_FORMAT "fp32"
#define KERNEL_USAGE "swiglu(H, I, threads, x, y, counts, gu, dn): H, I >= 1 and 1 <= threads <= 64"
static int dense_entry(int N, int K, int threads, int T, const float *x, float *y, const void *packed, int wfmt);
#define KERNEL_LINEAR dense_entry
#include "experts_call.h"

#define NR 16          /* outputs a panel */
#define MR 6           /* rows of x a tile */
#ifndef PREFETCH
#define PREFETCH 2048  /* bytes of panel a prefill tile asks for ahead of its loop */
#endif

static int panels(int N) { return (N + NR - 1) / NR; }

/* c[m·ldc + j] = Σ_k a[m·lda + k] · p[k·NR + j] for m < M (≤ MR), j < nc (≤ NR); p float32 or
 * bfloat16 (the tile's format). */
typedef void (*tile_fn)(const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc);

/* A bfloat16's float32: its bits are the float's upper half. */
static inline float widen(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline void tile_portable_of(const int BF, const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) {
  for (int m = 0; m < M; m++) {
    float acc[NR] = { 0 };
    const float *x = a + (size_t)m * lda;
    for (int k = 0; k < K; k++)
      for (int j = 0; j < NR; j++) acc[j] += x[k] * (BF ? widen(((const uint16_t *)p)[(size_t)k * NR + j]) : ((const float *)p)[(size_t)k * NR + j]);
    for (int j = 0; j < nc; j++) c[(size_t)m * ldc + j] = acc[j];
  }
}

static void tile_portable(const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) { tile_portable_of(0, p, K, a, lda, M, c, ldc, nc); }
static void tile_bf16_portable(const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) { tile_portable_of(1, p, K, a, lda, M, c, ldc, nc); }

#if defined(__x86_64__)
/* Stores a row of 16 accumulators, the first nc of them. */
__attribute__((target("avx2,fma"))) static inline void put(float *c, __m256 lo, __m256 hi, int nc) {
  if (nc == NR) {
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
    return;
  }
  float t[NR];
  _mm256_storeu_ps(t, lo);
  _mm256_storeu_ps(t + 8, hi);
  memcpy(c, t, sizeof(float) * nc);
}

/* Eight panel elements from element i on, as floats (bfloat16 widened: zero-extend, shift up). */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 load8(const int BF, const void *p, size_t i) {
  if (BF) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))), 16));
  return _mm256_loadu_ps((const float *)p + i);
}

/* One row: two k steps at a time on four accumulators (the FMA latency). No software prefetch: a
 * panel is one contiguous stream the hardware prefetcher follows, and asking 2 KB ahead made an
 * 8-expert decode call of the 30B-A3B shape slower (2-core Zen 3 VM, 20 ms between calls: 9–13%
 * faster without in each of 7 interleaved pairs, 5.4–6.4 ms against 6.1–7.0). */
__attribute__((target("avx2,fma"), always_inline)) static inline void row_avx2(const int BF, const void *p, int K, const float *x, float *c, int nc) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int k = 0;
  for (; k + 1 < K; k += 2) {
    const size_t w = (size_t)k * NR;
    const __m256 v0 = _mm256_broadcast_ss(x + k), v1 = _mm256_broadcast_ss(x + k + 1);
    a0 = _mm256_fmadd_ps(v0, load8(BF, p, w), a0);
    a1 = _mm256_fmadd_ps(v0, load8(BF, p, w + 8), a1);
    a2 = _mm256_fmadd_ps(v1, load8(BF, p, w + 16), a2);
    a3 = _mm256_fmadd_ps(v1, load8(BF, p, w + 24), a3);
  }
  if (k < K) {
    const __m256 v = _mm256_broadcast_ss(x + k);
    a0 = _mm256_fmadd_ps(v, load8(BF, p, (size_t)k * NR), a0);
    a1 = _mm256_fmadd_ps(v, load8(BF, p, (size_t)k * NR + 8), a1);
  }
  put(c, _mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3), nc);
}

/* MM rows (a constant where it is called, so the accumulators stay in registers). */
__attribute__((target("avx2,fma"), always_inline)) static inline void rows_avx2(const int BF, const int MM, const void *p, int K, const float *a, size_t lda, float *c, size_t ldc, int nc) {
  __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
  for (int m = 0; m < MM; m++) lo[m] = hi[m] = _mm256_setzero_ps();
  for (int k = 0; k < K; k++) {
    const size_t w = (size_t)k * NR;
    _mm_prefetch((const char *)p + w * (BF ? 2 : 4) + PREFETCH, _MM_HINT_T0);
    const __m256 b0 = load8(BF, p, w), b1 = load8(BF, p, w + 8);
#pragma GCC unroll 6
    for (int m = 0; m < MM; m++) {
      const __m256 v = _mm256_broadcast_ss(a + (size_t)m * lda + k);
      lo[m] = _mm256_fmadd_ps(v, b0, lo[m]);
      hi[m] = _mm256_fmadd_ps(v, b1, hi[m]);
    }
  }
#pragma GCC unroll 6
  for (int m = 0; m < MM; m++) put(c + (size_t)m * ldc, lo[m], hi[m], nc);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void tile_avx2_of(const int BF, const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) {
  switch (M) {
    case 1: row_avx2(BF, p, K, a, c, nc); break;
    case 2: rows_avx2(BF, 2, p, K, a, lda, c, ldc, nc); break;
    case 3: rows_avx2(BF, 3, p, K, a, lda, c, ldc, nc); break;
    case 4: rows_avx2(BF, 4, p, K, a, lda, c, ldc, nc); break;
    case 5: rows_avx2(BF, 5, p, K, a, lda, c, ldc, nc); break;
    default: rows_avx2(BF, 6, p, K, a, lda, c, ldc, nc); break;
  }
}

__attribute__((target("avx2,fma"))) static void tile_avx2(const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) { tile_avx2_of(0, p, K, a, lda, M, c, ldc, nc); }
__attribute__((target("avx2,fma"))) static void tile_bf16_avx2(const void *p, int K, const float *a, size_t lda, int M, float *c, size_t ldc, int nc) { tile_avx2_of(1, p, K, a, lda, M, c, ldc, nc); }
#endif

static tile_fn tile = tile_portable, tile_bf16 = tile_bf16_portable; /* by element format */

/* ---- one layer's call ---- */

typedef struct {
  int H, I, n, rows;
  const float *x;
  float *y, *h;              /* y (rows, H); h (rows, 2I): gate and up, then silu(gate)·up in the gate half */
  const int32_t *counts;     /* rows per expert */
  int32_t *first;            /* first row of each expert (n + 1) */
  const float **gu, **dn;    /* packed gate_up (2I outputs of H), down (H outputs of I) */
  int bf16;                  /* a dense job's W is bfloat16 panels (gu[0]) */
} job_t;

/* out (rows, N) = in (rows, K; row stride lda) · Wᵀ for every expert's rows. A unit of work is
 * one panel of one expert: expert e's panels, then e+1's. */
static void linear(const job_t *j, int part, int parts, const float **W, int N, int K, const float *in, size_t lda, float *out) {
  int P = panels(N), a, b;
  span(j->n * P, part, parts, &a, &b);
  const tile_fn t = j->bf16 ? tile_bf16 : tile;
  for (int u = a; u < b; u++) {
    int e = u / P, q = u % P, M = j->counts[e], nc = N - q * NR < NR ? N - q * NR : NR;
    const void *p = (const char *)W[e] + (size_t)q * K * NR * (j->bf16 ? 2 : 4);
    for (int m = 0; m < M; m += MR) {
      int r = j->first[e] + m;
      t(p, K, in + (size_t)r * lda, lda, M - m < MR ? M - m : MR, out + (size_t)r * N + q * NR, N, nc);
    }
  }
}

static void gate_up(void *c, int part, int parts) {
  job_t *j = c;
  linear(j, part, parts, j->gu, 2 * j->I, j->H, j->x, j->H, j->h);
}

static void act(void *c, int part, int parts) { /* a chunk a row */
  job_t *j = c;
  int a, b, I = j->I;
  span(j->rows, part, parts, &a, &b);
  for (int r = a; r < b; r++) {
    float *h = j->h + (size_t)r * 2 * I;
    for (int i = 0; i < I; i++) h[i] = h[i] / (1.f + expf(-h[i])) * h[I + i];
  }
}

static void down(void *c, int part, int parts) {
  job_t *j = c;
  linear(j, part, parts, j->dn, j->H, j->I, j->h, (size_t)2 * j->I, j->y);
}

/* ---- a dense matrix: y (T, N) = x (T, K) · Wᵀ over W's panels ---- */

/* A dense matrix is one "expert" whose rows are all of x: `linear` over its panels (H = K inputs,
 * I = N outputs here). A chunk is a run of whole panels, so each thread reads one stretch of W. */
static void dense_part(void *c, int part, int parts) {
  job_t *j = c;
  linear(j, part, parts, j->gu, j->I, j->H, j->x, j->H, j->y);
}

/* Under the call lock, as swiglu; returns the threads used. */
static int dense_entry(int N, int K, int threads, int T, const float *x, float *y, const void *packed, int wfmt) {
  pthread_mutex_lock(&call_mu);
  int32_t first[2] = { 0, T };
  const float *w = packed;
  job_t j = { .H = K, .I = N, .n = 1, .rows = T, .x = x, .y = y, .counts = &first[1], .first = first, .gu = &w, .bf16 = wfmt == DENSE_BF16 };
  int P = panels(N), chunks = P < 64 * threads ? P : 64 * threads;
  parallel(dense_part, &j, chunks, threads);
  int used = pool.helpers + 1;
  pthread_mutex_unlock(&call_mu);
  return used;
}

/* ---- Node-API ---- */

/* A float32's nearest bfloat16 (ties to even; a NaN stays a NaN). */
static uint16_t narrow(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* pack(N, K, w, out): w (N rows of K, Float32Array) into panels, out a Float32Array of
 * ceil(N/16)·K·16, or a Uint16Array of as many (bfloat16 panels, each weight rounded to nearest). */
static napi_value pack(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int N, K, bf;
  if (argc < 4 || !get_int(env, argv[0], 1, 1 << 24, &N) || !get_int(env, argv[1], 1, 1 << 24, &K))
    return fail(env, "E_PARAM", "pack(N, K, w, out): N, K >= 1");
  const float *w = typed(env, argv[2], napi_float32_array, (size_t)N * K);
  void *out = (void *)dense_panels(env, argv[3], N, K, &bf);
  if (!w || !out) return fail(env, "E_SHAPE", "pack: w must be a Float32Array of N·K and out a Float32Array or Uint16Array of ceil(N/16)·K·16");
  float *pf = out;
  uint16_t *ph = out;
  for (int q = 0; q < panels(N); q++) {
    size_t o = (size_t)q * K * NR;
    for (int j = 0; j < NR; j++) {
      int n = q * NR + j;
      for (int k = 0; k < K; k++) {
        float v = n < N ? w[(size_t)n * K + k] : 0;
        if (bf == DENSE_BF16) ph[o + (size_t)k * NR + j] = narrow(v);
        else pf[o + (size_t)k * NR + j] = v;
      }
    }
  }
  return NULL;
}

/* linear(N, K, threads, x, y, packed) -> threads used: y (T, N) = x (T, K) · Wᵀ, T = x.length / K,
 * W as `pack` wrote it (float32 or bfloat16 panels). */
static napi_value linear_napi(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], ret;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int N, K, nt, bf = 0;
  if (argc < 6 || !get_int(env, argv[0], 1, 1 << 24, &N) || !get_int(env, argv[1], 1, 1 << 24, &K) || !get_int(env, argv[2], 1, MAXT, &nt))
    return fail(env, "E_PARAM", "linear(N, K, threads, x, y, packed): N, K >= 1 and 1 <= threads <= 64");
  size_t xl = 0, yl = 0;
  const float *x = typed_any(env, argv[3], napi_float32_array, &xl);
  float *y = typed_any(env, argv[4], napi_float32_array, &yl);
  const void *p = dense_panels(env, argv[5], N, K, &bf);
  size_t T = x ? xl / K : 0;
  if (!x || !y || !p || T < 1 || T * K != xl || yl != T * N)
    return fail(env, "E_SHAPE", "linear: x must be a Float32Array of T·K (T >= 1), y one of T·N, packed a Float32Array or Uint16Array of ceil(N/16)·K·16");
  napi_create_int32(env, dense_entry(N, K, nt, (int)T, x, y, p, bf), &ret);
  return ret;
}

/* swiglu(H, I, threads, x, y, counts, gu[], dn[]): gu[j], dn[j] are expert j's packed gate_up (2I
 * outputs of H) and down (H outputs of I), Float32Arrays from `pack` (experts_call.h has the rest). */
static int spec_of(int H, int I, tensor_spec *s) {
  if (s) {
    s[0] = (tensor_spec){ napi_float32_array, (size_t)panels(2 * I) * H * NR, "packed gate_up" };
    s[1] = (tensor_spec){ napi_float32_array, (size_t)panels(H) * I * NR, "packed down" };
  }
  return 2;
}

static int compute(call_t *c) {
  job_t j = { .H = c->H, .I = c->I, .n = c->n, .rows = c->rows, .counts = c->counts, .first = c->first, .x = c->x, .y = c->y };
  j.gu = (const float **)c->ptrs, j.dn = (const float **)(c->ptrs + c->n);
  j.h = grown(1, sizeof(float) * j.rows * 2 * j.I);
  if (!j.h) return -1;
  parallel(gate_up, &j, j.n * panels(2 * j.I), c->nt);
  parallel(act, &j, j.rows, c->nt);
  parallel(down, &j, j.n * panels(j.H), c->nt);
  return pool.helpers + 1;
}

static void set_isa(int avx2) {
  tile = tile_portable, tile_bf16 = tile_bf16_portable, avx2_on = 0;
#if defined(__x86_64__)
  if (avx2) tile = tile_avx2, tile_bf16 = tile_bf16_avx2, avx2_on = 1;
#endif
}

NAPI_MODULE_INIT() {
  set_isa(has_avx2());
  napi_property_descriptor more[] = { { "pack", NULL, pack, NULL, NULL, NULL, napi_default, NULL },
                                      { "linear", NULL, linear_napi, NULL, NULL, NULL, napi_default, NULL } };
  return define_exports(env, exports, more, 2);
}
