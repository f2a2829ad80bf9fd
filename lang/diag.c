/* Diagnostics (lang/diag.h): a growable list of messages with spans, and their rendering as
 * a compiler prints them: "file:line:col: error: message", the source line indented by four
 * spaces, and a caret line marking the span ("^" under its first column, "~" under the rest
 * of it on that line).  Columns count bytes.  Lines longer than LINE_WINDOW bytes are shown
 * as a window around the span, and identifiers longer than WORD_MAX in messages as their start
 * and "...", so that a 10 MB name is never echoed whole.  The caret line copies the source line's tabs
 * and skips UTF-8 continuation bytes, so the marks line up under the text on a terminal. */
#include "lang/diag.h"
#include "ops/mem.h"
#include "lang/strbuf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void diag_init(diag_list *d, const char *file, const char *source, size_t source_len)
{
    memset(d, 0, sizeof *d);
    d->file = file;
    d->source = source;
    d->source_len = source ? source_len : 0;
}

void diag_free(diag_list *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->count; i++)
        cnn_mem_free(d->items[i].message);
    cnn_mem_free(d->items);
    d->items = NULL;
    d->count = d->cap = 0;
    d->errors = 0;
}

/* Identifiers may be as long as the source (16 MiB): in a message, a run of identifier
 * characters longer than WORD_MAX is cut to its first WORD_KEEP bytes and "...", in place. */
enum { WORD_MAX = 64, WORD_KEEP = 60 };

static bool is_word_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void window_long_words(char *msg)
{
    char *out = msg;
    for (const char *p = msg; *p;) {
        if (!is_word_byte(*p)) {
            *out++ = *p++;
            continue;
        }
        const char *e = p;
        while (is_word_byte(*e))
            e++;
        size_t n = (size_t)(e - p);
        if (n > WORD_MAX) {
            memmove(out, p, WORD_KEEP);
            memcpy(out + WORD_KEEP, "...", 3);
            out += WORD_KEEP + 3;
        } else {
            memmove(out, p, n);
            out += n;
        }
        p = e;
    }
    *out = '\0';
}

void diag_vadd(diag_list *d, diag_severity sev, lang_span span, const char *fmt, va_list ap)
{
    if (sev == DIAG_ERROR)
        d->errors++;   /* counted even when memory runs out, so that the failure shows */
    if (d->count == d->cap) {
        int cap = d->cap ? d->cap * 2 : 16;
        diag *items = cnn_mem_realloc(d->items, (size_t)cap * sizeof *items);
        if (!items) {
            d->oom = true;
            return;
        }
        d->items = items;
        d->cap = cap;
    }
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return;
    char *msg = cnn_mem_malloc((size_t)n + 1);
    if (!msg) {
        d->oom = true;
        return;
    }
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    window_long_words(msg);
    d->items[d->count++] = (diag){.severity = sev, .span = span, .message = msg};
}

void diag_add(diag_list *d, diag_severity sev, lang_span span, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, sev, span, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- rendering */

static const char *severity_name(diag_severity s)
{
    switch (s) {
    case DIAG_ERROR: return "error";
    case DIAG_WARNING: return "warning";
    case DIAG_NOTE: return "note";
    }
    return "error";
}

/* Finds line `line` (1-based) of the source: its start and length without the newline
 * (and without a '\r' before it).  False when the source has no such line. */
static bool find_line(const diag_list *d, int line, const char **start, size_t *len)
{
    if (!d->source || line < 1)
        return false;
    const char *s = d->source, *end = d->source + d->source_len;
    if (d->source_len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        s += 3; /* a byte-order mark: the scanner skips it, columns count from after it */
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl)
            return false;
        s = nl + 1;
    }
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    if (e > s && e[-1] == '\r')
        e--;
    *start = s;
    *len = (size_t)(e - s);
    return true;
}

static bool is_continuation(unsigned char c)
{
    return c >= 0x80 && c < 0xc0;
}

/* Lines longer than this are shown as a window around the span, cut with "...". */
enum { LINE_WINDOW = 240, LINE_LEAD = 80 };

static void render_source(strbuf *b, const diag_list *d, lang_span sp)
{
    const char *line;
    size_t len;
    if (!find_line(d, sp.line, &line, &len))
        return;
    size_t first = sp.col > 0 ? (size_t)sp.col - 1 : 0;
    size_t last;   /* one past the last marked byte */
    if (sp.end_line > sp.line)
        last = len > first + 1 ? len : first + 1;
    else
        last = sp.end_col > sp.col ? (size_t)sp.end_col - 1 : first + 1;

    size_t ws = 0, we = len;
    if (len > LINE_WINDOW) {
        ws = first > LINE_LEAD ? first - LINE_LEAD : 0;
        we = ws + LINE_WINDOW < len ? ws + LINE_WINDOW : len;
        if (last > we)
            last = we > first + 1 ? we : first + 1;
    }

    /* the line itself; control characters other than tab shown as spaces */
    sb_puts(b, ws > 0 ? "    ..." : "    ");
    for (size_t i = ws; i < we; i++) {
        unsigned char c = (unsigned char)line[i];
        sb_putc(b, (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : (char)c);
    }
    sb_puts(b, we < len ? "...\n" : "\n");

    /* the caret line: first byte of the span, then the rest of it on this line */
    sb_puts(b, ws > 0 ? "       " : "    ");
    for (size_t i = ws; i < first; i++) {
        unsigned char c = i < len ? (unsigned char)line[i] : ' ';
        if (c == '\t')
            sb_putc(b, '\t');
        else if (!is_continuation(c))
            sb_putc(b, ' ');
    }
    sb_putc(b, '^');
    for (size_t i = first + 1; i < last; i++)
        if (i >= len || !is_continuation((unsigned char)line[i]))
            sb_putc(b, '~');
    sb_putc(b, '\n');
}

char *diag_render(const diag_list *d)
{
    strbuf b = {0};
    const char *file = d->file ? d->file : "<input>";
    for (int i = 0; i < d->count; i++) {
        const diag *g = &d->items[i];
        const char *sev = severity_name(g->severity);
        const char *msg = g->message ? g->message : "";
        if (g->span.line <= 0) {
            sb_printf(&b, "%s: %s: %s\n", file, sev, msg);
            continue;
        }
        sb_printf(&b, "%s:%d:%d: %s: %s\n", file, g->span.line, g->span.col, sev, msg);
        render_source(&b, d, g->span);
    }
    if (b.oom) {
        cnn_mem_free(b.data);
        return NULL;
    }
    return sb_take(&b);
}
