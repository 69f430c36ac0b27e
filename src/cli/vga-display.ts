/**
 * `--vga`: shows the VGA text screen while the guest runs, on the terminal (drawn in
 * place with ANSI escape sequences, in the VGA's 16 colours, with its cursor) or in a file
 * that is rewritten with the screen's 25 lines of text. The screen is redrawn when it has
 * changed, at most ten times a second of host time, and once more at the end of the run.
 */
import { writeFileSync } from "node:fs";
import { UserError } from "../errors.js";
import { TEXT_COLUMNS, TEXT_ROWS, cp437, screenText, type VgaText } from "../devices/vga-text.js";

const REDRAW_INTERVAL_MS = 100;
/** VGA colour numbers (blue is 1, red 4) to ANSI colour numbers (red is 1, blue 4). */
const ANSI_COLOR = [0, 4, 2, 6, 1, 5, 3, 7];
const ESC = "\x1b[";

export type ScreenTarget = { kind: "terminal" } | { kind: "file"; path: string };

export class VgaDisplay {
  private timer: ReturnType<typeof setInterval> | null = null;
  private drawn = -1;
  /** The terminal's reader went away (EPIPE): nothing is drawn any more. */
  private closed = false;
  /** Called when the terminal's reader has gone away. */
  onClosed: (() => void) | null = null;
  private readonly onError = () => {
    this.closed = true;
    this.onClosed?.();
  };

  constructor(
    private readonly vga: VgaText,
    private readonly target: ScreenTarget,
    private readonly terminal: NodeJS.WritableStream = process.stdout,
  ) {}

  /** Draws the first frame (a file that cannot be written is a usage error) and starts. */
  start(): void {
    if (this.target.kind === "terminal") {
      // Errors (EPIPE when the reader goes away) are events, and may come after stop().
      this.terminal.on("error", this.onError);
      this.terminal.write(`${ESC}2J`);
    }
    try {
      this.draw();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new UserError(
        `cannot write the VGA screen to '${(this.target as { path: string }).path}': ${code}`,
      );
    }
    this.timer = setInterval(() => this.draw(), REDRAW_INTERVAL_MS);
    this.timer.unref();
  }

  /** The last frame; on the terminal the cursor then goes below the screen. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.draw();
    if (this.target.kind === "terminal" && !this.closed) {
      this.terminal.write(`${ESC}0m${ESC}${TEXT_ROWS + 1};1H${ESC}?25h\n`);
    }
  }

  private draw(): void {
    if (this.closed || this.vga.generation === this.drawn) return;
    this.drawn = this.vga.generation;
    const screen = this.vga.screen();
    if (this.target.kind === "file") {
      writeFileSync(this.target.path, screenText(screen).join("\n") + "\n");
      return;
    }
    let out = `${ESC}?25l${ESC}H`;
    let attr = -1;
    for (let row = 0; row < TEXT_ROWS; row++) {
      for (let col = 0; col < TEXT_COLUMNS; col++) {
        const i = row * TEXT_COLUMNS + col;
        if (screen.attrs[i] !== attr) {
          attr = screen.attrs[i];
          out += sgr(attr);
        }
        out += cp437(screen.chars[i]);
      }
      out += `${ESC}0m\r\n`;
      attr = -1;
    }
    if (screen.cursor)
      out += `${ESC}${screen.cursor.row + 1};${screen.cursor.column + 1}H${ESC}?25h`;
    this.terminal.write(out);
  }
}

/** The ANSI select-graphic-rendition sequence for a VGA attribute byte. */
function sgr(attr: number): string {
  const fg = attr & 0x0f;
  const bg = (attr >>> 4) & 0x07; // bit 7 blinks (attribute mode control bit 3) or is bright
  const fgCode = (fg & 8 ? 90 : 30) + ANSI_COLOR[fg & 7];
  return `${ESC}0;${fgCode};${40 + ANSI_COLOR[bg]}m`;
}
