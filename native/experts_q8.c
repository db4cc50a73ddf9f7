/*
 * vtpu_experts_q8: the `q8` experts' SwiGLU forward, y = down(silu(gate(x)) · up(x)), on
 * MatMulNBits blocks of 32 weights: 32 bytes of 8-bit codes, zero point 128 (the pipeline, the
 * activations' quantisation and the Node-API surface: experts_blocks.h).
 *
 * Why not ONNX Runtime: as for q4 (experts_q4.c), a decode call is a read of the 8 routed experts'
 * ~40 MB (30B-A3B), and the 128-expert graph's per-kernel costs were most of its time; a q8 layer
 * on this kernel can also be answered by the doorbell (experts_bell.c). Figures in README.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <node_api.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#define KERNEL_FORMAT "q8"
#define KERNEL_USAGE "swiglu(H, I, threads, x, y, counts, guQ, guS, dnQ, dnS): H, I >= 1 and 1 <= threads <= 64"
#define QB 32           /* weights (and activations) per quantisation block */
#define BLOB QB         /* bytes of codes a block */
#define ACT_AT(j) (j)   /* activations in input order, as the codes */
#include "experts_blocks.h"

#define MT 4            /* activation rows a weight block is applied to at once */
#define PREFETCH 2048   /* bytes ahead the decode loop asks for (why: experts_q4.c) */

/* ---- dot products ---- */

static void dot_portable(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  for (int m = 0; m < M; m++) {
    const qact_t *r = a + (size_t)m * nb;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
      const uint8_t *c = w + (size_t)b * BLOB;
      int32_t t = 0;
      for (int j = 0; j < QB; j++) t += (c[j] - 128) * r[b].q[j];
      acc += s[b] * r[b].d * (float)t;
    }
    y[m * ys] = acc;
  }
}

#if defined(__x86_64__)
/* A block's 32 codes as signed weights c - 128 (the XOR; |w| <= 128). */
__attribute__((target("avx2,fma"))) static inline __m256i weights_at(const uint8_t *c) {
  return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)c), _mm256_set1_epi8((char)0x80));
}

/* Σ w·q of one block as 8 int32 partial sums, from |w| (read unsigned: -128's is 128) and w's
 * signs moved onto q: a pair's sum is at most 2·128·127 < 32767, so VPMADDUBSW never saturates. */
__attribute__((target("avx2,fma"))) static inline __m256i block_dot(__m256i absw, __m256i w, const int8_t *q) {
  __m256i p = _mm256_maddubs_epi16(absw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q), w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* acc + s·d · (block b's dot with activation block q) */
__attribute__((target("avx2,fma"))) static inline __m256 block_fma(const uint8_t *c, float s, const qact_t *q, __m256 acc) {
  __m256i w = weights_at(c);
  return _mm256_fmadd_ps(_mm256_set1_ps(s * q->d), _mm256_cvtepi32_ps(block_dot(_mm256_abs_epi8(w), w, q->q)), acc);
}

__attribute__((target("avx2,fma"))) static void dot_avx2(const uint8_t *w, const float *s, int nb, const qact_t *a, int M, float *y, size_t ys) {
  if (M == 1) { /* decode: four blocks (two cache lines) a step, two accumulators, codes fetched PREFETCH ahead */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 3 < nb; b += 4) {
      const uint8_t *c = w + (size_t)b * BLOB;
      _mm_prefetch((const char *)(c + PREFETCH), _MM_HINT_T0);
      _mm_prefetch((const char *)(c + 64 + PREFETCH), _MM_HINT_T0);
      acc0 = block_fma(c, s[b], a + b, acc0);
      acc1 = block_fma(c + BLOB, s[b + 1], a + b + 1, acc1);
      acc0 = block_fma(c + 2 * BLOB, s[b + 2], a + b + 2, acc0);
      acc1 = block_fma(c + 3 * BLOB, s[b + 3], a + b + 3, acc1);
    }
    for (; b < nb; b++) acc0 = block_fma(w + (size_t)b * BLOB, s[b], a + b, acc0);
    y[0] = hsum8(_mm256_add_ps(acc0, acc1));
    return;
  }
  for (int m0 = 0; m0 < M; m0 += MT) { /* prefill: each weight block read once for MT rows */
    int mt = M - m0 < MT ? M - m0 : MT;
    __m256 acc[MT];
    for (int r = 0; r < MT; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
      const uint8_t *c = w + (size_t)b * BLOB;
      _mm_prefetch((const char *)(c + PREFETCH), _MM_HINT_T0);
      __m256i wv = weights_at(c), absw = _mm256_abs_epi8(wv);
      for (int r = 0; r < mt; r++) {
        const qact_t *q = a + (size_t)(m0 + r) * nb + b;
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s[b] * q->d), _mm256_cvtepi32_ps(block_dot(absw, wv, q->q)), acc[r]);
      }
    }
    for (int r = 0; r < mt; r++) y[(size_t)(m0 + r) * ys] = hsum8(acc[r]);
  }
}
#endif
