/* version.h: the release this build is. */
#ifndef CANARY_VERSION_H
#define CANARY_VERSION_H

#define CANARY_VERSION "0.1.0"

#endif
