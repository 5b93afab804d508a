"""Makes signed A4 documents from several producers, for the stamping tests.

usage: make_signed_fixtures.py OUT_DIR [CASE ...]

Each case is a base document from one producer (reportlab, Ghostscript, qpdf, MuPDF, img2pdf),
optionally reshaped (crop box, user unit, rotation, attributes inherited from the page tree),
then signed with pyHanko once or twice, or certified with DocMDP allowing form filling.
Producers whose tool is missing are left out. Prints a JSON list of
{"name", "file", "signatures"} for the cases written.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.generic import FloatObject, NameObject, NumberObject, ArrayObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm

A4 = (595.2756, 841.8898)  # reportlab's A4, as it writes it


def make_signer(out_dir):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Applicant (test)")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36500))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(out_dir, "applicant-key.pem")
    cert_path = os.path.join(out_dir, "applicant-cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return signers.SimpleSigner.load(key_path, cert_path)


def reportlab_base(path, pages=1):
    from reportlab.lib.pagesizes import A4 as RL_A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(path, pagesize=RL_A4)
    for n in range(pages):
        c.setFont("Helvetica", 14)
        c.drawString(72, 760, f"Surat perjanjian, halaman {n + 1}")
        c.drawString(72, 740, "Dokumen uji untuk e-Meterai.")
        c.showPage()
    c.save()


def ghostscript_base(path):
    gs = shutil.which("gs")
    if not gs:
        return False
    program = "/Helvetica findfont 14 scalefont setfont 72 760 moveto (Surat perjanjian, Ghostscript) show showpage"
    subprocess.run(
        [gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite", "-sPAPERSIZE=a4", "-dFIXEDMEDIA",
         f"-sOutputFile={path}", "-c", program],
        check=True, capture_output=True,
    )
    return True


def qpdf_base(path, work):
    qpdf = shutil.which("qpdf")
    if not qpdf:
        return False
    source = os.path.join(work, "qpdf-source.pdf")
    reportlab_base(source, pages=2)
    # Object streams: the page and the catalog live compressed in a stream.
    subprocess.run([qpdf, "--object-streams=generate", "--deterministic-id", source, path], check=True, capture_output=True)
    return True


def mupdf_base(path, work):
    mutool = shutil.which("mutool")
    if not mutool:
        return False
    page = os.path.join(work, "mupdf-page.txt")
    with open(page, "w") as f:
        f.write("%%MediaBox 0 0 595.2756 841.8898\n%%Font F1 Helvetica\nBT /F1 14 Tf 72 760 Td (Surat perjanjian, MuPDF) Tj ET\n")
    subprocess.run([mutool, "create", "-o", path, page], check=True, capture_output=True)
    return True


def img2pdf_base(path, work):
    try:
        import img2pdf
        from PIL import Image
    except ImportError:
        return False
    image = os.path.join(work, "scan.png")
    Image.new("L", (620, 877), 235).save(image)
    layout = img2pdf.get_layout_fun((img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)))
    with open(path, "wb") as f:
        f.write(img2pdf.convert(image, layout_fun=layout))
    return True


def reshape(src, dst, change):
    """An incremental update of the first page (and its tree) made by `change`."""
    with open(src, "rb") as f:
        w = IncrementalPdfFileWriter(f, strict=False)
        pages = w.root["/Pages"]
        page = pages["/Kids"][0].get_object()
        change(w, pages, page)
        w.update_container(pages)
        w.update_container(page)
        with open(dst, "wb") as out:
            w.write(out)


def crop_box(w, pages, page):
    page[NameObject("/CropBox")] = ArrayObject([FloatObject(0.5), FloatObject(0.25), FloatObject(595.0), FloatObject(841.5)])


def user_unit(w, pages, page):
    page[NameObject("/UserUnit")] = FloatObject(1.0)


def rotate(w, pages, page):
    page[NameObject("/Rotate")] = NumberObject(90)


def inherited(w, pages, page):
    pages[NameObject("/MediaBox")] = page["/MediaBox"]
    pages[NameObject("/Rotate")] = NumberObject(180)
    del page["/MediaBox"]


def sign(src, dst, signer, field, certify=False):
    with open(src, "rb") as f:
        w = IncrementalPdfFileWriter(f, strict=False)
        meta = signers.PdfSignatureMetadata(
            field_name=field,
            certify=certify,
            docmdp_permissions=MDPPerm.FILL_FORMS if certify else None,
            subfilter=None,
        )
        with open(dst, "wb") as out:
            signers.sign_pdf(w, meta, signer=signer, output=out)


def main():
    out_dir = sys.argv[1]
    wanted = set(sys.argv[2:])
    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    signer = make_signer(out_dir)

    bases = {}
    path = os.path.join(work, "reportlab.pdf")
    reportlab_base(path)
    bases["reportlab"] = path
    for producer, make in [("ghostscript", ghostscript_base), ("qpdf", qpdf_base), ("mupdf", mupdf_base), ("img2pdf", img2pdf_base)]:
        path = os.path.join(work, f"{producer}.pdf")
        made = make(path) if producer == "ghostscript" else make(path, work)
        if made:
            bases[producer] = path

    # (name, base, reshape, signatures, certify)
    cases = [("reportlab-fractional-mediabox", "reportlab", None, 1, False)]
    for producer in ["ghostscript", "qpdf", "mupdf", "img2pdf"]:
        if producer in bases:
            cases.append((f"{producer}-signed-once", producer, None, 1, False))
    cases += [
        ("reportlab-cropbox", "reportlab", crop_box, 1, False),
        ("reportlab-userunit", "reportlab", user_unit, 1, False),
        ("reportlab-rotate-90", "reportlab", rotate, 1, False),
        ("reportlab-inherited-mediabox-rotate", "reportlab", inherited, 1, False),
        ("reportlab-signed-twice", "reportlab", None, 2, False),
        ("reportlab-certified-form-filling", "reportlab", None, 1, True),
    ]
    if "qpdf" in bases:
        cases += [
            ("qpdf-objstm-signed-twice", "qpdf", None, 2, False),
            ("qpdf-objstm-certified-form-filling", "qpdf", None, 1, True),
        ]
    if "ghostscript" in bases:
        cases.append(("ghostscript-certified-then-signed", "ghostscript", None, 2, True))

    written = []
    for name, base, change, signatures, certify in cases:
        if wanted and name not in wanted:
            continue
        current = bases[base]
        if change is not None:
            reshaped = os.path.join(work, f"{name}-reshaped.pdf")
            reshape(current, reshaped, change)
            current = reshaped
        for n in range(signatures):
            target = os.path.join(out_dir, f"{name}.pdf") if n == signatures - 1 else os.path.join(work, f"{name}-{n}.pdf")
            sign(current, target, signer, f"Applicant{n + 1}", certify=certify and n == 0)
            current = target
        written.append({"name": name, "file": current, "signatures": signatures})
    print(json.dumps(written))


if __name__ == "__main__":
    main()
