/*
 * A small printf: %d %i %u %x %X %c %s %p %%, the flags '-' and '0', a field width, and the
 * length modifiers l (long: 32-bit on i386, 64-bit on amd64) and ll (64-bit).
 */
#include "kernel.h"

/* Whether a conversion with `lng` l's takes a 64-bit argument: ll always, l where long is. */
#if __SIZEOF_LONG__ == 8
#define WIDE(lng) ((lng) >= 1)
#else
#define WIDE(lng) ((lng) >= 2)
#endif

static int emit(char c) {
  serial_putc(c);
  return 1;
}

static int emit_padded(const char *s, int len, int width, int left, char pad) {
  int n = 0;
  if (!left)
    for (; width > len; width--) n += emit(pad);
  for (int i = 0; i < len; i++) n += emit(s[i]);
  if (left)
    for (; width > len; width--) n += emit(' ');
  return n;
}

/* Digits of v in base 10 or 16, written backwards from the end of buf. */
static char *format_u64(char *end, u64 v, unsigned base, int upper) {
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *p = end;
  do {
    *--p = digits[v % base];
    v /= base;
  } while (v);
  return p;
}

/* 32-bit values use 32-bit division: faster, and keeps the 64-bit helpers out of hot paths. */
static char *format_u32(char *end, u32 v, unsigned base, int upper) {
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *p = end;
  do {
    *--p = digits[v % base];
    v /= base;
  } while (v);
  return p;
}

int vprintf(const char *fmt, va_list ap) {
  int n = 0;
  char buf[24];
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      n += emit(*fmt);
      continue;
    }
    fmt++;
    int left = 0, width = 0, lng = 0;
    char pad = ' ';
    for (;; fmt++) {
      if (*fmt == '-') left = 1;
      else if (*fmt == '0') pad = '0';
      else break;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l') {
      lng++;
      fmt++;
    }
    char *end = buf + sizeof buf, *p;
    switch (*fmt) {
    case 'd':
    case 'i': {
      s64 v = WIDE(lng) ? va_arg(ap, s64) : va_arg(ap, s32);
      u64 mag = v < 0 ? -(u64)v : (u64)v;
      p = WIDE(lng) ? format_u64(end, mag, 10, 0) : format_u32(end, (u32)mag, 10, 0);
      if (v < 0) *--p = '-';
      n += emit_padded(p, (int)(end - p), width, left, pad);
      break;
    }
    case 'u':
    case 'x':
    case 'X': {
      unsigned base = *fmt == 'u' ? 10 : 16;
      if (WIDE(lng)) p = format_u64(end, va_arg(ap, u64), base, *fmt == 'X');
      else p = format_u32(end, va_arg(ap, u32), base, *fmt == 'X');
      n += emit_padded(p, (int)(end - p), width, left, pad);
      break;
    }
    case 'p':
#if __SIZEOF_POINTER__ == 8
      p = format_u64(end, (uptr)va_arg(ap, void *), 16, 0);
#else
      p = format_u32(end, (u32)va_arg(ap, void *), 16, 0);
#endif
      *--p = 'x';
      *--p = '0';
      n += emit_padded(p, (int)(end - p), width, left, ' ');
      break;
    case 'c':
      buf[0] = (char)va_arg(ap, int);
      n += emit_padded(buf, 1, width, left, ' ');
      break;
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      n += emit_padded(s, (int)strlen(s), width, left, ' ');
      break;
    }
    case '%':
      n += emit('%');
      break;
    case 0:
      return n;
    default:
      n += emit('%');
      n += emit(*fmt);
    }
  }
  return n;
}

int printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

int puts(const char *s) {
  int n = 0;
  while (*s) n += emit(*s++);
  return n + emit('\n');
}
