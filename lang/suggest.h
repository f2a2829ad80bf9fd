/* Edit distance for "did you mean" suggestions, shared by the front end (unknown layers,
 * arguments, names) and the runtime (unknown weight names). */
#ifndef CNN_LANG_SUGGEST_H
#define CNN_LANG_SUGGEST_H

/* The longest strings compared; longer ones are never close to anything. */
#define LANG_SUGGEST_MAX 256

/* Optimal string alignment distance between a and b (a swap of neighbours counts 1), ignoring
 * ASCII case; anything above limit, or a string longer than LANG_SUGGEST_MAX, comes back as
 * limit + 1. */
int lang_edit_distance(const char *a, const char *b, int limit);

#endif
