/* Diagnostics: errors collected in a list, each with file, line, column and span, printed
 * as a compiler does (spec section 9):
 *
 *   net.cnn:7:19: error: conv2d: 'filters' must be a positive integer, got -3
 *       h = x -> conv2d(-3, 5);
 *                       ^~
 *
 * Used by lang/ (lexing, parsing, sema) and compiler/ (shape errors). */
#ifndef CNN_LANG_DIAG_H
#define CNN_LANG_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/span.h"

typedef enum diag_severity { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } diag_severity;

typedef struct diag {
    diag_severity severity;
    lang_span span;
    char *message;
} diag;

typedef struct diag_list {
    const char *file;    /* the file name as given, for messages (not owned) */
    const char *source;  /* the whole source text, for the quoted line (not owned); may be NULL */
    size_t source_len;
    diag *items;
    int count, cap;
    int errors;
    bool oom;            /* an allocation failed: a diagnostic may be missing */
} diag_list;

void diag_init(diag_list *d, const char *file, const char *source, size_t source_len);
void diag_free(diag_list *d);
/* Adds a diagnostic; the message is printf-formatted. */
void diag_add(diag_list *d, diag_severity sev, lang_span span, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_vadd(diag_list *d, diag_severity sev, lang_span span, const char *fmt, va_list ap);
/* Renders every diagnostic in order, each as "file:line:col: error: msg\n" followed by the
 * source line and a caret line ("^" under the first column, "~" under the rest of the span on
 * that line).  A diagnostic with no place renders as "file: error: msg\n".  Returns a malloc'd
 * string (never NULL unless out of memory). */
char *diag_render(const diag_list *d);

#endif
