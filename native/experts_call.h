/*
 * What the two experts kernels' Node-API entry points share (native/experts_q4.c,
 * native/experts_f32.c): swiglu's arguments up to the per-expert arrays, the call's scratch, one
 * call at a time, and the ISA a test may pick.
 *
 *   swiglu(H, I, threads, x, y, counts, list_0, ..., list_{L-1})
 *
 * x, y: Float32Array (rows, H), rows = Σ counts; counts: Int32Array (n, one entry per expert);
 * list_k: an array of n typed arrays, expert j's k-th packed tensor (what each is: the kernel's
 * tensor_spec). Bad arguments throw with a wire code (E_PARAM, E_SHAPE), never crash.
 */
#ifndef VTPU_EXPERTS_CALL_H
#define VTPU_EXPERTS_CALL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pool.h"
#include "napi_args.h"
#include "experts_entry.h"

/* Scratch kept between calls (decode calls are small and frequent); slot 0 holds the row starts. */
static struct { void *p; size_t n; } scratch[4];
static void *grown(int k, size_t n) {
  if (scratch[k].n < n) {
    free(scratch[k].p);
    scratch[k].p = malloc(n);
    scratch[k].n = scratch[k].p ? n : 0;
  }
  return scratch[k].p;
}

/* A parsed call: shape, threads, rows per expert and their starts, x and y, and the lists'
 * data (ptrs[k·n + e]: list k, expert e; the caller frees ptrs). */
typedef struct {
  int H, I, nt, n, rows;
  const int32_t *counts;
  int32_t *first;
  const float *x;
  float *y;
  const void **ptrs;
} call_t;

/* H, I, threads and counts (the row starts into scratch slot 0); 1, or 0 after throwing. */
static int call_head(napi_env env, napi_value *argv, size_t argc, int lists, const char *usage, call_t *c) {
  memset(c, 0, sizeof *c);
  if (argc < (size_t)(6 + lists) || !get_int(env, argv[0], 1, 1 << 20, &c->H) || !get_int(env, argv[1], 1, 1 << 20, &c->I) || !get_int(env, argv[2], 1, MAXT, &c->nt)) {
    fail(env, "E_PARAM", usage);
    return 0;
  }
  bool arr;
  for (int k = 6; k < 6 + lists; k++)
    if (napi_is_array(env, argv[k], &arr) != napi_ok || !arr) return fail(env, "E_PARAM", "swiglu: the per-expert lists must be arrays"), 0;
  uint32_t n;
  napi_get_array_length(env, argv[6], &n);
  c->n = (int)n;
  c->counts = typed(env, argv[5], napi_int32_array, n);
  if (!c->counts) return fail(env, "E_PARAM", "swiglu: counts must be an Int32Array with one entry per expert"), 0;
  c->first = grown(0, sizeof(int32_t) * (n + 1));
  if (!c->first) return fail(env, "E_INTERNAL", "swiglu: out of memory"), 0;
  c->first[0] = 0;
  for (uint32_t e = 0; e < n; e++) {
    if (c->counts[e] < 0) return fail(env, "E_PARAM", "swiglu: counts must be >= 0"), 0;
    c->first[e + 1] = c->first[e] + c->counts[e];
  }
  c->rows = c->first[n];
  return 1;
}

/* The per-expert lists (spec[k] for list k) and x, y; 1, or 0 after throwing. */
static int call_lists(napi_env env, napi_value *argv, int lists, const tensor_spec *spec, call_t *c) {
  uint32_t n = (uint32_t)c->n;
  c->ptrs = calloc((size_t)lists * (n ? n : 1), sizeof(void *));
  if (!c->ptrs) return fail(env, "E_INTERNAL", "swiglu: out of memory"), 0;
  for (int k = 0; k < lists; k++) {
    uint32_t len;
    napi_get_array_length(env, argv[6 + k], &len);
    if (len != n) return fail(env, "E_PARAM", "swiglu: each per-expert list must have one entry per expert"), 0;
    for (uint32_t e = 0; e < n; e++) {
      napi_value v;
      napi_get_element(env, argv[6 + k], e, &v);
      const void *p = typed(env, v, spec[k].type, spec[k].len);
      if (!p) {
        char msg[200];
        snprintf(msg, sizeof msg, "swiglu: expert %u's %s must be a %s of %zu elements", e, spec[k].name,
                 spec[k].type == napi_uint8_array ? "Uint8Array" : "Float32Array", spec[k].len);
        return fail(env, "E_SHAPE", msg), 0;
      }
      c->ptrs[(size_t)k * n + e] = p;
    }
  }
  c->x = typed(env, argv[3], napi_float32_array, (size_t)c->rows * c->H);
  c->y = typed(env, argv[4], napi_float32_array, (size_t)c->rows * c->H);
  if (!c->x || !c->y) return fail(env, "E_SHAPE", "swiglu: x and y must be Float32Arrays of (sum of counts) x H"), 0;
  return 1;
}

/* Each kernel's own: its lists (spec_of, experts_entry.h's `spec`), the call on parsed arguments
 * (c->rows > 0; returns the threads used, or -1 when out of memory), and its fast path or
 * portable one. It defines KERNEL_FORMAT and KERNEL_USAGE (swiglu's usage line) before this. */
static int spec_of(int H, int I, tensor_spec *spec);
static int compute(call_t *c);
static void set_isa(int avx2);
static int avx2_on;

/* swiglu(H, I, threads, x, y, counts, list_0, ...) -> threads used, under the call lock: the pool
 * and the scratch are the process's, one call at a time. */
static napi_value swiglu(napi_env env, napi_callback_info info) {
  size_t argc = 6 + MAXLISTS;
  napi_value argv[6 + MAXLISTS], ret = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int lists = spec_of(1, 1, NULL);
  tensor_spec spec[MAXLISTS];
  call_t c;
  pthread_mutex_lock(&call_mu);
  if (call_head(env, argv, argc, lists, KERNEL_USAGE, &c)) {
    spec_of(c.H, c.I, spec);
    if (call_lists(env, argv, lists, spec, &c)) {
      int r = c.rows ? compute(&c) : 0;
      if (r < 0) fail(env, "E_INTERNAL", "swiglu: out of memory for the call's scratch");
      else napi_create_int32(env, r, &ret);
    }
  }
  free(c.ptrs);
  pthread_mutex_unlock(&call_mu);
  return ret;
}

/* experts_entry.h's `run`: the same call from C (the doorbell's thread). */
static int entry_run(int H, int I, int threads, int n, const int32_t *counts, const float *x, float *y, const void **ptrs) {
  pthread_mutex_lock(&call_mu);
  call_t c = { .H = H, .I = I, .nt = threads, .n = n, .counts = counts, .x = x, .y = y, .ptrs = ptrs };
  int r = -1;
  c.first = grown(0, sizeof(int32_t) * (n + 1));
  if (c.first) {
    c.first[0] = 0;
    for (int e = 0; e < n; e++) c.first[e + 1] = c.first[e] + counts[e];
    c.rows = c.first[n];
    r = c.rows ? compute(&c) : 0;
  }
  pthread_mutex_unlock(&call_mu);
  return r;
}

#ifndef KERNEL_LINEAR
#define KERNEL_LINEAR NULL
#endif
static const kernel_entry entry = { ENTRY_MAGIC, KERNEL_FORMAT, spec_of, entry_run, KERNEL_LINEAR };

/* True where the CPU has AVX2 and FMA (the kernels' fast paths). */
static int has_avx2(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* useIsa(name)'s request: 1 "avx2" (where the CPU has it), 0 "portable", -1 none (ask only);
 * -2 after throwing. */
static int isa_asked(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[16] = "";
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && napi_get_value_string_utf8(env, argv[0], name, sizeof name, NULL) != napi_ok) return fail(env, "E_PARAM", "useIsa(name): a string"), -2;
  if (!strcmp(name, "portable")) return 0;
  if (!strcmp(name, "avx2") && has_avx2()) return 1;
  if (name[0]) return fail(env, "E_PARAM", "useIsa: 'portable', or 'avx2' on a CPU that has it"), -2;
  return -1;
}

/* useIsa("portable" | "avx2") -> the one now in use; tests compare the two. */
static napi_value use_isa(napi_env env, napi_callback_info info) {
  int a = isa_asked(env, info);
  if (a == -2) return NULL;
  if (a >= 0) set_isa(a);
  napi_value ret;
  napi_create_string_utf8(env, avx2_on ? "avx2" : "portable", NAPI_AUTO_LENGTH, &ret);
  return ret;
}
/* The module's exports: swiglu, useIsa, the C entry, and the kernel's own (`more`). */
static napi_value define_exports(napi_env env, napi_value exports, const napi_property_descriptor *more, size_t n_more) {
  napi_value ext;
  napi_create_external(env, (void *)&entry, NULL, NULL, &ext);
  napi_set_named_property(env, exports, "entry", ext);
  napi_property_descriptor props[] = {
    { "swiglu", NULL, swiglu, NULL, NULL, NULL, napi_default, NULL },
    { "useIsa", NULL, use_isa, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 2, props);
  if (n_more) napi_define_properties(env, exports, n_more, more);
  return exports;
}

#endif
