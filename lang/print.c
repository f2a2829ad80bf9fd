/* An expanded network back to .cnn source (lang/print.h). */
#include "lang/print.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/mem.h"

void lang_print_float(strbuf *sb, double v)
{
    char buf[64];
    float f = (float)v;
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    if (!strpbrk(buf, ".eEn"))
        strcat(buf, ".0");
    sb_puts(sb, buf);
}

static void print_string(strbuf *sb, const char *s)
{
    sb_putc(sb, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_putc(sb, '\\');
        sb_putc(sb, *s);
    }
    sb_putc(sb, '"');
}

static void print_arg(strbuf *sb, const op_argspec *spec, const op_argval *v)
{
    switch (spec->type) {
    case OP_ARG_INT:
        sb_printf(sb, "%" PRId64, v->i[0]);
        break;
    case OP_ARG_FLOAT:
        lang_print_float(sb, v->f);
        break;
    case OP_ARG_BOOL:
        sb_puts(sb, v->b ? "true" : "false");
        break;
    case OP_ARG_STRING:
        print_string(sb, v->s);
        break;
    case OP_ARG_INTS:
    case OP_ARG_PAD:
        if (v->same) {
            sb_puts(sb, "\"same\"");
        } else if (v->n <= 1) {
            sb_printf(sb, "%" PRId64, v->i[0]);
        } else {
            sb_putc(sb, '(');
            for (int k = 0; k < v->n && k < 3; k++)
                sb_printf(sb, "%s%" PRId64, k ? ", " : "", v->i[k]);
            sb_putc(sb, ')');
        }
        break;
    }
}

/* "conv2d(6, 5, pad=2, name=\"conv1\")", or "relu" without arguments. */
static void print_layer(strbuf *sb, const lang_layer *L)
{
    const op_def *op = L->op;
    sb_puts(sb, op->name);
    bool any = false, positional = true;
    for (int a = 0; a < op->nargs; a++) {
        const op_argval *v = &L->args[a];
        bool required = op->args[a].dflt == NULL;
        if (!v->given || !v->present) {
            positional = false;
            continue;
        }
        sb_puts(sb, any ? ", " : "(");
        any = true;
        if (!(positional && required)) {
            positional = false;
            sb_printf(sb, "%s=", op->args[a].name);
        }
        print_arg(sb, &op->args[a], v);
    }
    if (any)
        sb_putc(sb, ')');
}

static bool reserved(const char *s)
{
    static const char *const kw[] = {"network", "block", "train", "input", "output", "return", "in", "true", "false"};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
        if (strcmp(s, kw[k]) == 0)
            return true;
    return op_def_find_layer(s) != NULL;
}

void lang_print_network(const lang_network *net, const char *header, strbuf *sb)
{
    int nt = net->ninputs + net->nlayers;
    int *uses = cnn_mem_calloc((size_t)nt + 1, sizeof *uses);
    bool *is_out = cnn_mem_calloc((size_t)nt + 1, sizeof *is_out);
    bool *named = cnn_mem_calloc((size_t)nt + 1, sizeof *named);
    char(*vname)[OP_NAME_MAX + 8] = cnn_mem_calloc((size_t)nt + 1, sizeof *vname);
    if (!uses || !is_out || !named || !vname) {
        sb->oom = true;
        goto done;
    }
    for (int k = 0; k < net->nlayers; k++)
        for (int i = 0; i < net->layers[k].ninputs; i++)
            if (net->layers[k].inputs[i] >= 0 && net->layers[k].inputs[i] < nt)
                uses[net->layers[k].inputs[i]]++;
    for (int o = 0; o < net->noutputs; o++)
        if (net->outputs[o].tensor >= 0 && net->outputs[o].tensor < nt)
            is_out[net->outputs[o].tensor] = true;
    for (int i = 0; i < net->ninputs; i++)
        snprintf(vname[i], sizeof vname[i], "%s", net->inputs[i].name);
    /* variable names: the layer's name, kept apart from layer names, keywords and the inputs
     * and outputs */
    for (int k = 0; k < net->nlayers; k++) {
        char *v = vname[net->ninputs + k];
        snprintf(v, sizeof vname[0], "%s", net->layers[k].name);
        bool clash = reserved(v);
        for (int i = 0; i < net->ninputs && !clash; i++)
            clash = strcmp(v, net->inputs[i].name) == 0;
        for (int o = 0; o < net->noutputs && !clash; o++)
            clash = strcmp(v, net->outputs[o].name) == 0;
        if (clash)
            strcat(v, "_t");
    }

    if (header) {
        const char *p = header;
        while (*p) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            sb_puts(sb, "# ");
            sb_append(sb, p, n);
            sb_putc(sb, '\n');
            p += n + (e ? 1 : 0);
        }
    }
    sb_printf(sb, "network %s {\n", net->name);
    for (int i = 0; i < net->ninputs; i++) {
        sb_printf(sb, "    input %s[", net->inputs[i].name);
        for (int d = 0; d < net->inputs[i].shape.rank; d++)
            sb_printf(sb, "%s%" PRId64, d ? ", " : "", net->inputs[i].shape.d[d]);
        sb_puts(sb, "];\n");
    }
    sb_putc(sb, '\n');
    /* the single output is written inline when nothing else reads it */
    int inline_out = net->noutputs == 1 ? net->outputs[0].tensor : -1;
    if (inline_out >= 0 && inline_out < nt && (inline_out < net->ninputs || uses[inline_out] > 0))
        inline_out = -1;
    int k = 0;
    while (k < net->nlayers) {
        /* a statement: layers k..j, each after the first reading the one before, alone */
        int j = k;
        while (j + 1 < net->nlayers) {
            int t = net->ninputs + j;
            const lang_layer *nx = &net->layers[j + 1];
            if (uses[t] != 1 || is_out[t] || nx->ninputs != 1 || nx->inputs[0] != t)
                break;
            j++;
        }
        int t = net->ninputs + j;
        if (t == inline_out)
            sb_printf(sb, "    output %s = ", net->outputs[0].name);
        else
            sb_printf(sb, "    %s = ", vname[t]);
        const lang_layer *L = &net->layers[k];
        bool multi = L->ninputs != 1;
        if (L->op->op == OP_ADD && L->ninputs == 2) {
            sb_printf(sb, "%s%s + %s%s", k < j ? "(" : "", vname[L->inputs[0]], vname[L->inputs[1]], k < j ? ")" : "");
        } else if (multi) {
            print_layer(sb, L);
            sb_putc(sb, '(');
            for (int i = 0; i < L->ninputs; i++)
                sb_printf(sb, "%s%s", i ? ", " : "", vname[L->inputs[i]]);
            sb_putc(sb, ')');
        } else {
            sb_printf(sb, "%s -> ", vname[L->inputs[0]]);
            print_layer(sb, L);
        }
        for (int m = k + 1; m <= j; m++) {
            /* lines of about 100 columns: the next layer goes on a new line when it would pass that */
            strbuf one;
            sb_init(&one);
            print_layer(&one, &net->layers[m]);
            const char *nl = sb->data ? strrchr(sb->data, '\n') : NULL;
            size_t col = sb->data ? sb->len - (size_t)(nl ? nl + 1 - sb->data : 0) : 0;
            sb_puts(sb, col + one.len + 4 > 100 ? "\n        -> " : " -> ");
            sb_append(sb, one.data ? one.data : "", one.len);
            sb->oom |= one.oom;
            sb_free(&one);
        }
        sb_puts(sb, ";\n");
        named[t] = true;
        k = j + 1;
    }
    for (int o = 0; o < net->noutputs; o++)
        if (net->outputs[o].tensor != inline_out && net->outputs[o].tensor >= 0 && net->outputs[o].tensor < nt)
            sb_printf(sb, "    output %s = %s;\n", net->outputs[o].name, vname[net->outputs[o].tensor]);
    sb_puts(sb, "}\n");
done:
    cnn_mem_free(uses);
    cnn_mem_free(is_out);
    cnn_mem_free(named);
    cnn_mem_free(vname);
}
