/* COM1 console: a 16550 UART at 0x3F8 (register map as in the National PC16550D data sheet). */
#include "kernel.h"

#define COM1 0x3F8
#define UART_THR 0 /* transmit holding register (DLAB = 0) */
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20 /* THR empty: the UART accepts another byte */

void serial_init(void) {
  outb(COM1 + UART_IER, 0x00); /* no UART interrupts */
  outb(COM1 + UART_LCR, 0x80); /* DLAB = 1 to set the divisor */
  outb(COM1 + 0, 0x01);        /* divisor 1: 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit; DLAB = 0 */
  outb(COM1 + UART_FCR, 0x07); /* enable and clear the FIFOs */
  outb(COM1 + UART_MCR, 0x03); /* DTR, RTS */
}

void serial_putc(char c) {
  while (!(inb(COM1 + UART_LSR) & LSR_THRE)) {
  }
  outb(COM1 + UART_THR, (u8)c);
}
