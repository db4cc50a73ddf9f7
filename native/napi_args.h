/* Argument checks shared by the Node-API addons in native/ (errors carry a wire code). */
#ifndef VTPU_NAPI_ARGS_H
#define VTPU_NAPI_ARGS_H
#include <stdbool.h>
#include <stdint.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_int(napi_env env, napi_value v, int lo, int hi, int *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != (double)(int64_t)d || d < lo || d > hi) return 0;
  *out = (int)d;
  return 1;
}

/* The data of a typed array of `type` and its length in *len; NULL for anything else. */
static void *typed_any(napi_env env, napi_value v, napi_typedarray_type type, size_t *len) {
  bool is;
  napi_typedarray_type t;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &t, len, &data, NULL, NULL) != napi_ok || t != type) return NULL;
  return data ? data : (void *)"";
}

/* The data of a typed array of `type` with exactly `len` elements; NULL for anything else. */
static void *typed(napi_env env, napi_value v, napi_typedarray_type type, size_t len) {
  size_t n = 0;
  void *data = typed_any(env, v, type, &n);
  return data && n == len ? data : NULL;
}

#endif
