# Sorting and big integers.
def lcg(seed, n):
    out = []
    x = seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(x)
    return out


def main():
    import sys
    sys.set_int_max_str_digits(0)
    data = lcg(42, 300000)
    s1 = sorted(data)
    s2 = sorted(data, key=lambda v: (v % 1000, v))
    words = sorted(str(v) for v in data[:50000])
    f = 1
    for i in range(2, 5000):
        f *= i
    p = pow(3, 20000) * pow(7, 9000)
    q, r = divmod(p, f)
    digits = len(str(f))
    print(s1[0], s1[-1], s2[0], words[0], digits, q.bit_length(), r % 1000003,
          sum(int(c) for c in str(p)[:5000]))


main()
