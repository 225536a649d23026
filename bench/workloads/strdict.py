# String building, splitting, formatting and dict counting.
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
         "omicron pi rho sigma tau upsilon phi chi psi omega").split()


def make_text(n):
    parts = []
    x = 12345
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        parts.append(WORDS[x % len(WORDS)] + ("" if x % 7 else str(x % 100)))
    return " ".join(parts)


def main():
    text = make_text(480000)
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    bigrams = {}
    words = text.split()
    for a, b in zip(words, words[1:]):
        key = a[:3] + "-" + b[:3]
        bigrams[key] = bigrams.get(key, 0) + 1
    upper = sum(1 for w in words if w.upper().startswith("P"))
    joined = "|".join("%s=%d" % (k, counts[k]) for k in sorted(counts))
    replaced = text.replace("a", "A").count("A")
    print(len(counts), len(bigrams), upper, replaced, len(joined))
    print(sorted(bigrams.items(), key=lambda kv: (-kv[1], kv[0]))[:3])


main()
