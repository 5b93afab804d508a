"""pyHanko's in-process time for the same job: a visible signature with a QR stamp, appended
incrementally, on the given PDF. Prints the median in milliseconds as JSON.

usage: pyhanko_qr_sign.py INPUT KEY_PEM CERT_PEM [RUNS]
"""
import io
import json
import statistics
import sys
import time

from pyhanko import stamp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers


def main():
    path, key, cert = sys.argv[1:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 7
    data = open(path, "rb").read()
    signer = signers.SimpleSigner.load(key, cert)
    style = stamp.QRStampStyle(stamp_text="METERAI ELEKTRONIK\n10000\n%(ts)s")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        fields.append_signature_field(writer, fields.SigFieldSpec("eMeterai", on_page=-1, box=(400, 60, 490, 150)))
        meta = signers.PdfSignatureMetadata(field_name="eMeterai", reason="[0123456789ABCDEFGHIJKL] e-Meterai 10000")
        pdf_signer = signers.PdfSigner(meta, signer=signer, stamp_style=style)
        out = io.BytesIO()
        pdf_signer.sign_pdf(writer, output=out, appearance_text_params={"url": "https://emeterai.test/v1/verify/0123456789ABCDEFGHIJKL"})
        times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"median_ms": statistics.median(times), "runs": runs, "output_bytes": len(out.getvalue())}))


if __name__ == "__main__":
    main()
