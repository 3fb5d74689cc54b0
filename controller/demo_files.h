/*
 * demo_files.h: the inputs `canary demo` writes for itself (private to the
 * shell).
 *
 * Contract: cn_demo_dir_make() creates a fresh private directory under
 * $TMPDIR (else /tmp); cn_demo_write_inputs() writes into it a policy
 * pointing at the simulated service's port, the topology and the two
 * changes; cn_demo_dir_remove() deletes exactly those files, the state
 * database's files and the directory, by name: nothing else is ever
 * deleted, so a directory holding anything more stays (and is reported).
 * Each returns CN_OK or CN_EIO with err saying what failed, where.
 */
#ifndef CANARY_DEMO_FILES_H
#define CANARY_DEMO_FILES_H

#include <stdbool.h>
#include <stddef.h>

#define CN_DEMO_SERVICE "checkout"
#define CN_DEMO_STABLE "v2.13.4"   /* what serves before the demo */
#define CN_DEMO_FAULTY "v2.15.0"   /* the AI-assisted change's version */
#define CN_DEMO_HUMAN_CHANGE "checkout-v2.14.0.yaml"
#define CN_DEMO_AI_CHANGE "checkout-v2.15.0.yaml"
#define CN_DEMO_POLICY "policy.yaml"
#define CN_DEMO_TOPOLOGY "topology.yaml"
#define CN_DEMO_STATE "state.db"

/* dir receives the path (len: PATH_MAX is enough). */
int cn_demo_dir_make(char *dir, size_t len, char *err, size_t errlen);
/* fast halves the bakes (5s -> 2.5s). */
int cn_demo_write_inputs(const char *dir, int port, bool fast, char *err, size_t errlen);
int cn_demo_dir_remove(const char *dir, char *err, size_t errlen);

#endif
