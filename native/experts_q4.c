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
#define KERNEL_FORMAT "q4"
#define QB 128          /* weights (and activations) per quantisation block */
#define BLOB (QB / 2)   /* bytes of 4-bit codes a block */
/* Activations reordered per 64 as [32 even][32 odd], so that a byte's low nibbles meet the even
 * inputs and its high nibbles the odd ones. */
#define ACT_AT(j) (((j) & ~63) + (((j) & 1) << 5) + (((j) & 63) >> 1))
#include "experts_blocks.h"

/* Byte j of each 32-byte half h holds weights 2j and 2j+1 of that half's 64; the zero point (8)
 * comes off once, as 8·Σq. */
static inline int32_t codes_dot(const uint8_t *c, const qact_t *q) {
  int32_t t = 0;
  for (int h = 0; h < 2; h++)
    for (int j = 0; j < 32; j++) {
      uint8_t byte = c[h * 32 + j];
      t += (byte & 15) * q->q[h * 64 + j] + (byte >> 4) * q->q[h * 64 + 32 + j];
    }
  return t - 8 * q->sum;
}

#if defined(__x86_64__)
/* The block's 128 codes as bytes 0..15: low and high nibbles of its two 32-byte halves. */
AVX2 static inline wblock_t unpack(const uint8_t *c) {
  const __m256i m4 = _mm256_set1_epi8(15);
  __m256i r0 = _mm256_loadu_si256((const __m256i *)c), r1 = _mm256_loadu_si256((const __m256i *)(c + 32));
  return (wblock_t){ { _mm256_and_si256(r0, m4), _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4),
                       _mm256_and_si256(r1, m4), _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4) } };
}

/* codes ≤ 15 and |q| ≤ 127: a pair's sum fits int16 (VPMADDUBSW saturates past it); the zero
 * point comes off as an integer, 8·Σq (no float correction chain). */
AVX2 static inline __m256i wdot(const wblock_t *u, const qact_t *q) {
  __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u->v[0], _mm256_loadu_si256((const __m256i *)q->q)),
                               _mm256_maddubs_epi16(u->v[1], _mm256_loadu_si256((const __m256i *)(q->q + 32))));
  __m256i r = _mm256_add_epi16(_mm256_maddubs_epi16(u->v[2], _mm256_loadu_si256((const __m256i *)(q->q + 64))),
                               _mm256_maddubs_epi16(u->v[3], _mm256_loadu_si256((const __m256i *)(q->q + 96))));
  __m256i t = _mm256_madd_epi16(_mm256_add_epi16(p, r), _mm256_set1_epi16(1));
  return _mm256_sub_epi32(t, _mm256_setr_epi32(8 * q->sum, 0, 0, 0, 0, 0, 0, 0));
}
#endif
