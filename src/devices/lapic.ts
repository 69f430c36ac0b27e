/**
 * A local APIC (SDM Vol. 3A, chapter 11), one per vCPU: the xAPIC registers in a 4 KiB page
 * at the IA32_APIC_BASE address and the x2APIC registers as MSRs 0x800-0x8FF (11.12), with
 * the mode transitions of IA32_APIC_BASE (11.4.3, 11.12.5).
 *
 * It is the vCPU's InterruptLines: it decides which fixed interrupt the processor takes
 * (IRR, ISR and the processor priority, 11.8), and passes the 8259 PIC's interrupt through
 * LINT0 in ExtINT mode (the acknowledge then asks the PIC for the vector). NMI, INIT and
 * startup messages go straight to the vCPU. IPIs go out through the ICR onto the APIC bus.
 * The timer counts at a 1 GHz bus clock (as QEMU's) in one-shot, periodic and TSC-deadline
 * modes. The thermal and performance-counter LVT entries exist but have no sources.
 */
import type { InterruptLines, LocalApicPort, Vcpu } from "../engine/engine.js";
import type { VirtualClock } from "../machine/clock.js";
import {
  ApicBus,
  DeliveryMode,
  Shorthand,
  X2APIC_BROADCAST,
  XAPIC_BROADCAST,
  type ApicBusTarget,
  type ApicMessage,
} from "./apic-bus.js";
import { LapicTimer, TIMER_DIVIDE_WRITABLE, type LapicTimerSnapshot } from "./lapic-timer.js";
import {
  XAPIC_DEFAULT_BASE,
  LAPIC_VERSION,
  APIC_BASE_EXTD,
  APIC_BASE_EN,
  APIC_BASE_ADDRESS_MASK,
  REG_ID,
  REG_VERSION,
  REG_TPR,
  REG_APR,
  REG_PPR,
  REG_EOI,
  REG_RRD,
  REG_LDR,
  REG_DFR,
  REG_SVR,
  REG_ISR,
  REG_TMR,
  REG_IRR,
  REG_ESR,
  REG_ICR_LO,
  REG_ICR_HI,
  REG_LVT_TIMER,
  REG_LVT_ERROR,
  REG_TIMER_INITIAL,
  REG_TIMER_CURRENT,
  REG_TIMER_DIVIDE,
  REG_SELF_IPI,
  X2APIC_MSR_BASE,
  IA32_TSC_DEADLINE,
  LVT_TIMER,
  LVT_LINT0,
  LVT_LINT1,
  LVT_ERROR,
  LVT_COUNT,
  LVT_VECTOR,
  LVT_DELIVERY_MODE_SHIFT,
  LVT_DELIVERY_MODE,
  LVT_POLARITY_LOW,
  LVT_REMOTE_IRR,
  LVT_LEVEL,
  LVT_MASKED,
  LVT_WRITABLE,
  SVR_APIC_ENABLED,
  SVR_WRITABLE,
  ESR_SEND_ILLEGAL_VECTOR,
  ESR_RECEIVE_ILLEGAL_VECTOR,
  ESR_ILLEGAL_REGISTER,
  ICR_LOGICAL,
  ICR_DELIVERY_MODE_SHIFT,
  ICR_ASSERT,
  ICR_LEVEL,
  ICR_SHORTHAND_SHIFT,
  ICR_LO_WRITABLE,
  DFR_FLAT,
  DFR_MODEL_MASK,
} from "./lapic-registers.js";

export * from "./lapic-registers.js";

export interface LapicSnapshot {
  id: number;
  /** IA32_APIC_BASE fields: base address, EN, EXTD. */
  base: number;
  enabled: boolean;
  x2apic: boolean;
  tpr: number;
  svr: number;
  ldr: number;
  dfr: number;
  esr: number;
  /** Errors detected since the last ESR write. */
  pendingErrors: number;
  icrLo: number;
  icrHi: number;
  irr: number[];
  isr: number[];
  tmr: number[];
  lvt: number[];
  lint0: boolean;
  lint1: boolean;
  /** An ExtINT message from an I/O APIC waits for the acknowledge. */
  extIntMessage: boolean;
}

function highestBit(words: number[]): number {
  for (let w = 7; w >= 0; w--) {
    if (words[w] !== 0) return w * 32 + 31 - Math.clz32(words[w]);
  }
  return -1;
}
const setBit = (words: number[], v: number) =>
  (words[v >>> 5] = (words[v >>> 5] | (1 << (v & 31))) >>> 0);
const clearBit = (words: number[], v: number) =>
  (words[v >>> 5] = (words[v >>> 5] & ~(1 << (v & 31))) >>> 0);
const testBit = (words: number[], v: number) => (words[v >>> 5] & (1 << (v & 31))) !== 0;

export interface LocalApicOptions {
  /** The initial APIC ID (the vCPU's index). */
  id: number;
  clock: VirtualClock;
  bus: ApicBus;
  /** The 8259 pair's interrupt acknowledge, for ExtINT. */
  picAcknowledge: () => number;
}

export class LocalApic implements InterruptLines, LocalApicPort, ApicBusTarget {
  private s!: LapicSnapshot;
  private vcpu: Vcpu | null = null;
  private readonly timer: LapicTimer;
  /** Called when the xAPIC page moves, appears or goes away (the machine maps it). */
  onMmioChange: (() => void) | null = null;

  constructor(private readonly o: LocalApicOptions) {
    this.timer = new LapicTimer(
      o.clock,
      `lapic${o.id} timer`,
      () => this.s.lvt[LVT_TIMER],
      (vector) => this.acceptFixed(vector, false),
    );
    this.powerOn();
  }

  /** Connects the processor this APIC interrupts. */
  connect(vcpu: Vcpu): void {
    this.vcpu = vcpu;
  }

  /** Power-on and RESET state (SDM 11.4.7.1). */
  powerOn(): void {
    this.s = {
      id: this.o.id,
      base: XAPIC_DEFAULT_BASE,
      enabled: true,
      x2apic: false,
      ...this.registersAfterReset(),
      lint0: this.s?.lint0 ?? false,
      lint1: this.s?.lint1 ?? false,
    };
    this.timer.reset();
    this.onMmioChange?.();
  }

  /** Registers as after power-on or INIT: all but the ID and the base (SDM 11.4.7.3). */
  private registersAfterReset() {
    return {
      tpr: 0,
      svr: 0xff,
      ldr: 0,
      dfr: DFR_FLAT,
      esr: 0,
      pendingErrors: 0,
      icrLo: 0,
      icrHi: 0,
      irr: new Array<number>(8).fill(0),
      isr: new Array<number>(8).fill(0),
      tmr: new Array<number>(8).fill(0),
      lvt: new Array<number>(LVT_COUNT).fill(LVT_MASKED),
      extIntMessage: false,
    };
  }

  /**
   * INIT: the registers reset, the ID stays. The processor's INIT also puts
   * IA32_APIC_BASE back to its power-on value (xAPIC at 0xFEE00000), so the mode follows.
   */
  private initReset(): void {
    const { id, lint0, lint1 } = this.s;
    this.s = { ...this.s, ...this.registersAfterReset(), id, lint0, lint1 };
    this.s.base = XAPIC_DEFAULT_BASE;
    this.s.enabled = true;
    this.s.x2apic = false;
    this.timer.reset();
    this.onMmioChange?.();
  }

  /**
   * What a PC BIOS leaves on the bootstrap processor (MP Specification 1.4, 3.6.2.2
   * "virtual wire mode"; SeaBIOS does the same): the APIC software-enabled, LINT0 in
   * ExtINT mode for the 8259 PIC and LINT1 in NMI mode.
   */
  setUpVirtualWire(): void {
    this.s.svr = SVR_APIC_ENABLED | 0xff;
    this.s.lvt[LVT_LINT0] = DeliveryMode.ExtInt << LVT_DELIVERY_MODE_SHIFT;
    this.s.lvt[LVT_LINT1] = DeliveryMode.Nmi << LVT_DELIVERY_MODE_SHIFT;
    this.kick();
  }

  snapshot(): LapicSnapshot & { timer: LapicTimerSnapshot } {
    const s = this.s;
    const [irr, isr, tmr, lvt] = [[...s.irr], [...s.isr], [...s.tmr], [...s.lvt]];
    return { ...s, irr, isr, tmr, lvt, timer: { ...this.timer.s } };
  }

  /** The xAPIC page's address while the APIC is enabled in xAPIC mode, else null. */
  get mmioBase(): number | null {
    return this.s.enabled && !this.s.x2apic ? this.s.base : null;
  }

  private kick(): void {
    this.vcpu?.kick();
  }

  // ------------------------------------------------------------ priorities (SDM 11.8.3.1)

  /** Processor priority: TPR, or the in-service class if higher. */
  private ppr(): number {
    const isrv = Math.max(highestBit(this.s.isr), 0);
    return (this.s.tpr & 0xf0) >= (isrv & 0xf0) ? this.s.tpr & 0xff : isrv & 0xf0;
  }

  arbitrationPriority(): number {
    const tpr = this.s.tpr & 0xf0;
    const isrv = Math.max(highestBit(this.s.isr), 0) & 0xf0;
    const irrv = Math.max(highestBit(this.s.irr), 0) & 0xf0;
    if (tpr >= irrv && tpr > isrv) return this.s.tpr & 0xff;
    return Math.max(tpr, isrv, irrv);
  }

  // ------------------------------------------------------------ InterruptLines

  private extIntPending(): boolean {
    const lint0 = this.s.lvt[LVT_LINT0];
    const viaLint0 =
      this.s.lint0 &&
      !(lint0 & LVT_MASKED) &&
      (lint0 & LVT_DELIVERY_MODE) >>> LVT_DELIVERY_MODE_SHIFT === DeliveryMode.ExtInt;
    return viaLint0 || this.s.extIntMessage;
  }

  hasInterrupt(): boolean {
    // A globally disabled APIC is out of the way: LINT0 is the processor's INTR pin.
    if (!this.s.enabled) return this.s.lint0;
    if (this.extIntPending()) return true;
    if (!(this.s.svr & SVR_APIC_ENABLED)) return false;
    const irrv = highestBit(this.s.irr);
    return irrv >= 0 && (irrv & 0xf0) > (this.ppr() & 0xf0);
  }

  acknowledge(): number {
    if (!this.s.enabled || this.extIntPending()) {
      this.s.extIntMessage = false;
      return this.o.picAcknowledge();
    }
    const irrv = highestBit(this.s.irr);
    if (irrv < 0 || (irrv & 0xf0) <= (this.ppr() & 0xf0) || !(this.s.svr & SVR_APIC_ENABLED)) {
      // Nothing deliverable any more: the spurious vector, nothing goes in service.
      return this.s.svr & 0xff;
    }
    clearBit(this.s.irr, irrv);
    setBit(this.s.isr, irrv);
    return irrv;
  }

  // ------------------------------------------------------------ the APIC bus

  get onBus(): boolean {
    return this.s.enabled;
  }

  matchesPhysical(destination: number, x2apic: boolean): boolean {
    if (this.s.x2apic && x2apic) return this.s.id === destination >>> 0;
    return (this.s.id & 0xff) === (destination & 0xff);
  }

  matchesLogical(destination: number, x2apic: boolean): boolean {
    const ldr = this.logicalId();
    if (this.s.x2apic) {
      if (!x2apic) return (destination & 0xff) === XAPIC_BROADCAST;
      if (destination >>> 0 === X2APIC_BROADCAST) return true;
      return destination >>> 16 === ldr >>> 16 && (destination & ldr & 0xffff) !== 0;
    }
    const dest = destination & 0xff;
    if (dest === XAPIC_BROADCAST) return true;
    const id = ldr >>> 24;
    if ((this.s.dfr & DFR_MODEL_MASK) === DFR_MODEL_MASK) return (dest & id) !== 0; // flat
    return dest >>> 4 === id >>> 4 && (dest & id & 0xf) !== 0; // cluster
  }

  /** LDR: written by software in xAPIC mode, derived from the ID in x2APIC mode (11.12.10.2). */
  private logicalId(): number {
    if (!this.s.x2apic) return this.s.ldr;
    const id = this.s.id;
    return (((id >>> 4) << 16) | (1 << (id & 0xf))) >>> 0;
  }

  accept(msg: ApicMessage): void {
    switch (msg.mode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        this.acceptFixed(msg.vector, msg.levelTriggered);
        break;
      case DeliveryMode.Nmi:
        this.vcpu?.nmi();
        break;
      case DeliveryMode.Init:
        // INIT level de-assert only synchronizes arbitration IDs (SDM 11.6.1).
        if (msg.levelTriggered && !msg.assert) break;
        this.initReset();
        this.vcpu?.init();
        break;
      case DeliveryMode.StartUp:
        this.vcpu?.sipi(msg.vector);
        break;
      case DeliveryMode.ExtInt:
        this.s.extIntMessage = true;
        this.kick();
        break;
      case DeliveryMode.Smi: // no system-management mode: ignored
      default:
        break;
    }
  }

  private acceptFixed(vector: number, level: boolean): void {
    if (vector < 16) {
      this.error(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(this.s.irr, vector);
    if (level) setBit(this.s.tmr, vector);
    else clearBit(this.s.tmr, vector);
    this.kick();
  }

  /** An APIC error: latched for the next ESR write, and the error LVT entry fires. */
  private error(bit: number): void {
    this.s.pendingErrors |= bit;
    const lvt = this.s.lvt[LVT_ERROR];
    if (lvt & LVT_MASKED) return;
    const vector = lvt & LVT_VECTOR;
    if (vector < 16) this.s.pendingErrors |= ESR_RECEIVE_ILLEGAL_VECTOR;
    else this.acceptFixed(vector, false);
  }

  private eoi(): void {
    const v = highestBit(this.s.isr);
    if (v < 0) return;
    clearBit(this.s.isr, v);
    if (testBit(this.s.tmr, v)) this.o.bus.broadcastEoi(v);
    for (const k of [LVT_LINT0, LVT_LINT1]) {
      if ((this.s.lvt[k] & LVT_VECTOR) === v) this.s.lvt[k] &= ~LVT_REMOTE_IRR;
    }
    this.kick();
  }

  /** Sends the IPI in the ICR (SDM 11.6.1). */
  private sendIpi(lo: number, destination: number): void {
    const mode = (lo >>> ICR_DELIVERY_MODE_SHIFT) & 7;
    const vector = lo & 0xff;
    if ((mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) && vector < 16) {
      this.error(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    // ExtINT and the reserved mode 3 are not valid in the ICR: nothing is sent.
    if (mode === DeliveryMode.ExtInt || mode === 3) return;
    this.o.bus.send(
      {
        vector,
        mode,
        logical: (lo & ICR_LOGICAL) !== 0,
        destination,
        x2apic: this.s.x2apic,
        shorthand: ((lo >>> ICR_SHORTHAND_SHIFT) & 3) as Shorthand,
        assert: (lo & ICR_ASSERT) !== 0,
        levelTriggered: (lo & ICR_LEVEL) !== 0,
      },
      this,
    );
  }

  // ------------------------------------------------------------ LINT pins

  /** LINT0: the 8259 PIC's INTR. */
  setLint0(level: boolean): void {
    this.setLint(LVT_LINT0, level);
  }

  /** LINT1: the chipset's NMI line. */
  setLint1(level: boolean): void {
    this.setLint(LVT_LINT1, level);
  }

  private setLint(k: number, level: boolean): void {
    const was = k === LVT_LINT0 ? this.s.lint0 : this.s.lint1;
    if (k === LVT_LINT0) this.s.lint0 = level;
    else this.s.lint1 = level;
    if (!this.s.enabled) {
      // Globally disabled: LINT0 is INTR and LINT1 is NMI (SDM 11.4.3).
      if (k === LVT_LINT1 && level && !was) this.vcpu?.nmi();
      else this.kick();
      return;
    }
    const lvt = this.s.lvt[k];
    const active = (lvt & LVT_POLARITY_LOW) !== 0 ? !level : level;
    const wasActive = (lvt & LVT_POLARITY_LOW) !== 0 ? !was : was;
    if (lvt & LVT_MASKED) return;
    const mode = (lvt & LVT_DELIVERY_MODE) >>> LVT_DELIVERY_MODE_SHIFT;
    const edge = active && !wasActive;
    switch (mode) {
      case DeliveryMode.ExtInt:
        this.kick();
        break;
      case DeliveryMode.Nmi:
        if (edge) this.vcpu?.nmi();
        break;
      case DeliveryMode.Init:
        if (edge) {
          this.initReset();
          this.vcpu?.init();
        }
        break;
      case DeliveryMode.Fixed:
        if (lvt & LVT_LEVEL) {
          // Level-triggered: delivered while active and not already in service.
          if (active && !(lvt & LVT_REMOTE_IRR)) {
            this.s.lvt[k] |= LVT_REMOTE_IRR;
            this.acceptFixed(lvt & LVT_VECTOR, true);
          }
        } else if (edge) {
          this.acceptFixed(lvt & LVT_VECTOR, false);
        }
        break;
      default: // SMI: no system-management mode
        break;
    }
  }

  // ------------------------------------------------------------ registers

  /** Reads register `reg` (an xAPIC offset); undefined for a register that does not exist. */
  private readRegister(reg: number): number | undefined {
    const s = this.s;
    if (reg >= REG_ISR && reg < REG_ISR + 0x80) return s.isr[(reg - REG_ISR) >>> 4];
    if (reg >= REG_TMR && reg < REG_TMR + 0x80) return s.tmr[(reg - REG_TMR) >>> 4];
    if (reg >= REG_IRR && reg < REG_IRR + 0x80) return s.irr[(reg - REG_IRR) >>> 4];
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) return s.lvt[(reg - REG_LVT_TIMER) >>> 4];
    switch (reg) {
      case REG_ID:
        return s.x2apic ? s.id : (s.id << 24) >>> 0;
      case REG_VERSION:
        return LAPIC_VERSION;
      case REG_TPR:
        return s.tpr;
      case REG_APR:
        return this.arbitrationPriority();
      case REG_PPR:
        return this.ppr();
      case REG_LDR:
        return this.logicalId();
      case REG_DFR:
        return s.dfr;
      case REG_SVR:
        return s.svr;
      case REG_ESR:
        return s.esr;
      case REG_ICR_LO:
        return s.icrLo;
      case REG_ICR_HI:
        return s.icrHi;
      case REG_TIMER_INITIAL:
        return this.timer.s.initial;
      case REG_TIMER_CURRENT:
        return this.timer.current();
      case REG_TIMER_DIVIDE:
        return this.timer.s.divide;
      case REG_RRD: // remote read is not supported by xAPICs: reads as zero
        return 0;
      case REG_EOI:
        return 0;
      default:
        return undefined;
    }
  }

  /** Writes register `reg`; false for a register that does not exist or cannot be written. */
  private writeRegister(reg: number, v: number, hi = 0): boolean {
    const s = this.s;
    v >>>= 0;
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
      const k = (reg - REG_LVT_TIMER) >>> 4;
      const old = s.lvt[k];
      let value = (v & LVT_WRITABLE[k]) | (old & LVT_REMOTE_IRR);
      // A software-disabled APIC keeps every LVT entry masked (SDM 11.4.7.2).
      if (!(s.svr & SVR_APIC_ENABLED)) value |= LVT_MASKED;
      s.lvt[k] = value >>> 0;
      if (k === LVT_TIMER) {
        this.timer.lvtWritten(old);
      } else if (k === LVT_LINT0 || k === LVT_LINT1) {
        this.kick();
      }
      return true;
    }
    switch (reg) {
      case REG_ID:
        if (s.x2apic) return false;
        s.id = v >>> 24;
        return true;
      case REG_TPR:
        s.tpr = v & 0xff;
        this.kick();
        return true;
      case REG_EOI:
        this.eoi();
        return true;
      case REG_LDR:
        if (s.x2apic) return false;
        s.ldr = (v & 0xff000000) >>> 0;
        return true;
      case REG_DFR:
        if (s.x2apic) return false;
        s.dfr = (v | 0x0fffffff) >>> 0;
        return true;
      case REG_SVR:
        s.svr = v & SVR_WRITABLE;
        if (!(s.svr & SVR_APIC_ENABLED)) {
          for (let k = 0; k < LVT_COUNT; k++) s.lvt[k] |= LVT_MASKED;
          this.timer.disarm();
        }
        this.kick();
        return true;
      case REG_ESR:
        s.esr = s.pendingErrors;
        s.pendingErrors = 0;
        return true;
      case REG_ICR_LO:
        s.icrLo = v & ICR_LO_WRITABLE;
        if (s.x2apic) s.icrHi = hi >>> 0;
        this.sendIpi(s.icrLo, s.x2apic ? s.icrHi : s.icrHi >>> 24);
        return true;
      case REG_ICR_HI:
        if (s.x2apic) return false;
        s.icrHi = (v & 0xff000000) >>> 0;
        return true;
      case REG_TIMER_INITIAL:
        this.timer.writeInitial(v);
        return true;
      case REG_TIMER_DIVIDE:
        this.timer.writeDivide(v);
        return true;
      case REG_SELF_IPI:
        if (!s.x2apic) return false;
        this.acceptFixed(v & 0xff, false);
        return true;
      default:
        return false;
    }
  }

  // ------------------------------------------------------------ xAPIC MMIO

  /**
   * A read of the xAPIC page. Registers sit at 16-byte boundaries and are read as 32 bits;
   * a narrower read gets its bytes of the register. Reserved offsets read as zero and
   * record an illegal-register-address error.
   */
  readMmio(offset: number, size: 1 | 2 | 4): number {
    const reg = offset & 0xff0;
    const within = offset & 0xf;
    if (within >= 4) return 0;
    const value = this.readRegister(reg);
    if (value === undefined || reg === REG_SELF_IPI) {
      this.error(ESR_ILLEGAL_REGISTER);
      return 0;
    }
    const shifted = value >>> (8 * within);
    return size === 4 ? shifted >>> 0 : shifted & (size === 2 ? 0xffff : 0xff);
  }

  /** A write to the xAPIC page; a narrower write stores its bytes zero-extended. */
  writeMmio(offset: number, size: 1 | 2 | 4, value: number): void {
    const reg = offset & 0xff0;
    const within = offset & 0xf;
    if (within >= 4) return;
    const v = size === 4 ? value : (value & (size === 2 ? 0xffff : 0xff)) << (8 * within);
    const readOnly =
      reg === REG_VERSION ||
      reg === REG_APR ||
      reg === REG_PPR ||
      reg === REG_RRD ||
      reg === REG_TIMER_CURRENT;
    const inArrays = reg >= REG_ISR && reg < REG_IRR + 0x80;
    if (readOnly || inArrays) return;
    if (reg === REG_SELF_IPI || !this.writeRegister(reg, v)) this.error(ESR_ILLEGAL_REGISTER);
  }

  // ------------------------------------------------------------ LocalApicPort (MSRs)

  setApicBase(lo: number, hi: number): void {
    const s = this.s;
    const en = (lo & APIC_BASE_EN) !== 0;
    const extd = (lo & APIC_BASE_EXTD) !== 0;
    const base = hi * 0x100000000 + ((lo & APIC_BASE_ADDRESS_MASK) >>> 0);
    if (!en) {
      // Globally disabled: the APIC's state is lost; enabled again, it is as after
      // power-on (SDM 11.4.3). EN = 0 with EXTD = 1 is invalid and treated the same.
      if (s.enabled) this.loseState();
      this.s.enabled = false;
      this.s.x2apic = false;
    } else if (!extd) {
      // x2APIC straight to xAPIC is invalid (11.12.5); the processor accepted the write,
      // so the APIC goes through the disabled state's reset on the way.
      if (s.enabled && s.x2apic) this.loseState();
      this.s.enabled = true;
      this.s.x2apic = false;
    } else {
      // x2APIC mode: the ID becomes the initial APIC ID, 32 bits wide (11.12.5.1).
      if (!s.x2apic) this.s.id = this.o.id;
      this.s.enabled = true;
      this.s.x2apic = true;
    }
    this.s.base = base;
    this.onMmioChange?.();
    this.timer.schedule();
    this.kick();
  }

  /** The register state a global disable loses: as at power-on, pins as they are. */
  private loseState(): void {
    const { lint0, lint1 } = this.s;
    this.s = { ...this.s, ...this.registersAfterReset(), id: this.o.id, lint0, lint1 };
    this.timer.reset();
  }

  /** x2APIC register index for MSR `index`, or -1 when it is not one. */
  private x2apicRegister(index: number): number {
    if (index < X2APIC_MSR_BASE || index > X2APIC_MSR_BASE + 0xff) return -1;
    return (index - X2APIC_MSR_BASE) << 4;
  }

  readMsr(index: number): [number, number] | undefined {
    if (index === IA32_TSC_DEADLINE) {
      const d = this.timer.readDeadline();
      return [(d % 0x100000000) >>> 0, Math.floor(d / 0x100000000) >>> 0];
    }
    const reg = this.x2apicRegister(index);
    if (reg < 0 || !this.s.x2apic || !this.s.enabled) return undefined;
    // Write-only and xAPIC-only registers raise #GP in x2APIC mode (SDM Table 11-6).
    if (
      reg === REG_EOI ||
      reg === REG_SELF_IPI ||
      reg === REG_DFR ||
      reg === REG_ICR_HI ||
      reg === REG_APR ||
      reg === REG_RRD
    ) {
      return undefined;
    }
    if (reg === REG_ICR_LO) return [this.s.icrLo, this.s.icrHi];
    const v = this.readRegister(reg);
    return v === undefined ? undefined : [v >>> 0, 0];
  }

  writeMsr(index: number, lo: number, hi: number): boolean {
    if (index === IA32_TSC_DEADLINE) {
      this.timer.writeDeadline(hi * 0x100000000 + lo);
      return true; // ignored in the other timer modes (11.5.4.1)
    }
    const reg = this.x2apicRegister(index);
    if (reg < 0 || !this.s.x2apic || !this.s.enabled) return false;
    if (reg !== REG_ICR_LO && hi !== 0) return false;
    switch (reg) {
      case REG_EOI:
      case REG_ESR:
        // Writes of anything but zero raise #GP in x2APIC mode (11.12.1.2).
        if (lo !== 0) return false;
        break;
      case REG_TPR:
        if (lo & ~0xff) return false;
        break;
      case REG_SELF_IPI:
        if (lo & ~0xff) return false;
        break;
      case REG_ICR_LO:
        if (lo & ~ICR_LO_WRITABLE) return false;
        break;
      case REG_SVR:
        if (lo & ~SVR_WRITABLE) return false;
        break;
      case REG_TIMER_DIVIDE:
        if (lo & ~TIMER_DIVIDE_WRITABLE) return false;
        break;
      default:
        if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
          if (lo & ~LVT_WRITABLE[(reg - REG_LVT_TIMER) >>> 4] & ~LVT_REMOTE_IRR) return false;
        }
    }
    return this.writeRegister(reg, lo, hi);
  }
}
