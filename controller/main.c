#include <signal.h>

#include "canary/cli.h"

int main(int argc, char **argv)
{
    /* A peer that closes its socket (a metrics server, a demo client) must
     * show up as a write error, never kill the process mid-rollout. */
    signal(SIGPIPE, SIG_IGN);
    return cn_cli_main(argc, argv);
}
