/* The concurrency suite's thread scenarios as a plain program (no Criterion, whose runner does
 * not start under ThreadSanitizer: Snaipe/Criterion#274), for the TSan build of docs/commands.md.
 * Exit status 0 when every scenario passes; a line per scenario on stdout. */
#include <stdio.h>

#include "tests/concurrency_util.h"

int main(void)
{
    bool q = cu_quick();
    const struct {
        const char *file;
        cnn_backend backend;
        int runs, quick_runs;
    } cases[] = {
        {"lenet5.cnn", CNN_BACKEND_REF, 200, 50},     {"lenet5.cnn", CNN_BACKEND_NATIVE, 200, 50},
        {"lenet5.cnn", CNN_BACKEND_ONEDNN, 200, 50},  {"lenet5.cnn", CNN_BACKEND_AUTO, 200, 50},
        {"resnet20.cnn", CNN_BACKEND_REF, 20, 2},     {"resnet20.cnn", CNN_BACKEND_NATIVE, 50, 10},
        {"resnet20.cnn", CNN_BACKEND_ONEDNN, 50, 10},
    };
    static const char *names[] = {"auto", "ref", "native", "onednn"};
    int failed = 0;
    char msg[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int runs = q ? cases[i].quick_runs : cases[i].runs;
        int rc = cu_shared_inference(cases[i].file, cases[i].backend, runs, msg, sizeof msg);
        printf("%s %s %s: %d threads x %d runs%s%s\n", rc ? "FAIL" : "ok", cases[i].file,
               names[cases[i].backend], CU_THREADS, runs, rc ? ": " : "", rc ? msg : "");
        failed += rc != 0;
    }
    int rc = cu_training_beside_inference(q ? 30 : 100, msg, sizeof msg);
    printf("%s training beside inference%s%s\n", rc ? "FAIL" : "ok", rc ? ": " : "", rc ? msg : "");
    failed += rc != 0;
    rc = cu_messages_per_handle(msg, sizeof msg);
    printf("%s messages per handle%s%s\n", rc ? "FAIL" : "ok", rc ? ": " : "", rc ? msg : "");
    failed += rc != 0;
    return failed ? 1 : 0;
}
