# packaging: versions, specifiers, markers (explicit environments only: the
# guest's platform differs from the host's), requirements, utils.
from packaging.version import Version, InvalidVersion, parse
from packaging.specifiers import SpecifierSet, Specifier
from packaging.requirements import Requirement
from packaging.markers import Marker
from packaging.utils import canonicalize_name, canonicalize_version, parse_wheel_filename

vs = ["1.0", "1.0.post1", "1.0a1", "1.0rc2", "1.0.dev3", "2!0.1", "1.0+local.7", "1.10", "1.9"]
print(sorted(vs, key=Version))
v = Version("1.2.3rc1.post2.dev4+abc")
print(v.release, v.pre, v.post, v.dev, v.local, v.is_prerelease, v.base_version, v.public)
try:
    Version("not a version")
except InvalidVersion as e:
    print("InvalidVersion", e)
s = SpecifierSet(">=1.0,!=1.5.*,<2")
print(s, [x for x in ["0.9", "1.0", "1.5.2", "1.9", "2.0", "1.9rc1"] if x in s], list(s.filter(vs)))
print(Specifier("~=2.2").contains("2.3"), Specifier("==1.*").contains("1.4.2"), Specifier("==2.0.*").contains("2.0.0"))
r = Requirement('Name[foo,bar]>=2.0,<3; python_version >= "3.8" and os_name == "posix"')
print(r.name, sorted(r.extras), r.specifier, r.marker, r.url)
r2 = Requirement("pkg @ https://example.com/pkg-1.0.tar.gz")
print(r2.name, r2.url, str(r2))
m = Marker('python_version >= "3.8" and (sys_platform == "linux" or extra == "test")')
env = {"python_version": "3.11", "sys_platform": "win32", "extra": "test"}
print(m, m.evaluate(env), m.evaluate({**env, "extra": "", "sys_platform": "darwin"}))
print(canonicalize_name("Foo.Bar_baz"), canonicalize_version("1.0.0"))
name, ver, build, tags = parse_wheel_filename("pkg-1.0-py3-none-any.whl")
print(name, ver, build, sorted(str(t) for t in tags))
print(parse("1.0") < parse("1.0.post1"), max(map(Version, vs)))
