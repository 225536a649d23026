"""The Python side of the embedding examples (embed/host.cc, embed/host.c).

The host defines two functions: `prices` (JSON: item names -> unit prices)
and `sign` (bytes: a signature of the receipt). The host calls `quote`.
"""
import terrarium


@terrarium.export
def quote(order):
    items = order["items"]
    prices = terrarium.host.prices(sorted(items))        # JSON host function
    total = round(sum(prices[name] * count for name, count in items.items()), 2)
    receipt = "%s:%.2f" % (order["customer"], total)
    signature = terrarium.host.sign(receipt.encode())    # bytes host function
    return {"customer": order["customer"], "total": total, "signature": signature.hex()}


@terrarium.export
def fail(_):
    raise ValueError("this export always fails")
