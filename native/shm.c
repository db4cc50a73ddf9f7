/*
 * vtpu_shm: the two things Node cannot do itself for the shared-memory tensor path
 * (bridge/shm/): map a file descriptor into an ArrayBuffer (unmapped when the buffer is
 * collected) and reserve a file's pages (posix_fallocate), so that a full /dev/shm is an
 * error at allocation time rather than a SIGBUS when a mapped page is first written.
 * Plain C against Node-API; built by `make build` (no node-gyp, no downloads).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == ENOSPC ? "ENOSPC" : "ESHM", msg);
  return NULL;
}

static int int_arg(napi_env env, napi_value v, double *out) {
  return napi_get_value_double(env, v, out) == napi_ok && *out >= 0 && *out <= 9007199254740991.0;
}

/* The three non-negative integer arguments both functions take, the last >= 1; else a
 * TypeError with `usage` and 0. */
static int three_ints(napi_env env, napi_callback_info info, double v[3], const char *usage) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !int_arg(env, argv[0], &v[0]) || !int_arg(env, argv[1], &v[1]) || !int_arg(env, argv[2], &v[2]) || v[2] < 1) {
    napi_throw_type_error(env, "EINVAL", usage);
    return 0;
  }
  return 1;
}

static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* map(fd, ino, size): an ArrayBuffer over the whole file, shared with every other mapping of
 * it. `ino` must match the file's inode: a descriptor number reused for another file is refused. */
static napi_value map_fd(napi_env env, napi_callback_info info) {
  double v[3];
  if (!three_ints(env, info, v, "map(fd, ino, size) takes three non-negative integers, size >= 1")) return NULL;
  double fd = v[0], ino = v[1], size = v[2];
  struct stat st;
  if (fstat((int)fd, &st) != 0) return fail(env, "fstat", errno);
  if (!S_ISREG(st.st_mode) || (double)st.st_ino != ino) return fail(env, "map: descriptor is not the expected file", EBADF);
  if ((double)st.st_size < size) return fail(env, "map: file is shorter than the mapping", EINVAL);
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
  if (p == MAP_FAILED) return fail(env, "mmap", errno);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)size, unmap, (void *)(uintptr_t)(size_t)size, &ab) != napi_ok) {
    munmap(p, (size_t)size);
    napi_throw_error(env, "ESHM", "cannot wrap the mapping in an ArrayBuffer");
    return NULL;
  }
  return ab;
}

/* reserve(fd, offset, length): posix_fallocate; throws ENOSPC when the file system is full. */
static napi_value reserve(napi_env env, napi_callback_info info) {
  double v[3];
  if (!three_ints(env, info, v, "reserve(fd, offset, length) takes non-negative integers, length >= 1")) return NULL;
  double fd = v[0], off = v[1], len = v[2];
  int err = posix_fallocate((int)fd, (off_t)off, (off_t)len);
  if (err != 0) return fail(env, "posix_fallocate", err);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"map", NULL, map_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"reserve", NULL, reserve, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}
