# Combinatorics with sets, tuples and list comprehensions: N-queens.
def solve(n):
    solutions = []
    def place(row, cols, diag1, diag2, acc):
        if row == n:
            solutions.append(tuple(acc))
            return
        for c in range(n):
            if c in cols or (row + c) in diag1 or (row - c) in diag2:
                continue
            cols.add(c); diag1.add(row + c); diag2.add(row - c); acc.append(c)
            place(row + 1, cols, diag1, diag2, acc)
            cols.discard(c); diag1.discard(row + c); diag2.discard(row - c); acc.pop()
    place(0, set(), set(), set(), [])
    return solutions


sols = solve(11)
sols = solve(11)
print(len(sols), sols[0], sols[-1], len({tuple(reversed(s)) for s in sols}))
