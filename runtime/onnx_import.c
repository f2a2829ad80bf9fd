/* ONNX in, the runtime's side: an imported network (lang/onnx.c) printed as .cnn source
 * (lang/print.c), compiled as any source is, with the model's weights kept for
 * cnn_weights_create; and the model's source written out (`cnnc import`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/strbuf.h"
#include "ops/mem.h"
#include "runtime/fileio.h"
#include "runtime/rt.h"
#ifdef CNN_HAVE_ONNX
#include "lang/onnx.h"
#include "lang/print.h"
#endif

void rt_model_free_imported(cnn_model *m)
{
    for (int k = 0; k < m->nimported; k++)
        cnn_mem_free(m->imported[k].data);
    cnn_mem_free(m->imported);
    m->imported = NULL;
    m->nimported = 0;
}

#ifdef CNN_HAVE_ONNX

bool cnn_onnx_available(void) { return true; }
size_t rt_onnx_max_bytes(void) { return LANG_ONNX_MAX_BYTES; }

/* A model holding only msg (already rendered). */
static cnn_status failed_model(cnn_model **out, const char *filename, char *msg, cnn_status st)
{
    bool had = msg != NULL;
    *out = rt_model_failed(filename, msg);
    return *out && had ? st : CNN_ERR_NOMEM;
}

cnn_status cnn_model_load_onnx_memory(cnn_model **out, const char *filename, const void *data, size_t len,
                                      const char *network)
{
    *out = NULL;
    if (!filename)
        filename = "<memory>";
    if (!data && len)
        return CNN_ERR_USAGE;
    diag_list d;
    diag_init(&d, filename, NULL, 0);
    lang_onnx *x = lang_onnx_import(data ? data : "", len, &d);
    if (!x || d.errors || d.oom) {
        bool nomem = d.oom && d.errors == 0;
        char *msg = nomem ? NULL : diag_render(&d); /* NULL: "out of memory" */
        diag_free(&d);
        lang_onnx_free(x);
        return failed_model(out, filename, msg, nomem ? CNN_ERR_NOMEM : CNN_ERR_INPUT);
    }
    diag_free(&d);
    strbuf sb;
    sb_init(&sb);
    char header[512];
    const char *base = strrchr(filename, '/');
    snprintf(header, sizeof header, "imported by cnnc from %s (%s%sopset %lld)\nweights: the .safetensors file beside it",
             base ? base + 1 : filename, x->producer, x->producer[0] ? ", " : "", (long long)x->opset);
    for (char *p = header; *p; p++)
        if ((*p < 32 && *p != '\n') || *p > 126)
            *p = '?';
    lang_print_network(&x->net, header, &sb);
    if (sb.oom) {
        sb_free(&sb);
        lang_onnx_free(x);
        return failed_model(out, filename, NULL, CNN_ERR_NOMEM);
    }
    char shown[1024];
    snprintf(shown, sizeof shown, "%s (as .cnn)", filename);
    cnn_status st = cnn_model_compile(out, shown, sb.data, sb.len, network);
    sb_free(&sb);
    cnn_model *m = *out;
    if (m) {
        /* messages name the model file; the printed source's places say "(as .cnn)" */
        char *name = cnn_mem_strdup(filename);
        m->imported = cnn_mem_calloc((size_t)x->ntensors + 1, sizeof *m->imported);
        if (!name || !m->imported) {
            cnn_mem_free(name);
            cnn_mem_free(m->errmsg);
            m->errmsg = cnn_mem_strdup("out of memory");
            lang_onnx_free(x);
            return CNN_ERR_NOMEM;
        }
        cnn_mem_free(m->filename);
        m->filename = name;
        for (int k = 0; k < x->ntensors; k++) {
            rt_import_tensor *t = &m->imported[k];
            snprintf(t->name, sizeof t->name, "%s", x->tensors[k].name);
            t->shape = x->tensors[k].shape;
            t->data = x->tensors[k].data;
            x->tensors[k].data = NULL;
            m->nimported++;
        }
    }
    lang_onnx_free(x);
    return st;
}

#else

bool cnn_onnx_available(void) { return false; }
size_t rt_onnx_max_bytes(void) { return (size_t)1 << 31; }

cnn_status cnn_model_load_onnx_memory(cnn_model **out, const char *filename, const void *data, size_t len,
                                      const char *network)
{
    (void)data, (void)len, (void)network;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: error: cnnc was built without ONNX support (rebuild with -Donnx=enabled; needs "
                              "protobuf-c-compiler, libprotobuf-c-dev and libonnx-dev)\n",
             filename ? filename : "<memory>");
    *out = rt_model_failed(filename ? filename : "<memory>", cnn_mem_strdup(msg));
    return *out ? CNN_ERR_INPUT : CNN_ERR_NOMEM;
}

#endif

cnn_status cnn_model_save_source(cnn_model *m, const char *path)
{
    rt_outfile o;
    char msg[RT_ERR_MAX];
    if (rt_out_open(&o, path) != 0) {
        snprintf(msg, sizeof msg, "%s: cannot write: %s", path, strerror(errno));
        cnn_mem_free(m->errmsg);
        m->errmsg = cnn_mem_strdup(msg);
        return CNN_ERR_INPUT;
    }
    size_t len = 0;
    const char *src = cnn_model_source(m, &len);
    if (fwrite(src, 1, len, o.fp) != len) {
        rt_out_abort(&o);
        snprintf(msg, sizeof msg, "%s: write error", path);
        cnn_mem_free(m->errmsg);
        m->errmsg = cnn_mem_strdup(msg);
        return CNN_ERR_INPUT;
    }
    if (rt_out_commit(&o, msg, sizeof msg) != 0) {
        char full[RT_ERR_MAX + 64];
        snprintf(full, sizeof full, "%s: %s", path, msg);
        cnn_mem_free(m->errmsg);
        m->errmsg = cnn_mem_strdup(full);
        return CNN_ERR_INPUT;
    }
    return CNN_OK;
}
