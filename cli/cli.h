/* cli.h - subcommands of the selfsup command. Each returns the process exit
 * status: 0 success, 1 failure, 2 usage error. */
#ifndef SS_CLI_H
#define SS_CLI_H

int ss_cli_bench(int argc, char **argv); /* bench.c */
int ss_cli_demo(int argc, char **argv);  /* demo.c */

/* Prints "selfsup: <msg>\n" to stderr and returns 2 (usage) */
int ss_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
