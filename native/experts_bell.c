/*
 * vtpu_experts_bell: the doorbell, a decode-sized CEXPERTS run that skips ZeroMQ and the event
 * loop. A client on this host keeps a region of its shared-memory link's `.in` arena for it (SHM
 * mode `bell`; the layout is protocol.json's `bell`): it writes x and the routing there, bumps
 * `seq` and wakes the bell's thread (a futex on the shared page); the thread runs the layer on
 * the kernel it was registered with, writes y and the counts, sets `done` and wakes the client.
 *
 * Why: a socket call costs ~1–2 ms beyond the kernel on a 2-vCPU VM (the client's encoding,
 * ZeroMQ's I/O threads on both sides, the event loop, ~6 thread wake-ups), and a 48-layer decode
 * step makes 48 of them. Here a call is two wake-ups.
 *
 * Layers are registered by the sidecar's expert host (bridge/experts_bell.ts) in a table of its
 * own; one mutex covers the table and the calls, so unregistering waits for a call in flight
 * and a layer's arrays are never used after. A request the bell does not hold or cannot check
 * is answered `status` 1 with a reason (`why`); the client then sends it through the socket,
 * where it gets the full validation and its typed error. Linux (futex) only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <node_api.h>
#include "napi_args.h"
#include "experts_bell_answer.h"

static long futex(_Atomic uint32_t *a, int op, uint32_t v, const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)a, op, v, ts, NULL, 0);
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static void *bell_main(void *arg) {
  bell_t *b = arg;
  table_t *t = b->t;
  _Atomic uint32_t *w = b->w;
  uint32_t seen = b->seen;
  for (;;) {
    uint32_t s;
    /* No spinning: the client computes between calls and needs the cores. */
    while ((s = atomic_load(&w[W_SEQ])) == seen && !atomic_load(&b->stop)) futex(&w[W_SEQ], FUTEX_WAIT, seen, NULL);
    if (atomic_load(&b->stop)) return NULL;
    seen = s;
    double t0 = now_ns();
    pthread_mutex_lock(&t->mu);
    int why = answer(t, b);
    pthread_mutex_unlock(&t->mu);
    double ns = now_ns() - t0;
    w[W_STATUS] = why != WHY_NONE;
    w[W_WHY] = (uint32_t)why;
    w[W_US] = (uint32_t)(ns / 1e3);
    atomic_fetch_add(&t->calls, 1);
    if (why) atomic_fetch_add(&t->fallbacks, 1);
    else atomic_fetch_add(&t->ns, (unsigned long long)ns);
    atomic_store(&w[W_DONE], s);
    futex(&w[W_DONE], FUTEX_WAKE, 1 << 30, NULL);
  }
}

/* ---- Node-API ---- */

static void layer_free(napi_env env, layer_t *L);

static void table_free(napi_env env, void *data, void *hint) {
  (void)hint;
  table_t *t = data;
  /* Collected only once no bell holds it (they hold a reference until stopped): no call is in flight. */
  for (int i = 0; i < t->n; i++) layer_free(env, t->layers[i]);
  free(t->layers);
  for (int k = 0; k < 5; k++) free(t->scratch[k].p);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static table_t *table_of(napi_env env, napi_value v) {
  table_t *t = NULL;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external || napi_get_value_external(env, v, (void **)&t) != napi_ok) return NULL;
  return t;
}

/* table() -> a table of layers (an external); each expert host has one. */
static napi_value table_new(napi_env env, napi_callback_info info) {
  (void)info;
  table_t *t = calloc(1, sizeof *t);
  if (!t) return fail(env, "E_INTERNAL", "bell: out of memory");
  pthread_mutex_init(&t->mu, NULL);
  napi_value v;
  napi_create_external(env, t, table_free, NULL, &v);
  return v;
}

static void layer_free(napi_env env, layer_t *L) {
  for (int i = 0; i < L->nrefs; i++) napi_delete_reference(env, L->refs[i]);
  free(L->refs), free(L->ptrs), free(L);
}

/* Removes `layer` (every layer when < 0) under the table's lock; returns how many. */
static int remove_layers(napi_env env, table_t *t, int layer) {
  int gone = 0;
  pthread_mutex_lock(&t->mu);
  for (int i = 0; i < t->n;) {
    if (layer >= 0 && t->layers[i]->layer != layer) { i++; continue; }
    layer_free(env, t->layers[i]);
    t->layers[i] = t->layers[--t->n];
    gone++;
  }
  pthread_mutex_unlock(&t->mu);
  return gone;
}

/* A zeroed layer with room for `ptrs` pointers and `refs` references; NULL when out of memory. */
static layer_t *layer_new(size_t ptrs, size_t refs) {
  layer_t *L = calloc(1, sizeof *L);
  if (L) L->ptrs = calloc(ptrs, sizeof(void *)), L->refs = calloc(refs, sizeof(napi_ref));
  if (L && L->ptrs && L->refs) return L;
  if (L) free(L->ptrs), free(L->refs), free(L);
  return NULL;
}

/* Puts L in the table in place of what its layer held; frees L when it cannot. */
static napi_value insert(napi_env env, table_t *t, layer_t *L) {
  remove_layers(env, t, L->layer);
  pthread_mutex_lock(&t->mu);
  if (t->n == t->cap) {
    int cap = t->cap ? 2 * t->cap : 16;
    layer_t **m = realloc(t->layers, sizeof(layer_t *) * cap);
    if (!m) {
      pthread_mutex_unlock(&t->mu);
      layer_free(env, L);
      return fail(env, "E_INTERNAL", "register: out of memory");
    }
    t->layers = m, t->cap = cap;
  }
  t->layers[t->n++] = L;
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* A register's `want` arguments into argv, and those both begin with: (table, layer, entry, a, b,
 * threads), a and b in 1..most; 0 when any is not what it should be. */
static int reg_head(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int most, table_t **t, int *layer,
                    const kernel_entry **k, int *a, int *b, int *threads) {
  size_t argc = want;
  napi_valuetype type;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  *t = argc >= want ? table_of(env, argv[0]) : NULL;
  *k = NULL;
  if (argc >= want && napi_typeof(env, argv[2], &type) == napi_ok && type == napi_external) napi_get_value_external(env, argv[2], (void **)k);
  return *t && *k && (*k)->magic == ENTRY_MAGIC && get_int(env, argv[1], 0, 0x7fffffff, layer) && get_int(env, argv[3], 1, most, a) &&
         get_int(env, argv[4], 1, most, b) && get_int(env, argv[5], 1, 64, threads);
}

/* register(table, layer, entry, H, I, threads, lists, tally): lists[k][e] is expert e's k-th
 * packed tensor as the entry's kernel reads it; tally a Float64Array of E (shared memory) the
 * bell adds each call's tokens per expert to. Replaces what `layer` held. */
static napi_value reg(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  table_t *t;
  int layer, H, I, threads;
  const kernel_entry *k;
  if (!reg_head(env, info, 8, argv, 1 << 20, &t, &layer, &k, &H, &I, &threads))
    return fail(env, "E_PARAM", "register(table, layer, entry, H, I, threads, lists, tally): a table, a kernel entry, layer >= 0, H, I >= 1, 1 <= threads <= 64");
  tensor_spec spec[MAXLISTS];
  int lists = k->spec(H, I, spec);
  bool arr;
  uint32_t nl = 0, E = 0;
  if (napi_is_array(env, argv[6], &arr) != napi_ok || !arr || napi_get_array_length(env, argv[6], &nl) != napi_ok || nl != (uint32_t)lists)
    return fail(env, "E_PARAM", "register: lists must hold one array per per-expert tensor of the kernel");
  napi_value first;
  napi_get_element(env, argv[6], 0, &first);
  if (napi_is_array(env, first, &arr) != napi_ok || !arr) return fail(env, "E_PARAM", "register: each list must be an array");
  napi_get_array_length(env, first, &E);
  double *tally = E ? typed(env, argv[7], napi_float64_array, E) : NULL;
  if (!E || !tally) return fail(env, "E_PARAM", "register: at least one expert, and tally a Float64Array with one entry per expert");
  layer_t *L = layer_new((size_t)lists * E, (size_t)lists * E + 1);
  if (!L) return fail(env, "E_INTERNAL", "register: out of memory");
  *L = (layer_t){ layer, H, I, (int)E, threads, k, L->ptrs, tally, L->refs, 0 };
  for (int l = 0; l < lists; l++) {
    napi_value list, v;
    uint32_t len = 0;
    napi_get_element(env, argv[6], l, &list);
    if (napi_is_array(env, list, &arr) != napi_ok || !arr || napi_get_array_length(env, list, &len) != napi_ok || len != E) {
      layer_free(env, L);
      return fail(env, "E_PARAM", "register: every list must have one entry per expert");
    }
    for (uint32_t e = 0; e < E; e++) {
      napi_get_element(env, list, e, &v);
      const void *p = typed(env, v, spec[l].type, spec[l].len);
      if (!p) {
        char msg[200];
        snprintf(msg, sizeof msg, "register: expert %u's %s is not what the %s kernel reads (%zu elements)", e, spec[l].name, k->format, spec[l].len);
        layer_free(env, L);
        return fail(env, "E_SHAPE", msg);
      }
      L->ptrs[(size_t)l * E + e] = p;
      napi_create_reference(env, v, 1, &L->refs[L->nrefs++]);
    }
  }
  napi_create_reference(env, argv[7], 1, &L->refs[L->nrefs++]);
  return insert(env, t, L);
}

/* register_dense(table, layer, entry, K, N, threads, packed): a dense matrix W (N outputs of K) as
 * the entry's `linear` reads it (a Float32Array: float32 panels; a Uint16Array: bfloat16 ones);
 * requests with k 0 run y = x · Wᵀ. Replaces what `layer` held. */
static napi_value reg_dense(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  table_t *t;
  int layer, K, N, threads;
  const kernel_entry *k;
  if (!reg_head(env, info, 7, argv, 1 << 24, &t, &layer, &k, &K, &N, &threads))
    return fail(env, "E_PARAM", "register_dense(table, layer, entry, K, N, threads, packed): a table, a kernel entry, layer >= 0, K, N >= 1, 1 <= threads <= 64");
  if (!k->linear) return fail(env, "E_PARAM", "register_dense: this kernel has no dense product");
  int wfmt;
  const void *p = dense_panels(env, argv[6], N, K, &wfmt);
  if (!p) return fail(env, "E_SHAPE", "register_dense: packed must be a Float32Array or Uint16Array of ceil(N/16)·K·16");
  layer_t *L = layer_new(1, 1);
  if (!L) return fail(env, "E_INTERNAL", "register_dense: out of memory");
  *L = (layer_t){ layer, K, N, 0, threads, k, L->ptrs, NULL, L->refs, 0, wfmt };
  L->ptrs[0] = p;
  napi_create_reference(env, argv[6], 1, &L->refs[L->nrefs++]);
  return insert(env, t, L);
}

/* unregister(table, layer?) -> layers removed (all without a layer); waits for a call in flight. */
static napi_value unreg(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ret;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  table_t *t = argc >= 1 ? table_of(env, argv[0]) : NULL;
  int layer = -1;
  napi_valuetype type = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &type);
  if (!t || (type != napi_undefined && !get_int(env, argv[1], 0, 0x7fffffff, &layer))) return fail(env, "E_PARAM", "unregister(table, layer?): a table and a layer >= 0");
  napi_create_int32(env, remove_layers(env, t, layer), &ret);
  return ret;
}

static void bell_stop(napi_env env, bell_t *b) {
  atomic_store(&b->stop, 1); /* the thread re-checks it after any wake */
  futex(&b->w[W_SEQ], FUTEX_WAKE, 1 << 30, NULL);
  pthread_join(b->tid, NULL);
  napi_delete_reference(env, b->buffer);
  napi_delete_reference(env, b->table);
}

static void bell_free(napi_env env, void *data, void *hint) {
  (void)hint;
  bell_t *b = data;
  if (!atomic_load(&b->stop)) bell_stop(env, b);
  free(b);
}

/* start(table, buffer, offset, length) -> a bell (an external) answering the region
 * [offset, offset + length) of `buffer` (an arena's ArrayBuffer), which must start with the magic
 * word; the region is checked to lie in the buffer, 64-byte aligned. */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  table_t *t = argc >= 4 ? table_of(env, argv[0]) : NULL;
  bool isab = false;
  void *data = NULL;
  size_t size = 0;
  double off, len;
  if (!t || napi_is_arraybuffer(env, argv[1], &isab) != napi_ok || !isab || napi_get_arraybuffer_info(env, argv[1], &data, &size) != napi_ok ||
      napi_get_value_double(env, argv[2], &off) != napi_ok || napi_get_value_double(env, argv[3], &len) != napi_ok)
    return fail(env, "E_PARAM", "start(table, buffer, offset, length): a table, an ArrayBuffer and two integers");
  if (off < 0 || len < DATA + 64 || off != (double)(size_t)off || len != (double)(size_t)len || off + len > (double)size || ((size_t)off & 63) || !data)
    return fail(env, "E_PARAM", "bell: the region must be 64-byte aligned, at least 128 bytes, inside the arena");
  uint8_t *base = (uint8_t *)data + (size_t)off;
  if (((uint32_t *)base)[W_MAGIC] != BELL_MAGIC) return fail(env, "E_PARAM", "bell: the region does not start with the bell's magic word");
  bell_t *b = calloc(1, sizeof *b);
  if (!b) return fail(env, "E_INTERNAL", "bell: out of memory");
  b->t = t, b->w = (_Atomic uint32_t *)base, b->base = base, b->len = (size_t)len;
  b->seen = atomic_load(&b->w[W_SEQ]);
  napi_create_reference(env, argv[1], 1, &b->buffer);
  napi_create_reference(env, argv[0], 1, &b->table);
  int err = pthread_create(&b->tid, NULL, bell_main, b);
  if (err) {
    napi_delete_reference(env, b->buffer), napi_delete_reference(env, b->table), free(b);
    return fail(env, "E_INTERNAL", "bell: cannot start its thread");
  }
  napi_value v;
  napi_create_external(env, b, bell_free, NULL, &v);
  return v;
}

/* stop(bell): the thread ends after the call in flight; idempotent. */
static napi_value stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bell_t *b = NULL;
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external || napi_get_value_external(env, argv[0], (void **)&b) != napi_ok || !b)
    return fail(env, "E_PARAM", "stop(bell): a bell from start");
  if (!atomic_load(&b->stop)) bell_stop(env, b);
  return NULL;
}

/* stats(table) -> { calls, fallbacks, ms }: calls answered (fallbacks included), and time in answered ones. */
static napi_value stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o, v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  table_t *t = argc >= 1 ? table_of(env, argv[0]) : NULL;
  if (!t) return fail(env, "E_PARAM", "stats(table): a table");
  napi_create_object(env, &o);
  napi_create_double(env, (double)atomic_load(&t->calls), &v), napi_set_named_property(env, o, "calls", v);
  napi_create_double(env, (double)atomic_load(&t->fallbacks), &v), napi_set_named_property(env, o, "fallbacks", v);
  napi_create_double(env, (double)atomic_load(&t->ns) / 1e6, &v), napi_set_named_property(env, o, "ms", v);
  return o;
}

/* layout() -> { magic, data, words: {name: index} }: what protocol.json's bell says, for a test. */
static napi_value layout(napi_env env, napi_callback_info info) {
  (void)info;
  static const char *names[W_WORDS] = { "magic", "seq", "done", "layer", "T", "k", "H", "E", "status", "why", "us" };
  napi_value o, words, v;
  napi_create_object(env, &o);
  napi_create_object(env, &words);
  for (int i = 0; i < W_WORDS; i++) napi_create_int32(env, i, &v), napi_set_named_property(env, words, names[i], v);
  napi_set_named_property(env, o, "words", words);
  napi_create_uint32(env, BELL_MAGIC, &v), napi_set_named_property(env, o, "magic", v);
  napi_create_int32(env, DATA, &v), napi_set_named_property(env, o, "data", v);
  napi_create_int32(env, MAXT, &v), napi_set_named_property(env, o, "max_rows", v);
  return o;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "table", NULL, table_new, NULL, NULL, NULL, napi_default, NULL },
    { "register", NULL, reg, NULL, NULL, NULL, napi_default, NULL },
    { "registerDense", NULL, reg_dense, NULL, NULL, NULL, napi_default, NULL },
    { "unregister", NULL, unreg, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, start, NULL, NULL, NULL, napi_default, NULL },
    { "stop", NULL, stop, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, stats, NULL, NULL, NULL, napi_default, NULL },
    { "layout", NULL, layout, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 8, props);
  return exports;
}
