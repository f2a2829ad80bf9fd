/* The `cnnc` driver's private header: its parsed arguments, the flag table and the commands.
 * The driver is built on runtime/cnn.h alone; nothing else includes this. */
#ifndef CNNC_DRIVER_H
#define CNNC_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/cnn.h"

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };
/* cnnc train stopped by SIGINT / SIGTERM: 128 + the signal's number, as a shell reports it. */
enum { EXIT_SIGINT = 130, EXIT_SIGTERM = 143 };

/* The commands, as bits for the flag table's `commands` masks. */
enum {
    CMD_COMPILE = 1u << 0,
    CMD_RUN = 1u << 1,
    CMD_TRAIN = 1u << 2,
    CMD_EVAL = 1u << 3,
    CMD_BENCH = 1u << 4,
    CMD_EMIT = 1u << 5,
    CMD_PLOT = 1u << 6,
    CMD_IMPORT = 1u << 7,
    CMD_EXPORT = 1u << 8,
    CMD_QUANTIZE = 1u << 9,
    CMD_ALL = 0x3ff,
};

enum { CNNC_MAX_RENAMES = 64 };

typedef struct args {
    unsigned command;      /* one CMD_* bit */
    const char *command_name;
    const char *source;
    const char *network;
    const char *weights;   /* -w */
    const char *input;     /* -i */
    const char *output;    /* -o */
    const char *data;      /* --data */
    const char *save;      /* --save */
    const char *log;       /* --log */
    const char *checkpoint;/* --checkpoint DIR */
    const char *resume;    /* --resume CKPT */
    int64_t val;           /* --val N: 0 none */
    int64_t patience;      /* --patience N: 0 never */
    int width, height;     /* plot: the image's size in pixels (0: the default) */
    const char *stage;     /* emit --stage */
    const char *format;    /* emit --format */
    int64_t batch;         /* 0: not given */
    int64_t epochs;        /* 0: not given */
    int64_t steps;         /* 0: no limit */
    double lr;             /* 0: not given */
    bool no_shuffle, quiet, train_flag, json, allow_extra, profile, only_o2;
    bool fold_bn;          /* export --fold-bn */
    bool allow_nonfinite;  /* NaN/Inf accepted in inputs and weights, printed in outputs and losses */
    bool lr_scale_by_world; /* train: lr x the number of processes (mpirun) */
    const char *renames[CNNC_MAX_RENAMES]; /* --rename FROM=TO, in order */
    int nrenames;
    int repeat;            /* bench: runs per configuration */
    int64_t calibrate;     /* quantize: calibration examples (0: not given, 1000) */
    unsigned disabled;     /* passes switched off by --no-* flags (bench applies them to every row) */
    cnn_options opt;
} args;

extern const char *prog;

/* cnnc_flags.c: parses argv[first..argc) into *a (flags over getopt_long, both --flag value
 * and --flag=value).  Returns -1 to go on, or an exit status (--help, --version, a usage
 * error, already reported). */
int flags_parse(int argc, char **argv, int first, args *a);
/* The index of the first argument from argv[first] on that is neither a flag nor a flag's value
 * (argc when there is none): where the command word is, so that flags may come before it. */
int flags_first_positional(int argc, char **argv, int first);
/* Prints the flags that apply to the commands in `mask`, one a line: those common to all
 * commands when `common`, else the others. */
void flags_print_help(unsigned mask, bool common);
/* The Levenshtein distance of a and b (both short). */
int flags_edit_distance(const char *a, const char *b);

/* cnnc.c: the commands' help and shared helpers. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_usage(void);
int print_command_help(unsigned command);
int exit_for(cnn_status st);
/* fflush(stdout), remembering the first failure's errno for the check at exit. */
void flush_stdout(void);
double now_seconds(void);
int load_model(const args *a, cnn_model **m);
int make_weights(const args *a, cnn_model *m, cnn_weights **w);
/* A session of a->opt, reported and mapped to an exit status as size_exit does. */
int make_session(cnn_session **s, cnn_model *m, cnn_weights *w, const args *a, int64_t batch,
                 cnn_mode mode, const cnn_train_config *tc);
/* The exit status of a failure to plan or allocate (CNN_ERR_INPUT, CNN_ERR_NOMEM) at the batch
 * asked for: 2 when --batch N > 1 was given and the network plans at batch 1 (with a note),
 * else 1 (the network itself is too large); other statuses as exit_for. */
int size_exit(const args *a, cnn_model *m, cnn_status st, bool training);
int64_t example_numel(int rank, const int64_t *dims);
/* The first non-finite value of data[0..n) (-1 when all are finite). */
int64_t first_nonfinite(const float *data, int64_t n);
/* "NaN", "inf" or "-inf". */
const char *nonfinite_name(float v);
/* Writes "[b, i, j, ...]", the position of flat index `flat` in a batch of examples of shape
 * dims[0..rank). */
void index_text(char *buf, size_t n, int64_t flat, int rank, const int64_t *dims);

/* The commands, one function each; they return the exit status. */
int cmd_compile(const args *a); /* cnnc_model.c */
int cmd_emit(const args *a);    /* cnnc_model.c */
int cmd_run(const args *a);     /* cnnc_model.c */
int cmd_train(const args *a);   /* cnnc_train.c */
int cmd_eval(const args *a);    /* cnnc_train.c */
int cmd_bench(const args *a);   /* cnnc_bench.c */
int cmd_plot(const args *a);    /* cnnc_plot.c */

/* cnnc_dist.c: data-parallel train and eval under mpirun.  dist_begin starts it (on ranks
 * other than 0, *a becomes local: no --save, --log, quiet, stdout to /dev/null); dist_check(rc)
 * is the collective agreement on the setup, called once just before the collective work (the
 * status of the whole run, or this process's rc); dist_end(rc) joins that agreement when this
 * process failed before it, leaves data-parallel mode and returns the exit status. */
int dist_begin(const args **a, args *local);
int dist_check(int rc);
int dist_end(int rc);
int cmd_import(const args *a);  /* cnnc_onnx.c */
int cmd_export(const args *a);  /* cnnc_onnx.c */
int cmd_quantize(const args *a); /* cnnc_quantize.c */

#endif
