# MarkupSafe (its C speedups cannot load in the guest: the pure-Python
# fallback must give the same results).
import markupsafe
from markupsafe import Markup, escape, escape_silent, soft_str

print(escape("<a href='x'>\"Tom & Jerry\"</a>"))
print(repr(escape_silent(None)), repr(escape(None)))
m = Markup("<em>%s</em>") % "<b>bold</b>"
print(m, type(m).__name__)
print(Markup("<p>{0}: {name}</p>").format("<1>", name="&amp;"))
print(Markup("Hello &amp; <b>World</b> &lt;!&gt;").striptags())
print(Markup("&lt;&#39;&#x41;&gt;").unescape())
print(Markup("a") + "<b>", "<b>" + Markup("a"), Markup(" , ").join(["<x>", Markup("<y>")]))
print(Markup("<i>x</i>").split(">"), Markup("abc").upper(), Markup("%(a)s") % {"a": "<>"})
class Thing:
    def __html__(self):
        return "<thing/>"
print(escape(Thing()), Markup(Thing()), soft_str(5) + "x")
print(escape(3.5), escape(b"<bytes>"), len(escape("&" * 1000)))
print(Markup("<a>").__html_format__("") if hasattr(Markup, "__html_format__") else "n/a")
