/*
 * vtpu_heap: hand the C heap's free pages back to the system (glibc malloc_trim). ONNX
 * Runtime builds an expert session through copies (the model bytes, its initializers, the
 * prepacked weights) freed in an order that leaves the heap fragmented: without a trim a
 * sidecar keeps those pages, about a third more than the weights it holds. Plain C against
 * Node-API; built by `make build`.
 */
#include <malloc.h>
#include <node_api.h>

/* trim(): true when memory was returned. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, malloc_trim(0) != 0, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"trim", NULL, trim, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 1, props);
  return exports;
}
