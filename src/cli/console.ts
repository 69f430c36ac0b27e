/**
 * The console input: the host's stdin feeds the guest's COM1. On a terminal, stdin goes
 * into raw mode so every key reaches the guest (Ctrl-C included), and Ctrl-A starts an
 * escape as in QEMU's character multiplexer: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A,
 * Ctrl-A h lists the escapes.
 */

const CTRL_A = 0x01;
const KEY_X = 0x78; // "x"
const KEY_H = 0x68; // "h"
const ESCAPE_HELP = "\nC-a x    exit\nC-a C-a  send C-a\nC-a h    this help\n";

/** What the console needs from the machine. */
export interface ConsoleTarget {
  receiveSerial(bytes: Iterable<number>): void;
  quit(): void;
}

/** Starts feeding stdin to `target`; returns the function that stops it. */
export function attachConsole(target: ConsoleTarget): () => void {
  const stdin = process.stdin;
  const terminal = stdin.isTTY === true;
  if (terminal) stdin.setRawMode(true);
  let escape = false;

  const onData = (chunk: Buffer) => {
    if (!terminal) {
      // A pipe or file carries bytes, not key presses: no escapes.
      target.receiveSerial(chunk);
      return;
    }
    const bytes: number[] = [];
    for (const b of chunk) {
      if (!escape) {
        if (b === CTRL_A) escape = true;
        else bytes.push(b);
        continue;
      }
      escape = false;
      if (b === CTRL_A) bytes.push(CTRL_A);
      else if (b === KEY_H) process.stderr.write(ESCAPE_HELP);
      else if (b === KEY_X) {
        target.receiveSerial(bytes);
        target.quit();
        return;
      }
    }
    target.receiveSerial(bytes);
  };
  // A read error (the terminal went away) ends the input; it is not a reason to crash.
  const onError = () => stdin.off("data", onData);

  stdin.on("data", onData);
  stdin.on("error", onError);
  return () => {
    stdin.off("data", onData);
    stdin.off("error", onError);
    if (terminal) stdin.setRawMode(false);
    stdin.pause();
  };
}
