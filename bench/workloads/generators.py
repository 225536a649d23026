# Generators: pipelines of generator functions and expressions.
def numbers(n):
    i = 0
    while i < n:
        yield i
        i += 1


def squares(it):
    for x in it:
        yield x * x


def evens(it):
    for x in it:
        if x % 2 == 0:
            yield x


def windows(it, size):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield tuple(buf)
            buf.pop(0)


def main():
    total = 0
    for w in windows(evens(squares(numbers(1000000))), 3):
        total += w[0] ^ w[2]
    gen_sum = sum(x % 1000 for x in range(2000000) if x % 3)
    chained = sum(len(s) for s in (str(i) for i in range(700000)))
    print(total, gen_sum, chained)


main()
