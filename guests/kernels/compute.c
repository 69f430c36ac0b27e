/* compute: the deterministic integer workload of compute/compute.c, `iters=N` on the command
   line. Its output must equal the hosted build's (build/host/compute iters=N). */
#include "../compute/compute.h"

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  return compute_run(cmdline_get_u32("iters", COMPUTE_DEFAULT_ITERS));
}
