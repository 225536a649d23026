# idna: IDNA 2008 / UTS 46 encoding and decoding.
import idna
import idna.codec  # noqa: F401 (registers the "idna2008" codec)

for name in ("ドメイン.テスト", "Bücher.example", "xn--nxasmq6b.com", "ﬀ.example", "straße.de", "ß.de"):
    try:
        encoded = idna.encode(name, uts46=True)
        print(name, encoded, idna.decode(encoded))
    except idna.IDNAError as e:
        print(name, "IDNAError", e)
for bad in ("a..b", "-leading.com", "\u0640.com", "a" * 64 + ".com", "Bücher.example"):
    try:
        print(bad[:20], idna.encode(bad))
    except idna.IDNAError as e:
        print(bad[:20], type(e).__name__, e)
print(idna.alabel("ü"), idna.ulabel(b"xn--tda"), idna.check_label("abc"))
print(idna.uts46_remap("ÖBB.At", std3_rules=True, transitional=False))
print("münchen.de".encode("idna"), idna.codec.Codec().encode("münchen.de"))
print(len(idna.idnadata.scripts), idna.__version__ if hasattr(idna, "__version__") else "")
