/* cnnc plot: the loss and accuracy curves of a `cnnc train --log` CSV, drawn with PLplot's
 * pngcairo device into a PNG.  The CSV is read whole and checked first (its header, then every
 * row: a located error, file:line, for anything else); the epoch rows give the curves (train,
 * validation and test against the epoch).  The image is drawn to a temporary file beside the
 * target and renamed over it, so a failed plot leaves the old image as it was.  Built without
 * PLplot (meson option plot), the command checks the CSV and then says it cannot draw. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CNN_HAVE_PLPLOT
#include <plplot.h>
#endif

#include "runtime/cnnc.h"

/* The header `cnnc train --log` writes (cnnc_train.c). */
static const char *const columns[] = {"kind", "epoch", "step", "lr", "loss", "accuracy", "images_per_s", "time",
                                      "val_loss", "val_accuracy", "test_loss", "test_accuracy"};
enum { NCOLS = sizeof columns / sizeof columns[0], MAX_LINE = 4096 };
enum { C_KIND, C_EPOCH, C_STEP, C_LR, C_LOSS, C_ACC, C_IPS, C_TIME, C_VLOSS, C_VACC, C_TLOSS, C_TACC };

/* The epoch rows: one point per epoch (a resumed run's repeated epoch replaces the earlier). */
typedef struct curves {
    int n, cap;
    double *epoch, *loss, *acc, *vloss, *vacc, *tloss, *tacc; /* NaN: not measured */
    bool has_val, has_test;
} curves;

static void curves_free(curves *c)
{
    double **arrays[] = {&c->epoch, &c->loss, &c->acc, &c->vloss, &c->vacc, &c->tloss, &c->tacc};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        free(*arrays[k]);
}

static bool curves_grow(curves *c)
{
    if (c->n < c->cap)
        return true;
    int cap = c->cap ? 2 * c->cap : 64;
    double **arrays[] = {&c->epoch, &c->loss, &c->acc, &c->vloss, &c->vacc, &c->tloss, &c->tacc};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++) {
        double *p = realloc(*arrays[k], sizeof(double) * (size_t)cap);
        if (!p)
            return false;
        *arrays[k] = p;
    }
    c->cap = cap;
    return true;
}

static int csv_error(const char *path, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int csv_error(const char *path, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (line > 0)
        fprintf(stderr, "%s:%ld: error: ", path, line);
    else
        fprintf(stderr, "%s: error: ", path);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return EXIT_INPUT;
}

/* Splits line (no newline) at commas into f[0..NCOLS); the number of fields (more than NCOLS:
 * NCOLS + 1). */
static int split(char *line, char **f)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == NCOLS)
            return NCOLS + 1;
        f[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            return n;
        *comma = '\0';
        p = comma + 1;
    }
}

/* A number field: true with *v (NaN for an empty field when `optional`). */
static bool number(const char *s, bool optional, double *v)
{
    if (!*s) {
        *v = NAN;
        return optional;
    }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return !errno && *end == '\0' && isfinite(*v);
}

/* Reads and checks the CSV; the epoch rows into c.  An exit status (reported) or 0. */
static int read_csv(const char *path, curves *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return csv_error(path, 0, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        fclose(f);
        return csv_error(path, 0, "not a file");
    }
    char line[MAX_LINE + 2];
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        bool whole = len > 0 && line[len - 1] == '\n';
        if (!whole && len >= MAX_LINE) {
            rc = csv_error(path, lineno, "a line longer than %d bytes: not a cnnc train --log CSV", MAX_LINE);
            break;
        }
        if (whole)
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (memchr(line, '\0', len) != NULL || strlen(line) != len) {
            rc = csv_error(path, lineno, "a NUL byte: not a text CSV");
            break;
        }
        char *fl[NCOLS + 1];
        int nf = split(line, fl);
        if (lineno == 1) {
            bool ok = nf == NCOLS;
            for (int k = 0; ok && k < NCOLS; k++)
                ok = strcmp(fl[k], columns[k]) == 0;
            if (!ok)
                rc = csv_error(path, 1,
                               "not a cnnc train --log CSV: the header is not "
                               "'kind,epoch,step,lr,loss,accuracy,images_per_s,time,val_loss,val_accuracy,test_loss,"
                               "test_accuracy'");
            continue;
        }
        if (nf == 1 && fl[0][0] == '\0')
            continue; /* a blank line */
        if (nf != NCOLS) {
            char got[32];
            if (nf > NCOLS)
                snprintf(got, sizeof got, "more than %d", NCOLS);
            else
                snprintf(got, sizeof got, "%d", nf);
            rc = csv_error(path, lineno, "%s field%s, expected %d: a broken row", got, nf == 1 ? "" : "s", NCOLS);
            break;
        }
        bool is_epoch = strcmp(fl[C_KIND], "epoch") == 0;
        if (!is_epoch && strcmp(fl[C_KIND], "step") != 0) {
            rc = csv_error(path, lineno, "unknown row kind '%.40s' (expected step or epoch)", fl[C_KIND]);
            break;
        }
        double v[NCOLS];
        for (int k = 1; k < NCOLS && rc == 0; k++) {
            bool optional = k >= C_VLOSS; /* validation and test metrics may be absent */
            if (!is_epoch && k >= C_VLOSS) {
                if (fl[k][0])
                    rc = csv_error(path, lineno, "a step row with a value in %s", columns[k]);
                continue;
            }
            if (!number(fl[k], optional, &v[k]))
                rc = csv_error(path, lineno, "%s is '%.40s', not a number", columns[k], fl[k]);
        }
        if (rc || !is_epoch)
            continue;
        if (!(v[C_EPOCH] >= 1) || v[C_EPOCH] != floor(v[C_EPOCH])) {
            rc = csv_error(path, lineno, "epoch %.40s is not a positive integer", fl[C_EPOCH]);
            break;
        }
        int at = c->n;
        for (int k = 0; k < c->n; k++)
            if (c->epoch[k] == v[C_EPOCH])
                at = k; /* a resumed run's epoch again: the later row wins */
        if (at == c->n) {
            if (!curves_grow(c)) {
                rc = csv_error(path, lineno, "out of memory");
                break;
            }
            c->n++;
        }
        c->epoch[at] = v[C_EPOCH];
        c->loss[at] = v[C_LOSS];
        c->acc[at] = 100.0 * v[C_ACC];
        c->vloss[at] = v[C_VLOSS];
        c->vacc[at] = 100.0 * v[C_VACC];
        c->tloss[at] = v[C_TLOSS];
        c->tacc[at] = 100.0 * v[C_TACC];
        c->has_val |= !isnan(v[C_VLOSS]) && !isnan(v[C_VACC]);
        c->has_test |= !isnan(v[C_TLOSS]) && !isnan(v[C_TACC]);
    }
    if (rc == 0 && ferror(f))
        rc = csv_error(path, lineno, "read error: %s", strerror(errno));
    fclose(f);
    if (rc == 0 && lineno == 0)
        rc = csv_error(path, 0, "empty: not a cnnc train --log CSV");
    if (rc == 0 && c->n == 0)
        rc = csv_error(path, 0, "no epoch rows (the run did not finish an epoch): nothing to draw");
    return rc;
}

#ifdef CNN_HAVE_PLPLOT

static int plplot_failed(PLCHAR_VECTOR msg)
{
    fprintf(stderr, "%s: error: PLplot: %s\n", prog, msg);
    return EXIT_INPUT;
}

/* The range of the finite values of up to three series (n points each). */
static void range(const curves *c, const double *a, const double *b, const double *d, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    const double *s[3] = {a, b, d};
    for (int k = 0; k < 3; k++)
        for (int i = 0; s[k] && i < c->n; i++)
            if (isfinite(s[k][i])) {
                *lo = fmin(*lo, s[k][i]);
                *hi = fmax(*hi, s[k][i]);
            }
    if (!isfinite(*lo))
        *lo = 0, *hi = 1;
    double pad = (*hi - *lo) * 0.05;
    if (pad == 0)
        pad = fabs(*hi) * 0.05 + 0.05;
    *lo -= pad, *hi += pad + (*hi - *lo) * 0.3; /* room for the legend at the top */
}

/* Draws one series: its finite points joined, each marked. */
static void series(const curves *c, const double *y, int colour, const char *symbol)
{
    PLFLT *xs = malloc(sizeof(PLFLT) * (size_t)c->n), *ys = malloc(sizeof(PLFLT) * (size_t)c->n);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return;
    }
    int m = 0;
    for (int i = 0; i < c->n; i++)
        if (isfinite(y[i])) {
            xs[m] = c->epoch[i];
            ys[m] = y[i];
            m++;
        }
    plcol0(colour);
    plwidth(2.0);
    if (m > 1)
        plline(m, xs, ys);
    if (m <= 40 || m == 1)
        plstring(m, xs, ys, symbol); /* more points: the line alone */
    free(xs);
    free(ys);
}

/* One panel: train, validation and test of one metric against the epoch, with a legend. */
static void panel(const curves *c, double xlo, double xhi, const double *tr, const double *va, const double *te,
                  const char *ylabel, const char *title)
{
    double lo, hi;
    range(c, tr, c->has_val ? va : NULL, c->has_test ? te : NULL, &lo, &hi);
    pladv(0);
    plvpor(0.2, 0.92, 0.14, 0.88);
    plcol0(15);
    plwidth(1.0);
    plwind(xlo, xhi, lo, hi);
    /* whole epochs on the axis, every 1, 2, 5, 10, 20, ... so that at most 10 labels fit the
     * panel's width */
    double xtick = 1.0;
    for (int k = 0; (xhi - xlo) / xtick > 10.0 && k < 30; k++)
        xtick *= k % 3 == 1 ? 2.5 : 2.0; /* 1, 2, 5, 10, 20, 50, ... */
    plbox("bcnst", xtick, xtick < 2.0 ? 1 : 0, "bcnstv", 0.0, 0);
    pllab("epoch", ylabel, title);
    PLINT colours[3] = {9, 3, 1};
    const char *symbols[3] = {"●", "■", "▲"};
    const char *names[3] = {"train", "validation", "test"};
    const double *ys[3] = {tr, va, te};
    bool on[3] = {true, c->has_val, c->has_test};
    PLINT opt[3], lcol[3], lsty[3], scol[3], snum[3];
    PLFLT lwid[3], sscale[3];
    PLCHAR_VECTOR text[3], syms[3];
    PLINT tcol[3];
    int n = 0;
    for (int k = 0; k < 3; k++) {
        if (!on[k])
            continue;
        series(c, ys[k], colours[k], symbols[k]);
        opt[n] = PL_LEGEND_LINE | PL_LEGEND_SYMBOL;
        lcol[n] = scol[n] = tcol[n] = colours[k];
        lsty[n] = 1;
        lwid[n] = 2.0;
        snum[n] = 1;
        sscale[n] = 1.0;
        syms[n] = symbols[k];
        text[n] = names[k];
        n++;
    }
    PLFLT lw, lh;
    plcol0(15);
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_TOP | PL_POSITION_RIGHT | PL_POSITION_INSIDE,
             0.02, 0.02, 0.08, 0, 15, 1, 0, 0, n, opt, 1.0, 1.0, 1.5, 0.0, tcol, text, NULL, NULL, NULL, NULL, lcol, lsty,
             lwid, scol, sscale, snum, syms);
}

static int draw(const curves *c, const char *path, int width, int height)
{
    plsexit(plplot_failed);
    plsdev("pngcairo");
    plsfnam(path);
    plspage(0.0, 0.0, width, height, 0, 0);
    plscolbg(255, 255, 255);
    plscol0(15, 0, 0, 0);      /* text and axes: black on white */
    plscol0(9, 31, 119, 180);  /* train: blue */
    plscol0(3, 44, 160, 44);   /* validation: green */
    plscol0(1, 214, 39, 40);   /* test: red */
    plssub(2, 1);
    plinit();
    double xlo = c->epoch[0], xhi = c->epoch[0];
    for (int i = 1; i < c->n; i++)
        xlo = fmin(xlo, c->epoch[i]), xhi = fmax(xhi, c->epoch[i]);
    xlo -= 0.5, xhi += 0.5;
    panel(c, xlo, xhi, c->loss, c->vloss, c->tloss, "loss", "Loss");
    panel(c, xlo, xhi, c->acc, c->vacc, c->tacc, "accuracy (%)", "Accuracy");
    plend();
    return 0;
}

#endif

int cmd_plot(const args *a)
{
    if (!a->output)
        return usage_error("cnnc plot needs -o CURVES.png");
    curves c = {0};
    int rc = read_csv(a->source, &c);
    if (rc) {
        curves_free(&c);
        return rc;
    }
#ifndef CNN_HAVE_PLPLOT
    curves_free(&c);
    fprintf(stderr, "%s: error: this cnnc was built without PLplot (libplplot-dev, meson option plot): it cannot draw "
            "%s\n", prog, a->output);
    return EXIT_INPUT;
#else
    int width = a->width ? a->width : 1200, height = a->height ? a->height : 800;
    struct stat sb;
    if (stat(a->output, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        curves_free(&c);
        fprintf(stderr, "%s: error: %s is a folder; the image is to be written there as a file\n", prog, a->output);
        return EXIT_INPUT;
    }
    /* a regular file (or a new one) is replaced whole: drawn beside it, then renamed over it */
    bool in_place = stat(a->output, &sb) == 0 && !S_ISREG(sb.st_mode);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", a->output, (long)getpid());
    const char *target = in_place ? a->output : tmp;
    int probe = in_place ? 0 : open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (probe < 0) {
        int e = errno;
        curves_free(&c);
        fprintf(stderr, "%s: error: cannot write %s: %s\n", prog, a->output, strerror(e));
        return EXIT_INPUT;
    }
    if (!in_place)
        close(probe);
    rc = draw(&c, target, width, height);
    curves_free(&c);
    if (!in_place) {
        int fd = open(tmp, O_RDONLY);
        bool ok = fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0 && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok || rename(tmp, a->output) != 0) {
            int e = errno;
            unlink(tmp);
            fprintf(stderr, "%s: error: cannot write %s: %s\n", prog, a->output, ok ? strerror(e) : "PLplot wrote nothing");
            return EXIT_INPUT;
        }
    }
    if (!a->quiet)
        printf("drew %s (%dx%d)\n", a->output, width, height);
    return rc;
#endif
}
