# Meant to repeat the orders n times "to weight them"; the loop has no end, and
# the list doubles each time round.
import terrarium


def top_customers(n):
    orders = terrarium.host.rows("orders")
    while True:
        orders = orders + orders
