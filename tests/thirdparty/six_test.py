# six: the Python 2/3 compatibility layer.
import six
from six.moves import range, zip, urllib, configparser, queue, reduce
from six.moves.urllib.parse import urlencode, urlparse

print(six.PY3, six.string_types, six.integer_types, six.text_type, six.binary_type)
print(list(range(3)), list(zip("ab", [1, 2])), reduce(lambda a, b: a * b, [1, 2, 3, 4]))
print(urlparse("http://u:p@host:8/p;x?q=1#f"), urlencode({"a": "b c", "d": "é"}))
print(six.ensure_str(b"bytes"), six.ensure_binary("text"), six.ensure_text(b"\xc3\xa9"))
print(six.b("x"), six.u("y"), six.int2byte(65), six.byte2int(b"B"), six.indexbytes(b"abc", 1))
print(list(six.iteritems({"k": 1})), list(six.iterkeys({"k": 1})), six.get_function_name(print) if hasattr(six, "get_function_name") else "")

class Meta(type):
    def __new__(mcs, name, bases, ns):
        ns["tag"] = name.lower()
        return super().__new__(mcs, name, bases, ns)

@six.add_metaclass(Meta)
class A(object):
    pass

class B(six.with_metaclass(Meta, object)):
    pass
print(A.tag, B.tag, type(A).__name__, type(B).__name__)

@six.python_2_unicode_compatible
class S(object):
    def __str__(self):
        return "S!"
print(str(S()))
try:
    try:
        raise KeyError("inner")
    except KeyError as e:
        six.raise_from(ValueError("outer"), e)
except ValueError as e:
    print(repr(e), repr(e.__cause__))
q = queue.Queue()
q.put(1)
print(q.get(), configparser.ConfigParser().sections(), six.moves.builtins.len("abc"))
print(six.StringIO("x").read(), six.BytesIO(b"y").read(), six.next(iter([7])), six.callable(len))
