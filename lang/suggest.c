/* Edit distance (lang/suggest.h): three rolling rows of the optimal-string-alignment table. */
#include "lang/suggest.h"

#include <stdlib.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int lang_edit_distance(const char *a, const char *b, int limit)
{
    int la = (int)strnlen(a, LANG_SUGGEST_MAX + 1), lb = (int)strnlen(b, LANG_SUGGEST_MAX + 1);
    if (la > LANG_SUGGEST_MAX || lb > LANG_SUGGEST_MAX || abs(la - lb) > limit)
        return limit + 1;
    int rows[3][LANG_SUGGEST_MAX + 1];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2]; /* rows i-2, i-1, i */
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cost = lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]);
            int v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
        }
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb] > limit ? limit + 1 : prev[lb];
}
