/* A program outside the tree that uses an installed libselfsup. */
#include <selfsup.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (strcmp(ss_version(), "0.0.0") == 0 || ss_version_hex() != SS_VERSION_HEX) {
        fprintf(stderr, "header/library version mismatch\n");
        return 1;
    }
    if (ss_set_num_threads(-1) != SS_ERR_PARAM || !strstr(ss_last_error(), "-1")) {
        fprintf(stderr, "error reporting does not work: %s\n", ss_last_error());
        return 1;
    }
    printf("consumer ok: selfsup %s\n", ss_version());
    return 0;
}
