/*
 * String and memory functions. gcc emits calls to memcpy/memset/memmove/memcmp even in
 * freestanding code (structure copies, zeroing), so they must exist. The copy and fill use
 * REP MOVS / REP STOS and strlen uses REPNE SCASB, so every kernel exercises the string
 * instructions (SDM Vol. 2, MOVS, STOS, SCAS and the REP prefixes). The direction flag is
 * clear in all kernel code (the entry and exception stubs execute CLD).
 */
#include "kernel.h"

void *memcpy(void *dst, const void *src, size_t n) {
  void *d = dst;
  const void *s = src;
  size_t words = n >> 2, bytes = n & 3;
  __asm__ volatile("rep movsl\n\t"
                   "movl %k3, %%ecx\n\t" /* zero-extends into RCX on amd64 */
                   "rep movsb"
                   : "+D"(d), "+S"(s), "+c"(words)
                   : "r"(bytes)
                   : "memory");
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  u8 *d = dst;
  const u8 *s = src;
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  /* Overlapping with dst above src: copy backwards with DF = 1, then clear DF again. */
  u8 *d_last = d + n - 1;
  const u8 *s_last = s + n - 1;
  __asm__ volatile("std\n\t"
                   "rep movsb\n\t"
                   "cld"
                   : "+D"(d_last), "+S"(s_last), "+c"(n)
                   :
                   : "memory");
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  void *d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const u8 *p = a, *q = b;
  for (size_t i = 0; i < n; i++)
    if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
  return 0;
}

size_t strlen(const char *s) {
  const char *p = s;
  size_t count = (size_t)-1;
  __asm__ volatile("repne scasb" : "+D"(p), "+c"(count) : "a"(0) : "memory");
  return (size_t)-2 - count;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (u8)*a - (u8)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (u8)*a - (u8)*b;
    if (!*a) return 0;
  }
  return 0;
}

char *strchr(const char *s, int c) {
  for (;; s++) {
    if (*s == (char)c) return (char *)s;
    if (!*s) return NULL;
  }
}
