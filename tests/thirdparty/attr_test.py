# attrs: classes, validators, converters, asdict, evolve, frozen, slots.
import attr
import attrs

@attr.s(auto_attribs=True, order=True, frozen=True)
class Point:
    x: int = attr.ib(converter=int)
    y: int = attr.ib(default=0, validator=attr.validators.instance_of(int))

@attrs.define
class Box:
    name: str
    items: list = attrs.field(factory=list)
    size: int = attrs.field(default=1, validator=attrs.validators.gt(0))

    @size.validator
    def _check(self, attribute, value):
        if value > 100:
            raise ValueError("too big")

@attrs.frozen
class Frozen:
    a: int
    b: tuple = ()

p = Point("3", 4)
print(p, p == Point(3, 4), sorted([Point(2), Point(1, 5), Point(1, 2)]), hash(Point(1)) == hash(Point(1)))
print(attr.asdict(p), attr.astuple(p), attr.fields(Point).x.name, [a.name for a in attr.fields(Box)])
b = Box("b", size=3)
b.items.append(Point(1))
print(b, attrs.asdict(b), attrs.evolve(b, name="c"))
for bad in (lambda: Box("x", size=0), lambda: Box("x", size=1000), lambda: Point(1, "2")):
    try:
        bad()
    except (ValueError, TypeError) as e:
        print(type(e).__name__, str(e).split("\n")[0][:60])
f = Frozen(1, (2,))
try:
    f.a = 5
except attrs.exceptions.FrozenInstanceError as e:
    print("FrozenInstanceError", repr(e))
print(hasattr(Box("z"), "__dict__"), Box.__slots__, attr.has(Frozen), f)
