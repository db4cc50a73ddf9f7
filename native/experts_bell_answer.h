/*
 * The doorbell's request answered (native/experts_bell.c includes it; the thread, the futexes and
 * Node-API are there): the region's layout, the table of registered layers, and `answer`, one
 * request run on its layer's kernel with the dispatch plan of engine/kernels/moe.ts and the
 * float64 combine of moe_combine.ts, so that a bell run is bit-identical to a socket run
 * (test/py/test_bell.py holds the two to that).
 */
#ifndef VTPU_EXPERTS_BELL_ANSWER_H
#define VTPU_EXPERTS_BELL_ANSWER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include "experts_entry.h"

/* The region (protocol.json's bell.words, in uint32 words): client-written words, then the bell's. */
enum { W_MAGIC, W_SEQ, W_DONE, W_LAYER, W_T, W_K, W_H, W_E, W_STATUS, W_WHY, W_US, W_WORDS };
#define BELL_MAGIC 0x31424c56u /* "VLB1" little-endian */
#define DATA 64                /* bytes of header; x starts here */
#define MAXT 4096              /* most rows a bell call may carry */
/* Why a call fell back (W_WHY); the client sends it through the socket. */
enum { WHY_NONE, WHY_LAYER, WHY_SHAPE, WHY_SPACE, WHY_IDS, WHY_MEMORY };

/* A layer of experts, or a dense matrix (E 0: y (T, I) = x (T, H) · Wᵀ, ptrs[0] its packed W). */
typedef struct {
  int layer, H, I, E, threads;
  const kernel_entry *k;
  const void **ptrs;   /* ptrs[list · E + e] */
  double *tally;       /* token-slots per expert since registered (the host reads it); NULL when dense */
  napi_ref *refs;      /* the arrays above, kept alive while registered */
  int nrefs;
  int wfmt;            /* a dense W's element format (DENSE_*) */
} layer_t;

typedef struct {
  pthread_mutex_t mu;  /* the layers, and every call (one at a time per table) */
  layer_t **layers;
  int n, cap;
  atomic_ullong calls, fallbacks, ns;
  struct { void *p; size_t n; } scratch[5];
} table_t;

typedef struct {
  table_t *t;
  _Atomic uint32_t *w; /* the region's words */
  uint8_t *base;
  size_t len;
  atomic_int stop;
  uint32_t seen;           /* seq when started: read before the thread runs, so a ring right after start counts */
  pthread_t tid;
  napi_ref buffer, table;  /* the arena's ArrayBuffer and the table, held until stop */
} bell_t;

static void *grow(table_t *t, int k, size_t n) {
  if (t->scratch[k].n < n) {
    free(t->scratch[k].p);
    t->scratch[k].p = malloc(n);
    t->scratch[k].n = t->scratch[k].p ? n : 0;
  }
  return t->scratch[k].p;
}

static layer_t *find(table_t *t, int layer) {
  for (int i = 0; i < t->n; i++)
    if (t->layers[i]->layer == layer) return t->layers[i];
  return NULL;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* A dense layer's request (k 0): y (T, N) at the next multiple of 64 after x, N into W_E. */
static int answer_dense(layer_t *L, bell_t *b, int T, int H) {
  if (H != L->H || T < 1 || T > MAXT) return WHY_SHAPE;
  size_t yo = align64(DATA + 4 * (size_t)T * H);
  if (yo + 4 * (size_t)T * L->I > b->len) return WHY_SPACE;
  if (L->k->linear(L->I, H, L->threads, T, (const float *)(b->base + DATA), (float *)(b->base + yo), L->ptrs[0], L->wfmt) < 0) return WHY_MEMORY;
  b->w[W_E] = (uint32_t)L->I;
  return WHY_NONE;
}

/* One request: WHY_NONE with y and counts written, or why it fell back. Called under t->mu. */
static int answer(table_t *t, bell_t *b) {
  _Atomic uint32_t *w = b->w;
  int layer = (int)w[W_LAYER], T = (int)w[W_T], k = (int)w[W_K], H = (int)w[W_H];
  layer_t *L = find(t, layer);
  if (!L) return WHY_LAYER;
  if (L->E == 0 || k == 0) return L->E == 0 && k == 0 ? answer_dense(L, b, T, H) : WHY_SHAPE;
  int E = L->E;
  if (H != L->H || T < 1 || T > MAXT || k < 1 || k > E) return WHY_SHAPE;
  size_t xo = DATA, io = xo + 4 * (size_t)T * H, wo = io + 4 * (size_t)T * k, yo = align64(wo + 4 * (size_t)T * k), co = yo + 4 * (size_t)T * H;
  if (co + 4 * (size_t)E > b->len) return WHY_SPACE;
  const float *x = (const float *)(b->base + xo), *wt = (const float *)(b->base + wo);
  const int32_t *ids = (const int32_t *)(b->base + io);
  int N = T * k;
  /* The dispatch plan of engine/kernels/moe.ts (no capacity): slots grouped by expert, in slot order. */
  int32_t *counts = grow(t, 0, sizeof(int32_t) * 2 * (E + 1)), *next = counts + E + 1;
  int32_t *order = grow(t, 1, sizeof(int32_t) * N);
  const void **ptrs = grow(t, 2, sizeof(void *) * MAXLISTS * E);
  float *xs = grow(t, 3, sizeof(float) * 2 * (size_t)N * H), *ys = xs + (size_t)N * H;
  double *acc = grow(t, 4, sizeof(double) * (size_t)T * H);
  if (!counts || !order || !ptrs || !xs || !acc) return WHY_MEMORY;
  memset(counts, 0, sizeof(int32_t) * E);
  for (int a = 0; a < N; a++) {
    if (ids[a] < 0 || ids[a] >= E) return WHY_IDS;
    counts[ids[a]]++;
  }
  next[0] = 0;
  for (int e = 0; e < E; e++) next[e + 1] = next[e] + counts[e];
  for (int a = 0; a < N; a++) order[next[ids[a]]++] = a;
  /* Active experts only, as the runtime calls the kernel: list l of active expert j at ptrs[l·n + j]. */
  int lists = L->k->spec(H, L->I, NULL), n = 0;
  int32_t *rows = next; /* next is spent: it holds the active experts' row counts now */
  for (int e = 0; e < E; e++)
    if (counts[e]) rows[n++] = counts[e];
  for (int e = 0, j = 0; e < E; e++) {
    if (!counts[e]) continue;
    for (int l = 0; l < lists; l++) ptrs[l * n + j] = L->ptrs[(size_t)l * E + e];
    j++;
  }
  for (int p = 0; p < N; p++) memcpy(xs + (size_t)p * H, x + (size_t)(order[p] / k) * H, sizeof(float) * H);
  if (L->k->run(H, L->I, L->threads, n, rows, xs, ys, ptrs) < 0) return WHY_MEMORY;
  /* combine (engine/kernels/moe_combine.ts): float64 sums in plan order, rounded once. */
  memset(acc, 0, sizeof(double) * (size_t)T * H);
  for (int p = 0; p < N; p++) {
    double wp = wt[order[p]];
    double *yrow = acc + (size_t)(order[p] / k) * H;
    const float *erow = ys + (size_t)p * H;
    for (int h = 0; h < H; h++) yrow[h] += wp * erow[h];
  }
  float *y = (float *)(b->base + yo);
  for (size_t i = 0; i < (size_t)T * H; i++) y[i] = (float)acc[i];
  memcpy(b->base + co, counts, sizeof(int32_t) * E);
  for (int e = 0; e < E; e++) L->tally[e] += counts[e];
  w[W_E] = (uint32_t)E;
  return WHY_NONE;
}

#endif
