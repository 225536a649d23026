# Reads the CSV files in /data directly (allowed: the mount is read-only), but
# ranks customers by their largest single order instead of their total.
import csv


def top_customers(n):
    with open("/data/customers.csv", newline="") as f:
        names = {row["id"]: row["name"] for row in csv.DictReader(f)}
    largest = {}
    with open("/data/orders.csv", newline="") as f:
        for row in csv.DictReader(f):
            customer = row["customer_id"]
            largest[customer] = max(largest.get(customer, 0.0), float(row["total"]))
    ranked = sorted(largest, key=lambda customer: -largest[customer])
    return [names[customer] for customer in ranked[:n]]
