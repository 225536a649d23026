# Uses a column that does not exist ("customer" instead of "customer_id").
import terrarium


def top_customers(n):
    totals = {}
    for order in terrarium.host.rows("orders"):
        totals[order["customer"]] = totals.get(order["customer"], 0) + order["total"]
    return sorted(totals, key=totals.get, reverse=True)[:n]
