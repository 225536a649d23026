# Python-Markdown with its bundled extensions.
import markdown

text = """
Title {#top}
=====

[TOC]

Some *emphasis*, **strong**, `code`, a [link](http://example.com "t") and <b>html</b> & entities &copy;.

## Lists

1. one
2. two
    * nested
    * list

> quote with a [ref][1]

| a | b |
|---|:-:|
| 1 | 2 |

```python
print("fenced")
```

Term
:   Definition

Footnote here[^1].

*[HTML]: Hyper Text Markup Language

[1]: http://ref.example "Ref"
[^1]: The note.
"""
md = markdown.Markdown(extensions=["toc", "tables", "fenced_code", "def_list", "footnotes", "abbr",
                                   "attr_list", "sane_lists", "smarty", "admonition"])
print(md.convert(text))
print(md.toc)
print(markdown.markdown("!!! note \"Hi\"\n    body", extensions=["admonition"]))
print(markdown.markdown("    indented code\n\n---\n\n<div>raw</div>"))
print(markdown.markdown("line  \nbreak", output_format="html"))
