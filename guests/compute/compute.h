/*
 * The compute workload, built twice: into the guest kernel and as a hosted program. Both
 * must print the same bytes, so the code uses only fixed-width types (never long or
 * pointers in results) and no undefined or host-dependent behaviour.
 */
#ifndef SHV_COMPUTE_H
#define SHV_COMPUTE_H

#ifdef COMPUTE_HOSTED
#include <stdio.h>
#include <string.h>
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;
#else
#include "kernel.h"
#endif

/* Iterations when the command line has no iters=N (about 5 million guest instructions at
   -O2). Benchmarks pass a larger count. */
#define COMPUTE_DEFAULT_ITERS 8

/* Runs the workload, prints its checksums and PASS or FAIL; returns 0 on success. */
int compute_run(u32 iters);

#endif
