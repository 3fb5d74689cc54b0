#include <gsl/gsl_errno.h>
#include <signal.h>

#include "canary/cli.h"

int main(int argc, char **argv)
{
    /* A peer that closes its socket (a metrics server, a demo client) must
     * show up as a write error, never kill the process mid-rollout. */
    signal(SIGPIPE, SIG_IGN);
    /* GSL's default error handler aborts; the judge checks what GSL checks
     * before calling it, and reads its status codes where it cannot. */
    gsl_set_error_handler_off();
    return cn_cli_main(argc, argv);
}
