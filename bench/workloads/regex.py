# Regular expressions: search, findall, sub and split over generated log lines.
import re

LINE = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\w+) \[(\w+)\] user=(\w+) ip=(\d+\.\d+\.\d+\.\d+) (.*)$")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
NUM = re.compile(r"\b\d+\b")


def make_lines(n):
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    lines = []
    x = 7
    for i in range(n):
        x = (x * 48271) % 2147483647
        lines.append("2024-%02d-%02d host%d [%s] user=u%d ip=10.%d.%d.%d msg %d contact a%d.b@ex-%d.com now"
                     % (x % 12 + 1, x % 28 + 1, x % 5, levels[x % 4], x % 1000,
                        x % 256, (x >> 8) % 256, (x >> 16) % 256, x % 99991, x % 77, x % 13))
    return lines


def main():
    lines = make_lines(40000)
    by_level = {}
    emails = 0
    numbers = 0
    for line in lines:
        m = LINE.match(line)
        by_level[m.group(5)] = by_level.get(m.group(5), 0) + 1
        emails += len(EMAIL.findall(line))
        numbers += len(NUM.findall(m.group(8)))
    text = "\n".join(lines)
    masked = re.sub(r"ip=\d+\.\d+\.\d+\.\d+", "ip=x.x.x.x", text)
    words = re.split(r"[\s=\[\]]+", masked)
    print(sorted(by_level.items()), emails, numbers, len(masked), len(words))


main()
