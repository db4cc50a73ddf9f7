/*
 * An experts kernel as C code outside its addon calls it: each kernel addon (native/experts_q4.c,
 * native/experts_f32.c) exports one `kernel_entry` as the external `entry`, and the doorbell
 * (native/experts_bell.c) runs registered layers through it from its own thread. Addons of one
 * process share its address space, so the functions are callable across them.
 */
#ifndef VTPU_EXPERTS_ENTRY_H
#define VTPU_EXPERTS_ENTRY_H
#include <stddef.h>
#include <stdint.h>
#include <node_api.h>
#include "napi_args.h"

#define MAXLISTS 4
#define ENTRY_MAGIC 0x76657870u /* "vexp": an external that is not an entry is refused */
/* How a dense matrix's panels hold its weights: float32, or bfloat16 (the upper half of a float32,
 * widened exactly as it is read: half the bytes of a bandwidth-bound decode product). */
enum { DENSE_F32 = 0, DENSE_BF16 = 1 };

/* One per-expert list: its elements' type and length, and its name in errors. */
typedef struct { napi_typedarray_type type; size_t len; const char *name; } tensor_spec;

typedef struct {
  uint32_t magic;
  const char *format; /* the layer format it runs ("q4", "fp32") */
  /* The per-expert lists for (H, I) into spec (when not NULL); returns how many there are. */
  int (*spec)(int H, int I, tensor_spec *spec);
  /* y (rows, H) = the SwiGLU of n experts on x (rows, H), rows grouped by expert (counts[e] each);
   * ptrs[k·n + e]: list k of expert e. Serialised with the addon's other calls. Returns the
   * threads used (0 without rows), or -1 when out of memory. */
  int (*run)(int H, int I, int threads, int n, const int32_t *counts, const float *x, float *y, const void **ptrs);
  /* y (T, N) = x (T, K) · Wᵀ for a dense matrix W held as `packed` (the kernel's own layout, its
   * elements a DENSE_* `wfmt`), or NULL where the kernel has no dense product (q4). Serialised and
   * threaded as `run`. */
  int (*linear)(int N, int K, int threads, int T, const float *x, float *y, const void *packed, int wfmt);
} kernel_entry;

/* A dense matrix's panels (N outputs of K in ceil(N/16) panels of K·16) as `linear` reads them: a
 * Float32Array (*wfmt DENSE_F32) or a Uint16Array (DENSE_BF16) of exactly that many elements;
 * NULL for anything else. */
static inline const void *dense_panels(napi_env env, napi_value v, int N, int K, int *wfmt) {
  size_t want = (size_t)((N + 15) / 16) * K * 16;
  const void *p = typed(env, v, napi_float32_array, want);
  *wfmt = p ? DENSE_F32 : DENSE_BF16;
  return p ? p : typed(env, v, napi_uint16_array, want);
}

#endif
