/* A growable string for building reports and messages: the one string builder of every stage
 * from lang/ up (diagnostics, graph dumps, summaries).  Out of memory sets .oom and drops later
 * text. */
#ifndef CNN_STRBUF_H
#define CNN_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool oom;
} strbuf;

void sb_init(strbuf *sb);
void sb_free(strbuf *sb);
void sb_append(strbuf *sb, const char *s, size_t n);
void sb_putc(strbuf *sb, char c);
void sb_puts(strbuf *sb, const char *s);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands over the NUL-terminated text (never NULL unless out of memory); sb is left empty. */
char *sb_take(strbuf *sb);

#endif
