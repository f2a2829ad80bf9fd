/* The allocation wrappers (mem.h): the C library's functions unless an embedder installed its
 * own. */
#include "ops/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The embedder's allocator; all NULL: the C library's.  Set once, before any other call. */
static cnn_mem_hooks hooks;

void cnn_mem_set_hooks(const cnn_mem_hooks *h)
{
    if (h && h->malloc && h->realloc && h->free)
        hooks = *h;
    else
        memset(&hooks, 0, sizeof hooks);
}

void *cnn_mem_malloc(size_t n)
{
    if (n == 0)
        n = 1;
    return hooks.malloc ? hooks.malloc(n, hooks.ud) : malloc(n);
}

void *cnn_mem_calloc(size_t count, size_t size)
{
    if (!hooks.malloc)
        return calloc(count ? count : 1, size ? size : 1);
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    void *p = cnn_mem_malloc(n);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

void *cnn_mem_realloc(void *p, size_t n)
{
    if (!p)
        return cnn_mem_malloc(n);
    if (n == 0)
        n = 1;
    return hooks.realloc ? hooks.realloc(p, n, hooks.ud) : realloc(p, n);
}

void cnn_mem_free(void *p)
{
    if (!p)
        return;
    if (hooks.free)
        hooks.free(p, hooks.ud);
    else
        free(p);
}

char *cnn_mem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cnn_mem_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *cnn_mem_strdup(const char *s) { return cnn_mem_strndup(s, strlen(s)); }

char *cnn_mem_vasprintf(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return NULL;
    char *d = cnn_mem_malloc((size_t)n + 1);
    if (d)
        vsnprintf(d, (size_t)n + 1, fmt, ap);
    return d;
}

char *cnn_mem_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *d = cnn_mem_vasprintf(fmt, ap);
    va_end(ap);
    return d;
}

/* Over-allocates by `align` bytes and keeps the block's start just below the aligned
 * pointer, so that any allocator serves it. */
void *cnn_mem_aligned_alloc(size_t align, size_t n, int zero)
{
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (n > SIZE_MAX - align)
        return NULL;
    char *base = cnn_mem_malloc(n + align);
    if (!base)
        return NULL;
    char *p = (char *)(((uintptr_t)base + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1));
    /* base is at least pointer-aligned (a malloc's block), so p - base <= align */
    memcpy(p - sizeof(void *), &base, sizeof base);
    if (zero)
        memset(p, 0, n);
    return p;
}

void cnn_mem_aligned_free(void *p)
{
    if (!p)
        return;
    char *base;
    memcpy(&base, (char *)p - sizeof base, sizeof base);
    cnn_mem_free(base);
}
