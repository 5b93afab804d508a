"""Independent check of a PDF's signatures with pyHanko; prints one JSON object.

usage: pdf_signatures.py [--acrobat-certify-policy] FILE [TRUSTED_CERT_PEM]

For every signature field: its /Reason, whether the digest and signature hold (intact, valid),
the coverage, the modification level of later changes, and whether the signer is trusted
(when a certificate is given). Exit 0 whenever the file could be read.

--acrobat-certify-policy: pyHanko's default difference policy refuses any new visible signature
field after a certification signature, which its documentation calls stricter than Acrobat;
with this flag the policy is pyHanko's default except that this is allowed, as Acrobat does
(ISO 32000-1 12.8.2.2.2: with P=2, filling in forms and signing are permitted).
"""
import json
import sys

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko.keys import load_cert_from_pemder


def acrobat_certify_policy():
    from pyhanko.sign.diff_analysis import (
        CatalogModificationRule, DocInfoRule, DSSCompareRule, FormUpdatingRule, GenericFieldModificationRule,
        MetadataUpdateRule, ModificationLevel, ObjectStreamRule, SigFieldCreationRule, SigFieldModificationRule,
        StandardDiffPolicy, XrefStreamRule,
    )
    return StandardDiffPolicy(
        global_rules=[
            CatalogModificationRule(),
            DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
            XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
            ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
            DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
            MetadataUpdateRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ],
        form_rule=FormUpdatingRule(
            field_rules=[
                SigFieldCreationRule(allow_new_visible_after_certify=True),
                SigFieldModificationRule(),
                GenericFieldModificationRule(),
            ],
        ),
    )


def main():
    args = sys.argv[1:]
    policy = None
    if "--acrobat-certify-policy" in args:
        args.remove("--acrobat-certify-policy")
        policy = acrobat_certify_policy()
    path = args[0]
    trust = None
    if len(args) > 1:
        trust = [load_cert_from_pemder(args[1])]
    result = []
    with open(path, "rb") as handle:
        reader = PdfFileReader(handle, strict=False)
        for embedded in reader.embedded_signatures:
            entry = {"field": embedded.field_name}
            try:
                entry["reason"] = str(embedded.sig_object.get("/Reason", ""))
            except Exception as error:  # noqa: BLE001 - report, keep going
                entry["reason"] = f"error: {error}"
            try:
                context = ValidationContext(trust_roots=trust, allow_fetching=False) if trust else ValidationContext(allow_fetching=False)
                status = validate_pdf_signature(embedded, context, diff_policy=policy, skip_diff=False)
                entry["intact"] = bool(status.intact)
                entry["valid"] = bool(status.valid)
                entry["trusted"] = bool(status.trusted)
                entry["coverage"] = status.coverage.name if status.coverage else None
                entry["modification_level"] = status.modification_level.name if status.modification_level else None
                entry["docmdp_ok"] = status.docmdp_ok
                entry["summary"] = status.summary()
            except Exception as error:  # noqa: BLE001
                entry["error"] = f"{type(error).__name__}: {error}"
            result.append(entry)
    print(json.dumps({"signatures": result}))


if __name__ == "__main__":
    main()
