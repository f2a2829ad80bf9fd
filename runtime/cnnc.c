/* cnnc — the command-line driver: main, the command table and dispatch, help, and the helpers
 * the commands share.  The flags are in cnnc_flags.c, the commands in cnnc_model.c (compile,
 * emit, run), cnnc_train.c (train, eval), cnnc_bench.c and cnnc_plot.c.  Everything it does goes through
 * runtime/cnn.h, as an embedding program would.
 *
 * Exit status: 0 success, 1 bad input (source, data, weights, tensors; a network too large
 * for the limits or for memory), 2 bad usage (also a --batch too large where batch 1 fits, and
 * a --network name the file lacks), 3 internal error. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cnnc.h"

const char *prog = "cnnc";
static const char *help_hint = "cnnc --help";

typedef struct command {
    const char *name;
    unsigned bit;
    int (*run)(const args *a);
    const char *usage;
    const char *about;
} command;

static const command commands[] = {
    {"compile", CMD_COMPILE, cmd_compile, "cnnc [compile] NET.cnn [--batch N] [--train]",
     "Checks and optimises the network and prints a table of its layers (name, kind, output shape,\n"
     "parameters, FLOPs), totals, the fusions made and the planned memory."},
    {"run", CMD_RUN, cmd_run, "cnnc run NET.cnn [-w W.safetensors] [-i IN.npy] [-o OUT.npy] [--batch N]",
     "Inference: without -i, a seeded random batch of N (1).  Prints the top class per example for a\n"
     "vector output, and the time."},
    {"train", CMD_TRAIN, cmd_train,
     "cnnc train NET.cnn --data DIR [-w INIT.safetensors] [--save OUT.safetensors]\n"
     "                  [--epochs N] [--batch N] [--lr X] [--steps N] [--no-shuffle] [--log METRICS.csv]\n"
     "                  [--checkpoint DIR] [--resume CKPT] [--val N] [--patience N]",
     "Trains on a data folder with a progress display; prints loss, accuracy and images/s per\n"
     "epoch, validation loss and accuracy with --val, and test loss and accuracy when the folder\n"
     "has a test set.  The train section's schedule sets the learning rate of every step.\n"
     "--checkpoint DIR keeps DIR/last.safetensors (every epoch) and DIR/best.safetensors (best\n"
     "validation, else test, accuracy): weights, optimiser state and the run's position; any\n"
     "checkpoint loads with -w, and --resume CKPT continues its run exactly.  Ctrl-C (SIGINT) or\n"
     "SIGTERM finishes the step, writes DIR/last.safetensors with --checkpoint (else --save, with\n"
     "the weights as they are), completes the log and exits 130 (143).  Every output place is\n"
     "checked before the first step."},
    {"eval", CMD_EVAL, cmd_eval, "cnnc eval NET.cnn -w W.safetensors --data DIR [--batch N]",
     "Test-set loss, top-1 and top-5 accuracy (top-5 for outputs of 5 classes or more),\n"
     "accuracy per class and the confusion matrix (rows: the label, columns: the prediction)."},
    {"bench", CMD_BENCH, cmd_bench, "cnnc bench NET.cnn [--batch N] [--train] [--json] [--repeat N]",
     "Times inference (or a training step) at each optimisation level and on each backend; prints\n"
     "a table of medians, or JSON."},
    {"quantize", CMD_QUANTIZE, cmd_quantize,
     "cnnc quantize NET.cnn -w W.safetensors --data DIR -o Q.safetensors [--calibrate N]",
     "Post-training int8 quantisation: weight scales per output channel, activation scales calibrated\n"
     "on the first N (1000) training examples; writes the weights and the scales to Q.safetensors,\n"
     "for --precision int8."},
    {"emit", CMD_EMIT, cmd_emit, "cnnc emit NET.cnn [--stage parsed|optimized|training] [--format text|dot]",
     "Prints the graph at a stage, as text or Graphviz dot."},
    {"plot", CMD_PLOT, cmd_plot, "cnnc plot METRICS.csv -o CURVES.png [--width PX] [--height PX]",
     "Draws the loss and accuracy curves (train, validation and test against the epoch) of a\n"
     "`cnnc train --log` CSV as a PNG image, with PLplot."},
    {"import", CMD_IMPORT, cmd_import, "cnnc import MODEL.onnx [-o NET.cnn]",
     "Translates an ONNX model into a .cnn source (default: MODEL.cnn beside the model) and its\n"
     "weights (NET.safetensors beside NET.cnn).  Every command that takes NET.cnn also takes\n"
     "MODEL.onnx directly, with the model's weights unless -w is given."},
    {"export", CMD_EXPORT, cmd_export, "cnnc export NET.cnn [-w W.safetensors] -o MODEL.onnx [--fold-bn]",
     "Writes the network and its weights (without -w: initialised from --seed) as an ONNX model:\n"
     "opset 13, a dynamic batch axis, weights as initializers with their .cnn names, batchnorm as\n"
     "BatchNormalization unless --fold-bn folds it into the conv or dense layer before it."},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see %s)\n", help_hint);
    va_end(ap);
    return EXIT_USAGE;
}

void print_usage(void)
{
    printf("usage: ");
    for (int i = 0; i < NCOMMANDS; i++)
        printf("%s%s\n", i ? "       " : "", commands[i].usage);
    printf("\ncommon flags:\n");
    flags_print_help(CMD_ALL, true);
    printf("\nFlags take their value as --flag value or --flag=value, before or after the command.\n"
           "cnnc COMMAND --help describes a command and its own flags.\n");
}

int print_command_help(unsigned bit)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (commands[i].bit == bit) {
            printf("usage: %s\n\n%s\n\nflags of cnnc %s:\n", commands[i].usage, commands[i].about, commands[i].name);
            flags_print_help(bit, false);
            printf("\ncommon flags:\n");
            flags_print_help(CMD_ALL, true);
            printf("\nFlags take their value as --flag value or --flag=value.\n");
        }
    return EXIT_OK;
}

int exit_for(cnn_status st)
{
    switch (st) {
    case CNN_OK: return EXIT_OK;
    case CNN_ERR_INPUT: return EXIT_INPUT;
    case CNN_ERR_USAGE: return EXIT_USAGE;
    case CNN_ERR_DIVERGED: return EXIT_INPUT;
    case CNN_ERR_NOMEM: return EXIT_INTERNAL; /* out of memory */
    default: return EXIT_INTERNAL;
    }
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int load_model(const args *a, cnn_model **m)
{
    cnn_status st = cnn_model_load(m, a->source, a->network);
    if (st != CNN_OK) {
        fputs(cnn_model_errmsg(*m), stderr);
        cnn_model_destroy(*m);
        *m = NULL;
        /* no network by that name is a usage error (CNN_ERR_USAGE); everything else is bad input */
        return exit_for(st);
    }
    return EXIT_OK;
}

int size_exit(const args *a, cnn_model *m, cnn_status st, bool training)
{
    if (st != CNN_ERR_INPUT && st != CNN_ERR_NOMEM)
        return exit_for(st);
    if (a->batch > 1) {
        /* the same network at batch 1: when it plans, the --batch asked for is what is too large */
        char *text = NULL;
        cnn_status one = cnn_model_emit(m, &a->opt, training ? "training" : "optimized", "text", &text);
        cnn_free(text);
        if (one == CNN_OK) {
            fprintf(stderr, "%s: note: the network fits at batch 1; try a smaller --batch\n", prog);
            return EXIT_USAGE;
        }
    }
    return EXIT_INPUT;
}

int make_weights(const args *a, cnn_model *m, cnn_weights **w)
{
    cnn_status st = cnn_weights_create(w, m, a->opt.seed);
    if (st == CNN_ERR_USAGE || st == CNN_ERR_NOMEM) {
        /* the model's weights past the size limit, or more than memory holds: the network's fault */
        fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(*w));
        cnn_weights_destroy(*w);
        *w = NULL;
        return EXIT_INPUT;
    }
    if (st == CNN_OK && a->weights) {
        /* --rename FROM=TO: FROM copied out of the argument, TO points into it */
        cnn_rename rn[CNNC_MAX_RENAMES];
        char from[CNNC_MAX_RENAMES][256];
        for (int k = 0; k < a->nrenames; k++) {
            const char *eq = strchr(a->renames[k], '=');
            snprintf(from[k], sizeof from[k], "%.*s", (int)(eq - a->renames[k]), a->renames[k]);
            rn[k] = (cnn_rename){from[k], eq + 1};
        }
        cnn_load_options lo;
        cnn_load_options_default(&lo);
        lo.allow_extra = a->allow_extra;
        lo.allow_nonfinite = a->allow_nonfinite;
        lo.renames = rn;
        lo.nrenames = a->nrenames;
        st = cnn_weights_load_opts(*w, a->weights, &lo);
    }
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(*w));
        cnn_weights_destroy(*w);
        *w = NULL;
        return exit_for(st);
    }
    return EXIT_OK;
}

int make_session(cnn_session **s, cnn_model *m, cnn_weights *w, const args *a, int64_t batch, cnn_mode mode,
                 const cnn_train_config *tc)
{
    cnn_status st = cnn_session_create(s, m, w, &a->opt, batch, mode, tc);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(*s));
        cnn_session_destroy(*s);
        *s = NULL;
        if ((st == CNN_ERR_INPUT || st == CNN_ERR_NOMEM) && batch > 1) {
            /* too large (the limits, or the machine's memory): the batch's fault when the same
             * session at batch 1 is made */
            cnn_session *one = NULL;
            cnn_status st1 = cnn_session_create(&one, m, w, &a->opt, 1, mode, tc);
            cnn_session_destroy(one);
            if (st1 == CNN_OK)
                fprintf(stderr, "%s: note: the network fits at batch 1; try a smaller --batch\n", prog);
            return st1 == CNN_OK ? EXIT_USAGE : EXIT_INPUT;
        }
        return size_exit(a, m, st, mode == CNN_MODE_TRAIN);
    }
    cnn_tune_info ti;
    cnn_session_tune_info(*s, &ti);
    if (ti.note[0])
        fprintf(stderr, "%s: warning: %s\n", prog, ti.note);
    return EXIT_OK;
}

int64_t example_numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++)
        if (__builtin_mul_overflow(n, dims[k], &n))
            return INT64_MAX; /* saturated: never for a compiled model's shapes (2^40 at most) */
    return n;
}

int64_t first_nonfinite(const float *data, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(data[i]))
            return i;
    return -1;
}

const char *nonfinite_name(float v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

void index_text(char *buf, size_t n, int64_t flat, int rank, const int64_t *dims)
{
    int64_t pos[9];
    for (int k = rank - 1; k >= 0; k--) {
        pos[k + 1] = dims[k] > 0 ? flat % dims[k] : 0;
        flat = dims[k] > 0 ? flat / dims[k] : 0;
    }
    pos[0] = flat;
    size_t o = 0;
    for (int k = 0; k <= rank && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, k ? ", " : "[", pos[k]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

/* The command named by argv[1], or NULL.  Sets *misspelt when argv[1] is no file and is close
 * to a command's name (an error the caller reports). */
static const command *find_command(const char *word, const command **misspelt)
{
    *misspelt = NULL;
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(word, commands[i].name) == 0)
            return &commands[i];
    if (word[0] == '-' || strchr(word, '.') || strchr(word, '/') || access(word, F_OK) == 0)
        return NULL;
    int best = 1 << 30;
    for (int i = 0; i < NCOMMANDS; i++) {
        int d = flags_edit_distance(word, commands[i].name);
        if (d < best && d <= 2 && d < (int)strlen(word))
            best = d, *misspelt = &commands[i];
    }
    return NULL;
}

static int stdout_errno; /* of the first failed flush_stdout */

void flush_stdout(void)
{
    if (fflush(stdout) != 0 && !stdout_errno)
        stdout_errno = errno;
}

/* Standard output is checked once, at the end of every command: a write that failed (a full
 * disk, /dev/full) makes the command fail with exit 1 (or its own failure status). */
static int finish_stdout(int rc)
{
    errno = 0;
    bool bad = fflush(stdout) != 0;
    int e = stdout_errno ? stdout_errno : errno;
    bad = ferror(stdout) || bad;
    if (fclose(stdout) != 0 && !bad) {
        bad = true;
        e = errno;
    }
    if (!bad)
        return rc;
    fprintf(stderr, "%s: error: cannot write to standard output: %s\n", prog, e ? strerror(e) : "write error");
    return rc ? rc : EXIT_INPUT;
}

int main(int argc, char **argv)
{
    args a;
    memset(&a, 0, sizeof a);
    cnn_options_default(&a.opt);
    a.command = CMD_COMPILE;
    a.stage = "parsed";
    a.format = "text";
    const command *cmd = NULL, *misspelt = NULL;
    /* the command is the first word that is no flag or flag value: common flags may come
     * before it (cnnc --threads 2 run NET.cnn) as well as after */
    int at = flags_first_positional(argc, argv, 1);
    if (at < argc && (cmd = find_command(argv[at], &misspelt)) != NULL) {
        a.command = cmd->bit;
        a.command_name = cmd->name;
        static char hint[64];
        snprintf(hint, sizeof hint, "cnnc %s --help", cmd->name);
        help_hint = hint;
    } else if (misspelt) {
        return usage_error("unknown command '%s'; did you mean '%s'?", argv[at], misspelt->name);
    }
    /* the arguments without the command word */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest)
        return EXIT_INTERNAL;
    int nrest = 0;
    for (int i = 0; i < argc; i++)
        if (!cmd || i != at)
            rest[nrest++] = argv[i];
    int rc = flags_parse(nrest, rest, 1, &a);
    if (rc >= 0) {
        free(rest);
        return finish_stdout(rc);
    }
    rc = cmd ? cmd->run(&a) : cmd_compile(&a);
    free(rest);
    return finish_stdout(rc);
}
