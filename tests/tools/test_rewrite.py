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

    def test_gs_addresses_memory_through_the_segment(self):
        out, log = self.split("nobarrier,gs")
        self.assertIn("gs: 23 accessors", log)
        unit = os.path.join(out, "traps_wasm_1.c")
        r, obj = self.compile(unit)
        self.assertEqual(r.returncode, 0, r.stderr)
        code = disassemble(obj)
        for name in ("w2c_load", "w2c_store", "w2c_load_offset"):
            self.assertIn("%gs:", code[name], name)
            self.assertNotIn("0x8(%rdi)", code[name], name)  # no memory base load
        r, obj = self.compile(unit, ["-DTERRARIUM_NO_SEG_GS"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("%gs", disassemble(obj)["w2c_load"])

    def test_indirect_passes_the_callers_instance(self):
        out, log = self.split("nobarrier,gs,indirect")
        self.assertIn("indirect: 1 call_indirect(s) on w2c_T0", log)
        text = open(os.path.join(out, "traps_wasm_shared.h")).read()
        self.assertIn("table.data[x].func_type == func_types[ft]) ||", text)
        self.assertNotIn("table.data[x].func &&", text)
        unit = os.path.join(out, "traps_wasm_1.c")
        body = open(unit).read()
        self.assertNotIn(".module_instance", body)
        self.assertIn("CALL_INDIRECT(instance->w2c_T0,", body)
        r, obj = self.compile(unit)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_indirect_is_skipped_for_foreign_table_entries(self):
        # An elem entry with a non-zero module offset (another instance's
        # function): the rewrite must leave the module alone.
        source = os.path.join(self.dir, "foreign.c")
        text = open(SOURCE).read()
        changed = re.sub(r"(\(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, )0\}", r"\g<1>8}", text, count=1)
        self.assertNotEqual(changed, text)
        with open(source, "w") as f:
            f.write(changed)
        out = os.path.join(self.dir, "foreign")
        r = run([sys.executable, SPLIT, "--rewrite", "indirect", source, HEADER, out, "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("indirect: not applied", r.stderr)
        self.assertIn(".module_instance", open(os.path.join(out, "foreign_1.c")).read())

    def fake_cc(self):
        path = os.path.join(self.dir, "fake-cc")
        with open(path, "w") as f:
            f.write(FAKE_CC)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        os.symlink(shutil.which(CC) or CC, path + ".real")
        return path

    def test_compiler_crash_falls_back_for_that_function_only(self):
        out, _ = self.split("nobarrier,gs")
        unit = os.path.join(out, "traps_wasm_1.c")
        fake = self.fake_cc()
        cmd = [sys.executable, GUEST_CC, "--", fake, "-O2", "-w", "-c", unit, "-o", unit + ".o"]
        r = run(cmd)
        self.assertEqual(r.returncode, 0, r.stderr)
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
