/*
 * vtpu_experts_q8: the `q8` experts' SwiGLU forward, y = down(silu(gate(x)) · up(x)), on
 * MatMulNBits blocks of 32 weights: 32 bytes of 8-bit codes, zero point 128 (the pipeline, the
 * activations' quantisation and the Node-API surface: experts_blocks.h).
 *
 * Why not ONNX Runtime: as for q4 (experts_q4.c), a decode call is a read of the 8 routed experts'
 * ~40 MB (30B-A3B), and the 128-expert graph's per-kernel costs were most of its time; a q8 layer
 * on this kernel can also be answered by the doorbell (experts_bell.c). Figures in README.
 */
#define KERNEL_FORMAT "q8"
#define QB 32           /* weights (and activations) per quantisation block */
#define BLOB QB         /* bytes of codes a block */
#define ACT_AT(j) (j)   /* activations in input order, as the codes */
#include "experts_blocks.h"

/* One code a byte; the zero point (128) comes off once, as 128·Σq. */
static inline int32_t codes_dot(const uint8_t *c, const qact_t *q) {
  int32_t t = 0;
  for (int j = 0; j < QB; j++) t += c[j] * q->q[j];
  return t - 128 * q->sum;
}

#if defined(__x86_64__)
/* The block's 32 codes as signed weights w = c - 128 (the XOR; |w| <= 128), and |w|. */
AVX2 static inline wblock_t unpack(const uint8_t *c) {
  __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)c), _mm256_set1_epi8((char)0x80));
  return (wblock_t){ { w, _mm256_abs_epi8(w) } };
}

/* Σ w·q from |w| (read unsigned: -128's is 128) and w's signs moved onto q: a pair's sum is at
 * most 2·128·127 < 32767, so VPMADDUBSW never saturates. */
AVX2 static inline __m256i wdot(const wblock_t *u, const qact_t *q) {
  __m256i p = _mm256_maddubs_epi16(u->v[1], _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q->q), u->v[0]));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
#endif
