/* mem.h — every allocation the library makes goes through these wrappers, so that an embedder's
 * allocator (cnn_set_allocator) sees them all and a failing one can be tested.  The hooks are
 * the library's one piece of mutable global state besides the CPU-feature table: installed
 * once, before any other call, and not thread-safe to change.  oneDNN's, libgomp's, cJSON's and
 * zlib's own allocations do not come here. */
#ifndef OPS_MEM_H
#define OPS_MEM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The same layout as cnn_allocator in runtime/cnn.h (this stage cannot include it). */
typedef struct cnn_mem_hooks {
    void *(*malloc)(size_t n, void *ud);
    void *(*realloc)(void *p, size_t n, void *ud);
    void (*free)(void *p, void *ud);
    void *ud;
} cnn_mem_hooks;

/* Installs h (copied); NULL or any NULL function restores the C library's. */
void cnn_mem_set_hooks(const cnn_mem_hooks *h);

void *cnn_mem_malloc(size_t n);
void *cnn_mem_calloc(size_t count, size_t size); /* NULL when count * size overflows */
void *cnn_mem_realloc(void *p, size_t n);
void cnn_mem_free(void *p);
char *cnn_mem_strdup(const char *s);
char *cnn_mem_strndup(const char *s, size_t n);
/* A formatted string, or NULL when out of memory (or a bad format). */
char *cnn_mem_vasprintf(const char *fmt, va_list ap);
char *cnn_mem_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* `align` (a power of two, at most 4096) aligned, zeroed when `zero`; free with
 * cnn_mem_aligned_free only. */
void *cnn_mem_aligned_alloc(size_t align, size_t n, int zero);
void cnn_mem_aligned_free(void *p);

/* Every out-of-memory message in the library contains this text: where an error goes up as
 * text (a kernel's prepare, a pass, autodiff) the caller tells running out of memory apart by
 * it and returns CNN_ERR_NOMEM. */
#define CNN_MEM_OOM_TEXT "out of memory"
static inline bool cnn_mem_is_oom(const char *msg) { return msg && strstr(msg, CNN_MEM_OOM_TEXT); }

#endif
