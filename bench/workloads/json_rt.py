# JSON round trip: build nested documents, dump, load, compare.
import json


def make_doc(i):
    return {
        "id": i,
        "name": "item-%d" % i,
        "tags": ["t%d" % (i % 7), "t%d" % (i % 11), "unicode \u00e9\u4e2d"],
        "price": i * 1.25,
        "active": i % 3 == 0,
        "nested": {"a": [i, i + 1, i + 2], "b": None, "c": {"d": "x" * (i % 5)}},
    }


def main():
    docs = [make_doc(i) for i in range(2000)]
    total = 0
    for _ in range(36):
        text = json.dumps(docs, sort_keys=True)
        back = json.loads(text)
        assert back == docs
        total += len(text)
    pretty = json.dumps(docs[:50], indent=2)
    print(total, len(pretty), json.loads(pretty)[49]["name"])


main()
