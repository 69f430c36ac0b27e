/*
 * The realmode kernel's low-memory layout, shared by realmode_entry.S and realmode.c. Real
 * mode reaches only the first MiB (plus 64 KiB), so the 16-bit code is copied below 1 MiB,
 * under the multiboot information structure that loaders put at 0x9000.
 */
#ifndef SHV_REALMODE_H
#define SHV_REALMODE_H

#define RM_BASE 0x8000      /* the 16-bit code and its data; real-mode CS = RM_BASE >> 4 */
#define RM_LIMIT 0x9000     /* it must end below here */
#define RM_STACK_TOP 0x7000 /* real-mode SS:SP = 0000:7000 */
#define RM_IVT2 0x7400      /* a second interrupt vector table, selected by LIDT */
/* Segment arithmetic: 1234:5678 and 179B:0008 are both linear 179B8H. */
#define RM_SEG_A 0x1234
#define RM_OFF_A 0x5678
#define RM_SEG_B 0x179B
#define RM_OFF_B 0x0008
#define RM_SEG_LINEAR 0x179B8
#define RM_INT_VECTOR 0x30  /* INT n through the IVT at 0 */
#define RM_INT2_VECTOR 0x31 /* INT n through the IVT at RM_IVT2 */

#endif
