/*
 * vtpu_experts_q4: the `q4` experts' SwiGLU forward, y = down(silu(gate(x)) · up(x)), on
 * MatMulNBits blocks of 128 weights: 64 bytes of 4-bit codes, low nibble first, zero point 8
 * (the pipeline, the activations' quantisation and the Node-API surface: experts_blocks.h).
 *
 * Why not ONNX Runtime: one decode step routes a token to 8 of 128 experts. A hand run on a 2-core
 * AVX2 VM (8 random 30B-A3B layers in the sidecar, 8 random experts a call, weights cold from
 * memory) took 3.1 ms a call in MatMulNBits over a 128-expert graph and 1.7 ms here (~0.9 ms since the loop prefetches): the work is
 * a 20 MB read, and the graph's per-kernel costs were most of the difference. The 48-layer runs
 * are in README's full-size section.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <node_api.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#define KERNEL_FORMAT "q4"
#define KERNEL_USAGE "swiglu(H, I, threads, x, y, counts, guQ, guS, dnQ, dnS): H, I >= 1 and 1 <= threads <= 64"
#define QB 128          /* weights (and activations) per quantisation block */
#define BLOB (QB / 2)   /* bytes of 4-bit codes a block */
/* Activations reordered per 64 as [32 even][32 odd], so that a byte's low nibbles meet the even
 * inputs and its high nibbles the odd ones. */
#define ACT_AT(j) (((j) & ~63) + (((j) & 1) << 5) + (((j) & 63) >> 1))
#include "experts_blocks.h"

#define MT 4            /* activation rows a weight block is applied to at once */
/* Bytes ahead the decode loop asks for: the hardware prefetcher alone left a 2-core Zen 3 VM at
 * ~15 GB/s of its ~30 (a standalone run over 256 MB cold: 15 -> 24 GB/s with two threads). */
#define PREFETCH 2048

/* ---- dot products ---- */

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
