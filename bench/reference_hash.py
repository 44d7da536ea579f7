#!/usr/bin/env python3
"""The script an advertiser would otherwise write to prepare a customer list.

It is the baseline `cargo xtask bench-hash` compares `tailor hash` against: Python's csv module,
hashlib and the `phonenumbers` package (libphonenumber), reading and writing CSV, following the
platforms' published rules (trim and lowercase emails; parse phones with a default region and
format them as E.164). It is deliberately straightforward, as such scripts are.

Usage: python3 bench/reference_hash.py INPUT OUTPUT [--region US]
Requires: pip install phonenumbers
"""

import csv
import hashlib
import sys

import phonenumbers


def main() -> int:
    args = sys.argv[1:]
    region = "US"
    if "--region" in args:
        i = args.index("--region")
        region = args[i + 1]
        del args[i : i + 2]
    src, dst = args
    with open(src, newline="", encoding="utf-8-sig") as fin, open(
        dst, "w", newline="", encoding="utf-8"
    ) as fout:
        reader = csv.DictReader(fin)
        fields = [f.lower() for f in reader.fieldnames or []]
        has_email = "email" in fields
        has_phone = "phone" in fields
        out_fields = (["email_sha256"] if has_email else []) + (
            ["phone_sha256"] if has_phone else []
        )
        writer = csv.writer(fout)
        writer.writerow(out_fields)
        for row in reader:
            row = {k.lower(): v for k, v in row.items() if k is not None}
            out = []
            if has_email:
                email = (row.get("email") or "").strip().lower()
                ok = email.count("@") == 1 and "." in email.split("@")[1]
                out.append(hashlib.sha256(email.encode()).hexdigest() if ok else "")
            if has_phone:
                digest = ""
                raw = (row.get("phone") or "").strip()
                if raw:
                    try:
                        number = phonenumbers.parse(raw, region)
                        if phonenumbers.is_possible_number(number):
                            e164 = phonenumbers.format_number(
                                number, phonenumbers.PhoneNumberFormat.E164
                            )
                            digest = hashlib.sha256(e164.encode()).hexdigest()
                    except phonenumbers.NumberParseException:
                        pass
                out.append(digest)
            writer.writerow(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
