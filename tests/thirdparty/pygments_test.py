# Pygments: lexing and formatting several languages.
from pygments import highlight, lex
from pygments.formatters import HtmlFormatter, TerminalFormatter, LatexFormatter, RawTokenFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name, guess_lexer_for_filename, JsonLexer, CLexer
from pygments.styles import get_style_by_name

code = '''
@decorator
async def fetch(url: str, *, retries=3) -> bytes:
    """Docstring."""
    for i in range(retries):  # comment
        try:
            return await get(f"{url}?try={i!r}", timeout=1.5e3)
        except (IOError, ValueError) as exc:
            print(exc, file=sys.stderr)
    raise RuntimeError("gave up")
'''
print(highlight(code, PythonLexer(), HtmlFormatter(linenos="table", cssclass="src")))
print(highlight(code, PythonLexer(), TerminalFormatter()))
print(highlight('{"a": [1, 2.5, null, "x"]}', JsonLexer(), LatexFormatter()))
print(highlight("int main(void) { return 0; }", CLexer(), RawTokenFormatter()).decode())
print([(str(t), v) for t, v in lex("x = 1 + 2", get_lexer_by_name("python"))])
print(guess_lexer_for_filename("a.rs", "fn main() {}").name, get_lexer_by_name("yaml").name)
print(HtmlFormatter(style=get_style_by_name("monokai")).get_style_defs(".hl")[:600])
print(sorted(get_style_by_name("default").styles.items(), key=str)[:10])
