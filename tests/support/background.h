/*
 * background.h: the real canary binary in the background, for tests that must
 * act on it while it runs (send it a signal, read its state database).
 *
 * Contract: cn_test_spawn() starts $CANARY_BIN (or build/canary) with args,
 * in cwd (NULL: the current directory), under $CANARY_WRAPPER when set
 * (split on spaces, as cn_test_run does), with stdin from /dev/null and
 * stdout and stderr written to out_path and err_path (created or
 * truncated). It returns the pid, or -1 having said why on stderr.
 *
 * cn_test_wait() waits up to timeout_ms for pid to end and returns its
 * exit code (128 + signal when killed), CN_TEST_STILL_RUNNING when the time
 * ran out (the process is left running), -1 when pid is not our child.
 * cn_test_kill() sends SIGKILL and reaps: for teardown after a failure.
 *
 * cn_test_spawn_tty() is cn_test_spawn with stdout on a pseudo-terminal,
 * for the views that draw on a terminal; cn_test_tty_wait() reads it.
 *
 * cn_test_wait_text() polls path every 10 ms until it contains needle
 * (true) or timeout_ms passed (false).
 *
 * cn_test_patience_ms() scales a time limit for the wrapper: valgrind
 * makes the binary some 20 times slower, so limits get 20 times longer.
 */
#ifndef CANARY_TEST_BACKGROUND_H
#define CANARY_TEST_BACKGROUND_H

#include <stdbool.h>
#include <sys/types.h>

#define CN_TEST_STILL_RUNNING (-2)

pid_t cn_test_spawn(const char *cwd, const char *const *args, const char *out_path,
                    const char *err_path);
/* cn_test_spawn with stdout on a new pseudo-terminal, so the child sees a
 * TTY (TERM is set to xterm); *master is the side to read from (close it
 * when done; non-blocking). -1 when no terminal could be had. */
pid_t cn_test_spawn_tty(const char *cwd, const char *const *args, const char *err_path,
                        int *master);
/* Reads the terminal into *buf (NUL-terminated, grown; free it) until it
 * holds needle (true) or timeout_ms passed (false; with needle NULL it
 * just drains for that long and returns true). */
bool cn_test_tty_wait(int master, char **buf, size_t *len, const char *needle, int timeout_ms);
int cn_test_wait(pid_t pid, int timeout_ms);
int cn_test_kill(pid_t pid);
bool cn_test_wait_text(const char *path, const char *needle, int timeout_ms);
/* True when $CANARY_WRAPPER is set (the binary runs under valgrind). */
bool cn_test_wrapped(void);
int cn_test_patience_ms(int ms);

#endif
