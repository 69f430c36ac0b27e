/* The hosted build of the compute workload: `compute [iters=N]`, output as the guest's. */
#include <stdlib.h>
#include <string.h>

#include "compute.h"

int main(int argc, char **argv) {
  u32 iters = COMPUTE_DEFAULT_ITERS;
  if (argc > 1 && strncmp(argv[1], "iters=", 6) == 0) iters = (u32)strtoul(argv[1] + 6, NULL, 10);
  return compute_run(iters) ? 1 : 0;
}
