"""An SE2 plugin: reverses every word made only of letters, leaves the others.

    terrarium plugin run examples/se2-plugin --payload "Hello, wasm world 42"
    # -> Hello, msaw dlrow 42
"""
import sdk


def run_e(payload, ident):
    words = payload.split(" ")
    out = [word[::-1] if word.isalpha() else word for word in words]
    sdk.log("reversed", sum(1 for word in words if word.isalpha()), "of", len(words), "words")
    sdk.return_result(" ".join(out), ident)
