/*
 * The experts kernels' thread pool (native/experts_*.c include it; each addon has its own): a
 * phase is `chunks` pieces of work, claimed one at a time. Helpers are made on first use; idle
 * ones spin ~50 us, then sleep (the client computes between calls and must get the cores).
 */
#ifndef VTPU_POOL_H
#define VTPU_POOL_H
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MAXT 64         /* most threads a call may use */

/* The caller works from the start; a helper joins when it wakes (a sleeping thread on a VM took
 * ~0.2 ms to wake, longer than a decode phase), so nobody waits for a late helper, only for the
 * chunks already claimed. `claim` packs (phase, next chunk): a claim is a compare-and-swap on both,
 * so a helper that slept through a phase can never take a chunk of another. */

typedef void (*chunk_fn)(void *ctx, int chunk, int chunks);
typedef struct { chunk_fn fn; void *ctx; int chunks; } phase_t;
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int made, sleepers;
  phase_t slot[2];           /* phase g's work is slot[g & 1], written before g is published */
  _Atomic uint64_t claim;    /* phase << 32 | next chunk */
  atomic_int done;           /* chunks of the current phase finished */
  int helpers;               /* threads that may join the current call, besides the caller */
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };
/* Serialises calls (the pool and a kernel's scratch serve one call at a time). */
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static inline void relax(void) {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

/* Claims and runs chunks of phase `g` until none is left (or another phase began). */
static void work(uint32_t g) {
  for (;;) {
    uint64_t c = atomic_load(&pool.claim);
    if ((uint32_t)(c >> 32) != g) return;
    phase_t ph = pool.slot[g & 1];
    uint32_t i = (uint32_t)c;
    if ((int)i >= ph.chunks) return;
    if (!atomic_compare_exchange_weak(&pool.claim, &c, c + 1)) continue;
    ph.fn(ph.ctx, (int)i, ph.chunks);
    atomic_fetch_add(&pool.done, 1);
  }
}

static void *helper(void *arg) {
  int id = (int)(intptr_t)arg;
  uint32_t seen = (uint32_t)(atomic_load(&pool.claim) >> 32);
  for (;;) {
    double until = now_us() + 50;
    while ((uint32_t)(atomic_load(&pool.claim) >> 32) == seen && now_us() < until) relax();
    if ((uint32_t)(atomic_load(&pool.claim) >> 32) == seen) {
      pthread_mutex_lock(&pool.mu);
      pool.sleepers++;
      while ((uint32_t)(atomic_load(&pool.claim) >> 32) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
      pool.sleepers--;
      pthread_mutex_unlock(&pool.mu);
    }
    seen = (uint32_t)(atomic_load(&pool.claim) >> 32);
    if (id <= pool.helpers) work(seen);
  }
  return NULL;
}

/* Helpers are pinned to CPUs other than the caller's. Left to the scheduler, a helper woken after
 * the client's turn (a decode step's dense half between two calls) was placed on its waker's CPU
 * (a 2-vCPU VM: 50 of 50 wakes after 20 ms idle), and the two shared one core until a load
 * balance moved one: a decode call of 8 fp32 experts took 11 ms instead of 6.5. The pins follow
 * the caller when it moves; `pinned_for` is the caller's CPU they were chosen for. */
static pthread_t helper_tid[MAXT];
static int pinned_for = -1;

static void pin_helpers(void) {
#if defined(__linux__)
  int me = sched_getcpu();
  if (me < 0 || me == pinned_for) return;
  cpu_set_t allowed, one;
  if (sched_getaffinity(0, sizeof allowed, &allowed)) return;
  int n = 0, cpus[CPU_SETSIZE];
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &allowed) && c != me) cpus[n++] = c;
  for (int i = 0; n && i < pool.made; i++) {
    CPU_ZERO(&one);
    CPU_SET(cpus[i % n], &one);
    pthread_setaffinity_np(helper_tid[i], sizeof one, &one);
  }
  pinned_for = me;
#endif
}

/* Runs fn(ctx, c, chunks) for every c < chunks on this thread and up to nt - 1 helpers. */
static void parallel(chunk_fn fn, void *ctx, int chunks, int nt) {
  while (pool.made < nt - 1) {
    if (pthread_create(&helper_tid[pool.made], NULL, helper, (void *)(intptr_t)(pool.made + 1))) break;
    pthread_detach(helper_tid[pool.made]);
    pool.made++;
    pinned_for = -1;
  }
  pool.helpers = nt - 1 < pool.made ? nt - 1 : pool.made;
  if (pool.helpers) pin_helpers();
  uint32_t g = (uint32_t)(atomic_load(&pool.claim) >> 32) + 1;
  pool.slot[g & 1] = (phase_t){ fn, ctx, chunks };
  atomic_store(&pool.done, 0);
  atomic_store(&pool.claim, (uint64_t)g << 32);
  if (pool.helpers) {
    pthread_mutex_lock(&pool.mu);
    if (pool.sleepers) pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
  }
  work(g);
  while (atomic_load(&pool.done) < chunks) relax();
}

/* [a, b): part `part` of `parts` equal shares of 0..total. */
static void span(int total, int part, int parts, int *a, int *b) {
  *a = (int)((int64_t)total * part / parts);
  *b = (int)((int64_t)total * (part + 1) / parts);
}

#endif
