/* An expanded network printed back as .cnn source: one statement per chain of single-input
 * layers, the arguments a layer was given (name= included), inputs and outputs as declared.
 * lang_compile of the text gives the same network again (same layers, order, arguments and
 * weight names).  The ONNX importer's output goes through it; `cnnc import` writes it. */
#ifndef CNN_LANG_PRINT_H
#define CNN_LANG_PRINT_H

#include "lang/lang.h"
#include "lang/strbuf.h"

/* Appends the network as source to sb, after `header` (comment lines without their '#', may
 * be NULL).  Only arguments marked given are written; the rest are the schema's defaults. */
void lang_print_network(const lang_network *net, const char *header, strbuf *sb);

/* Writes a float so that it reads back as the same float (the shortest of %.6g .. %.9g that
 * does), always with a '.', 'e' or "inf" so that it reads as a float. */
void lang_print_float(strbuf *sb, double v);

#endif
