/* A place in a source file: 1-based line and column of the first character and of the
 * character after the last (end_col is exclusive).  All zero means "no place". */
#ifndef CNN_LANG_SPAN_H
#define CNN_LANG_SPAN_H

typedef struct lang_span {
    int line, col;
    int end_line, end_col;
} lang_span;

#endif
