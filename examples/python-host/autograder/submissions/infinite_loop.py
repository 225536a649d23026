# Picks the best remaining customer until it has n of them: with fewer than n
# customers the loop never ends.
import terrarium


def top_customers(n):
    totals = {}
    for order in terrarium.host.rows("orders"):
        customer = order["customer_id"]
        totals[customer] = totals.get(customer, 0) + order["total"]
    names = []
    while len(names) < n:
        if totals:
            best = max(totals, key=totals.get)
            names.append(terrarium.host.lookup(best)["name"])
            del totals[best]
    return names
