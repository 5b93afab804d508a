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


def pades_facts(embedded, status):
    """The PAdES baseline level as ETSI EN 319 142-1 defines it, read from what pyHanko parsed and
    validated: B-B = /SubFilter /ETSI.CAdES.detached, a signing-certificate-v2 attribute (pyHanko
    checks it names the signer's certificate, else validation fails) and no signing-time
    attribute; B-T = B-B plus a signature timestamp that pyHanko finds intact and valid."""
    sub_filter = str(embedded.sig_object.get("/SubFilter", ""))
    signed_attrs = embedded.signer_info["signed_attrs"]
    attr_types = {attr["type"].native for attr in signed_attrs}
    facts = {
        "sub_filter": sub_filter,
        "signed_attributes": sorted(attr_types),
    }
    level = None
    if (sub_filter == "/ETSI.CAdES.detached" and "signing_certificate_v2" in attr_types
            and "signing_time" not in attr_types and status.intact and status.valid):
        level = "B-B"
    ts = status.timestamp_validity
    if ts is not None:
        facts["timestamp"] = {
            "intact": bool(ts.intact),
            "valid": bool(ts.valid),
            "trusted": bool(ts.trusted),
            "time": ts.timestamp.isoformat(),
        }
        if level == "B-B" and ts.intact and ts.valid:
            level = "B-T"
    facts["pades_level"] = level
    return facts


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
                entry.update(pades_facts(embedded, status))
            except Exception as error:  # noqa: BLE001
                entry["error"] = f"{type(error).__name__}: {error}"
            result.append(entry)
    print(json.dumps({"signatures": result}))


if __name__ == "__main__":
    main()
