#!/usr/bin/env python3
"""Compiler launcher for the translated guest: routes around compiler crashes.

CMake runs it as the C compiler launcher of the guest's units:

    guest_cc.py [LAUNCHER...] -- COMPILER ARGS...      (e.g. "-- ccache gcc ...")
    guest_cc.py -- gcc -O2 -c part.c -o part.o ...

The parts written by `split_wasm2c.py --rewrite gs` address linear memory
through the %gs segment, and gcc 12.2 has been seen to crash (internal compiler
error in forwprop) on a handful of functions with `__seg_gs` (the same scheme
serves `--rewrite basereg`, whose fast path is the r15 base). When the compile
fails with an internal compiler error, this script:

  1. reads the function gcc names ("In function 'w2c_NAME'"), brackets that
     function in a copy of the unit with PLAIN_BEGIN/PLAIN_END (below: it then
     uses the plain mem->data path), and compiles the copy instead;
     repeated for up to MAX_FUNCTIONS functions;
  2. if gcc names no function, or keeps crashing, compiles the whole unit with
     -DTERRARIUM_NO_SEG_GS (all plain);
  3. any other failure (a real error) is passed through unchanged.

The copy is kept next to the unit (`part.c.fallback.c`, so Ninja's depfile
stays valid), the functions that fell back are listed in `OBJ.fallback` and
reported on stderr, and the next build of the same unit starts from that list.
Nothing is hard-coded: which functions fall back is decided by the compiler.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

MAX_FUNCTIONS = 16
ICE = "internal compiler error"
IN_FUNCTION = re.compile(r"In function [\u2018'`](w2c_[A-Za-z0-9_]+)[\u2019']")
PLAIN_BEGIN = ["#undef TERRARIUM_MEM", "#define TERRARIUM_MEM(name) name##_plain"]
PLAIN_END = ["#undef TERRARIUM_MEM", "#define TERRARIUM_MEM(name) TERRARIUM_MEM_DEFAULT(name)"]


def log(message):
    sys.stderr.write("[guest_cc] %s\n" % message)


def compile_with(command):
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def bracket(source_lines, names):
    """Returns the unit with each named function bracketed by PLAIN_BEGIN/END."""
    out = []
    inside = False
    found = set()
    definition = re.compile(r"^[A-Za-z0-9_]+ (w2c_[A-Za-z0-9_]+)\((?!.*;$)")
    for line in source_lines:
        if not inside:
            m = definition.match(line)
            if m and m.group(1) in names:
                out.extend(PLAIN_BEGIN)
                found.add(m.group(1))
                inside = True
        out.append(line)
        if inside and line == "}":
            out.extend(PLAIN_END)
            inside = False
    return out, found


LOCAL_INCLUDE = re.compile(rb'^#include "([^"]+)"', re.M)


def source_digest(source, data):
    """Hash of the unit and of the headers it includes from its own folder
    (the split's shared header: the memory rewrite lives there). A recorded
    fallback list is only reused for the same digest, so switching rewrites
    (gs to basereg, say) tries every function on the fast path again."""
    digest = hashlib.sha256(data)
    folder = os.path.dirname(os.path.abspath(source))
    for name in LOCAL_INCLUDE.findall(data):
        try:
            with open(os.path.join(folder, name.decode(errors="replace")), "rb") as f:
                digest.update(b"\0" + name + b"\0" + f.read())
        except OSError:
            pass
    return digest.hexdigest()


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: guest_cc.py [LAUNCHER...] -- COMPILER ARGS...")
    split = argv.index("--")
    command = [arg for arg in argv[:split] if arg] + argv[split + 1:]
    try:
        source_index = command.index("-c") + 1
        source = command[source_index]
        output = command[command.index("-o") + 1]
    except (ValueError, IndexError):
        os.execvp(command[0], command)  # not a plain compile: nothing to do

    with open(source, "rb") as f:
        data = f.read()
    digest = source_digest(source, data)
    record_path = output + ".fallback"
    fallback_source = source + ".fallback.c"
    lines = data.decode(errors="replace").split("\n")

    names = []
    try:
        with open(record_path) as f:
            record = json.load(f)
        if record.get("source_sha256") == digest:
            names = record.get("functions", [])
    except (OSError, ValueError):
        pass

    def attempt(function_names, whole_unit_plain=False):
        if whole_unit_plain:
            cmd = command + ["-DTERRARIUM_NO_SEG_GS"]
        elif function_names:
            bracketed, _ = bracket(lines, set(function_names))
            text = "\n".join(bracketed)
            if not os.path.exists(fallback_source) or open(fallback_source).read() != text:
                with open(fallback_source, "w") as f:
                    f.write(text)
            cmd = list(command)
            cmd[source_index] = fallback_source
        else:
            cmd = command
        return compile_with(cmd)

    status, out, err = attempt(names if names != ["*"] else [], names == ["*"])
    tried = set(names)
    whole = names == ["*"]
    while status != 0 and ICE in err and not whole:
        crashed = IN_FUNCTION.findall(err)
        new = [name for name in crashed if name not in tried]
        if not new or len(tried) >= MAX_FUNCTIONS:
            log("%s: gcc crashed (%s); compiling the whole unit on the plain memory path"
                % (os.path.basename(source), "no function named" if not new else "too many"))
            names = ["*"]
            whole = True
            status, out, err = attempt([], True)
            break
        function = new[-1]
        tried.add(function)
        names = sorted(tried)
        log("%s: gcc crashed (internal compiler error) on %s with the memory rewrite; "
            "retrying it on the plain memory path" % (os.path.basename(source), function))
        status, out, err = attempt(names)

    sys.stdout.write(out)
    sys.stderr.write(err if status != 0 else "".join(
        line for line in err.splitlines(True) if ICE not in line))
    if status == 0:
        if names:
            log("%s: on the plain memory path: %s" % (os.path.basename(source),
                                                       "whole unit" if whole else ", ".join(names)))
        record = {"source_sha256": digest, "functions": names}
        if names or os.path.exists(record_path):
            with open(record_path, "w") as f:
                json.dump(record, f)
    return status


if __name__ == "__main__":
    sys.exit(main())
