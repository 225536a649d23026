# Jinja2: inheritance, macros, filters, autoescaping, loops, custom filters.
import jinja2

templates = {
    "base.html": """<!doctype html>
<title>{% block title %}Default{% endblock %}</title>
<body>{% block body %}{% endblock %}</body>""",
    "macros.html": """{% macro row(item, loop) -%}
<tr class="{{ loop.cycle('odd', 'even') }}"><td>{{ loop.index }}</td><td>{{ item.name|title }}</td><td>{{ '%.2f'|format(item.price) }}</td></tr>
{%- endmacro %}""",
    "page.html": """{% extends "base.html" %}{% from "macros.html" import row %}
{% block title %}{{ title|upper }} &mdash; {{ items|length }} items{% endblock %}
{% block body %}
<p>{{ note }}</p>
<table>{% for item in items|sort(attribute='price', reverse=true) %}
{{ row(item, loop) }}{% endfor %}
</table>
Total: {{ items|sum(attribute='price')|round(2) }}; cheap: {{ items|selectattr('price', 'lt', 2)|map(attribute='name')|join(', ') }}
{% set groups = items|groupby('kind') %}{% for g in groups %}{{ g.grouper }}={{ g.list|length }} {% endfor %}
{{ "a-b-c"|replace("-", "+") }} {{ [3,1,2]|sort|list }} {{ {'b':1,'a':2}|dictsort }} {{ "x"|shout }}
{% endblock %}""",
}
env = jinja2.Environment(loader=jinja2.DictLoader(templates),
                         autoescape=jinja2.select_autoescape(["html"]),
                         undefined=jinja2.StrictUndefined)
env.filters["shout"] = lambda s: s.upper() + "!"
items = [dict(name="apple pie", price=3.5, kind="food"), dict(name="tea", price=1.25, kind="drink"),
         dict(name="bread", price=1.99, kind="food"), dict(name="<script>", price=0.5, kind="x")]
print(env.get_template("page.html").render(title="shop", items=items, note="5 > 3 & 'quotes'"))
try:
    env.from_string("{{ missing.attr }}").render()
except jinja2.UndefinedError as e:
    print("UndefinedError:", e)
try:
    env.from_string("{% for x in %}")
except jinja2.TemplateSyntaxError as e:
    print("TemplateSyntaxError:", e.lineno, e.message)
sandboxed = __import__("jinja2.sandbox", fromlist=["x"]).SandboxedEnvironment()
try:
    sandboxed.from_string("{{ ''.__class__.__mro__ }}").render()
except jinja2.exceptions.SecurityError as e:
    print("SecurityError:", e)
print(jinja2.Template("{{ n }} {{ n is even }} {{ range(n)|list }}").render(n=4))
print(env.from_string("{% filter upper %}{{ 'é'|e }}{% endfilter %}").render())
