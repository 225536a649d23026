# Sums each customer's orders, then ranks: highest total first, ties by name.
import terrarium


def top_customers(n):
    totals = {}
    for order in terrarium.host.rows("orders"):
        customer = order["customer_id"]
        totals[customer] = totals.get(customer, 0) + order["total"]
    names = {customer: terrarium.host.lookup(customer)["name"] for customer in totals}
    ranked = sorted(totals, key=lambda customer: (-totals[customer], names[customer]))
    return [names[customer] for customer in ranked[:n]]
