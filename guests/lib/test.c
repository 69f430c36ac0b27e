/* Check reporting: one line per check, then PASS or FAIL <first failed check>. */
#include "kernel.h"

static int checks, failures;
static int first_failed_number;
static const char *first_failed_name;

static int record(const char *name, int ok) {
  checks++;
  if (!ok && !failures++) {
    first_failed_number = checks;
    first_failed_name = name;
  }
  return ok;
}

/*
 * `skip=a,b*` on the command line names checks (a trailing '*' matches a prefix) whose
 * failure is reported as "skip" and not counted. The check still runs. It exists to
 * validate the kernels on emulators known to deviate from the SDM (see README.md); the
 * SHV tests never pass it.
 */
int test_skipped(const char *name) {
  char list[256];
  if (!cmdline_get("skip", list, sizeof list)) return 0;
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len && p[len - 1] == '*') {
      if (len - 1 <= n && strncmp(p, name, len - 1) == 0) return 1;
    } else if (len == n && strncmp(p, name, n) == 0) {
      return 1;
    }
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

int check(const char *name, int ok, const char *fmt, ...) {
  int skipped = !ok && test_skipped(name);
  printf("%s %s", ok ? "ok  " : skipped ? "skip" : "FAIL", name);
  if (fmt && *fmt) {
    va_list ap;
    va_start(ap, fmt);
    printf(": ");
    vprintf(fmt, ap);
    va_end(ap);
  }
  printf("\n");
  return record(name, ok || skipped);
}

void skip_check(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("skip %s: ", name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

#ifndef __x86_64__ /* the amd64 version, with 64-bit RIPs, is in trap64.c */
int check_trap(const char *name, u32 vector, u32 error, uptr eip) {
  trap_resume = 0; /* in case the expected exception did not happen */
  int ok = last_trap.count == 1 && last_trap.vector == vector && last_trap.error == error &&
           last_trap.eip == eip;
  if (ok) return check(name, 1, "vector %u error 0x%x", vector, error);
  return check(name, 0, "expected 1 exception, vector %u error 0x%x eip 0x%08x; got %u, vector %u error 0x%x eip 0x%08x",
               vector, error, eip, last_trap.count, last_trap.vector, last_trap.error,
               last_trap.eip);
}
#endif

int test_finish(void) {
  if (!failures) {
    printf("PASS\n");
    return 0;
  }
  printf("FAIL %s (%d of %d checks failed)\n", first_failed_name, failures, checks);
  return first_failed_number < EXIT_UNEXPECTED ? first_failed_number : EXIT_UNEXPECTED - 1;
}
