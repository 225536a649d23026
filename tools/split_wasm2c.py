#!/usr/bin/env python3
"""Splits one wasm2c (wabt 1.0.32) output file into several translation units.

wasm2c writes a whole module as a single C file (62 MB for CPython): gcc then
needs ~3 minutes and ~3.7 GB on one core. Split N ways, both cores work and
each job stays well under 1 GB.

The rewrite is mechanical and checked: every top-level item of the input ends
up in exactly one output file, in its original order.

  * the prelude (macros and static inline helpers up to the module state) goes
    into a shared header that every part includes;
  * `func_types` becomes one hidden global shared by all parts;
  * the functions (`static T w2c_NAME(...) { ... }`) lose `static`, their
    prototypes move into the shared header, and their bodies are dealt out to
    parts 1..N by size;
  * everything else (data segments, tables, exports, instantiate/free) stays,
    in order, in part 0.

`#pragma GCC visibility push(hidden)` keeps the now-external w2c_ functions
out of the dynamic symbol table of libterrarium.

Optional rewrites of the prelude (--rewrite LIST, or the environment variable
TERRARIUM_W2C_REWRITE; "none" or empty for none), each mechanical and checked:

  * nobarrier: drop the empty `asm("" ::"r"(result))` after every load in
    DEFINE_LOAD; it pins each loaded value in a register and blocks
    scheduling and folding of loads for no benefit on x86-64.
  * gs: address linear memory through the x86-64 %gs segment. The GS base is
    the memory base (the runtime sets it on entry to the guest: see
    src/engine/traps.cc), so a load is `*(T __seg_gs*)addr` with a may_alias,
    aligned(1) T: no memory base to load or keep in a register, and no store
    can alias the instance's globals. Every load/store helper exists twice,
    NAME_gs and NAME_plain (the original mem->data path); NAME(mem, addr)
    picks one through TERRARIUM_MEM. A unit compiled with
    -DTERRARIUM_NO_SEG_GS, or a function bracketed by the
    lines `#undef TERRARIUM_MEM` / `#define TERRARIUM_MEM(name) name##_plain`
    ... back to TERRARIUM_MEM_DEFAULT (tools/guest_cc.py does both when gcc
    crashes on the segment code), uses the plain path. Bulk operations
    (memory.fill/copy/init) and host code keep using mem->data. Applied only
    when the module's functions touch exactly one memory.
  * basereg: address linear memory through a base register, r15, instead
    (excludes gs). r15 is a global register variable of every unit: gcc
    never allocates it, and it holds the memory base whenever generated code
    runs. The exports set it from the instance on entry and restore the
    caller's value before they return; part 0 may not call generated code
    anywhere else (checked). Host code saves r15 like any callee-saved
    register, so imports keep it, and a trap's longjmp restores the host's.
    A load is `*(T*)(r15 + addr)`: base+index addressing, whose load-to-use
    latency is a native load's, where %gs adds two cycles to every load
    (measured here: 5 vs 7 cycles per dependent load); it costs one register
    and an extra `lea` where an address has two register parts. Same NAME_reg
    / NAME_plain scheme and plain fallback as gs.

  * threaded: large br_table switches (the opcode dispatch) become computed
    gotos (see thread_dispatch), and locals live only on paths that an
    irreducible-control-flow state variable rules out get a dead write that
    ends their live range (see dead_state_writes).
  * indirect: call_indirect passes the caller's instance instead of loading
    `table.data[x].module_instance`, and checks bounds + type only (a null
    entry has func_type 0, which no registered type has). Applied only when
    checked safe: one funcref table, allocated and filled by the module with
    its own functions only (module_offset 0), touched by functions only
    through CALL_INDIRECT (see own_table_calls).

Usage: split_wasm2c.py [--rewrite nobarrier,basereg] INPUT.c HEADER.h OUTDIR PARTS
Writes OUTDIR/<stem>_shared.h and OUTDIR/<stem>_0.c .. <stem>_PARTS.c.
"""
import os
import re
import sys

FUNC_DECL = re.compile(r"^static [A-Za-z0-9_]+ (w2c_[A-Za-z0-9_]+)\(.*\);$")
# A definition's parameter list may wrap onto further lines.
FUNC_DEF = re.compile(r"^static [A-Za-z0-9_]+ (w2c_[A-Za-z0-9_]+)\((?!.*;$)")
FUNC_TYPES = re.compile(r"^static u32 func_types\[(\d+)\];$")
STATE_START = "static bool s_module_initialized = false;"


REWRITES = ("nobarrier", "gs", "basereg", "threaded", "indirect")
SWITCH_OPEN = re.compile(r"^( *)switch \((w2c_[a-z0-9]+)\) \{$")
MIN_THREADED_CASES = 64
CALL_INDIRECT_DEF = [
    "#define CALL_INDIRECT(table, t, ft, x, ...)             \\",
    "  (LIKELY((x) < table.size && table.data[x].func &&     \\",
    "          table.data[x].func_type == func_types[ft]) || \\",
    "       TRAP(CALL_INDIRECT),                             \\",
    "   ((t)table.data[x].func)(__VA_ARGS__))",
]
CALL_INDIRECT_OWN = [
    "/* terrarium (tools/split_wasm2c.py --rewrite indirect): every entry of the",
    "   table is one of this module's own functions or null, so the callee's",
    "   instance is the caller's, and a null entry (func_type 0: registered type",
    "   ids start at 1) fails the type check: bounds + type only. */",
    "#define CALL_INDIRECT(table, t, ft, x, ...)                               \\",
    "  (LIKELY((x) < table.size && table.data[x].func_type == func_types[ft]) || \\",
    "       TRAP(CALL_INDIRECT),                                               \\",
    "   ((t)table.data[x].func)(__VA_ARGS__))",
]
CALL_INDIRECT_STATIC = [
    "/* terrarium (tools/split_wasm2c.py --rewrite indirect): every entry of the",
    "   table is one of this module's own functions or null, and nothing changes",
    "   the table after instantiation, so call_indirect reads a constant copy of",
    "   it (%(table)s_static, built from the elem segment): the bound is a",
    "   constant, and the type check compares with a constant signature class",
    "   (equal signatures share a class, as registered func_types do; null",
    "   entries are class 0 and fail it). */",
    "#define CALL_INDIRECT(table, t, ft, x, ...)                                  \\",
    "  (LIKELY((x) < %(size)du &&                                                 \\",
    "          %(table)s_static[x].type_class == terrarium_type_class[ft]) ||    \\",
    "       TRAP(CALL_INDIRECT),                                                  \\",
    "   ((t)%(table)s_static[x].func)(__VA_ARGS__))",
]
REGISTER_TYPE = re.compile(r"^  func_types\[(\d+)\] = wasm_rt_register_func_type\((.*)\);$")
TABLE_ALLOCATE = re.compile(r"^  wasm_rt_allocate_funcref_table\(&instance->(w2c_T[0-9]+), (\d+), (\d+)\);$")
ELEM_ARRAY = re.compile(r"^static const wasm_elem_segment_expr_t ([a-z0-9_]+)\[\] = \{$")
INDIRECT_INSTANCE = re.compile(r"instance->(w2c_T[0-9]+)\.data\[(w2c_[a-z0-9]+)\]\.module_instance")
# An elem segment entry: func type index, function, module offset.
ELEM_ENTRY = re.compile(r"^  \{(\d+), \(wasm_rt_function_ptr_t\)&(w2c_[A-Za-z0-9_]+), (\d+)\},$")
# funcref_table_init(table, segment, segment size, dest, src, count, ...)
TABLE_INIT = re.compile(r"^  funcref_table_init\(&instance->(w2c_T[0-9]+), ([a-z0-9_]+), (\d+), ([0-9u]+), ([0-9u]+), ([0-9u]+), instance, func_types\);$")
BARRIER = re.compile(r'^ *wasm_asm\(\"\" ::\"r\"\(result\)\); *\\$')
ACCESSOR = re.compile(r"^DEFINE_(LOAD|STORE)\(([a-z0-9_]+), ([a-z0-9]+), ([a-z0-9]+)(?:, ([a-z0-9]+))?\)$")


def fast_accessors(suffix, pointer):
    """C text of the unaligned, may_alias element types and of the macros
    DEFINE_LOAD_<suffix> / DEFINE_STORE_<suffix>, which access linear memory
    through `pointer`: a C pointer expression of `addr`, with %s where the
    element type goes."""
    types = ["typedef %s __attribute__((may_alias, aligned(1))) terrarium_u_%s;" % (t, t)
             for t in ("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64")]
    load = ["#define DEFINE_LOAD_%s(name, t1, t2, t3)" % suffix,
            "  static inline t3 name(wasm_rt_memory_t* mem, u64 addr) {",
            "    MEMCHECK(mem, addr, t1);",
            "    t1 result = *%s;" % (pointer % "const terrarium_u_##t1"),
            "    return (t3)(t2)result;",
            "  }"]
    store = ["#define DEFINE_STORE_%s(name, t1, t2)" % suffix,
             "  static inline void name(wasm_rt_memory_t* mem, u64 addr, t2 value) {",
             "    MEMCHECK(mem, addr, t1);",
             "    *%s = (t1)value;" % (pointer % "terrarium_u_##t1"),
             "  }"]
    macros = [[line.ljust(76) + "\\" for line in m[:-1]] + m[-1:] for m in (load, store)]
    return "\n".join(types + macros[0] + macros[1])


GS_PRELUDE = r"""
/* terrarium (tools/split_wasm2c.py --rewrite gs): linear memory through the
   x86-64 %gs segment; GS base == memory base, set by the runtime on entry. */
#if defined(__SEG_GS) && defined(__x86_64__) && !WABT_BIG_ENDIAN && \
    !defined(TERRARIUM_NO_SEG_GS)
#define TERRARIUM_MEM_DEFAULT(name) name##_gs
#else
#define TERRARIUM_MEM_DEFAULT(name) name##_plain
#endif
#define TERRARIUM_MEM(name) TERRARIUM_MEM_DEFAULT(name)
#if defined(__SEG_GS) && defined(__x86_64__) && !WABT_BIG_ENDIAN
@FAST_ACCESSORS@
#else
#define DEFINE_LOAD_GS(name, t1, t2, t3)
#define DEFINE_STORE_GS(name, t1, t2)
#endif
"""


BASEREG_PRELUDE = r"""
/* terrarium (tools/split_wasm2c.py --rewrite basereg): linear memory through
   a base register. r15 holds the memory base in all generated code (a global
   register variable: gcc never allocates it for anything else here); the
   exports set it from the instance on entry and give the caller's value back
   on return. Host code preserves r15 (callee-saved), so calls out to imports
   keep it. A dependent load through base+index costs what a native load
   does; through %gs it costs two cycles more. `volatile`: every access
   reads r15 itself. Without it gcc merges the reads of r15 into one value
   and copies it into other registers (or spills it), which costs a register
   besides r15 and splits read-modify-write instructions. */
#if defined(__GNUC__) && defined(__x86_64__) && !WABT_BIG_ENDIAN
#define TERRARIUM_BASE_REGISTER 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wvolatile-register-var"
register u8* volatile terrarium_memory_base __asm__("r15");
#pragma GCC diagnostic pop
#endif
#if defined(TERRARIUM_BASE_REGISTER) && !defined(TERRARIUM_NO_SEG_GS)
#define TERRARIUM_MEM_DEFAULT(name) name##_reg
#else
#define TERRARIUM_MEM_DEFAULT(name) name##_plain
#endif
#define TERRARIUM_MEM(name) TERRARIUM_MEM_DEFAULT(name)
#if defined(TERRARIUM_BASE_REGISTER)
@FAST_ACCESSORS@
#define TERRARIUM_ENTER_GUEST(instance)                  \
  u8* terrarium_caller_base = terrarium_memory_base;     \
  terrarium_memory_base = (instance)->w2c_memory.data
#define TERRARIUM_LEAVE_GUEST() terrarium_memory_base = terrarium_caller_base
#else
#define DEFINE_LOAD_REG(name, t1, t2, t3)
#define DEFINE_STORE_REG(name, t1, t2)
#define TERRARIUM_ENTER_GUEST(instance)
#define TERRARIUM_LEAVE_GUEST()
#endif
"""

# The two ways to address linear memory: name -> (accessor suffix, prelude,
# pointer to an element at `addr` (%s: its type), what the note calls it).
MEMORY_REWRITES = {
    "gs": ("GS", GS_PRELUDE, "(%s __seg_gs*)(uintptr_t)addr", "%gs"),
    "basereg": ("REG", BASEREG_PRELUDE, "(%s*)(terrarium_memory_base + addr)", "the base register"),
}


def rewrite_prelude(prelude, rewrites, functions):
    """Applies the prelude rewrites; returns (prelude, notes, the memory
    rewrite applied: "gs", "basereg" or None)."""
    notes = []
    if "nobarrier" in rewrites:
        kept = [line for line in prelude if not BARRIER.match(line)]
        removed = len(prelude) - len(kept)
        if removed == 0:
            fail("nobarrier: no load barrier found in the prelude")
        prelude = kept
        notes.append("nobarrier: %d barrier(s) removed" % removed)
    memory = [name for name in MEMORY_REWRITES if name in rewrites]
    if len(memory) > 1:
        fail("gs and basereg are two ways to address memory: pick one")
    if memory:
        kind_name = memory[0]
        macro, template, pointer, where = MEMORY_REWRITES[kind_name]
        suffix = macro.lower()
        accessors = [ACCESSOR.match(line) for line in prelude]
        names = [m.group(2) for m in accessors if m]
        if len(names) < 20:
            fail("%s: expected the DEFINE_LOAD/DEFINE_STORE accessor list, found %d"
                 % (kind_name, len(names)))
        memories = set()
        use = re.compile(r"\b(?:%s)\(&instance->(w2c_[A-Za-z0-9_]+)," % "|".join(names))
        for _, text in functions:
            memories.update(use.findall(text))
        if len(memories) > 1:
            notes.append("%s: not applied, functions use %d memories (%s)"
                         % (kind_name, len(memories), ", ".join(sorted(memories))))
            return prelude, notes, None
        first = next(i for i, m in enumerate(accessors) if m)
        text = template.replace("@FAST_ACCESSORS@", fast_accessors(macro, pointer))
        out = prelude[:first] + text.strip("\n").split("\n")
        selectors = []
        for line, m in zip(prelude[first:], accessors[first:]):
            if not m:
                out.append(line)
                continue
            kind, name = m.group(1), m.group(2)
            types = ", ".join(t for t in m.groups()[2:] if t)
            out.append("DEFINE_%s(%s_plain, %s)" % (kind, name, types))
            out.append("DEFINE_%s_%s(%s_%s, %s)" % (kind, macro, name, suffix, types))
            if kind == "LOAD":
                selectors.append("#define %s(mem, addr) TERRARIUM_MEM(%s)(mem, addr)" % (name, name))
            else:
                selectors.append("#define %s(mem, addr, value) TERRARIUM_MEM(%s)(mem, addr, value)"
                                 % (name, name))
        prelude = out + selectors
        notes.append("%s: %d accessors routed through %s" % (kind_name, len(names), where))
        return prelude, notes, kind_name
    return prelude, notes, None


MASK_LINE = re.compile(r"^ *(w2c_i[0-9]+) = ([0-9]+)u;$")
MAX_MASKED_TABLE = 4096


def masked_index(out, var):
    """(mask, offset, lines to drop) when the lines just before a br_table
    compute its index `var` as (x & mask) + offset with constants, mask one
    less than a power of two (clang's `switch (op & 255)` with its first case
    above 0 arrives so). None otherwise. The temporary that held the
    constants is dead after the br_table: it is above the index on the wasm
    stack, and a br_table consumes the stack."""
    def constant_op(k, op):
        if len(out) < k + 2:
            return None
        load, apply = MASK_LINE.match(out[-k - 2]), out[-k - 1].strip()
        if load and apply == "%s %s= %s;" % (var, op, load.group(1)) and load.group(1) != var:
            return int(load.group(2))
        return None
    offset = constant_op(0, "+")
    mask = constant_op(2, "&") if offset is not None else constant_op(0, "&")
    if mask is None or mask & (mask + 1) or mask + 1 > MAX_MASKED_TABLE:
        return None
    if offset is None:
        return mask, 0, 0
    return mask, offset, 2


LOOP_LABEL = re.compile(r"^ *w2c_L[0-9]+: ?$")
TEMP_FROM = re.compile(r"^ *(w2c_i[0-9]+) = (w2c_[lp][0-9]+|[0-9]+u);$")
LOCAL_FROM_TEMP = re.compile(r"^ *(w2c_[lp][0-9]+) = (w2c_i[0-9]+);$")
TEMP_OP = re.compile(r"^ *(w2c_i[0-9]+) (?:[-+*&|^]|<<|>>)= (w2c_i[0-9]+);$")


def loop_header(out, var):
    """(copies_start, index_start) when the lines just before a br_table are
    a loop's whole header: a loop label, then copies `local = local or
    constant` (each through a temporary), then the index computation,
    temporaries only. Both are indices into `out`: the first copy, and the
    first line of the index computation. None otherwise."""
    k = len(out)
    while k and (TEMP_FROM.match(out[k - 1]) or TEMP_OP.match(out[k - 1])):
        k -= 1
    first = TEMP_FROM.match(out[k]) if k < len(out) else None
    if not first or first.group(1) != var:
        return None
    reads = set()
    written = set()
    for line in out[k:]:
        load = TEMP_FROM.match(line)
        if load:
            if not load.group(2).endswith("u"):
                reads.add(load.group(2))
            written.add(load.group(1))
            continue
        op = TEMP_OP.match(line)
        if not {op.group(1), op.group(2)} <= written:
            return None  # the index reads a temporary set before it
    index_start = k
    copies = []
    while k >= 2 and LOCAL_FROM_TEMP.match(out[k - 1]) and TEMP_FROM.match(out[k - 2]):
        target = LOCAL_FROM_TEMP.match(out[k - 1])
        if TEMP_FROM.match(out[k - 2]).group(1) != target.group(2):
            return None
        copies.insert(0, target.group(1))
        k -= 2
    if not copies or not k or not LOOP_LABEL.match(out[k - 1]):
        return None
    if reads & set(copies):
        return None  # the index reads a local the header sets: keep the order
    return k, index_start


def thread_dispatch(text):
    """Turns each large br_table `switch` of gotos into a computed goto.

    wasm has no computed goto, so CPython's opcode dispatch arrives as one
    `switch` (one shared indirect jump). As `goto *table[x]`, gcc's
    duplicate-computed-gotos pass copies the jump into every handler that
    ends by jumping to the dispatch: one indirect jump per opcode, each with
    its own branch-predictor history, like native CPython's computed gotos.
    Same semantics: an index past the cases takes the default label.

    When the switch ends a loop header that first copies locals (clang's
    `l5 = l9; l7 = 2` before its opcode switch), the copies move behind the
    jump, into one small block per target that then jumps to it: each
    handler gets them on its own path, so gcc deletes the ones a handler
    never reads instead of doing them (and holding registers) on every
    dispatch. The index does not read the copied locals (checked), and the
    temporaries are dead after a br_table, so the order does not matter.
    """
    lines = text.split("\n")
    out = []
    count = 0
    i = 0
    while i < len(lines):
        m = SWITCH_OPEN.match(lines[i])
        if m:
            targets = []
            j = i + 1
            while j < len(lines):
                c = CF_CASE.match(lines[j])
                if not c or c.group(1) is None or int(c.group(1)) != len(targets):
                    break
                targets.append(c.group(2))
                j += 1
            d = CF_CASE.match(lines[j]) if j < len(lines) else None
            d = d if d and d.group(1) is None else None
            closing = lines[j + 1] if d and j + 1 < len(lines) else ""
            if (len(targets) >= MIN_THREADED_CASES and d and
                    closing.strip() == "}" and len(closing) - len(closing.lstrip()) == len(m.group(1))):
                indent, var = m.group(1), m.group(2)
                table = "w2c_dispatch%d" % count
                labels = targets + [d.group(2)]
                n = len(targets)
                masked = masked_index(out, var)
                if masked:
                    del out[len(out) - masked[2]:]
                header = loop_header(out, var)
                sunk = []
                if header:
                    sunk = [line.strip() for line in out[header[0]:header[1]]]
                    del out[header[0]:header[1]]
                out.append(indent + "{")
                if masked:
                    # The index is (x & mask) + offset: index the table by
                    # x & mask instead, entry v holding the label that
                    # (v + offset) chose. No add, no clamp: x & mask is in range.
                    mask, offset = masked[:2]
                    entries = [labels[min((v + offset) & 0xFFFFFFFF, n)] for v in range(mask + 1)]
                    index = var
                else:
                    # One more entry, the default: the index is clamped (a
                    # cmov, no branch) so the jump stays alone in its block.
                    entries = labels
                    index = "%s < %du ? %s : %du" % (var, n, var, n)
                trampoline = {}
                if sunk:
                    for label in entries:
                        trampoline.setdefault(label, "%s_%s" % (table, label))
                out.append(indent + "  static const void* const %s[%d] = {%s};"
                           % (table, len(entries), ", ".join("&&" + trampoline.get(t, t) for t in entries)))
                out.append(indent + "  goto *%s[%s];" % (table, index))
                for label, name in trampoline.items():
                    out.append(indent + "  %s: %s goto %s;" % (name, " ".join(sunk), label))
                out.append(indent + "}")
                count += 1
                i = j + 2
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out), count


# The statement forms of wasm2c's function bodies, one per line, as the
# dead-state analysis below reads them.
CF_LABEL = re.compile(r"^\s*(w2c_[A-Za-z0-9_]+):;?\s*$")
CF_TRAMPOLINE = re.compile(r"^\s*(w2c_[A-Za-z0-9_]+): (.*) goto (w2c_[A-Za-z0-9_]+);\s*$")
CF_GOTO = re.compile(r"^\s*goto (w2c_[A-Za-z0-9_]+);\s*$")
CF_IF_GOTO = re.compile(r"^\s*if \(.*\) \{goto (w2c_[A-Za-z0-9_]+);\}\s*$")
CF_IF_OPEN = re.compile(r"^\s*if \(.*\) \{\s*$")
CF_ELSE = re.compile(r"^\s*\} else \{\s*$")
CF_CLOSE = re.compile(r"^\s*\}\s*$")
CF_OPEN = re.compile(r"^\s*\{\s*$")
CF_SWITCH = re.compile(r"^\s*switch \(.*\) \{\s*$")
CF_CASE = re.compile(r"^\s*(?:case (\d+)|default): goto (w2c_[A-Za-z0-9_]+);\s*$")
CF_TABLE = re.compile(r"^\s*static const void\* const (w2c_[A-Za-z0-9_]+)\[\d+\] = \{(.*)\};\s*$")
CF_COMPUTED = re.compile(r"^\s*goto \*(w2c_[A-Za-z0-9_]+)\[.*\];\s*$")
CF_STOP = re.compile(r"^\s*(return\b.*|UNREACHABLE;|TRAP\(.*\);)\s*$")
ANY_LOCAL = re.compile(r"\bw2c_([lp][0-9]+)\b")
READ_LOCAL = re.compile(r"^\s*w2c_[ijfd][0-9]+ = w2c_([lp][0-9]+);$")
WRITE_LOCAL = re.compile(r"^\s*w2c_([lp][0-9]+) = w2c_([ijfd][0-9]+);$")
CONST_TEMP = re.compile(r"^\s*w2c_(i[0-9]+) = ([0-9]+)u;$")


def control_flow(lines, first):
    """Successors of each line of a function (lines[first:-1] are the body),
    and the case tables of its switches: ({line: [lines]}, {line: ({value:
    line}, default line)}). None for a construct this reader does not know."""
    labels = {}
    for k, line in enumerate(lines):
        m = CF_LABEL.match(line) or CF_TRAMPOLINE.match(line)
        if m:
            labels[m.group(1)] = k
    open_at, ends = [], {}
    for k in range(first, len(lines) - 1):
        line = lines[k]
        if CF_IF_OPEN.match(line) or CF_SWITCH.match(line) or CF_OPEN.match(line):
            open_at.append(k)
        elif CF_ELSE.match(line) or CF_CLOSE.match(line):
            if not open_at:
                return None
            ends.setdefault(open_at[-1], []).append(k)
            if CF_CLOSE.match(line):
                open_at.pop()
    if open_at:
        return None
    else_of, close_of = {}, {}
    for opener, where in ends.items():
        close_of[opener] = where[-1]
        if len(where) == 2:
            else_of[opener] = where[0]
            close_of[where[0]] = where[-1]
    succ, cases, tables = {}, {}, {}
    try:
        for k in range(first, len(lines) - 1):
            line = lines[k]
            if CF_TRAMPOLINE.match(line):
                succ[k] = [labels[CF_TRAMPOLINE.match(line).group(3)]]
            elif CF_LABEL.match(line) or CF_OPEN.match(line) or CF_CLOSE.match(line):
                succ[k] = [k + 1]
            elif CF_GOTO.match(line):
                succ[k] = [labels[CF_GOTO.match(line).group(1)]]
            elif CF_IF_GOTO.match(line):
                succ[k] = [labels[CF_IF_GOTO.match(line).group(1)], k + 1]
            elif CF_IF_OPEN.match(line):
                succ[k] = [k + 1, else_of[k] + 1 if k in else_of else close_of[k]]
            elif CF_ELSE.match(line):
                succ[k] = [close_of[k]]
            elif CF_SWITCH.match(line):
                table, default, j = {}, None, k + 1
                while CF_CASE.match(lines[j]):
                    m = CF_CASE.match(lines[j])
                    if m.group(1) is None:
                        default = labels[m.group(2)]
                    else:
                        table[int(m.group(1))] = labels[m.group(2)]
                    j += 1
                if default is None:
                    return None
                succ[k] = sorted(set(table.values()) | {default})
                cases[k] = (table, default)
            elif CF_CASE.match(line):
                succ[k] = [labels[CF_CASE.match(line).group(2)]]
            elif CF_TABLE.match(line):
                m = CF_TABLE.match(line)
                tables[m.group(1)] = [labels[x.strip()[2:]] for x in m.group(2).split(",")]
                succ[k] = [k + 1]
            elif CF_COMPUTED.match(line):
                succ[k] = sorted(set(tables[CF_COMPUTED.match(line).group(1)]))
            elif CF_STOP.match(line):
                succ[k] = []
            elif "goto" in line or "{" in line or "}" in line or re.match(r"^\s*w2c_\w+:", line):
                return None
            else:
                succ[k] = [k + 1]
    except KeyError:
        return None
    last = len(lines) - 1
    return {k: [t for t in v if t < last] for k, v in succ.items()}, cases


def liveness(nodes, successors, uses, defs):
    """Locals live on entry to each node (bitsets), by backward iteration."""
    live_in = dict.fromkeys(nodes, 0)
    preds = {x: [] for x in nodes}
    for x in nodes:
        for y in successors(x):
            preds[y].append(x)
    work = list(nodes)
    while work:
        x = work.pop()
        out = 0
        for y in successors(x):
            out |= live_in[y]
        new = uses(x) | (out & ~defs(x))
        if new != live_in[x]:
            live_in[x] = new
            work.extend(preds[x])
    return live_in


def dead_state_writes(text):
    """Adds `local = 0;` where a local is live only on paths the state
    variable of an irreducible-control-flow dispatcher rules out.

    LLVM makes irreducible control flow reducible with a state variable: a
    loop header `L: i0 = lS; switch (i0) {...}`, entered after `lS = C`. gcc's
    liveness is path-insensitive, so a local read after one case is also
    live wherever some other state enters the header. In CPython's eval loop
    that kept `opcode` live through the error handler's calls, so it was
    given a stack slot, stored and reloaded on every dispatch. Liveness on
    the product of the flow graph and the state's known value drops the
    switch edges a known state cannot take. After each `lS = C`, the locals
    live in the plain graph but dead on every path that can run get an
    explicit dead write, which ends their live range for gcc. The write is
    never read, so behaviour is unchanged. Returns (text, writes added);
    functions with a statement form the analysis does not model are left
    as they are."""
    if "switch (w2c_i0) {" not in text:
        return text, 0
    lines = text.split("\n")
    first = next((k + 1 for k, line in enumerate(lines) if line.strip() == "FUNC_PROLOGUE;"), None)
    if first is None:
        return text, 0
    machines = []
    for k in range(first, len(lines) - 3):
        if (CF_LABEL.match(lines[k]) and lines[k + 2].strip() == "switch (w2c_i0) {"):
            m = READ_LOCAL.match(lines[k + 1])
            if m and lines[k + 1].strip().startswith("w2c_i0 ="):
                machines.append((k + 2, m.group(1)))
    if not machines:
        return text, 0
    flow = control_flow(lines, first)
    if flow is None:
        return text, 0
    succ, cases = flow
    names = sorted(set(ANY_LOCAL.findall(text)))
    bit = {name: 1 << i for i, name in enumerate(names)}
    uses, defs = {}, {}
    for k in succ:
        line = lines[k]
        m = CF_TRAMPOLINE.match(line)
        statements = [s.strip() + ";" for s in m.group(2).split(";") if s.strip()] if m else [line]
        u = d = 0
        for statement in statements:
            if not ANY_LOCAL.search(statement):
                continue
            r, w = READ_LOCAL.match(statement), WRITE_LOCAL.match(statement)
            if r:
                u |= bit[r.group(1)] & ~d
            elif w:
                d |= bit[w.group(1)]
            else:
                return text, 0  # a local used in a form not modelled
        uses[k], defs[k] = u, d
    nodes = list(succ)
    plain = liveness(nodes, succ.__getitem__, uses.__getitem__, defs.__getitem__)
    kills = {}
    unknown = None
    for switch_line, var in machines:
        # The state after each line that writes it: the constant, or unknown.
        state_written = {}
        for k in succ:
            if defs[k] & bit[var]:
                w = WRITE_LOCAL.match(lines[k])
                c = CONST_TEMP.match(lines[k - 1]) if w and w.group(1) == var else None
                state_written[k] = int(c.group(2)) if c and c.group(1) == w.group(2) else unknown

        def product_successors(node, state_written=state_written, switch_line=switch_line):
            k, state = node
            after = state_written.get(k, state)
            if k == switch_line and state is not unknown:
                table, default = cases[k]
                targets = [table.get(state, default)]
            else:
                targets = succ[k]
            return [(t, after) for t in targets]

        # Locals start at 0 in wasm; parameters are unknown.
        start = (first, 0 if var.startswith("l") else unknown)
        reached, work = {start}, [start]
        while work:
            for y in product_successors(work.pop()):
                if y not in reached:
                    reached.add(y)
                    work.append(y)
        feasible = liveness(list(reached), product_successors,
                            lambda x: uses[x[0]], lambda x: defs[x[0]])
        live_after = {}
        for x in reached:
            out = 0
            for y in product_successors(x):
                out |= feasible[y]
            live_after[x[0]] = live_after.get(x[0], 0) | out
        for k, out in live_after.items():
            if state_written.get(k) is unknown:
                continue
            plain_out = 0
            for y in succ[k]:
                plain_out |= plain[y]
            dead = plain_out & ~out
            if dead:
                kills[k] = kills.get(k, 0) | dead
    if not kills:
        return text, 0
    out, added = [], 0
    for k, line in enumerate(lines):
        out.append(line)
        if k in kills:
            indent = line[:len(line) - len(line.lstrip())]
            for name in names:
                if kills[k] & bit[name]:
                    out.append("%sw2c_%s = 0;" % (indent, name))
                    added += 1
    return "\n".join(out), added


def own_table_calls(prelude, functions, main_items, declarations_out):
    """The `indirect` rewrite: call_indirect without the instance lookup.

    Applied only when it provably changes nothing: one funcref table, filled
    only by funcref_table_init with this instance, every elem segment entry
    is one of the module's own functions (module_offset 0), and functions
    touch the table only through CALL_INDIRECT (no table.set/grow/fill/copy).
    Returns (prelude, functions, note); unchanged with a note otherwise.
    """
    def skip(reason):
        return prelude, functions, "indirect: not applied, " + reason
    start = next((i for i, line in enumerate(prelude) if line == CALL_INDIRECT_DEF[0]), None)
    if start is None or prelude[start:start + len(CALL_INDIRECT_DEF)] != CALL_INDIRECT_DEF:
        return skip("CALL_INDIRECT macro not the expected wasm2c 1.0.32 one")
    tables = set()
    inits = 0
    entries = 0
    for line in main_items:
        if "funcref_table_init(" in line:
            m = TABLE_INIT.match(line)
            if not m:
                return skip("unexpected table initialisation: " + line.strip())
            tables.add(m.group(1))
            inits += 1
        if "wasm_rt_function_ptr_t" in line and line.startswith("  {"):
            m = ELEM_ENTRY.match(line)
            if not m or m.group(3) != "0":
                return skip("elem segment entry not an own function: " + line.strip())
            entries += 1
        if "externref_table" in line and "wasm_rt_allocate_externref_table" in line:
            return skip("module has an externref table")
    if len(tables) != 1 or not entries:
        return skip("expected one initialised funcref table, found %d" % len(tables))
    table = tables.pop()
    if ("  wasm_rt_allocate_funcref_table(&instance->%s," % table) not in "\n".join(main_items):
        return skip("table %s is not allocated by the module (imported?)" % table)
    rewritten = []
    calls = 0
    for name, text in functions:
        if "_table_" in text and re.search(r"\b(?:funcref|externref)_table_(?:grow|set|fill|copy|init)\b|wasm_rt_funcref_table_grow", text):
            return skip("%s changes a table" % name)
        new, count = INDIRECT_INSTANCE.subn(lambda m: "instance" if m.group(1) == table else m.group(0), text)
        rest = new.count("instance->" + table) - new.count("CALL_INDIRECT(instance->%s," % table)
        if rest or re.search(r"instance->w2c_T(?![0-9]*\b)", new) or any(
                t != table for t in re.findall(r"instance->(w2c_T[0-9]+)\b", new)):
            return skip("%s uses a table other than through CALL_INDIRECT" % name)
        calls += count
        rewritten.append((name, new))
    static = static_table(table, main_items)
    if isinstance(static, str):
        prelude = prelude[:start] + CALL_INDIRECT_OWN + prelude[start + len(CALL_INDIRECT_DEF):]
        how = "bounds + type check on the instance's table (no constant copy: %s)" % static
    else:
        size, declarations, definition = static
        macro = [line % {"table": table, "size": size} for line in CALL_INDIRECT_STATIC]
        prelude = prelude[:start] + macro + prelude[start + len(CALL_INDIRECT_DEF):]
        declarations_out.extend(declarations)
        main_items.extend(definition)
        how = "bounds + type check on a constant copy of the table (%d entries)" % size
    return prelude, rewritten, "indirect: %d call_indirect(s) on %s: caller's instance, %s (%d own elem entries)" % (calls, table, how, entries)


def static_table(table, main_items):
    """A constant copy of `table` for CALL_INDIRECT: (size, declarations for
    the shared header, definition for the main unit), or the reason there is
    none. Needs what own_table_calls has checked (own functions only, no
    table changes) and a table filled by one elem segment at a constant
    offset, with every func type a plain registered signature."""
    signatures = {}
    allocations = []
    inits = []
    arrays = {}
    current = None
    for line in main_items:
        if current is not None:
            if line == "};":
                current = None
                continue
            m = ELEM_ENTRY.match(line)
            if not m or m.group(3) != "0":
                return "unexpected elem segment entry: " + line.strip()
            arrays[current].append((int(m.group(1)), m.group(2)))
            continue
        m = ELEM_ARRAY.match(line)
        if m:
            current = m.group(1)
            arrays[current] = []
            continue
        m = REGISTER_TYPE.match(line)
        if m:
            signatures[int(m.group(1))] = m.group(2).replace(" ", "")
            continue
        if "wasm_rt_register_func_type" in line:
            return "unexpected func type registration: " + line.strip()
        m = TABLE_ALLOCATE.match(line)
        if m:
            allocations.append(m)
            continue
        if "funcref_table_init(" in line:
            m = TABLE_INIT.match(line)
            if not (m and re.fullmatch(r"\d+u", m.group(4)) and m.group(5).isdigit() and m.group(6).isdigit()):
                return "table filled at a non-constant offset"
            inits.append(m)
    if len(allocations) != 1 or allocations[0].group(1) != table:
        return "expected one allocation of " + table
    if len(inits) != 1 or len(arrays) != 1:
        return "expected one elem segment, found %d and %d initialisation(s)" % (len(arrays), len(inits))
    if sorted(signatures) != list(range(len(signatures))):
        return "func types not numbered 0..n-1"
    size = int(allocations[0].group(2))
    name, count, dest, src, n = inits[0].group(2), int(inits[0].group(3)), int(inits[0].group(4)[:-1]), int(inits[0].group(5)), int(inits[0].group(6))
    entries = arrays.get(name)
    if entries is None or len(entries) != count or src != 0 or n != count or dest + n > size:
        return "elem segment %s does not fill the table as expected" % name
    classes = {}
    type_class = []
    for index in range(len(signatures)):
        type_class.append(classes.setdefault(signatures[index], len(classes) + 1))
    if any(type_index >= len(type_class) for type_index, _ in entries):
        return "elem entry with an unknown func type"
    declarations = [
        "typedef struct { u32 type_class; wasm_rt_function_ptr_t func; } terrarium_table_entry_t;",
        "extern const terrarium_table_entry_t %s_static[%d];" % (table, size),
        "static const u32 terrarium_type_class[%d] = {%s};" % (len(type_class), ", ".join(map(str, type_class))),
    ]
    definition = ["const terrarium_table_entry_t %s_static[%d] = {" % (table, size)]
    definition += ["  [%d] = {%d, (wasm_rt_function_ptr_t)&%s}," % (dest + k, type_class[type_index], function)
                   for k, (type_index, function) in enumerate(entries)]
    definition.append("};")
    return size, declarations, definition


def fail(message):
    sys.stderr.write("split_wasm2c: error: %s\n" % message)
    sys.exit(1)


def split(source, header_name, parts, rewrites=()):
    lines = source.split("\n")
    try:
        state_index = lines.index(STATE_START)
    except ValueError:
        fail("marker %r not found: not wasm2c 1.0.32 output?" % STATE_START)

    prelude = lines[:state_index]
    include_line = '#include "%s"' % header_name
    if include_line not in prelude:
        fail("prelude does not include %s" % header_name)

    declarations = []
    declared = set()
    functions = []  # (name, text)
    main_items = [STATE_START]
    func_types_seen = False
    i = state_index + 1
    n = len(lines)
    while i < n:
        line = lines[i]
        match_types = FUNC_TYPES.match(line)
        if match_types:
            func_types_seen = True
            count = match_types.group(1)
            declarations.insert(0, "extern u32 func_types[%s];" % count)
            main_items.append("u32 func_types[%s];" % count)
            i += 1
            continue
        match_decl = FUNC_DECL.match(line)
        if match_decl:
            declarations.append(line[len("static "):])
            declared.add(match_decl.group(1))
            i += 1
            continue
        match_def = FUNC_DEF.match(line)
        if match_def:
            start = i
            i += 1
            while i < n and lines[i] != "}":
                i += 1
            if i >= n:
                fail("function %s has no closing brace" % match_def.group(1))
            body = lines[start:i + 1]
            body[0] = body[0][len("static "):]
            functions.append((match_def.group(1), "\n".join(body)))
            i += 1
            continue
        main_items.append(line)
        i += 1

    if not func_types_seen:
        fail("func_types array not found")
    if not functions:
        fail("no functions found")
    missing = [name for name, _ in functions if name not in declared]
    if missing:
        fail("functions without a prototype: %s" % ", ".join(missing[:5]))

    # Deal functions out by size, largest first, onto the lightest part.
    buckets = [[] for _ in range(parts)]
    weights = [0] * parts
    order = sorted(range(len(functions)), key=lambda k: -len(functions[k][1]))
    for k in order:
        lightest = weights.index(min(weights))
        buckets[lightest].append(k)
        weights[lightest] += len(functions[k][1])
    for bucket in buckets:
        bucket.sort()  # keep the original order inside a part

    prelude, notes, memory = rewrite_prelude(prelude, rewrites, functions)
    if "indirect" in rewrites:
        prelude, functions, note = own_table_calls(prelude, functions, main_items, declarations)
        notes.append(note)
    if memory == "basereg":
        main_items, wrapped = enter_guest_in_exports(main_items)
        notes.append("basereg: %d export(s) set the base register" % wrapped)
    if "threaded" in rewrites:
        converted = 0
        for index, (name, text) in enumerate(functions):
            if "switch (" in text:
                new_text, count = thread_dispatch(text)
                if count:
                    functions[index] = (name, new_text)
                    converted += count
        notes.append("threaded: %d dispatch switch(es) turned into computed gotos" % converted)
        writes = 0
        for index, (name, text) in enumerate(functions):
            new_text, count = dead_state_writes(text)
            if count:
                functions[index] = (name, new_text)
                writes += count
        notes.append("threaded: %d dead write(s) of locals live only on paths the dispatch state rules out"
                     % writes)
    return prelude, declarations, functions, buckets, main_items, notes


EXPORT_HEAD = re.compile(r"^(u32|u64|f32|f64|void) (Z_[A-Za-z0-9_]+)\((Z_[A-Za-z0-9_]+_instance_t\* instance(?:, [^)]*)?)\) \{$")
EXPORT_CALL = re.compile(r"^  return (w2c_[A-Za-z0-9_]+\(instance(?:, [^)]*)?\));$")
GUEST_CALL = re.compile(r"\bw2c_[A-Za-z0-9_]+\(")


def enter_guest_in_exports(main_items):
    """basereg: each exported function sets the base register on entry and
    gives the caller's value back before it returns. Fails if part 0 calls
    generated code anywhere else: that call would run without the base."""
    out = []
    wrapped = 0
    i = 0
    while i < len(main_items):
        head = EXPORT_HEAD.match(main_items[i])
        call = EXPORT_CALL.match(main_items[i + 1]) if head and i + 2 < len(main_items) else None
        if head and call and main_items[i + 2] == "}":
            result_type = head.group(1)
            out.append(main_items[i])
            out.append("  TERRARIUM_ENTER_GUEST(instance);")
            if result_type == "void":
                out.append("  %s;" % call.group(1))
                out.append("  TERRARIUM_LEAVE_GUEST();")
            else:
                out.append("  %s terrarium_result = %s;" % (result_type, call.group(1)))
                out.append("  TERRARIUM_LEAVE_GUEST();")
                out.append("  return terrarium_result;")
            out.append("}")
            wrapped += 1
            i += 3
            continue
        if GUEST_CALL.search(main_items[i]) and not main_items[i].lstrip().startswith(("[", "{", "/*")):
            fail("basereg: part 0 calls generated code outside an export wrapper "
                 "(it would run without the memory base): %r" % main_items[i][:120])
        out.append(main_items[i])
        i += 1
    if not wrapped:
        fail("basereg: no export wrapper found (not wasm2c 1.0.32 output?)")
    return out, wrapped


def parse_rewrites(text):
    items = [item.strip() for item in text.replace(";", ",").split(",")]
    items = [item for item in items if item and item != "none"]
    unknown = [item for item in items if item not in REWRITES]
    if unknown:
        fail("unknown rewrite(s) %s (known: %s)" % (", ".join(unknown), ", ".join(REWRITES)))
    return tuple(items)


def main():
    argv = sys.argv[1:]
    rewrites = parse_rewrites(os.environ.get("TERRARIUM_W2C_REWRITE", ""))
    if argv and argv[0].startswith("--rewrite"):
        if "=" in argv[0]:
            rewrites = parse_rewrites(argv[0].split("=", 1)[1])
            argv = argv[1:]
        elif len(argv) > 1:
            rewrites = parse_rewrites(argv[1])
            argv = argv[2:]
    if len(argv) != 4:
        fail("usage: split_wasm2c.py [--rewrite nobarrier,basereg,threaded,indirect] INPUT.c HEADER.h OUTDIR PARTS")
    input_path, header_path, outdir, parts = argv[0], argv[1], argv[2], int(argv[3])
    if parts < 1:
        fail("PARTS must be at least 1")
    with open(input_path) as f:
        source = f.read()
    header_name = os.path.basename(header_path)
    prelude, declarations, functions, buckets, main_items, notes = split(
        source, header_name, parts, rewrites)

    stem = os.path.splitext(os.path.basename(input_path))[0]
    shared_name = "%s_shared.h" % stem
    os.makedirs(outdir, exist_ok=True)

    def write(name, text):
        path = os.path.join(outdir, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    guard = re.sub(r"[^A-Za-z0-9]", "_", shared_name).upper()
    shared = ["/* Generated by tools/split_wasm2c.py from %s. */" % os.path.basename(input_path),
              "#ifndef %s" % guard, "#define %s" % guard]
    shared += prelude
    # After every system include (the prelude's), so libc stays visible.
    shared += ["#pragma GCC visibility push(hidden)"]
    shared += declarations
    shared += ["#pragma GCC visibility pop", "#endif"]
    write(shared_name, "\n".join(shared) + "\n")

    include = '#include "%s"\n' % shared_name
    write("%s_0.c" % stem, include + "\n".join(main_items) + "\n")
    for index, bucket in enumerate(buckets, start=1):
        body = "\n\n".join(functions[k][1] for k in bucket)
        write("%s_%d.c" % (stem, index), include + body + "\n")

    total = sum(len(text) for _, text in functions)
    sys.stderr.write("[engine] split %s: %d functions, %.1f MB into %d parts; rewrites: %s\n"
                     % (os.path.basename(input_path), len(functions), total / 1e6, parts,
                        "; ".join(notes) or "none"))


if __name__ == "__main__":
    main()
