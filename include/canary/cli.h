/*
 * cli.h: the canary command line.
 *
 * Contract: cn_cli_main() dispatches argv to one command from a table and
 * returns the process exit code: 0 success, 2 invalid input or usage (an
 * unknown command or flag prints the usage), 1 an internal failure; `run`
 * adds the codes of docs/cli.md. Only main() turns it into an exit.
 */
#ifndef CANARY_CLI_H
#define CANARY_CLI_H

int cn_cli_main(int argc, char **argv);

#endif
