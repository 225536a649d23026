// Python compatibility of the guest (issue 5), end to end through `terrarium
// run`: sqlite3, zoneinfo, and absent modules failing with ImportError.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "terrarium_process.h"

namespace {

namespace fs = std::filesystem;
using terrarium::testing::read_all;
using terrarium::testing::RunResult;
using terrarium::testing::TempDir;
using terrarium::testing::terrarium;

// --dir and --env are repeatable (the compatibility suites need several).
TEST(Compat, RepeatedDirAndEnvOptions) {
  TempDir a, b;
  a.write("a.txt", "A");
  b.write("b.txt", "B");
  RunResult r = terrarium({"run", "--dir", a.path() + "::/a:ro", "--dir", b.path() + "::/b", "--env",
                           "X=1", "--env", "Y=2", "-c",
                           "import os; print(open('/a/a.txt').read() + open('/b/b.txt').read(), "
                           "sorted(os.environ.items()))"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "AB [('X', '1'), ('Y', '2')]\n");
}

TEST(Compat, Sqlite3InMemory) {
  RunResult r = terrarium({"run", "-c", R"PY(
import sqlite3
db = sqlite3.connect(":memory:")
db.execute("create table t (id integer primary key, name text, score real)")
db.executemany("insert into t (name, score) values (?, ?)", [("a", 1.5), ("b", 2.5), ("c", None)])
print(db.execute("select count(*), sum(score), group_concat(name, '|') from t").fetchone())
db.execute("create virtual table docs using fts5(body)")
db.execute("insert into docs values ('the quick brown fox'), ('lazy dogs sleep')")
print(db.execute("select body from docs where docs match 'quick'").fetchall())
print(db.execute("select json_extract('{\"a\": [1, 2]}', '$.a[1]'), sqrt(16.0)").fetchone())
db.create_function("twice", 1, lambda x: x * 2)
print(db.execute("select twice(score) from t where name = 'b'").fetchone()[0])
print(db.execute("pragma journal_mode").fetchone()[0], sqlite3.sqlite_version)
try:
    db.execute("pragma journal_mode=wal").fetchone()
    print(db.execute("pragma journal_mode").fetchone()[0])
    db.execute("select * from missing")
except sqlite3.OperationalError as e:
    print("OperationalError:", e)
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "(3, 4.0, 'a|b|c')\n[('the quick brown fox',)]\n(2, 4.0)\n5.0\nmemory 3.40.1\n"
            "memory\nOperationalError: no such table: missing\n");
}

TEST(Compat, Sqlite3FileOnWritableMountPersists) {
  TempDir dir;
  const char* script = R"PY(
import os, sqlite3, sys
db = sqlite3.connect("/data/app.db")
db.execute("create table if not exists runs (n integer)")
db.execute("insert into runs values ((select count(*) from runs) + 1)")
db.commit()
with db:
    db.executemany("insert into runs values (?)", [(100,), (200,)])
try:
    with db:
        db.execute("insert into runs values (999)")
        raise RuntimeError("roll back")
except RuntimeError:
    pass
print(db.execute("select group_concat(n) from runs").fetchone()[0], db.execute("pragma journal_mode").fetchone()[0])
db.close()
print(sorted(os.listdir("/data")))
)PY";
  RunResult first = terrarium({"run", "--dir", dir.path() + "::/data", "-c", script});
  EXPECT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out, "1,100,200 delete\n['app.db']\n");
  RunResult second = terrarium({"run", "--dir", dir.path() + "::/data", "-c", script});
  EXPECT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.out, "1,100,200,4,100,200 delete\n['app.db']\n");
  EXPECT_TRUE(fs::exists(dir.path() + "/app.db"));
  // The same file on a read-only mount: readable, and writes fail with
  // Python's exception.
  RunResult ro = terrarium({"run", "--dir", dir.path() + "::/data:ro", "-c", R"PY(
import sqlite3
db = sqlite3.connect("file:/data/app.db?mode=ro", uri=True)
print(db.execute("select count(*) from runs").fetchone()[0])
try:
    db.execute("insert into runs values (1)")
except sqlite3.OperationalError as e:
    print("OperationalError:", e)
try:
    sqlite3.connect("/data/new.db").execute("create table x (y)")
except sqlite3.OperationalError as e:
    print("OperationalError:", e)
)PY"});
  EXPECT_EQ(ro.status, 0) << ro.err;
  EXPECT_EQ(ro.out,
            "6\nOperationalError: attempt to write a readonly database\n"
            "OperationalError: unable to open database file\n");
}

TEST(Compat, ZoneinfoUsesTheEmbeddedTzdata) {
  std::ifstream zi("/usr/share/zoneinfo/tzdata.zi");
  std::string version_line;
  std::getline(zi, version_line);  // "# version 2025b"
  std::string version = version_line.substr(version_line.rfind(' ') + 1);
  RunResult r = terrarium({"run", "-c", R"PY(
import datetime, zoneinfo, tzdata
ny = zoneinfo.ZoneInfo("America/New_York")
t = datetime.datetime(2024, 3, 10, 6, 59, tzinfo=datetime.timezone.utc)
for minutes in (0, 1):
    local = (t + datetime.timedelta(minutes=minutes)).astimezone(ny)
    print(local.isoformat(), local.tzname())
print(datetime.datetime(2024, 7, 1, tzinfo=zoneinfo.ZoneInfo("Australia/Lord_Howe")).utcoffset())
print(len(zoneinfo.available_timezones()) > 400, "Europe/Berlin" in zoneinfo.available_timezones())
try:
    zoneinfo.ZoneInfo("Mars/Olympus_Mons")
except zoneinfo.ZoneInfoNotFoundError as e:
    print("ZoneInfoNotFoundError")
print(tzdata.IANA_VERSION)
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "2024-03-10T01:59:00-05:00 EST\n2024-03-10T03:00:00-04:00 EDT\n10:30:00\nTrue True\n"
            "ZoneInfoNotFoundError\n" + version + "\n");
}

// asyncio's event loop runs without its socketpair() self-pipe on WASI
// (guest/stage-stdlib.sh): coroutines, timers, queues and timeouts work.
TEST(Compat, AsyncioEventLoopRuns) {
  RunResult r = terrarium({"run", "-c", R"PY(
import asyncio
async def worker(q, n):
    await asyncio.sleep(0.01 * n)
    await q.put(n * n)
async def main():
    q = asyncio.Queue()
    await asyncio.gather(*(worker(q, n) for n in range(5)))
    r = sorted([q.get_nowait() for _ in range(5)])
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.05)
    except asyncio.TimeoutError:
        r.append("timeout")
    return r
print(asyncio.run(main()))
loop = asyncio.new_event_loop()
print(loop.run_until_complete(asyncio.sleep(0, "again")))
loop.close()
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[0, 1, 4, 9, 16, 'timeout']\nagain\n");
  EXPECT_EQ(r.err, "");
}

// Modules WASI cannot provide: importing them is a normal ImportError (or
// ModuleNotFoundError), never a trap; the process goes on afterwards.
TEST(Compat, AbsentModulesRaiseImportError) {
  RunResult r = terrarium({"run", "-c", R"PY(
absent = ["ssl", "_ssl", "_hashlib", "ctypes", "_ctypes", "_tkinter", "tkinter", "turtle",
          "curses", "_curses", "_curses_panel", "readline", "_multiprocessing",
          "multiprocessing.synchronize", "multiprocessing.shared_memory", "_posixshmem",
          "fcntl", "mmap", "grp", "pwd", "resource", "termios", "tty", "pty", "syslog",
          "_gdbm", "dbm.gnu", "_dbm", "dbm.ndbm", "nis", "spwd", "ossaudiodev", "_uuid",
          "_scproxy", "winreg", "msvcrt", "_winapi", "winsound", "idlelib", "ensurepip",
          "_testcapi", "_ctypes_test", "_xxsubinterpreters", "_posixsubprocess"]
for name in absent:
    try:
        __import__(name)
        print("imported", name)
    except ImportError as e:
        assert type(e) in (ImportError, ModuleNotFoundError), (name, type(e))
print("after", len(absent), "failed imports the interpreter still works:", sum(range(10)))
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "after 44 failed imports the interpreter still works: 45\n");
}

}  // namespace
