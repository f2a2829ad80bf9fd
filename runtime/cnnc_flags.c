/* cnnc's flags: one table, parsed with getopt_long (so `--flag value` and `--flag=value` both
 * work, and short flags -w -i -o -q -O0/-O1/-O2), with "did you mean" for a misspelt flag.
 * Long flags must be spelt out in full: getopt_long's abbreviations are turned off by checking
 * every --name against the table first. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnnc.h"

typedef enum flag_kind {
    F_STR,       /* const char * at offset */
    F_INT64,     /* int64_t at offset, in [lo, hi] */
    F_INT,       /* int at offset, in [lo, hi] */
    F_U64,       /* uint64_t at offset */
    F_POS_DOUBLE,/* double at offset, > 0 */
    F_BOOL,      /* bool at offset, set */
    F_PASS_OFF,  /* switches pass bits `lo` off */
    F_BACKEND,
    F_PRECISION,
    F_TUNE,
    F_CONV_ALGO,
    F_OLEVEL,
    F_RENAME,    /* appended to args.renames */
    F_HELP,
    F_VERSION,
} flag_kind;

typedef struct flag_def {
    const char *name;     /* long name (without --), or NULL */
    char short_name;      /* or 0 */
    const char *metavar;  /* the value's name; NULL: takes none */
    flag_kind kind;
    size_t offset;        /* into args */
    int64_t lo, hi;
    unsigned commands;    /* CMD_* bits of the commands it applies to */
    const char *help;
} flag_def;

#define OFF(field) offsetof(args, field)
#define TRAINING (CMD_TRAIN)
#define WITH_WEIGHTS (CMD_RUN | CMD_TRAIN | CMD_EVAL | CMD_BENCH | CMD_EXPORT | CMD_QUANTIZE)

static const flag_def flags[] = {
    {"help", 'h', NULL, F_HELP, 0, 0, 0, CMD_ALL, "describe the command and its flags"},
    {"version", 0, NULL, F_VERSION, 0, 0, 0, CMD_ALL, "print the version"},
    {"network", 0, "NAME", F_STR, OFF(network), 0, 0, CMD_ALL, "the network to use when the file has several"},
    {"threads", 0, "N", F_INT, OFF(opt.threads), 1, 1024, CMD_ALL, "threads (default: all cores)"},
    {"backend", 0, "B", F_BACKEND, 0, 0, 0, CMD_ALL, "auto|native|onednn|ref (default auto)"},
    {"precision", 0, "P", F_PRECISION, 0, 0, 0, CMD_ALL,
     "fp32|bf16|int8: conv and dense arithmetic (default fp32; bf16 also trains; int8, inference only, needs cnnc quantize's weights)"},
    {"tune", 0, "T", F_TUNE, 0, 0, 0, CMD_ALL,
     "off|on|exhaustive: backend auto picks each node's backend by measurement, cached (default off)"},
    {"tune-cache", 0, "FILE", F_STR, OFF(opt.tune_cache), 0, 0, CMD_ALL,
     "the tuning cache (default $XDG_CACHE_HOME/cnnc/tune.json or ~/.cache/cnnc/tune.json; none: no cache)"},
    {"conv-algo", 0, "A", F_CONV_ALGO, 0, 0, 0, CMD_ALL,
     "direct|winograd|auto: how fp32 3x3 stride-1 convolutions are computed (default direct, auto with --tune on)"},
    {"keep-denormals", 0, NULL, F_BOOL, OFF(opt.keep_denormals), 0, 0, CMD_ALL,
     "compute with denormal floats (below 1.2e-38) instead of flushing them to zero, at their cost on x86"},
    {NULL, 'O', "LEVEL", F_OLEVEL, 0, 0, 0, CMD_ALL, "-O0 -O1 -O2: graph optimisation level (default -O2)"},
    {"no-dce", 0, NULL, F_PASS_OFF, 0, CNN_PASS_DCE, 0, CMD_ALL, "switch dead-node elimination off"},
    {"no-fold-bn", 0, NULL, F_PASS_OFF, 0, CNN_PASS_FOLD_BN, 0, CMD_ALL, "switch batchnorm folding off"},
    {"no-fuse", 0, NULL, F_PASS_OFF, 0, CNN_PASS_FUSE, 0, CMD_ALL, "switch fusion off"},
    {"no-plan", 0, NULL, F_PASS_OFF, 0, CNN_PASS_PLAN, 0, CMD_ALL, "switch memory planning off"},
    {"no-inplace", 0, NULL, F_PASS_OFF, 0, CNN_PASS_INPLACE, 0, CMD_ALL, "switch in-place reuse off"},
    {"no-layout", 0, NULL, F_PASS_OFF, 0, CNN_PASS_LAYOUT, 0, CMD_ALL,
     "switch the channels-last layout pass off (bench: --no-* apply to every row)"},
    {"seed", 0, "S", F_U64, OFF(opt.seed), 0, 0, CMD_ALL, "seed for weights, random inputs, shuffling, dropout (default 0)"},
    {"allow-extra", 0, NULL, F_BOOL, OFF(allow_extra), 0, 0, WITH_WEIGHTS,
     "ignore tensors in -w files that the network does not have"},
    {"allow-nonfinite", 0, NULL, F_BOOL, OFF(allow_nonfinite), 0, 0, WITH_WEIGHTS,
     "accept NaN and Inf in -w and -i values, and report non-finite outputs and losses instead of failing"},
    {"rename", 0, "FROM=TO", F_RENAME, 0, 0, 0, WITH_WEIGHTS,
     "a -w key starting with FROM starts with TO instead (repeatable, applied in order)"},
    {NULL, 'q', NULL, F_BOOL, OFF(quiet), 0, 0, CMD_ALL, "quiet: results only"},
    {NULL, 'w', "W.safetensors", F_STR, OFF(weights), 0, 0, WITH_WEIGHTS, "weights (default: initialised from --seed)"},
    {NULL, 'i', "IN.npy", F_STR, OFF(input), 0, 0, CMD_RUN, "input batch (default: seeded random)"},
    {NULL, 'o', "FILE", F_STR, OFF(output), 0, 0, CMD_RUN | CMD_PLOT | CMD_IMPORT | CMD_EXPORT | CMD_QUANTIZE,
     "run: write the outputs to FILE (OUT.npy; a second output to OUT.NAME.npy); plot: the PNG to draw; "
     "import: the NET.cnn to write; export: the MODEL.onnx to write; quantize: the Q.safetensors to write"},
    {"calibrate", 0, "N", F_INT64, OFF(calibrate), 1, INT64_MAX / 2, CMD_QUANTIZE,
     "calibration examples (default 1000, at most the training set)"},
    {"batch", 0, "N", F_INT64, OFF(batch), 1, 1 << 20,
     CMD_ALL & ~(unsigned)(CMD_EMIT | CMD_PLOT | CMD_IMPORT | CMD_EXPORT | CMD_QUANTIZE), "examples per batch"},
    {"data", 0, "DIR", F_STR, OFF(data), 0, 0, CMD_TRAIN | CMD_EVAL | CMD_QUANTIZE, "an MNIST-format (IDX) data folder"},
    {"save", 0, "OUT.safetensors", F_STR, OFF(save), 0, 0, TRAINING, "write the trained weights"},
    {"epochs", 0, "N", F_INT64, OFF(epochs), 1, 1000000, TRAINING, "epochs (default: the train section's)"},
    {"lr", 0, "X", F_POS_DOUBLE, OFF(lr), 0, 0, TRAINING, "learning rate (default: the train section's)"},
    {"lr-scale-by-world", 0, NULL, F_BOOL, OFF(lr_scale_by_world), 0, 0, TRAINING,
     "under mpirun: multiply the learning rate by the number of processes (linear scaling; see docs/distributed.md)"},
    {"steps", 0, "N", F_INT64, OFF(steps), 1, INT64_MAX / 2, TRAINING, "stop after N optimiser steps"},
    {"no-shuffle", 0, NULL, F_BOOL, OFF(no_shuffle), 0, 0, TRAINING, "keep the data order, for reproducible runs"},
    {"log", 0, "METRICS.csv", F_STR, OFF(log), 0, 0, TRAINING,
     "write metrics as CSV: a row per step and per epoch (columns in docs/commands.md)"},
    {"checkpoint", 0, "DIR", F_STR, OFF(checkpoint), 0, 0, TRAINING,
     "write DIR/last.safetensors after every epoch and on Ctrl-C, DIR/best.safetensors when the validation (else "
     "test) accuracy improves"},
    {"resume", 0, "CKPT", F_STR, OFF(resume), 0, 0, TRAINING,
     "continue the run of checkpoint CKPT exactly (same network, batch, optimiser, seed, data)"},
    {"val", 0, "N", F_INT64, OFF(val), 1, INT64_MAX / 2, TRAINING,
     "hold out the last N training examples and evaluate them after every epoch"},
    {"patience", 0, "N", F_INT64, OFF(patience), 1, 1000000, TRAINING,
     "stop after N epochs without a better validation (else test) accuracy; --save gets the best weights"},
    {"width", 0, "PX", F_INT, OFF(width), 200, 8000, CMD_PLOT, "the image's width in pixels (default 1200)"},
    {"height", 0, "PX", F_INT, OFF(height), 150, 8000, CMD_PLOT, "the image's height in pixels (default 800)"},
    {"train", 0, NULL, F_BOOL, OFF(train_flag), 0, 0, CMD_COMPILE | CMD_BENCH, "the training graph (or step)"},
    {"json", 0, NULL, F_BOOL, OFF(json), 0, 0, CMD_BENCH, "print JSON instead of a table"},
    {"repeat", 0, "N", F_INT, OFF(repeat), 1, 100000, CMD_BENCH, "runs per configuration (default 10)"},
    {"profile", 0, NULL, F_BOOL, OFF(profile), 0, 0, CMD_BENCH, "then time every node of the -O2 plan (median, spread, GFLOP/s, share)"},
    {"only-o2", 0, NULL, F_BOOL, OFF(only_o2), 0, 0, CMD_BENCH, "time the -O2 plan on the chosen backend only (one row; for comparisons)"},
    {"stage", 0, "STAGE", F_STR, OFF(stage), 0, 0, CMD_EMIT, "parsed|optimized|training (default parsed)"},
    {"format", 0, "FORMAT", F_STR, OFF(format), 0, 0, CMD_EMIT, "text|dot (default text)"},
    {"fold-bn", 0, NULL, F_BOOL, OFF(fold_bn), 0, 0, CMD_EXPORT,
     "fold each batchnorm into the conv or dense layer before it (default: BatchNormalization nodes)"},
};
enum { NFLAGS = sizeof flags / sizeof flags[0], LONG_VAL = 256 };

/* Levenshtein distance for the driver's suggestions.  The library's own (lang/suggest.h) is
 * internal; the driver is built on cnn.h alone, so it keeps this small one. */
int flags_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The flag's name as the user writes it: "--batch" or "-w". */
static const char *flag_label(const flag_def *f)
{
    static char buf[4][64];
    static int k;
    k = (k + 1) % 4;
    if (f->name)
        snprintf(buf[k], sizeof buf[k], "--%s", f->name);
    else
        snprintf(buf[k], sizeof buf[k], "-%c", f->short_name);
    return buf[k];
}

static const flag_def *find_long(const char *name, size_t len)
{
    for (int i = 0; i < NFLAGS; i++)
        if (flags[i].name && strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static const flag_def *find_short(char c)
{
    for (int i = 0; i < NFLAGS; i++)
        if (flags[i].short_name == c)
            return &flags[i];
    return NULL;
}

/* Reports an unknown flag, with the closest long flag when one is near (or it abbreviates one). */
static int unknown_flag(const char *arg)
{
    const char *name = arg + strspn(arg, "-");
    size_t len = strcspn(name, "=");
    char given[64];
    snprintf(given, sizeof given, "%.*s", (int)(len < 63 ? len : 63), name);
    const flag_def *best = NULL;
    int best_d = 1 << 30, prefix_of = 0;
    const flag_def *prefixed = NULL;
    for (int i = 0; i < NFLAGS; i++) {
        if (!flags[i].name)
            continue;
        int d = flags_edit_distance(given, flags[i].name);
        if (d < best_d)
            best_d = d, best = &flags[i];
        if (len > 0 && strncmp(flags[i].name, given, len) == 0)
            prefix_of++, prefixed = &flags[i];
    }
    if (best && best_d <= (len >= 5 ? 2 : 1))
        return usage_error("unknown flag '%.*s'; did you mean '--%s'?", (int)strcspn(arg, "="), arg, best->name);
    if (prefix_of == 1)
        return usage_error("unknown flag '%.*s'; did you mean '--%s'?", (int)strcspn(arg, "="), arg, prefixed->name);
    return usage_error("unknown flag '%.*s'", (int)strcspn(arg, "="), arg);
}

/* Checks every flag against the table before getopt_long sees them: long names spelt out in
 * full, known short flags, no value given to a flag that takes none. */
static int prescan(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            break;
        if (arg[0] != '-' || arg[1] == '\0')
            continue;
        const flag_def *f;
        if (arg[1] == '-') {
            size_t len = strcspn(arg + 2, "=");
            if (!(f = find_long(arg + 2, len)))
                return unknown_flag(arg);
            if (!f->metavar && arg[2 + len] == '=')
                return usage_error("--%s takes no value", f->name);
            if (f->metavar && arg[2 + len] != '=')
                i++; /* its value, whatever it looks like */
        } else {
            if (!(f = find_short(arg[1])))
                return unknown_flag(arg);
            if (f->metavar && arg[2] == '\0')
                i++;
            else if (!f->metavar && arg[2] != '\0')
                return unknown_flag(arg);
        }
    }
    return -1;
}

int flags_first_positional(int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            return argc;
        if (arg[0] != '-' || arg[1] == '\0')
            return i;
        const flag_def *f;
        if (arg[1] == '-') {
            size_t len = strcspn(arg + 2, "=");
            if ((f = find_long(arg + 2, len)) && f->metavar && arg[2 + len] != '=')
                i++; /* its value */
        } else if ((f = find_short(arg[1])) && f->metavar && arg[2] == '\0') {
            i++;
        }
    }
    return argc;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static int set_backend(args *a, const char *val)
{
    static const struct { const char *name; cnn_backend b; } names[] = {
        {"auto", CNN_BACKEND_AUTO}, {"native", CNN_BACKEND_NATIVE}, {"onednn", CNN_BACKEND_ONEDNN}, {"ref", CNN_BACKEND_REF}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strcmp(val, names[k].name) == 0) {
            a->opt.backend = names[k].b;
            return -1;
        }
    return usage_error("--backend takes auto, native, onednn or ref, got '%s'", val);
}

/* Applies one flag (with its value, or NULL).  Returns -1 to go on, or an exit status. */
static int apply_flag(const flag_def *f, const char *val, args *a)
{
    char *field = (char *)a + f->offset;
    int64_t v;
    switch (f->kind) {
    case F_HELP: return a->command_name ? print_command_help(a->command) : (print_usage(), EXIT_OK);
    case F_VERSION: {
        const char *id = cnn_build_id();
        printf("cnnc %s%s%s%s\n", cnn_version(), id[0] ? " (" : "", id, id[0] ? ")" : "");
        return EXIT_OK;
    }
    case F_STR: *(const char **)field = val; return -1;
    case F_BOOL: *(bool *)field = true; return -1;
    case F_BACKEND: return set_backend(a, val);
    case F_PRECISION:
        if (strcmp(val, "fp32") == 0)
            a->opt.precision = CNN_PRECISION_FP32;
        else if (strcmp(val, "bf16") == 0)
            a->opt.precision = CNN_PRECISION_BF16;
        else if (strcmp(val, "int8") == 0)
            a->opt.precision = CNN_PRECISION_INT8;
        else
            return usage_error("--precision takes fp32, bf16 or int8, got '%s'", val);
        return -1;
    case F_TUNE:
        if (strcmp(val, "off") == 0)
            a->opt.tune = CNN_TUNE_OFF;
        else if (strcmp(val, "on") == 0)
            a->opt.tune = CNN_TUNE_ON;
        else if (strcmp(val, "exhaustive") == 0)
            a->opt.tune = CNN_TUNE_EXHAUSTIVE;
        else
            return usage_error("--tune takes off, on or exhaustive, got '%s'", val);
        return -1;
    case F_CONV_ALGO:
        if (strcmp(val, "direct") == 0)
            a->opt.conv_algo = CNN_CONV_ALGO_DIRECT;
        else if (strcmp(val, "winograd") == 0)
            a->opt.conv_algo = CNN_CONV_ALGO_WINOGRAD;
        else if (strcmp(val, "auto") == 0)
            a->opt.conv_algo = CNN_CONV_ALGO_AUTO;
        else
            return usage_error("--conv-algo takes direct, winograd or auto, got '%s'", val);
        return -1;
    case F_RENAME:
        if (!strchr(val, '=') || val[0] == '=')
            return usage_error("--rename takes FROM=TO (FROM not empty), got '%s'", val);
        if (a->nrenames == CNNC_MAX_RENAMES)
            return usage_error("at most %d --rename flags", CNNC_MAX_RENAMES);
        a->renames[a->nrenames++] = val;
        return -1;
    case F_PASS_OFF:
        a->opt.passes &= ~(unsigned)f->lo;
        a->disabled |= (unsigned)f->lo;
        return -1;
    case F_OLEVEL:
        if (strcmp(val, "0") == 0)
            a->opt.passes = 0;
        else if (strcmp(val, "1") == 0)
            a->opt.passes = CNN_PASSES_O1;
        else if (strcmp(val, "2") == 0)
            a->opt.passes = CNN_PASSES_O2;
        else
            return usage_error("-O takes 0, 1 or 2 (-O0, -O1, -O2), got '%s'", val);
        return -1;
    case F_U64:
        if (!parse_u64(val, (uint64_t *)field))
            return usage_error("%s takes a non-negative integer, got '%s'", flag_label(f), val);
        return -1;
    case F_POS_DOUBLE:
        if (!parse_double(val, (double *)field) || *(double *)field <= 0)
            return usage_error("%s takes a positive number, got '%s'", flag_label(f), val);
        return -1;
    case F_INT:
    case F_INT64:
        if (!parse_int(val, f->lo, f->hi, &v)) {
            if (f->hi <= (1 << 20))
                return usage_error("%s takes an integer from %lld to %lld, got '%s'", flag_label(f), (long long)f->lo,
                                   (long long)f->hi, val);
            return usage_error("%s takes a positive integer, got '%s'", flag_label(f), val);
        }
        if (f->kind == F_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = v;
        return -1;
    }
    return -1;
}

/* The getopt_long tables for the flag table; option values are the short letter, or
 * LONG_VAL + the index for long-only flags. */
static void build_getopt(struct option *longopts, char *shortopts)
{
    int nl = 0;
    char *s = shortopts;
    *s++ = ':'; /* a missing value is ':', not '?' */
    for (int i = 0; i < NFLAGS; i++) {
        int val = flags[i].short_name ? flags[i].short_name : LONG_VAL + i;
        if (flags[i].name)
            longopts[nl++] = (struct option){flags[i].name, flags[i].metavar ? required_argument : no_argument, NULL, val};
        if (flags[i].short_name) {
            *s++ = flags[i].short_name;
            if (flags[i].metavar)
                *s++ = ':';
        }
    }
    *s = '\0';
    longopts[nl] = (struct option){NULL, 0, NULL, 0};
}

static const flag_def *flag_of_val(int val)
{
    if (val >= LONG_VAL && val < LONG_VAL + NFLAGS)
        return &flags[val - LONG_VAL];
    return val > 0 && val < LONG_VAL ? find_short((char)val) : NULL;
}

/* Takes the positional arguments (the source) left after the flags. */
static int take_positionals(int argc, char **argv, int from, args *a)
{
    for (int i = from; i < argc; i++) {
        if (!a->source)
            a->source = argv[i];
        else
            return usage_error("unexpected argument '%s' (the source is '%s')", argv[i], a->source);
    }
    if (!a->source)
        return usage_error(a->command == CMD_PLOT ? "cnnc plot needs the METRICS.csv to draw" : "no source file given");
    return -1;
}

int flags_parse(int argc, char **argv, int first, args *a)
{
    /* getopt sees argv[first..] after a program name */
    char **av = calloc((size_t)(argc - first + 2), sizeof *av);
    if (!av)
        return EXIT_INTERNAL;
    int ac = 0;
    av[ac++] = argv[0];
    for (int i = first; i < argc; i++)
        av[ac++] = argv[i];
    struct option longopts[NFLAGS + 1];
    char shortopts[2 * NFLAGS + 2];
    build_getopt(longopts, shortopts);
    bool seen[NFLAGS] = {false};
    int rc = prescan(ac, av);
    opterr = 0;
    optind = 0; /* reinitialise getopt */
    int c;
    while (rc < 0 && (c = getopt_long(ac, av, shortopts, longopts, NULL)) != -1) {
        const flag_def *f = flag_of_val(c == ':' || c == '?' ? optopt : c);
        if (c == ':')
            rc = usage_error("%s needs a value", f ? flag_label(f) : av[optind - 1]);
        else if (c == '?')
            rc = f ? usage_error("%s takes no value", flag_label(f)) : unknown_flag(av[optind - 1]);
        else if (f) {
            seen[f - flags] = true;
            rc = apply_flag(f, optarg, a);
        }
    }
    if (rc < 0)
        rc = take_positionals(ac, av, optind, a);
    /* a flag the command does not use is refused: it would otherwise be silently ignored */
    for (int i = 0; rc < 0 && i < NFLAGS; i++)
        if (seen[i] && !(flags[i].commands & a->command)) {
            const char *cmd = a->command_name ? a->command_name : "compile";
            fprintf(stderr, "%s %s: %s is not a flag of %s (see cnnc %s --help)\n", prog, cmd, flag_label(&flags[i]), cmd,
                    cmd);
            rc = EXIT_USAGE;
        }
    free(av);
    return rc;
}

void flags_print_help(unsigned mask, bool common)
{
    for (int i = 0; i < NFLAGS; i++) {
        const flag_def *f = &flags[i];
        if (!(f->commands & mask) || common != (f->commands == CMD_ALL))
            continue;
        char left[64];
        if (f->kind == F_OLEVEL)
            snprintf(left, sizeof left, "-O0 -O1 -O2");
        else if (f->kind == F_HELP)
            snprintf(left, sizeof left, "-h, --help");
        else
            snprintf(left, sizeof left, "%s%s%s", flag_label(f), f->metavar ? " " : "", f->metavar ? f->metavar : "");
        printf("  %-22s %s\n", left, f->kind == F_OLEVEL ? "graph optimisation level (default -O2)" : f->help);
    }
}
