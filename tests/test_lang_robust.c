/* The front end (lang/), continued from test_lang.c: lexing of literals, comments and line ends,
 * the nesting, expansion and error-count limits, rendering of carets and long lines, and
 * robustness -- truncated examples, random bytes, random token soups and mutated examples
 * neither crash it nor break the invariants of lang_program. */
#include "tests/lang_util.h"

/* ---------------------------------------------------------------- lexing */

Test(lang_lex, literals_comments_and_line_ends)
{
    compiled *c = compile("# a comment\r\n"
                          "network n { # another\r\n"
                          "\tinput x[3];\r\n"
                          "\toutput y = x -> dropout(.5) -> dropout(2.5e-1) -> dropout(1e-1) -> dropout(0.)\n"
                          "\t\t-> dense(4, name=\"a\\\"b\\\\c\");\r\n"
                          "}");
    const lang_network *n = only_network(c);
    cr_assert_float_eq(arg(&n->layers[0], "p")->f, 0.5, 1e-12);
    cr_assert_float_eq(arg(&n->layers[1], "p")->f, 0.25, 1e-12);
    cr_assert_float_eq(arg(&n->layers[2], "p")->f, 0.1, 1e-12);
    cr_assert_float_eq(arg(&n->layers[3], "p")->f, 0.0, 1e-12);
    cr_assert_str_eq(n->layers[4].name, "a\"b\\c");
    /* columns count bytes; a tab is one */
    cr_assert(span_is(n->layers[0].span, 4, 18, 4, 29));
    compiled_free(c);
}

Test(lang_lex, source_need_not_be_nul_terminated)
{
    const char text[] = "network n { input x[3]; output y = x -> relu; }@@@";
    size_t len = strlen(text) - 3;
    char *buf = malloc(len);   /* exactly len bytes: ASan catches a read past them */
    memcpy(buf, text, len);
    compiled *c = compile_n(buf, len);
    free(buf);
    cr_assert_eq(c->d.count, 0, "%s", c->text);
    compiled_free(c);

    c = compile_n("", 0);
    cr_assert_eq(c->d.count, 0);
    cr_assert_eq(c->p->nnetworks, 0);
    cr_assert_null(lang_program_network(c->p, NULL));
    compiled_free(c);
}

/* ---------------------------------------------------------------- limits */

static bool has_message(const compiled *c, const char *needle)
{
    return strstr(c->text, needle) != NULL;
}

Test(lang_limits, nesting_and_expansion)
{
    size_t depth = 5000;
    char *src = malloc(2 * depth + 200);
    size_t k = (size_t)sprintf(src, "network n { input x[3]; output y = x -> dense(");
    for (size_t i = 0; i < depth; i++)
        src[k++] = '(';
    src[k++] = '1';
    for (size_t i = 0; i < depth; i++)
        src[k++] = ')';
    k += (size_t)sprintf(src + k, "); }");
    compiled *c = compile_n(src, k);
    cr_assert(has_message(c, "error: syntax error: nesting too deep"), "%s", c->text);
    compiled_free(c);
    free(src);

    c = compile("network n { input x[3]; output y = x -> relu * 1000000000; }");
    cr_assert(has_message(c, "error: network 'n' has more than 10000 layers"), "%s", c->text);
    compiled_free(c);

    c = compile("block id() { return in; }\n"
                "network n { input x[3]; output y = x -> (id * 1000000) * 1000000; }");
    cr_assert(has_message(c, "error: network 'n' is too large to expand"), "%s", c->text);
    compiled_free(c);

    /* a chain of 300 blocks, each using the next */
    size_t cap = 300 * 64 + 200;
    src = malloc(cap);
    k = 0;
    for (int i = 0; i < 300; i++)
        k += (size_t)snprintf(src + k, cap - k, "block b%d() { return in -> b%d; }\n", i, i + 1);
    k += (size_t)snprintf(src + k, cap - k, "block b300() { return in; }\nnetwork n { input x[3]; output y = x -> b0; }");
    c = compile_n(src, k);
    cr_assert(has_message(c, "error: blocks are nested more than 100 deep"), "%s", c->text);
    compiled_free(c);
    free(src);

    /* so is a long composition of layers, applied later */
    cap = 20 * 3000 + 200;
    src = malloc(cap);
    k = (size_t)snprintf(src, cap, "network n { input x[3]; L = relu");
    for (int i = 0; i < 2999; i++)
        k += (size_t)snprintf(src + k, cap - k, " -> relu");
    k += (size_t)snprintf(src + k, cap - k, "; output y = x -> L; }");
    c = compile_n(src, k);
    cr_assert_eq(c->d.count, 0, "%s", c->text);
    cr_assert_eq(c->p->networks[0].nlayers, 3000);
    compiled_free(c);
    free(src);

    /* a long chain is fine: it is walked in a loop */
    cap = 20 * 3000 + 200;
    src = malloc(cap);
    k = (size_t)snprintf(src, cap, "network n { input x[3]; output y = x");
    for (int i = 0; i < 3000; i++)
        k += (size_t)snprintf(src + k, cap - k, " -> relu");
    k += (size_t)snprintf(src + k, cap - k, "; }");
    c = compile_n(src, k);
    cr_assert_eq(c->d.count, 0, "%s", c->text);
    cr_assert_eq(c->p->networks[0].nlayers, 3000);
    compiled_free(c);
    free(src);
}

Test(lang_limits, many_errors_are_capped)
{
    size_t cap = 40 * 500 + 100;
    char *src = malloc(cap);
    size_t k = (size_t)snprintf(src, cap, "network n { input x[3];\n");
    for (int i = 0; i < 500; i++)
        k += (size_t)snprintf(src + k, cap - k, "h%d = zz;\n", i);
    k += (size_t)snprintf(src + k, cap - k, "output y = x; }\n");
    compiled *c = compile_n(src, k);
    cr_assert_eq(c->d.count, 101);
    cr_assert_eq(c->d.errors, 500);
    cr_assert(has_message(c, "t.cnn: note: too many errors; 400 more not shown\n"), "%s", c->text);
    compiled_free(c);
    free(src);
}

/* ---------------------------------------------------------------- rendering */

static char *render(const char *src, lang_span sp, diag_severity sev, const char *msg)
{
    diag_list d;
    diag_init(&d, "f.cnn", src, src ? strlen(src) : 0);
    diag_add(&d, sev, sp, "%s", msg);
    char *text = diag_render(&d);
    cr_assert_not_null(text);
    diag_free(&d);
    return text;
}

Test(lang_render, carets)
{
    const char *src = "network n {\n\th = x ->\tconv2d(-3, 5);\r\n}";
    char *t = render(src, (lang_span){2, 18, 2, 20}, DIAG_ERROR, "bad");
    cr_assert_str_eq(t, "f.cnn:2:18: error: bad\n"
                        "    \th = x ->\tconv2d(-3, 5);\n"
                        "    \t        \t       ^~\n");
    free(t);
    /* a span running onto the next line: marked to the end of its first line */
    t = render(src, (lang_span){2, 11, 3, 2}, DIAG_WARNING, "w");
    cr_assert_str_eq(t, "f.cnn:2:11: warning: w\n"
                        "    \th = x ->\tconv2d(-3, 5);\n"
                        "    \t        \t^~~~~~~~~~~~~~\n");
    free(t);
    /* just past the end of the last line */
    t = render(src, (lang_span){3, 2, 3, 3}, DIAG_NOTE, "n");
    cr_assert_str_eq(t, "f.cnn:3:2: note: n\n    }\n     ^\n");
    free(t);
    /* no place; no source; a line the source does not have */
    t = render(src, (lang_span){0, 0, 0, 0}, DIAG_ERROR, "nowhere");
    cr_assert_str_eq(t, "f.cnn: error: nowhere\n");
    free(t);
    t = render(NULL, (lang_span){4, 2, 4, 3}, DIAG_ERROR, "e");
    cr_assert_str_eq(t, "f.cnn:4:2: error: e\n");
    free(t);
    t = render(src, (lang_span){9, 1, 9, 2}, DIAG_ERROR, "e");
    cr_assert_str_eq(t, "f.cnn:9:1: error: e\n");
    free(t);
    /* UTF-8: one mark per character; control bytes shown as spaces */
    t = render("x = \xc3\xa9\xc3\xa9\x01 + @;", (lang_span){1, 13, 1, 14}, DIAG_ERROR, "u");
    cr_assert_str_eq(t, "f.cnn:1:13: error: u\n    x = \xc3\xa9\xc3\xa9  + @;\n              ^\n");
    free(t);
    t = render("x = \xc3\xa9\xc3\xa9;", (lang_span){1, 5, 1, 9}, DIAG_ERROR, "u");
    cr_assert_str_eq(t, "f.cnn:1:5: error: u\n    x = \xc3\xa9\xc3\xa9;\n        ^~\n");
    free(t);

    diag_list d;
    diag_init(&d, NULL, NULL, 0);
    t = diag_render(&d);
    cr_assert_str_eq(t, "");
    free(t);
    diag_add(&d, DIAG_ERROR, (lang_span){1, 1, 1, 2}, "%s %d", "n", 3);
    diag_add(&d, DIAG_WARNING, (lang_span){1, 1, 1, 2}, "w");
    cr_assert_eq(d.errors, 1);
    cr_assert_eq(d.count, 2);
    t = diag_render(&d);
    cr_assert_str_eq(t, "<input>:1:1: error: n 3\n<input>:1:1: warning: w\n");
    free(t);
    diag_free(&d);
}

Test(lang_render, long_lines_are_cut)
{
    char line[1001];
    memset(line, 'a', 1000);
    line[1000] = '\0';
    line[500] = '@';
    char *t = render(line, (lang_span){1, 501, 1, 502}, DIAG_ERROR, "e");
    char want[2000];
    int k = sprintf(want, "f.cnn:1:501: error: e\n    ...");
    for (int i = 420; i < 660; i++)
        want[k++] = line[i];
    k += sprintf(want + k, "...\n       ");
    for (int i = 420; i < 500; i++)
        want[k++] = ' ';
    sprintf(want + k, "^\n");
    cr_assert_str_eq(t, want);
    free(t);
}

/* A UTF-8 byte-order mark is skipped silently: line 1's columns count from after it, and
 * the quoted line leaves it out. */
Test(lang_lex, a_byte_order_mark_is_skipped)
{
    compiled *c = compile("\xef\xbb\xbfnetwork n { input x[4]; output y = x -> relu; }\n");
    cr_expect_eq(c->d.count, 0, "%s", c->text);
    only_network(c);
    compiled_free(c);
    const char *bom = "\xef\xbb\xbfnetwork n { input x[4]; output y = x -> dense(-3); }\n";
    expect_diags(bom, strlen(bom),
                 "t.cnn:1:47: error: dense: 'units' must be a positive integer, got -3\n"
                 "    network n { input x[4]; output y = x -> dense(-3); }\n"
                 "                                                  ^~\n");
    /* only at the very start */
    c = compile("network n { input x[4]; output y = x -> relu; }\n\xef\xbb\xbf");
    cr_expect_gt(c->d.errors, 0);
    compiled_free(c);
}

/* Layer names become keys of the weights files' JSON: control characters and bytes that are
 * not UTF-8 are refused where the string is. */
Test(lang_diag, layer_names_must_be_utf8_text)
{
    const char *ctl = "network n { input x[4];\n output y = x -> dense(3, name=\"a\x01" "b\"); }\n";
    expect_diags(ctl, strlen(ctl),
                 "t.cnn:2:32: error: dense: 'name' must be UTF-8 text without control characters; byte 1 is 0x01\n"
                 "     output y = x -> dense(3, name=\"a b\"); }\n"
                 "                                   ^~~~~\n");
    const char *bad[] = {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "tab\there",
                         "\xc2\x85", "x\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "network n { input x[4]; output y = x -> dense(3, name=\"%s\"); }\n", bad[i]);
        compiled *c = compile(src);
        cr_expect(strstr(c->text, "'name' must be UTF-8 text without control characters") != NULL, "%zu: %s", i,
                  c->text);
        compiled_free(c);
    }
    /* UTF-8 text is a name */
    compiled *c = compile("network n { input x[4]; output y = x -> dense(3, name=\"caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80\"); }\n");
    cr_expect_eq(c->d.errors, 0, "%s", c->text);
    compiled_free(c);
}

/* A 10 MB identifier is echoed in the message as its first 60 characters and "...", and the
 * source line as a window around the caret: the output stays small. */
Test(lang_render, long_identifiers_are_windowed)
{
    size_t n = 10u << 20;
    const char *head = "network n { input x[4];\n output y = x -> ", *tail = "; }\n";
    size_t hl = strlen(head), tl = strlen(tail);
    char *src = malloc(hl + n + tl + 1);
    cr_assert_not_null(src);
    memcpy(src, head, hl);
    memset(src + hl, 'q', n);
    memcpy(src + hl + n, tail, tl + 1);
    compiled *c = compile(src);
    char want[128];
    snprintf(want, sizeof want, "t.cnn:2:18: error: unknown layer '%.60s...'\n", src + hl);
    cr_expect(strncmp(c->text, want, strlen(want)) == 0, "%.300s", c->text);
    cr_expect_lt(strlen(c->text), 1000, "%zu bytes of diagnostics", strlen(c->text));
    compiled_free(c);
    /* as a name used before it is defined */
    memset(src + hl - 5, ' ', 5); /* "x -> " becomes spaces: the identifier is the value */
    c = compile(src);
    cr_expect(strstr(c->text, "...'") != NULL, "%.300s", c->text);
    cr_expect_lt(strlen(c->text), 1000, "%zu bytes of diagnostics", strlen(c->text));
    compiled_free(c);
    free(src);
    /* identifiers up to 64 characters are quoted whole */
    char id[65];
    memset(id, 'w', 64);
    id[64] = '\0';
    char small[256];
    snprintf(small, sizeof small, "network n { input x[4]; output y = x -> %s; }\n", id);
    c = compile(small);
    snprintf(want, sizeof want, "unknown layer '%s'", id);
    cr_expect(strstr(c->text, want) != NULL, "%s", c->text);
    compiled_free(c);
}

/* ---------------------------------------------------------------- robustness */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Compiles exactly len bytes (a copy, so that reading past them is caught), renders the
 * diagnostics, and checks the program when there was no error. */
static void survive(const char *src, size_t len)
{
    char *buf = malloc(len ? len : 1);
    cr_assert_not_null(buf);
    if (len)
        memcpy(buf, src, len);
    diag_list d;
    diag_init(&d, "r.cnn", buf, len);
    lang_program *p = lang_compile(buf, len, &d);
    cr_assert_not_null(p);
    char *text = diag_render(&d);
    cr_assert_not_null(text);
    if (d.errors == 0)
        for (int i = 0; i < p->nnetworks; i++)
            check_network_invariants(&p->networks[i]);
    free(text);
    lang_program_free(p);
    diag_free(&d);
    free(buf);
}

Test(lang_robust, every_prefix_of_every_example, .timeout = 300)
{
    for (size_t e = 0; e < NEXAMPLES; e++) {
        size_t len;
        char *src = read_example(example_names[e], &len);
        for (size_t k = 0; k <= len; k++)
            survive(src, k);
        free(src);
    }
}

Test(lang_robust, random_bytes, .timeout = 300)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    char buf[512];
    for (int i = 0; i < 3000; i++) {
        size_t n = rng_next(&s) % sizeof buf;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)rng_next(&s);
        survive(buf, n);
    }
}

Test(lang_robust, random_token_soup, .timeout = 300)
{
    static const char *const toks[] = {
        "network", "block", "train", "input", "output", "return", "in", "true", "false", "{", "}", "(",
        ")", "[", "]", ",", ";", "=", "->", "+", "-", "*", "/", "x", "y", "c", "b", "relu", "conv2d",
        "maxpool", "concat", "dense", "batchnorm", "name", "stride", "3", "0", "64", "2.5", ".5",
        "1e-3", "\"same\"", "\"n\"", "\n", "# c\n", "@", "1e400", "99999999999999999999", "loss",
        "optimizer", "batch", "epochs", "sgd", "adam", "lr", "mse", "\"\\q\"", "\"open",
    };
    const size_t ntoks = sizeof toks / sizeof toks[0];
    uint64_t s = 12345;
    char buf[4096];
    for (int i = 0; i < 3000; i++) {
        size_t n = 0;
        int count = (int)(rng_next(&s) % 120);
        for (int t = 0; t < count; t++) {
            const char *tok = toks[rng_next(&s) % ntoks];
            size_t l = strlen(tok);
            memcpy(buf + n, tok, l);
            n += l;
            buf[n++] = ' ';
        }
        survive(buf, n);
    }
}

/* Examples with a few bytes changed, removed or swapped for tokens: close to valid, so the
 * semantic checks run on odd trees too. */
Test(lang_robust, mutated_examples, .timeout = 300)
{
    static const char *const bits[] = {"", "(", ")", ";", "->", "*", "0", "-1", "x", "in", "relu", ",", "}", "\"", "9"};
    uint64_t s = 777;
    for (size_t e = 0; e < NEXAMPLES; e++) {
        size_t len;
        char *src = read_example(example_names[e], &len);
        char *buf = malloc(len + 64);
        for (int i = 0; i < 300; i++) {
            memcpy(buf, src, len);
            size_t n = len;
            int edits = 1 + (int)(rng_next(&s) % 3);
            for (int m = 0; m < edits && n > 2; m++) {
                size_t at = rng_next(&s) % n;
                size_t cut = rng_next(&s) % 4;
                if (at + cut > n)
                    cut = n - at;
                const char *b = bits[rng_next(&s) % (sizeof bits / sizeof bits[0])];
                size_t bl = strlen(b);
                if (n - cut + bl > len + 60)
                    continue;
                memmove(buf + at + bl, buf + at + cut, n - at - cut);
                memcpy(buf + at, b, bl);
                n = n - cut + bl;
            }
            survive(buf, n);
        }
        free(buf);
        free(src);
    }
}
