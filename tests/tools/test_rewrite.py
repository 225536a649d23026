#!/usr/bin/env python3
"""Tests tools/split_wasm2c.py's rewrites and tools/guest_cc.py's fallback
on a small wasm2c module (tests/engine/traps.wat).

  test_rewrite.py TRAPS_WASM.c TRAPS_WASM.h CC
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPLIT = os.path.join(ROOT, "tools", "split_wasm2c.py")
GUEST_CC = os.path.join(ROOT, "tools", "guest_cc.py")
SOURCE, HEADER, CC = sys.argv[1:4] if len(sys.argv) >= 4 else (None, None, "cc")

# A stand-in for a compiler that crashes: it "crashes" on w2c_load whenever
# that function would be compiled on the %gs path, else runs the real one.
FAKE_CC = r'''#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
src = args[args.index("-c") + 1]
text = open(src).read().split("\n")
mode = os.environ.get("FAKE_ICE", "named")
plain = "-DTERRARIUM_NO_SEG_GS" in args
for i, line in enumerate(text):
    if line.startswith("u32 w2c_load(") and i and "name##_plain" in text[i - 1]:
        plain = True
if not plain:
    if mode == "named":
        sys.stderr.write("%s: In function 'w2c_load':\n%s:5:1: internal compiler error: in "
                         "fake_forwprop, at tree-ssa-forwprop.cc:1\n" % (src, src))
    else:
        sys.stderr.write("during GIMPLE pass: forwprop\ninternal compiler error: Segmentation fault\n")
    sys.exit(1)
os.execvp(sys.argv[0] + ".real", [sys.argv[0] + ".real"] + args)
'''


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def disassemble(obj):
    out = run(["objdump", "-d", obj]).stdout
    functions = {}
    name = None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\w+)>:$", line)
        if m:
            name = m.group(1)
            functions[name] = []
        elif name:
            functions[name].append(line)
    return {k: "\n".join(v) for k, v in functions.items()}


class Rewrite(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rewrite-test-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def split(self, rewrite, parts=1):
        out = os.path.join(self.dir, rewrite.replace(",", "_") or "none")
        r = run([sys.executable, SPLIT, "--rewrite", rewrite or "none", SOURCE, HEADER, out, str(parts)])
        self.assertEqual(r.returncode, 0, r.stderr)
        shutil.copy(HEADER, out)
        return out, r.stderr

    def compile(self, unit, extra=(), launcher=None):
        obj = unit + ".o"
        cmd = [CC, "-O2", "-w", "-c", unit, "-o", obj] + list(extra)
        if launcher:
            cmd = [sys.executable, GUEST_CC] + launcher + ["--"] + cmd
        r = run(cmd)
        return r, obj

    def test_none_is_the_plain_split(self):
        out, log = self.split("")
        text = open(os.path.join(out, "traps_wasm_shared.h")).read()
        self.assertIn('wasm_asm("" ::"r"(result));', text)
        self.assertNotIn("__seg_gs", text)
        r, obj = self.compile(os.path.join(out, "traps_wasm_1.c"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("%gs", disassemble(obj)["w2c_load"])

    def test_nobarrier_removes_every_barrier(self):
        out, log = self.split("nobarrier")
        self.assertIn("nobarrier: 2 barrier(s) removed", log)
        text = open(os.path.join(out, "traps_wasm_shared.h")).read()
        self.assertNotIn('wasm_asm("" ::"r"(result));', text)
        r, obj = self.compile(os.path.join(out, "traps_wasm_1.c"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def split_memory_rewrite(self, rewrite):
        """Splits with `rewrite` (gs or basereg), compiles the functions'
        unit; returns (output dir, split log, unit, its disassembly)."""
        out, log = self.split("nobarrier," + rewrite)
        self.assertIn("%s: 23 accessors" % rewrite, log)
        unit = os.path.join(out, "traps_wasm_1.c")
        r, obj = self.compile(unit)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out, log, unit, disassemble(obj)

    def test_gs_addresses_memory_through_the_segment(self):
        out, log, unit, code = self.split_memory_rewrite("gs")
        for name in ("w2c_load", "w2c_store", "w2c_load_offset"):
            self.assertIn("%gs:", code[name], name)
            self.assertNotIn("0x8(%rdi)", code[name], name)  # no memory base load
        r, obj = self.compile(unit, ["-DTERRARIUM_NO_SEG_GS"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("%gs", disassemble(obj)["w2c_load"])

    def test_basereg_addresses_memory_through_r15(self):
        out, log, unit, code = self.split_memory_rewrite("basereg")
        self.assertIn("basereg: 15 export(s) set the base register", log)
        for name in ("w2c_load", "w2c_store", "w2c_load_offset"):
            # (load_offset's offset, 0xfffffff0, is too large for a
            # displacement: r15 is added to the index first.)
            pattern = r"%r15" if name == "w2c_load_offset" else r"\(%r15,%r[a-z0-9]+,1\)"
            self.assertRegex(code[name], pattern, name)
            self.assertNotIn("%gs", code[name], name)
            self.assertNotIn("0x8(%rdi)", code[name], name)  # no memory base load
        # No function may use r15 for anything else (it is reserved), nor
        # copy it: every access reads r15 itself.
        for name, text in code.items():
            self.assertNotRegex(text, r"(mov|lea|add|sub|xor|push|pop)\w* +[^,]*,%r15\b", name)
            self.assertNotRegex(text, r"mov +%r15,", name)
        # The exports set r15 from the instance and give the caller's back.
        r, obj = self.compile(os.path.join(out, "traps_wasm_0.c"))
        self.assertEqual(r.returncode, 0, r.stderr)
        export = disassemble(obj)["Z_trapsZ_load"]
        self.assertRegex(export, r"mov +%r15,%r[a-z0-9]+")  # saved
        self.assertRegex(export, r"mov +0x[0-9a-f]+\(%r[a-z]+\),%r15")  # set from the instance
        self.assertRegex(export, r"mov +%r(?!15)[a-z0-9]+,%r15")  # restored
        # The plain fallback still compiles, without touching r15.
        r, obj = self.compile(unit, ["-DTERRARIUM_NO_SEG_GS"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("%r15,", disassemble(obj)["w2c_load"])

    def test_basereg_and_gs_exclude_each_other(self):
        r = run([sys.executable, SPLIT, "--rewrite", "gs,basereg", SOURCE, HEADER,
                 os.path.join(self.dir, "both"), "1"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("pick one", r.stderr)

    def test_basereg_refuses_a_guest_call_outside_an_export(self):
        # A call into generated code from part 0 that is not an export
        # wrapper would run with whatever r15 the host left there.
        text = open(SOURCE).read()
        marker = "static void init_memories("
        self.assertIn(marker, text)
        text = text.replace(marker, "static void sneaky(Z_traps_instance_t* instance) {\n"
                            "  w2c_recurse(instance, 1);\n}\n\n" + marker, 1)
        source = os.path.join(self.dir, "traps_wasm.c")
        with open(source, "w") as f:
            f.write(text)
        r = run([sys.executable, SPLIT, "--rewrite", "basereg", source, HEADER,
                 os.path.join(self.dir, "sneaky"), "1"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("outside an export wrapper", r.stderr)

    def dispatch_function(self, index_lines, cases):
        """A wasm2c-shaped function whose br_table picks one of `cases`
        labels (plus a default) from an index computed by `index_lines`."""
        lines = ["typedef unsigned int u32;", "u32 pick(u32 w2c_p0) {",
                 "  u32 w2c_i0, w2c_i1;", "  w2c_i0 = w2c_p0;"]
        lines += ["  " + l for l in index_lines]
        lines.append("  switch (w2c_i0) {")
        lines += ["    case %d: goto w2c_B%d;" % (k, k) for k in range(cases)]
        lines += ["    default: goto w2c_Bdefault;", "  }"]
        for k in range(cases):
            lines += ["  w2c_B%d:;" % k, "  return %du;" % (k * 7 + 3)]
        lines += ["  w2c_Bdefault:;", "  return 1u;", "}"]
        return "\n".join(lines)

    def run_dispatch(self, name, text, inputs):
        source = os.path.join(self.dir, name + ".c")
        with open(source, "w") as f:
            f.write(text + "\n#include <stdio.h>\nint main(void) {\n")
            for x in inputs:
                f.write("  printf(\"%%u\\n\", pick(%du));\n" % x)
            f.write("  return 0;\n}\n")
        r = run([CC, "-O2", "-w", source, "-o", source + ".exe"])
        self.assertEqual(r.returncode, 0, r.stderr)
        return run([source + ".exe"]).stdout

    def test_threaded_dispatch_picks_the_same_labels(self):
        sys.path.insert(0, os.path.dirname(SPLIT))
        import split_wasm2c
        inputs = list(range(0, 600)) + [0xFFFFFFFF, 0xFFFFFF00, 0x80000001, 65535, 65536]
        shapes = {
            # clang's opcode switch: (op & 255) - 1, the default past the cases
            "masked_offset": (["w2c_i1 = 255u;", "w2c_i0 &= w2c_i1;",
                               "w2c_i1 = 4294967295u;", "w2c_i0 += w2c_i1;"], 200, True),
            "masked_positive_offset": (["w2c_i1 = 127u;", "w2c_i0 &= w2c_i1;",
                                        "w2c_i1 = 3u;", "w2c_i0 += w2c_i1;"], 100, True),
            "masked": (["w2c_i1 = 255u;", "w2c_i0 &= w2c_i1;"], 70, True),
            "mask_smaller_than_table": (["w2c_i1 = 63u;", "w2c_i0 &= w2c_i1;"], 100, True),
            # not a power-of-two mask, or an unmasked index: the clamped table
            "not_a_mask": (["w2c_i1 = 200u;", "w2c_i0 &= w2c_i1;"], 70, False),
            "unmasked": (["w2c_i1 = 5u;", "w2c_i0 += w2c_i1;"], 70, False),
            "shifted": (["w2c_i1 = 255u;", "w2c_i0 &= w2c_i1;",
                         "w2c_i1 = 1u;", "w2c_i0 <<= (w2c_i1 & 31);"], 70, False),
        }
        for name, (index_lines, cases, folded) in shapes.items():
            with self.subTest(name):
                original = self.dispatch_function(index_lines, cases)
                threaded, count = split_wasm2c.thread_dispatch(original)
                self.assertEqual(count, 1)
                self.assertNotIn("switch", threaded)
                clamped = "w2c_i0 < %du ?" % cases in threaded
                self.assertEqual(not clamped, folded, threaded[-2000:])
                if folded:
                    self.assertNotIn("w2c_i0 += w2c_i1;", threaded)
                expected = self.run_dispatch(name + "_switch", original, inputs)
                self.assertEqual(len(expected.split()), len(inputs))
                self.assertEqual(self.run_dispatch(name + "_threaded", threaded, inputs), expected)

    def loop_function(self, header, cases):
        """A wasm2c-shaped interpreter loop: the header copies locals, then
        dispatches on the low byte of l1; handlers read the copies, shift
        l1 and loop, or return a value made of what they saw."""
        lines = ["typedef unsigned int u32;", "u32 pick(u32 w2c_p0) {",
                 "  u32 w2c_i0, w2c_i1, w2c_l1 = 0, w2c_l2 = 0, w2c_l3 = 0, w2c_l4 = 0;",
                 "  w2c_l1 = w2c_p0;", "  w2c_L0: "]
        lines += ["    " + l for l in header]
        lines.append("    switch (w2c_i0) {")
        lines += ["      case %d: goto w2c_B%d;" % (k, k) for k in range(cases)]
        lines += ["      default: goto w2c_Bdefault;", "    }"]
        for k in range(cases):
            lines.append("    w2c_B%d:;" % k)
            if k % 3 == 0:
                lines += ["    w2c_l4 += w2c_l2 * %du + w2c_l3;" % (k + 1), "    w2c_l1 >>= 8;",
                          "    w2c_l3 = w2c_l1 & 3u;", "    if (w2c_l1) goto w2c_L0;"]
            elif k % 3 == 1:
                lines += ["    w2c_l2 = w2c_l1 + 5u;", "    w2c_l1 >>= 4;", "    if (w2c_l1) goto w2c_L0;"]
            lines.append("    return w2c_l4 * 31u + w2c_l3 * 7u + w2c_l2 + %du;" % k)
        lines += ["    w2c_Bdefault:;", "    return w2c_l4 + w2c_l2;", "}"]
        return "\n".join(lines)

    def test_threaded_loop_header_copies_sink_into_the_targets(self):
        sys.path.insert(0, os.path.dirname(SPLIT))
        import split_wasm2c
        inputs = list(range(0, 300)) + [0x12345678, 0xFFFFFFFF, 0x80808080, 0x00C0FFEE, 0x03030303, 0x01040700]
        copies = ["w2c_i0 = w2c_l1;", "w2c_l2 = w2c_i0;", "w2c_i0 = 2u;", "w2c_l3 = w2c_i0;"]
        shapes = {
            "copies_then_masked_offset": (copies + ["w2c_i0 = w2c_l1;", "w2c_i1 = 255u;", "w2c_i0 &= w2c_i1;",
                                                     "w2c_i1 = 4294967295u;", "w2c_i0 += w2c_i1;"], 200, True),
            "copies_then_plain_index": (copies + ["w2c_i0 = w2c_l1;"], 70, True),
            # The index reads l3, which the header sets: nothing may move.
            "index_reads_a_copy": (copies + ["w2c_i0 = w2c_l3;", "w2c_i1 = w2c_l1;", "w2c_i0 += w2c_i1;"], 70, False),
            # The index reads a temporary the header left: nothing may move.
            "index_reads_a_header_temp": (copies + ["w2c_i1 = w2c_l1;", "w2c_i0 += w2c_i1;"], 70, False),
        }
        for name, (header, cases, sinks) in shapes.items():
            with self.subTest(name):
                original = self.loop_function(header, cases)
                threaded, count = split_wasm2c.thread_dispatch(original)
                self.assertEqual(count, 1)
                jump = threaded.index("goto *w2c_dispatch0[")
                self.assertEqual("w2c_l3 = w2c_i0;" in threaded[:jump], not sinks)
                self.assertEqual("w2c_dispatch0_w2c_B0: w2c_i0 = w2c_l1; w2c_l2 = w2c_i0;" in threaded, sinks)
                expected = self.run_dispatch(name + "_switch", original, inputs)
                self.assertEqual(len(expected.split()), len(inputs))
                self.assertEqual(self.run_dispatch(name + "_threaded", threaded, inputs), expected)

    def state_function(self, state1_reads_first):
        """An irreducible-control-flow dispatcher as LLVM lowers it: a loop
        header switching on a state local (l1). State 0 reads l2 (`opcode`);
        state 1 (the error path) rewrites l2 before it dispatches state 0
        again, unless `state1_reads_first`."""
        state1 = ["    w2c_B1:;"]
        if state1_reads_first:
            state1 += ["    w2c_i0 = w2c_l2;", "    w2c_i1 = w2c_l3;", "    w2c_i0 += w2c_i1;", "    w2c_l3 = w2c_i0;"]
        state1 += ["    w2c_i0 = w2c_l3;", "    w2c_i1 = 3u;", "    w2c_i0 *= w2c_i1;", "    w2c_l2 = w2c_i0;",
                   "    w2c_i0 = 0u;", "    w2c_l1 = w2c_i0;", "    goto w2c_L0;"]
        lines = ["typedef unsigned int u32;", "#define FUNC_PROLOGUE", "u32 pick(u32 w2c_p0) {",
                 "  u32 w2c_l1 = 0, w2c_l2 = 0, w2c_l3 = 0, w2c_l4 = 0;", "  FUNC_PROLOGUE;",
                 "  u32 w2c_i0, w2c_i1;",
                 "  w2c_i0 = w2c_p0;", "  w2c_l2 = w2c_i0;", "  w2c_i0 = 0u;", "  w2c_l1 = w2c_i0;",
                 "  w2c_L0: ", "    w2c_i0 = w2c_l1;", "    switch (w2c_i0) {",
                 "      case 0: goto w2c_B0;", "      default: goto w2c_B1;", "    }",
                 "    w2c_B0:;",
                 "    w2c_i0 = w2c_l4;", "    w2c_i1 = 1u;", "    w2c_i0 += w2c_i1;", "    w2c_l4 = w2c_i0;",
                 "    w2c_i1 = 9u;", "    w2c_i0 = w2c_i0 > w2c_i1;", "    if (w2c_i0) {goto w2c_Bdone;}",
                 "    w2c_i0 = w2c_l2;", "    w2c_i1 = 7u;", "    w2c_i0 &= w2c_i1;", "    w2c_l3 = w2c_i0;",
                 "    w2c_i1 = 5u;", "    w2c_i0 = w2c_i0 < w2c_i1;", "    if (w2c_i0) {goto w2c_Bnext;}",
                 "    w2c_i0 = 1u;", "    w2c_l1 = w2c_i0;", "    goto w2c_L0;",
                 "    w2c_Bnext:;", "    w2c_i0 = w2c_l2;", "    w2c_i1 = 1u;", "    w2c_i0 >>= (w2c_i1 & 31);",
                 "    w2c_i1 = w2c_l3;", "    w2c_i0 += w2c_i1;", "    w2c_l2 = w2c_i0;", "    goto w2c_L0;"]
        lines += state1
        lines += ["    w2c_Bdone:;", "  w2c_i0 = w2c_l2;", "  w2c_i1 = w2c_l3;", "  w2c_i0 ^= w2c_i1;",
                  "  return w2c_i0;", "}"]
        return "\n".join(lines)

    def test_dead_state_writes_end_live_ranges_the_state_rules_out(self):
        sys.path.insert(0, os.path.dirname(SPLIT))
        import split_wasm2c
        inputs = list(range(0, 400)) + [0xFFFFFFFF, 0x80000000, 0x12345678, 0xDEADBEEF]
        for reads_first, killed in ((False, True), (True, False)):
            with self.subTest(state1_reads_first=reads_first):
                original = self.state_function(reads_first)
                rewritten, count = split_wasm2c.dead_state_writes(original)
                # After `l1 = 1`, l2 is live only through the header's case 0,
                # which state 1 cannot take; when state 1 reads l2 first, it is
                # really live and nothing may be added.
                self.assertEqual("w2c_l2 = 0;" in rewritten, killed, rewritten)
                self.assertEqual(count > 0, killed)
                if killed:
                    after = rewritten.index("w2c_i0 = 1u;\n    w2c_l1 = w2c_i0;\n    w2c_l2 = 0;")
                    self.assertGreater(after, 0)
                name = "state_reads_first" if reads_first else "state"
                expected = self.run_dispatch(name + "_original", original, inputs)
                self.assertEqual(len(expected.split()), len(inputs))
                self.assertEqual(self.run_dispatch(name + "_rewritten", rewritten, inputs), expected)

    def test_dead_state_writes_leave_unknown_forms_alone(self):
        sys.path.insert(0, os.path.dirname(SPLIT))
        import split_wasm2c
        original = self.state_function(False)
        # A local read inside an expression: not a form the analysis models.
        odd = original.replace("    w2c_i0 = w2c_l3;\n    w2c_i1 = 3u;", "    w2c_i0 = w2c_l3 + 0u;\n    w2c_i1 = 3u;")
        self.assertNotEqual(odd, original)
        self.assertEqual(split_wasm2c.dead_state_writes(odd), (odd, 0))

    def test_indirect_passes_the_callers_instance(self):
        out, log = self.split("nobarrier,gs,indirect")
        self.assertIn("indirect: 1 call_indirect(s) on w2c_T0", log)
        self.assertIn("constant copy of the table (4 entries)", log)
        text = open(os.path.join(out, "traps_wasm_shared.h")).read()
        self.assertIn("(x) < 4u &&", text)
        self.assertIn("w2c_T0_static[x].type_class == terrarium_type_class[ft]) ||", text)
        self.assertNotIn("table.data[x]", text)
        # $binary and $binary_again share a class; $unary has its own.
        classes = re.search(r"terrarium_type_class\[\d+\] = \{([0-9, ]+)\}", text).group(1).split(", ")
        with open(os.path.join(out, "traps_wasm_0.c")) as f:
            main = f.read()
        elem = re.search(r"elem_segment_exprs_w2c_e0\[\] = \{\n(.*?)\n\};", main, re.S).group(1)
        functions = re.findall(r"&(w2c_\w+), 0\}", elem)
        entries = re.findall(r"\[(\d+)\] = \{(\d+), \(wasm_rt_function_ptr_t\)&(w2c_\w+)\}", main)
        self.assertEqual(len(functions), 3)
        self.assertEqual([(int(k), f) for k, _, f in entries], list(enumerate(functions)))
        self.assertEqual(entries[0][1], entries[2][1])
        self.assertNotEqual(entries[0][1], entries[1][1])
        self.assertNotIn("0", classes)
        unit = os.path.join(out, "traps_wasm_1.c")
        body = open(unit).read()
        self.assertNotIn(".module_instance", body)
        self.assertIn("CALL_INDIRECT(instance->w2c_T0,", body)
        r, obj = self.compile(unit)
        self.assertEqual(r.returncode, 0, r.stderr)

    def split_changed(self, name, pattern, replacement, count=0):
        """The test module with one edit (re.sub, which must change it),
        split with the `indirect` rewrite into NAME/: (out dir, result)."""
        source = os.path.join(self.dir, name + ".c")
        with open(SOURCE) as f:
            text = f.read()
        changed = re.sub(pattern, replacement, text, count=count)
        self.assertNotEqual(changed, text)
        with open(source, "w") as f:
            f.write(changed)
        out = os.path.join(self.dir, name)
        r = run([sys.executable, SPLIT, "--rewrite", "indirect", source, HEADER, out, "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        return out, r

    def test_indirect_without_a_constant_table_keeps_the_instance_table(self):
        # An elem segment that does not become the table as a whole (here:
        # only part of it copied): call_indirect keeps reading the
        # instance's table, still without the instance lookup.
        out, r = self.split_changed("offset", r"(funcref_table_init\(&instance->w2c_T0, \w+, 3, 0u, 0, )3,", r"\g<1>2,")
        self.assertIn("no constant copy: elem segment elem_segment_exprs_w2c_e0 does not fill the table as expected", r.stderr)
        with open(os.path.join(out, "offset_shared.h")) as f:
            shared = f.read()
        self.assertIn("table.data[x].func_type == func_types[ft]) ||", shared)
        self.assertNotIn("_static", shared)

    def test_indirect_is_skipped_for_foreign_table_entries(self):
        # An elem entry with a non-zero module offset (another instance's
        # function): the rewrite must leave the module alone.
        out, r = self.split_changed("foreign", r"(\(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, )0\}", r"\g<1>8}", count=1)
        self.assertIn("indirect: not applied", r.stderr)
        self.assertIn(".module_instance", open(os.path.join(out, "foreign_1.c")).read())

    def fake_cc(self):
        path = os.path.join(self.dir, "fake-cc")
        with open(path, "w") as f:
            f.write(FAKE_CC)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        os.symlink(shutil.which(CC) or CC, path + ".real")
        return path

    def compile_through_a_crash(self):
        """Compiles the gs split's functions with a compiler that crashes on
        w2c_load; returns (output dir, unit, the command, its result)."""
        out, _ = self.split("nobarrier,gs")
        unit = os.path.join(out, "traps_wasm_1.c")
        fake = self.fake_cc()
        cmd = [sys.executable, GUEST_CC, "--", fake, "-O2", "-w", "-c", unit, "-o", unit + ".o"]
        r = run(cmd)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out, unit, cmd, r

    def test_compiler_crash_falls_back_for_that_function_only(self):
        out, unit, cmd, r = self.compile_through_a_crash()
        self.assertIn("w2c_load", r.stderr)
        self.assertNotIn("fake_forwprop", r.stderr)  # the crash itself is not replayed
        code = disassemble(unit + ".o")
        self.assertNotIn("%gs", code["w2c_load"])       # fell back
        self.assertIn("%gs:", code["w2c_store"])        # the rest did not
        self.assertIn("%gs:", code["w2c_load_offset"])
        self.assertIn("w2c_load", open(unit + ".o.fallback").read())
        # The next build starts from the recorded list: no crash, no retry.
        r = run(cmd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("retrying", r.stderr)
        self.assertIn("on the plain memory path: w2c_load", r.stderr)

    def test_recorded_fallback_is_dropped_when_the_shared_header_changes(self):
        # The functions' text is the same under every memory rewrite; only the
        # shared header differs. A list recorded under one must not carry over.
        out, unit, cmd, r = self.compile_through_a_crash()
        self.assertIn("w2c_load", open(unit + ".o.fallback").read())
        header = os.path.join(out, "traps_wasm_shared.h")
        with open(header, "a") as f:
            f.write("/* another rewrite */\n")
        r = run([sys.executable, GUEST_CC, "--", CC, "-O2", "-w", "-c", unit, "-o", unit + ".o"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("plain memory path", r.stderr)
        self.assertIn("%gs:", disassemble(unit + ".o")["w2c_load"])

    def test_unnamed_crash_compiles_the_whole_unit_plain(self):
        out, _ = self.split("nobarrier,gs")
        unit = os.path.join(out, "traps_wasm_1.c")
        fake = self.fake_cc()
        r = run([sys.executable, GUEST_CC, "--", fake, "-O2", "-w", "-c", unit, "-o", unit + ".o"],
                env=dict(os.environ, FAKE_ICE="unnamed"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("whole unit", r.stderr)
        code = disassemble(unit + ".o")
        self.assertNotIn("%gs", code["w2c_store"])

    def test_real_errors_are_not_retried(self):
        bad = os.path.join(self.dir, "bad.c")
        with open(bad, "w") as f:
            f.write("int f(void) { return undefined_name; }\n")
        r = run([sys.executable, GUEST_CC, "--", CC, "-c", bad, "-o", bad + ".o"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("undefined_name", r.stderr)
        self.assertNotIn("retrying", r.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
