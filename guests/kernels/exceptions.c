/*
 * exceptions: raises and catches each architectural exception, checking the vector, the
 * error code and the saved EIP: the faulting instruction for faults, the next instruction
 * for traps (SDM Vol. 3A, 6.5 and the per-vector descriptions in 6.15), CR2 for #PF.
 */
#include "kernel.h"
#include "paging.h"

/* GDT entries for the tests (selectors are index * 8, RPL 0). */
enum {
  GDT_NP_DATA = GDT_FIRST_FREE, /* writable data, not present */
  GDT_RO_DATA,                  /* read-only data, flat */
  GDT_SMALL_DATA,               /* writable data, limit 0xFFF (byte granular) */
  GDT_SMALL_STACK,              /* writable data, base 0, limit at the top of the boot stack */
  GDT_SMALL_TSS,                /* 32-bit TSS with a limit below the minimum 0x67 */
  GDT_DF_TSS,                   /* the double-fault task */
  GDT_TASK2_TSS,                /* a task for the CALL / IRET round trip */
  GDT_AVAIL_TSS,                /* an available (not busy) TSS for the IRET back-link test */
  GDT_USER_DATA_DPL3,           /* DPL-3 data, to load into SS at CPL 0 */
};
#define SEL(index) ((u16)((index) << 3))

static u8 scratch[8192] __attribute__((aligned(4096)));
static s32 bound_pair[2] = {10, 20};

/* ---- #DE ---- */

static void test_de(void) {
  u32 a = 1, d = 0;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "divl %2" TRY_END : "+a"(a), "+d"(d) : "c"(0) : "memory", "cc");
  check_trap("de_div_by_zero", VEC_DE, 0, trap_fault_eip);

  a = 0x80000000u; /* EDX:EAX = INT64 -2^31, / -1 does not fit in 32 bits */
  d = 0xFFFFFFFFu;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "idivl %2" TRY_END : "+a"(a), "+d"(d) : "c"(-1) : "memory", "cc");
  check_trap("de_idiv_overflow", VEC_DE, 0, trap_fault_eip);
}

/* ---- #DB: single-step traps and ICEBP (SDM Vol. 3A, 18.3.1.4 and 18.3.1.6) ---- */

static volatile u32 step_count, step_eip[4], step_dr6, step_expect[3];

static int single_step_handler(struct trapframe *f) {
  if (step_count < 4) step_eip[step_count] = f->eip;
  step_count++;
  step_dr6 = read_dr6();
  if (step_count >= 3) f->eflags &= ~EFLAGS_TF; /* stop after three steps */
  return 1;
}

static void test_db(void) {
  write_dr6(0xFFFF0FF0u); /* the DR6 value after reset: no status bits */
  trap_set_handler(VEC_DB, single_step_handler);
  /* POPF sets TF: the first trap follows the instruction after POPF (SDM 18.3.1.4). */
  __asm__ volatile("movl $2f, step_expect\n\t"
                   "movl $3f, step_expect+4\n\t"
                   "movl $4f, step_expect+8\n\t"
                   "pushfl\n\t"
                   "orl $0x100, (%%esp)\n\t"
                   "popfl\n"
                   "1: nop\n"
                   "2: nop\n"
                   "3: nop\n"
                   "4: nop\n"
                   :
                   :
                   : "memory", "cc");
  trap_set_handler(VEC_DB, NULL);
  check("db_single_step",
        step_count == 3 && step_eip[0] == step_expect[0] && step_eip[1] == step_expect[1] &&
            step_eip[2] == step_expect[2],
        "%u traps, EIPs 0x%x 0x%x 0x%x, expected 0x%x 0x%x 0x%x", step_count, step_eip[0],
        step_eip[1], step_eip[2], step_expect[0], step_expect[1], step_expect[2]);
  check("db_single_step_dr6_bs", (step_dr6 & 0x4000) != 0, "DR6=0x%08x", step_dr6);

  trap_clear();
  __asm__ volatile(TRY_BEGIN ".byte 0xF1 /* INT1 (ICEBP) */" TRY_END ::: "memory");
  check_trap("db_int1", VEC_DB, 0, trap_next_eip);
}

/* ---- #BP, #OF, #BR, #UD ---- */

static void test_bp_of_br_ud(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int3" TRY_END ::: "memory");
  check_trap("bp_int3", VEC_BP, 0, trap_next_eip);

  trap_clear();
  __asm__ volatile("movl $0x7FFFFFFF, %%eax\n\t"
                   "addl $1, %%eax\n\t" /* OF = 1 */
                   TRY_BEGIN "into" TRY_END
                   :
                   :
                   : "eax", "memory", "cc");
  check_trap("of_into", VEC_OF, 0, trap_next_eip);

  trap_clear();
  __asm__ volatile("xorl %%eax, %%eax\n\t" /* OF = 0 */
                   TRY_BEGIN "into" TRY_END
                   :
                   :
                   : "eax", "memory", "cc");
  check("of_into_no_overflow", last_trap.count == 0, "%u exceptions", last_trap.count);

  static const s32 values[] = {15, 10, 20, 9, 21, -5};
  for (int i = 0; i < 6; i++) {
    trap_clear();
    __asm__ volatile(TRY_BEGIN "boundl %0, %1" TRY_END ::"r"(values[i]), "m"(bound_pair) : "memory");
    if (values[i] < bound_pair[0] || values[i] > bound_pair[1]) {
      if (values[i] == 21) check_trap("br_bound_above", VEC_BR, 0, trap_fault_eip);
      if (values[i] == 9) check_trap("br_bound_below", VEC_BR, 0, trap_fault_eip);
    } else if (last_trap.count) {
      check("br_bound_in_range", 0, "index %d raised vector %u", values[i], last_trap.vector);
    }
  }

  trap_clear();
  __asm__ volatile(TRY_BEGIN "ud2" TRY_END ::: "memory");
  check_trap("ud_ud2", VEC_UD, 0, trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN ".byte 0xF0\n\taddl %%eax, %%eax /* LOCK with a register destination */" TRY_END
                   :
                   :
                   : "eax", "memory", "cc");
  check_trap("ud_lock_register", VEC_UD, 0, trap_fault_eip);
}

/* ---- #NM (SDM Vol. 3A, 2.5 CR0.TS/MP/EM and Table 2-2) ---- */

static void test_nm(void) {
  u32 cr0 = read_cr0();
  write_cr0((cr0 & ~(CR0_EM | CR0_MP)) | CR0_TS);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fninit" TRY_END ::: "memory");
  check_trap("nm_fninit_ts", VEC_NM, 0, trap_fault_eip);

  write_cr0((cr0 & ~CR0_EM) | CR0_TS | CR0_MP);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fwait" TRY_END ::: "memory");
  check_trap("nm_fwait_ts_mp", VEC_NM, 0, trap_fault_eip);

  clts();
  check("nm_clts", !(read_cr0() & CR0_TS), "CR0=0x%08x", read_cr0());
  write_cr0(cr0);
}

/* ---- tasks: #DF through a task gate, a CALL/IRET round trip, #TS ---- */

static struct tss df_tss, task2_tss, avail_tss, small_tss;
static u8 df_stack[4096] __attribute__((aligned(16)));
static u8 task2_stack[4096] __attribute__((aligned(16)));
volatile u32 df_count, df_error, df_tr, df_link, df_eflags, df_resume;
volatile u32 task2_count, task2_tr, task2_link, task2_eflags;
volatile u32 saved_ebx, saved_esi, saved_edi;

void df_task_entry(void);
void task2_entry(void);
void avail_task_entry(void);

/*
 * Task bodies. A task starts at its TSS EIP; when it IRETs with NT = 1 it returns to the
 * task that called it, and its TSS saves the EIP after the IRET, so the next switch to it
 * runs the jmp back to the entry. The double-fault task receives the error code on its
 * stack (SDM Vol. 3A, 6.12.2): the call below passes it as the argument.
 */
__asm__(".text\n"
        "df_task_entry:\n\t"
        "call df_task_body\n\t"
        "addl $4, %esp\n\t" /* the error code */
        "iret\n\t"
        "jmp df_task_entry\n"
        "task2_entry:\n\t"
        "call task2_body\n\t"
        "iret\n\t"
        "jmp task2_entry\n"
        "avail_task_entry:\n\t"
        "call avail_task_body\n");

void df_task_body(u32 error) {
  df_count++;
  df_error = error;
  df_tr = read_tr();
  df_link = df_tss.link;
  df_eflags = read_eflags();
  /* A double fault is an abort (saved CS:EIP undefined): resume the main task elsewhere. */
  main_tss.tss.eip = df_resume;
}

void task2_body(void) {
  task2_count++;
  task2_tr = read_tr();
  task2_link = task2_tss.link;
  task2_eflags = read_eflags();
}

void avail_task_body(void) {
  printf("FAIL IRET switched to a task whose TSS was not busy\n");
  exit(EXIT_UNEXPECTED);
}

static u32 tss_type(int index) { return (u32)(gdt_get(index) >> 40) & 0xF; }

static void test_tasks(void) {
  main_tss.tss.cr3 = read_cr3();
  tss_init(&df_tss, (u32)df_task_entry, (u32)df_stack + sizeof df_stack);
  tss_init(&task2_tss, (u32)task2_entry, (u32)task2_stack + sizeof task2_stack);
  tss_init(&avail_tss, (u32)avail_task_entry, (u32)task2_stack + sizeof task2_stack);
  gdt_set_tss(GDT_DF_TSS, &df_tss, sizeof(struct tss) - 1);
  gdt_set_tss(GDT_TASK2_TSS, &task2_tss, sizeof(struct tss) - 1);
  gdt_set_tss(GDT_AVAIL_TSS, &avail_tss, sizeof(struct tss) - 1);
  gdt_set_tss(GDT_SMALL_TSS, &small_tss, 0x20);

  /* CALL to a TSS: a nested task switch (SDM Vol. 3A, 7.3 and 7.4), back by IRET. */
  __asm__ volatile("movl $0x11111111, %%ebx\n\t"
                   "movl $0x22222222, %%esi\n\t"
                   "movl $0x33333333, %%edi\n\t"
                   "lcall %0, $0\n\t"
                   "movl %%ebx, saved_ebx\n\t"
                   "movl %%esi, saved_esi\n\t"
                   "movl %%edi, saved_edi\n\t"
                   :
                   : "i"(SEL(GDT_TASK2_TSS))
                   : "ebx", "esi", "edi", "memory", "cc");
  u32 cr0 = read_cr0();
  clts();
  check("task_call_iret",
        task2_count == 1 && task2_tr == SEL(GDT_TASK2_TSS) && task2_link == SEL_TSS &&
            (task2_eflags & EFLAGS_NT) && read_tr() == SEL_TSS && !(read_eflags() & EFLAGS_NT),
        "count %u, TR in task 0x%x, link 0x%x, task EFLAGS 0x%x, TR after 0x%x", task2_count,
        task2_tr, task2_link, task2_eflags, read_tr());
  check("task_registers_restored",
        saved_ebx == 0x11111111 && saved_esi == 0x22222222 && saved_edi == 0x33333333,
        "EBX=0x%x ESI=0x%x EDI=0x%x", saved_ebx, saved_esi, saved_edi);
  check("task_busy_bits", tss_type(GDT_TASK2_TSS) == 0x9 && tss_type(5) == 0xB,
        "task2 type 0x%x, main type 0x%x", tss_type(GDT_TASK2_TSS), tss_type(5));
  check("task_switch_sets_cr0_ts", (cr0 & CR0_TS) != 0, "CR0=0x%08x", cr0);

  /*
   * #DF: a not-present data segment raises #NP; the #NP gate is not present either, which
   * raises a second #NP while delivering the first: contributory + contributory = #DF
   * (SDM Vol. 3A, Table 6-5), error code 0, delivered through the task gate.
   */
  idt_set(VEC_DF, 0, SEL(GDT_DF_TSS), GATE_TASK);
  u64 np_gate = idt_get(VEC_NP);
  idt_put(VEC_NP, np_gate & ~(1ull << 47));
  __asm__ volatile("movl $1f, df_resume\n\t"
                   "movw %w0, %%ds\n"
                   "1:\n\t"
                   :
                   : "r"(SEL(GDT_NP_DATA))
                   : "memory");
  idt_put(VEC_NP, np_gate);
  idt_set_default(VEC_DF);
  clts();
  check("df_task_gate",
        df_count == 1 && df_error == 0 && df_tr == SEL(GDT_DF_TSS) && df_link == SEL_TSS &&
            (df_eflags & EFLAGS_NT),
        "count %u, error 0x%x, TR 0x%x, link 0x%x, EFLAGS 0x%x", df_count, df_error, df_tr,
        df_link, df_eflags);
  check("df_back_to_main_task", read_tr() == SEL_TSS && tss_type(GDT_DF_TSS) == 0x9,
        "TR 0x%x, DF TSS type 0x%x", read_tr(), tss_type(GDT_DF_TSS));

  /* #TS: a TSS limit below 67H (SDM Vol. 3A, 7.2.2 and Table 6-6). */
  trap_clear();
  __asm__ volatile(TRY_BEGIN "ljmp %0, $0" TRY_END ::"i"(SEL(GDT_SMALL_TSS)) : "memory");
  check_trap("ts_tss_limit", VEC_TS, SEL(GDT_SMALL_TSS), trap_fault_eip);

  /* #TS: IRET with NT = 1 whose back link names a TSS that is not busy. */
  main_tss.tss.link = SEL(GDT_AVAIL_TSS);
  trap_clear();
  __asm__ volatile("pushfl\n\t"
                   "orl $0x4000, (%%esp)\n\t" /* NT */
                   "popfl\n\t" TRY_BEGIN "iret" TRY_END "pushfl\n\t"
                   "andl $~0x4000, (%%esp)\n\t"
                   "popfl\n\t"
                   :
                   :
                   : "memory", "cc");
  main_tss.tss.link = 0;
  check_trap("ts_iret_backlink_not_busy", VEC_TS, SEL(GDT_AVAIL_TSS), trap_fault_eip);
}

/* ---- #NP ---- */

static void test_np(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ds" TRY_END ::"r"(SEL(GDT_NP_DATA)) : "memory");
  check_trap("np_data_segment", VEC_NP, SEL(GDT_NP_DATA), trap_fault_eip);

  /* INT n through a not-present gate: error code = vector * 8 + 2 (IDT bit; SDM 6.13). */
  u64 gate = idt_get(0x41);
  idt_put(0x41, gate & ~(1ull << 47));
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int $0x41" TRY_END ::: "memory");
  idt_put(0x41, gate);
  check_trap("np_idt_gate", VEC_NP, 0x41 * 8 + 2, trap_fault_eip);
}

/* ---- #SS ---- */

static void test_ss(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ss" TRY_END ::"r"(SEL(GDT_NP_DATA)) : "memory");
  check_trap("ss_not_present", VEC_SS, SEL(GDT_NP_DATA), trap_fault_eip);

  /* An SS-relative access beyond an expand-up SS limit: #SS(0). The limit still covers
     the stack in use, so the processor can push the exception frame. */
  trap_clear();
  __asm__ volatile("movw %w0, %%ss\n\t" TRY_BEGIN "movl (%%esp,%%ecx,1), %%eax" TRY_END
                   "movw %w1, %%ss\n\t"
                   :
                   : "r"(SEL(GDT_SMALL_STACK)), "r"(SEL_KDATA), "c"(0x10000000)
                   : "eax", "memory");
  check_trap("ss_limit", VEC_SS, 0, trap_fault_eip);
}

/* ---- #GP ---- */

static void user_hlt(void) { __asm__ volatile(TRY_BEGIN "hlt" TRY_END ::: "memory"); }
static void user_mov_cr0(void) {
  u32 v = 0;
  __asm__ volatile(TRY_BEGIN "movl %%cr0, %0" TRY_END : "+r"(v) : : "memory");
}

static void test_gp(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ds" TRY_END ::"r"(GDT_ENTRIES * 8) : "memory");
  check_trap("gp_selector_beyond_gdt_limit", VEC_GP, GDT_ENTRIES * 8, trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ds" TRY_END ::"r"(SEL_TSS) : "memory");
  check_trap("gp_ds_system_descriptor", VEC_GP, SEL_TSS, trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ss" TRY_END ::"r"(0) : "memory");
  check_trap("gp_null_ss", VEC_GP, 0, trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ss" TRY_END ::"r"(SEL(GDT_RO_DATA)) : "memory");
  check_trap("gp_ss_read_only", VEC_GP, SEL(GDT_RO_DATA), trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movw %w0, %%ss" TRY_END ::"r"(SEL(GDT_USER_DATA_DPL3)) : "memory");
  check_trap("gp_ss_dpl_mismatch", VEC_GP, SEL(GDT_USER_DATA_DPL3), trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "ljmp %0, $0" TRY_END ::"i"(SEL_KDATA) : "memory");
  check_trap("gp_far_jmp_to_data", VEC_GP, SEL_KDATA, trap_fault_eip);

  /* A null DS may be loaded, but not used (SDM Vol. 3A, 3.4.2). */
  u32 v = 0;
  trap_clear();
  __asm__ volatile(TRY_SETUP "movw %w1, %%ds" TRY_FAULT "movl (%2), %0" TRY_RESUME
                   "movw %w3, %%ds\n\t"
                   "movl $0, trap_resume\n\t"
                   : "+r"(v)
                   : "r"(0), "r"(scratch), "r"(SEL_KDATA)
                   : "memory");
  check_trap("gp_null_ds_access", VEC_GP, 0, trap_fault_eip);

  v = 0x12345678;
  trap_clear(); /* before loading ES: memset stores through ES */
  load_es(SEL(GDT_RO_DATA));
  __asm__ volatile(TRY_BEGIN "movl %0, %%es:(%1)" TRY_END ::"r"(v), "r"(scratch) : "memory");
  load_es(SEL_KDATA);
  check_trap("gp_write_read_only_segment", VEC_GP, 0, trap_fault_eip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %0, %%cs:(%1)" TRY_END ::"r"(v), "r"(scratch) : "memory");
  check_trap("gp_write_code_segment", VEC_GP, 0, trap_fault_eip);

  /* Limit checks: the last byte of the access must be within the limit (SDM 5.3). */
  trap_clear();
  load_es(SEL(GDT_SMALL_DATA));
  __asm__ volatile(TRY_BEGIN "movl %%es:0xFFC, %0" TRY_END : "=r"(v) : : "memory");
  load_es(SEL_KDATA);
  int in_limit_ok = last_trap.count == 0;
  trap_clear();
  load_es(SEL(GDT_SMALL_DATA));
  __asm__ volatile(TRY_BEGIN "movl %%es:0xFFE, %0" TRY_END : "=r"(v) : : "memory");
  load_es(SEL_KDATA);
  check("gp_segment_limit_ok", in_limit_ok, "dword at 0xFFC, limit 0xFFF");
  check_trap("gp_segment_limit", VEC_GP, 0, trap_fault_eip);

  trap_clear();
  run_user(user_hlt, EFLAGS_FIXED);
  check_trap("gp_cpl3_hlt", VEC_GP, 0, trap_fault_eip);

  trap_clear();
  run_user(user_mov_cr0, EFLAGS_FIXED);
  check_trap("gp_cpl3_mov_from_cr0", VEC_GP, 0, trap_fault_eip);
}

/* ---- #PF (SDM Vol. 3A, 4.7) ---- */

static u8 pf_page[4096] __attribute__((aligned(4096)));
static volatile u32 pf_value;

static void user_read_supervisor(void) {
  u32 v;
  __asm__ volatile(TRY_BEGIN "movl (%1), %0" TRY_END : "=r"(v) : "r"(pf_page + 8) : "memory");
}
static void user_write_supervisor(void) {
  __asm__ volatile(TRY_BEGIN "movl %0, (%1)" TRY_END ::"r"(1), "r"(pf_page + 12) : "memory");
}

static int check_pf(const char *name, u32 error, u32 cr2) {
  int ok = check_trap(name, VEC_PF, error, trap_fault_eip);
  if (last_trap.cr2 != cr2) return check(name, 0, "CR2=0x%08x, expected 0x%08x", last_trap.cr2, cr2);
  return ok;
}

static void test_pf(void) {
  paging_init();
  paging_enable();
  u32 page = (u32)pf_page;
  volatile pte_t *pte = pte_get(page);
  u32 v;

  *pte &= ~(pte_t)PTE_P;
  invlpg(page);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl (%1), %0" TRY_END : "=r"(v) : "r"(page + 4) : "memory");
  check_pf("pf_not_present_read", 0, page + 4);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %0, (%1)" TRY_END ::"r"(1), "r"(page + 0x10) : "memory");
  check_pf("pf_not_present_write", PFEC_W, page + 0x10);

  *pte = (pte_t)page | PTE_P | PTE_U; /* read-only */
  invlpg(page);
  write_cr0(read_cr0() | CR0_WP);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %0, (%1)" TRY_END ::"r"(1), "r"(page + 0x20) : "memory");
  check_pf("pf_supervisor_write_read_only_wp1", PFEC_P | PFEC_W, page + 0x20);
  write_cr0(read_cr0() & ~CR0_WP);

  *pte = (pte_t)page | PTE_P | PTE_W; /* supervisor only */
  invlpg(page);
  trap_clear();
  run_user(user_read_supervisor, EFLAGS_FIXED);
  check_pf("pf_user_read_supervisor", PFEC_P | PFEC_U, page + 8);
  trap_clear();
  run_user(user_write_supervisor, EFLAGS_FIXED);
  check_pf("pf_user_write_supervisor", PFEC_P | PFEC_W | PFEC_U, page + 12);

  *pte = (pte_t)page | PTE_P | PTE_W | PTE_U;
  invlpg(page);
  paging_disable();
}

/* ---- #AC (SDM Vol. 3A, 6.15 "Interrupt 17"): CPL 3, CR0.AM = 1, EFLAGS.AC = 1 ---- */

static void user_misaligned_load(void) {
  u32 v;
  __asm__ volatile(TRY_BEGIN "movl (%1), %0" TRY_END : "=r"(v) : "r"(scratch + 1) : "memory");
}

static void test_ac(void) {
  u32 cr0 = read_cr0();
  write_cr0(cr0 | CR0_AM);
  trap_clear();
  run_user(user_misaligned_load, EFLAGS_FIXED); /* AC = 0: no check */
  check("ac_flag_clear_no_fault", last_trap.count == 0, "%u exceptions, vector %u", last_trap.count,
        last_trap.vector);
  u32 v;
  trap_clear();
  write_eflags(read_eflags() | EFLAGS_AC); /* CPL 0: no check */
  __asm__ volatile(TRY_BEGIN "movl (%1), %0" TRY_END : "=r"(v) : "r"(scratch + 1) : "memory");
  write_eflags(read_eflags() & ~EFLAGS_AC);
  check("ac_cpl0_no_fault", last_trap.count == 0, "%u exceptions, vector %u", last_trap.count,
        last_trap.vector);
  trap_clear();
  run_user(user_misaligned_load, EFLAGS_FIXED | EFLAGS_AC);
  check_trap("ac_misaligned_cpl3", VEC_AC, 0, trap_fault_eip);
  write_cr0(cr0);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("exceptions: vectors, error codes and saved EIPs\n");
  gdt_set(GDT_NP_DATA, 0, 0xFFFFF, DESC_DATA & ~DESC_PRESENT, DESC_FLAGS_32_4K);
  gdt_set(GDT_RO_DATA, 0, 0xFFFFF, DESC_DATA_RO, DESC_FLAGS_32_4K);
  gdt_set(GDT_SMALL_DATA, (u32)scratch, 0xFFF, DESC_DATA, DESC_FLAGS_32);
  gdt_set(GDT_SMALL_STACK, 0, (u32)boot_stack_top >> 12, DESC_DATA, DESC_FLAGS_32_4K);
  gdt_set(GDT_USER_DATA_DPL3, 0, 0xFFFFF, DESC_DATA | DESC_DPL3, DESC_FLAGS_32_4K);

  test_de();
  test_db();
  test_bp_of_br_ud();
  test_nm();
  test_tasks();
  test_np();
  test_ss();
  test_gp();
  test_pf();
  test_ac();
  return test_finish();
}
