# The eval loop's less travelled paths, run natively and in the sandbox by
# tests/thirdparty/compare.py (--script): the two outputs must be identical.
#
# guest/patches/ changes how the translated eval loop finds the opcode of a
# specialised instruction that misses (`miss:`) and lets the frame and code
# tuples vary between instructions. This drives those paths: every family of
# 3.11's specialised instructions is warmed up with one kind of operand until it
# specialises, then fed other kinds so that it deoptimises (and, after enough
# misses, re-specialises); calls and returns switch frames in one eval loop;
# generators resume and throw; tracing turns the specialised forms off;
# EXTENDED_ARG prefixes large opargs.
import sys

WARM = 120  # 3.11 specialises after a few dozen runs; be well past it
results = []


def record(name, value):
    results.append("%s: %r" % (name, value))


# --- attributes: LOAD_ATTR_{INSTANCE_VALUE,SLOT,WITH_HINT,MODULE}, STORE_ATTR_*
class Plain:
    def __init__(self, v):
        self.v = v


class Slotted:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


class Prop:
    @property
    def v(self):
        return -1


def read_v(objs):
    total = 0
    for o in objs:
        total += o.v
    return total


def write_v(objs, k):
    for o in objs:
        o.v = k


many = [Plain(i) for i in range(WARM)]
record("attr warm", read_v(many))
wide = Plain(5)
for i in range(40):
    setattr(wide, "x%d" % i, i)  # dict no longer a shared-key layout
record("attr mixed", read_v(many + [Slotted(7), wide, Prop(), Slotted(8)] + many[:10]))
write_v(many, 3)
write_v([Slotted(0), wide], 4)
record("attr store", (read_v(many), wide.v))
record("module attr", [sys.maxsize > 0 for _ in range(WARM)].count(True))


# --- globals and builtins: LOAD_GLOBAL_{MODULE,BUILTIN}
def use_globals():
    return len(many) + GLOBAL_K


GLOBAL_K = 1
record("global warm", sum(use_globals() for _ in range(WARM)))
GLOBAL_K = 2
import builtins  # noqa: E402

real_len = builtins.len
builtins.len = lambda x: 1000
try:
    record("global rebound", (use_globals(), use_globals()))
finally:
    builtins.len = real_len
record("global restored", use_globals())


# --- arithmetic, comparison, subscripts: BINARY_OP_*, COMPARE_OP_*, BINARY_SUBSCR_*
def mix(a, b):
    return (a + b, a - b, a * b, a < b, a == b)


out = [mix(i, i + 1) for i in range(WARM)]
out += [mix(1.5, 2), mix(2**70, 3), mix(True, 2.5), mix(3, 1.25), mix(-(2**40), 2**40)]
out += [mix(i, i) for i in range(10)]
record("binary ops", (len(out), out[-16:]))


def add(a, b):
    return a + b


pairs = [(i, 2) for i in range(WARM)] + [("a", "b"), ((1,), (2,)), ([1], [2]), (1.5, 2), (2**64, 1)]
record("add mixed", [add(a, b) for a, b in pairs][-6:])


def subscript(c, k):
    return c[k]


lst = list(range(50))
record("subscr warm", sum(subscript(lst, i % 50) for i in range(WARM)))
record("subscr mixed", [subscript(c, k) for c, k in
                        [(lst, 3), ({"a": 1}, "a"), ((9, 8), 1), ("xyz", 2), (lst, -1), (range(9), 4)]])


def store_subscript(c, k, v):
    c[k] = v
    return c


record("store subscr", [store_subscript(lst, i % 50, i) for i in range(WARM)][-1][:5])
record("store subscr mixed", (store_subscript({}, "k", 1), store_subscript(bytearray(3), 1, 65)))


# --- unpacking: UNPACK_SEQUENCE_{TWO_TUPLE,TUPLE,LIST}
def unpack(seq):
    a, b = seq
    return b - a


record("unpack", (sum(unpack((i, 2 * i)) for i in range(WARM)),
                  unpack([1, 5]), unpack(range(3, 5)), unpack(iter((7, 9)))))


# --- calls: PRECALL_*/CALL_* with Python functions, builtins, methods, classes
def add3(a, b=1, c=2):
    return a + b + c


class Callable:
    def __call__(self, a, b=0):
        return a * 10 + b


def call(f, *args):
    return f(*args)


def call_two(f, a, b):
    return f(a, b)


record("call warm", sum(call_two(add3, i, 1) for i in range(WARM)))
record("call mixed", [call_two(f, 3, 4) for f in (add3, max, Callable(), divmod, pow, complex, add3)])
record("call star", [call(f, 2) for f in (add3, abs, str, Callable(), [0, 2, 2].count)])
record("method calls", sum(len("ab".upper()) + [1, 2].index(2) for _ in range(WARM)))


# --- frames: deep Python-to-Python calls, returns and exceptions across them
def depth(n):
    if n == 0:
        raise ValueError("bottom")
    try:
        return depth(n - 1)
    finally:
        results.append("unwound %d" % n) if n % 100 == 0 else None


try:
    depth(350)
except ValueError as e:
    record("exception through frames", str(e))


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


record("fib", fib(20))


# --- generators: resume, send, throw, close, yield from
def counter(n):
    total = 0
    try:
        for i in range(n):
            got = yield i
            if got:
                total += got
    except KeyError as e:
        yield ("thrown", e.args[0], total)
    finally:
        results.append("counter closed at total %d" % total)


g = counter(10)
record("gen first", next(g))
record("gen send", [g.send(k) for k in (5, 6, 7)])
record("gen throw", g.throw(KeyError("k")))
g.close()


def chain(*its):
    for it in its:
        yield from it


record("yield from", sum(chain(range(WARM), (x * x for x in range(WARM)), counter(20))))


# --- tracing: specialised instructions must not run while a tracer is set
events = []


def tracer(frame, event, arg):
    if frame.f_code.co_name == "traced":
        events.append(event)
    return tracer


def traced(objs):
    s = 0
    for o in objs:
        s += o.v
    return s


for _ in range(3):
    traced(many)  # specialised first
sys.settrace(tracer)
try:
    record("traced result", traced(many[:5] + [Slotted(9)]))
finally:
    sys.settrace(None)
record("trace events", (len(events), events[:4], events[-2:]))
record("after trace", traced(many))

# --- EXTENDED_ARG: opargs over 255 (many constants, names and far jumps)
source = "def big(x):\n    r = 0\n" + "".join(
    "    if x == %d: r += %d\n" % (i, i * 7 + 1000) for i in range(400)) + "    return r\n"
namespace = {}
exec(source, namespace)
big = namespace["big"]
record("extended arg", [big(i) for i in (0, 255, 256, 399, 500)] + [sum(big(i) for i in range(400))])

print("\n".join(results))
