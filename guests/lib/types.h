/* Fixed-width integer types for freestanding kernel code (no libc headers). */
#ifndef SHV_TYPES_H
#define SHV_TYPES_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;
/* unsigned int on i386, unsigned long on amd64: what gcc's built-in memcpy etc. expect. */
typedef __SIZE_TYPE__ size_t;
typedef __UINTPTR_TYPE__ uptr; /* an integer as wide as a pointer */

#define NULL ((void *)0)

#endif
