# PyYAML (pure Python: the libyaml extension cannot load in the guest).
import datetime
import yaml

doc = """
# an invoice
invoice: 34843
date: 2001-01-23
bill-to: &id001
  given: Chris
  family: Dumars
  address:
    lines: |
      458 Walkman Dr.
      Suite #292
    city: Royal Oak
    state: MI
    postal: 48046
ship-to: *id001
product:
  - sku: BL394D
    quantity: 4
    description: Basketball
    price: 450.00
  - {sku: BL4438H, quantity: 1, description: Super Hoop, price: 2392.00}
tax: 251.42
total: 4443.52
flags: [yes, no, on, off, ~, .inf, -.Inf, 0x1F, 0o17, 1_000, 1e3]
when: 2001-12-14t21:59:43.10-05:00
folded: >
  one
  two

  three
---
second: document
"""
docs = list(yaml.safe_load_all(doc))
print(docs[0]["bill-to"] is docs[0]["ship-to"], docs[0]["date"], type(docs[0]["date"]).__name__)
print(docs[0]["flags"])
print(repr(docs[0]["when"]), repr(docs[0]["folded"]), docs[1])
print(yaml.safe_dump(docs[0], sort_keys=True, default_flow_style=False, allow_unicode=True))
print(yaml.dump({"z": [1, {"a": None}], "é": "ü", "t": (1, 2), "s": {3}}, sort_keys=True))

class Point(yaml.YAMLObject):
    yaml_tag = "!Point"
    yaml_loader = yaml.SafeLoader
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __repr__(self):
        return f"Point({self.x}, {self.y})"
print(yaml.safe_load("- !Point {x: 1, y: 2}\n- !Point {x: 3, y: 4}"))
print(yaml.dump(Point(5, 6)))
try:
    yaml.safe_load("key: [unclosed")
except yaml.YAMLError as e:
    print("YAMLError:", str(e).splitlines()[0], e.problem_mark.line, e.problem_mark.column)
try:
    yaml.safe_load("!!python/object/apply:os.system ['echo hi']")
except yaml.constructor.ConstructorError as e:
    print("ConstructorError:", e.problem)
events = [type(e).__name__ for e in yaml.parse("a: [1, 2]")]
print(events)
big = {f"k{i}": list(range(i % 7)) for i in range(300)}
print(yaml.safe_load(yaml.safe_dump(big)) == big, len(yaml.safe_dump(big)))
