#!/usr/bin/env python3
"""Generates phone_conformance.json: synthetic phone strings and what libphonenumber makes of them.

The reference is Python's `phonenumbers` (a port of Google's libphonenumber), version 9.0.43.
Regenerate with exactly that version installed:

    pip install phonenumbers==9.0.43
    python3 crates/tailor-core/tests/data/gen_phone_conformance.py

The script refuses to run with another version unless `--any-version` is given, so that a
regenerated file differs from the committed one only when the generator itself changed. The
output is deterministic (fixed seed, no dependence on hash ordering). The file is read by
`tests/it/phone_conformance.rs`.

The `phonenumber` crate embeds older metadata (libphonenumber 9.0.33 for phonenumber
0.3.10). Between the two versions the possible lengths changed in BJ, GM and ZW only, so those
regions are left out of REGIONS; check again when either side is upgraded.

To look further than the committed cases, run a local copy of this script with another SEED,
or with REGIONS set to every region of `phonenumbers.SUPPORTED_REGIONS` but those three.
Twelve seeds over all regions (about 110,000 cases) showed, beyond KNOWN_DIFFERENCES, only
invalid numbers whose E.164 form libphonenumber itself reads as another number (such as
`+375 8478305015`, read back as `+375 478305015`): Tailor returns that second reading, so that
every E.164 form it produces reads back as itself (see `Territory::settled` in phone.rs).
Random text (RFC 3966 `isub` and malformed `phone-context` parameters, `#` signs, extensions
of more than seven digits) differs more, and is left out on purpose: the cases are numbers as
people write them.

Every number is synthetic: a region's example number from the metadata
(`phonenumbers.example_number_for_type`) with its digits after the first few replaced by random
ones. No number is taken from any real list and none is meant to reach anyone.

Each case records what `E164Phone::parse(raw, region)` must return, computed the way Tailor
reads libphonenumber: `parse(raw, region)`; a number with an extension is rejected; otherwise
`is_possible_number_with_reason` must be IS_POSSIBLE and the E.164 rendering is the result. The
reasons are written as Tailor's `RejectReason::code()` strings.
"""

import json
import random
import sys
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import ValidationResult

EXPECTED_VERSION = "9.0.43"
SEED = 20240611
OUTPUT = Path(__file__).resolve().parent / "phone_conformance.json"

# The regions whose numbers are generated: large countries of every continent, regions whose
# national prefixes are unusual (AR and BR carrier codes and transformations, SM, RU's `8`,
# IT and SG without a prefix), and regions that share a country calling code with another
# (CA, PR, VI, AG with US; JE, GG with GB; VA with IT; KZ with RU; AX with FI; SJ with NO;
# YT with RE; CX with AU), which exercises the choice of metadata for shared codes.
REGIONS = [
    "US", "CA", "GB", "FR", "DE", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "NO", "DK", "FI",
    "PL", "PT", "IE", "JP", "KR", "CN", "IN", "AU", "NZ", "BR", "MX", "AR", "ZA", "NG", "EG",
    "AE", "SG", "RU", "TR", "IL", "HK", "ID", "PH", "SA", "CZ", "GR", "HU", "RO", "UA", "CL",
    "CO", "PE", "VN", "TH", "MY", "PK", "BD", "KE", "MA", "IR", "TW", "LU", "IS", "SM", "UZ",
    "PR", "VI", "AG", "JE", "GG", "VA", "KZ", "AX", "SJ", "YT", "CX",
]  # fmt: skip

# European default regions used for `00` international prefixes.
EUROPE = ["FR", "DE", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "NO", "DK", "PL", "PT", "IE", "GB"]

TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.UAN,
    PhoneNumberType.PAGER,
]

# Python's parse errors, as Tailor's reasons.
PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "phone_invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "phone_not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone_too_short",
    NumberParseException.TOO_SHORT_NSN: "phone_too_short",
    NumberParseException.TOO_LONG: "phone_too_long",
}

# `is_possible_number_with_reason`, as Tailor's reasons (IS_POSSIBLE is acceptance).
POSSIBILITY = {
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "phone_local_only",
    ValidationResult.INVALID_COUNTRY_CODE: "phone_invalid_country_code",
    ValidationResult.TOO_SHORT: "phone_too_short",
    ValidationResult.TOO_LONG: "phone_too_long",
    ValidationResult.INVALID_LENGTH: "phone_invalid_length",
}

EXTENSIONS = [" ext. {}", " x{}", " ext {}", " extension {}", " #{}", ", ext.{}", " X{}"]
JUNK = [
    "", " ", "hello", "n/a", "none", "12", "+", "++1", "0", "000", "+1", "tel:", "abc-def-ghij",
    "+999 1234 5678", "+0 123 456 789", "00 999 123 4567", "1-800-FLOWERS", "+44 FOOTBALL",
    "0800 BUY NOW", "555", "+1 (555)", "phone: 12", "12345678901234567890123",
    "+12345678901234567890",
]  # fmt: skip

# Numbers whose libphonenumber reading does not read back as itself: its E.164 form is read as
# another number (a national prefix written twice, or an invalid number that starts with a
# national prefix). Tailor returns that second reading; they are KNOWN_DIFFERENCES.
UNSTABLE = [
    ("+49 0 030 1234567", "US"),
    ("8 847 830 5015", "BY"),
    ("0551 276878", "IM"),
    ("1831 828 055", "CC"),
]


def expected(raw, region):
    """What Tailor must make of `raw` read with `region`: (e164, reason)."""
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as error:
        return None, PARSE_ERRORS[error.error_type]
    if number.extension:
        return None, "phone_has_extension"
    result = phonenumbers.is_possible_number_with_reason(number)
    if result == ValidationResult.IS_POSSIBLE:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164), None
    return None, POSSIBILITY[result]


def templates(region):
    """The region's example numbers, one per type that has one, as national significant numbers."""
    seen = []
    for kind in TYPES:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        nsn = phonenumbers.national_significant_number(example)
        if nsn not in seen:
            seen.append(nsn)
    return seen


def synthesize(rng, nsn):
    """`nsn` with the digits after its first one to four replaced by random digits."""
    keep = min(len(nsn), rng.choice([1, 2, 2, 3, 3, 4]))
    return nsn[:keep] + "".join(rng.choice("0123456789") for _ in nsn[keep:])


def number_of(cc, nsn):
    """A PhoneNumber for `nsn` with country code `cc`, with the Italian leading zero set as
    parse sets it."""
    number = phonenumbers.PhoneNumber(country_code=int(cc), national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if zeros:
        number.italian_leading_zero = True
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    return number


def messy(rng, text):
    """`text` with its separators replaced by random punctuation and spacing."""
    out = []
    for ch in text:
        if ch in " -.()/":
            out.append(rng.choice([" ", "  ", "-", ".", " - ", "/", "", " ", "\u00a0"]))
        else:
            out.append(ch)
    text = "".join(out)
    wrap = rng.random()
    if wrap < 0.15:
        text = "  " + text + "  "
    elif wrap < 0.25:
        text = "Tel: " + text
    elif wrap < 0.3:
        text = "\t" + text + "\n"
    elif wrap < 0.35:
        text = text + "."
    return text


def parenthesize(rng, digits):
    """Digits grouped as `(ddd) ddd-dddd`-like, with random group sizes."""
    head = rng.randint(2, 4)
    if len(digits) <= head + 2:
        return digits
    mid = rng.randint(2, max(2, (len(digits) - head) // 2 + 1))
    return "({}) {}-{}".format(digits[:head], digits[head : head + mid], digits[head + mid :])


def idd_for(region):
    """A literal international prefix that `region` dials, or None."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = meta.preferred_international_prefix or meta.international_prefix
    if prefix and prefix.isdigit():
        return prefix
    if prefix and "~" in prefix and prefix.replace("~", "").isdigit():
        return prefix.replace("~", " ")
    return None


WIDE = {ord(d): chr(0xFF10 + int(d)) for d in "0123456789"}
WIDE[ord("+")] = "\uff0b"
ARABIC_INDIC = {ord(d): chr(0x0660 + int(d)) for d in "0123456789"}
LETTERS = "ABCDEFGHIJKLMNOPRSTUVWXY"


def cases_for(rng, region, cc, bases):
    """About forty cases for numbers of one region (or non-geographic code)."""
    others = [r for r in REGIONS if r != region]
    out = []

    def add(form, raw, default):
        out.append((form, raw, default))

    def fresh():
        return synthesize(rng, rng.choice(bases))

    def formatted(nsn, fmt):
        return phonenumbers.format_number(number_of(cc, nsn), fmt)

    def some(probability):
        return rng.random() < probability

    # A non-geographic code has no national form: it is always written with its code.
    geographic = region is not None
    home = region if geographic else rng.choice(REGIONS)

    if geographic:
        for _ in range(3):
            add("national", formatted(fresh(), PhoneNumberFormat.NATIONAL), home)
        add("nsn_digits", fresh(), home)
        national = formatted(fresh(), PhoneNumberFormat.NATIONAL)
        add("national_digits", "".join(c for c in national if c.isdigit()), home)
        for _ in range(2):
            add("messy_national", messy(rng, formatted(fresh(), PhoneNumberFormat.NATIONAL)), home)
        add("parentheses", parenthesize(rng, fresh()), home)
        nsn = fresh()
        add("local", nsn[rng.randint(1, min(4, len(nsn) - 1)) :], home)
    for _ in range(2):
        add("international", formatted(fresh(), PhoneNumberFormat.INTERNATIONAL), home)
    add("e164", formatted(fresh(), PhoneNumberFormat.E164), home)
    for _ in range(2):
        add("cc_digits", cc + fresh(), home)
    add("rfc3966", formatted(fresh(), PhoneNumberFormat.RFC3966), rng.choice([home] + others))
    if some(0.5):
        add(
            "rfc3966_context",
            "tel:{};phone-context=+{}".format(fresh(), cc),
            rng.choice([home] + others),
        )
    intl = formatted(fresh(), PhoneNumberFormat.INTERNATIONAL)
    add("idd_us", "011 " + intl.lstrip("+"), "US")
    for _ in range(2):
        intl = formatted(fresh(), PhoneNumberFormat.INTERNATIONAL)
        add("idd_eu", "00 " + intl.lstrip("+"), rng.choice(EUROPE))
    # The international prefix of some other region, dialled from that region.
    caller = rng.choice(others)
    idd = idd_for(caller)
    if idd:
        intl = formatted(fresh(), PhoneNumberFormat.INTERNATIONAL)
        add("idd_other", idd + " " + intl.lstrip("+"), caller)
    # The right prefix written after a plus, and a plus with spaces.
    if some(0.5):
        add("plus_idd", "+00 " + cc + " " + fresh(), rng.choice(EUROPE))
    if some(0.5):
        add("plus_space", "+ " + cc + " " + fresh(), rng.choice([home] + others))
    for _ in range(2):
        intl = formatted(fresh(), PhoneNumberFormat.INTERNATIONAL)
        add("messy_international", messy(rng, intl), rng.choice([home] + others))
    if some(0.5):
        add("parentheses_cc", "+{} ".format(cc) + parenthesize(rng, fresh()), home)
    # International forms read with a default region that is not the number's own.
    for _ in range(4):
        fmt = rng.choice([PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164])
        add("foreign_default", formatted(fresh(), fmt), rng.choice(others))
    for _ in range(2):
        ext = rng.choice(EXTENSIONS).format(rng.randint(1, 9999))
        fmts = [PhoneNumberFormat.INTERNATIONAL]
        if geographic:
            fmts.append(PhoneNumberFormat.NATIONAL)
        add("extension", formatted(fresh(), rng.choice(fmts)) + ext, home)
    if some(0.3):
        add(
            "rfc3966_extension",
            formatted(fresh(), PhoneNumberFormat.RFC3966) + ";ext=" + str(rng.randint(1, 999)),
            home,
        )
    fmts = [PhoneNumberFormat.INTERNATIONAL]
    if geographic:
        fmts.append(PhoneNumberFormat.NATIONAL)
    for _ in range(2):
        nsn = fresh()
        cut = nsn[: max(1, len(nsn) - rng.randint(1, 4))]
        add("too_short", formatted(cut, rng.choice(fmts)), home)
    for _ in range(2):
        longer = fresh() + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 5)))
        add("too_long", formatted(longer, rng.choice(fmts)), home)
    nsn = fresh()
    add("e164_foreign_idd", "00" + cc + nsn, rng.choice(EUROPE))
    nsn = fresh()
    add("shifted", "+" + cc + " " + nsn[:-1] + rng.choice(["", "5", "55", "555"]), home)
    # Full-width digits (East Asian input methods) and Arabic-Indic digits.
    if some(0.4):
        intl = formatted(fresh(), PhoneNumberFormat.INTERNATIONAL)
        add("wide_digits", intl.translate(WIDE), rng.choice([home] + others))
    if some(0.2):
        text = formatted(fresh(), rng.choice(fmts))
        add("arabic_digits", text.translate(ARABIC_INDIC), home)
    # Vanity numbers: the last digits written as letters.
    if some(0.3):
        text = formatted(fresh(), rng.choice(fmts))
        count = rng.randint(3, 7)
        chars = list(text)
        positions = [i for i, c in enumerate(chars) if c.isdigit()][-count:]
        for i in positions:
            chars[i] = rng.choice(LETTERS)
        add("vanity", "".join(chars), home)
    # Typos: one or two digits typed as look-alike letters (libphonenumber converts letters
    # only when a number has at least three, as vanity numbers do).
    if some(0.4):
        text = formatted(fresh(), rng.choice(fmts))
        chars = list(text)
        positions = [i for i, c in enumerate(chars) if c.isdigit()][1:]
        for i in rng.sample(positions, min(len(positions), rng.randint(1, 2))):
            chars[i] = rng.choice("OolISB")
        add("stray_letters", "".join(chars), home)
    return out


def nanpa_local(rng, region):
    """Seven-digit local numbers of a NANPA region (some regions add their area code)."""
    out = []
    for _ in range(3):
        exchange = "{}{:02d}".format(rng.randint(2, 9), rng.randint(0, 99))
        local = "{}-{:04d}".format(exchange, rng.randint(0, 9999))
        out.append(("nanpa_local", local, region))
    return out


def carrier_codes(rng):
    """Brazilian and Colombian numbers dialled with a carrier selection code."""
    out = []
    for _ in range(6):
        nsn = synthesize(rng, rng.choice(templates("BR")))
        carrier = rng.choice(["12", "14", "15", "21", "31", "41"])
        out.append(("carrier", "0 {} {} {}".format(carrier, nsn[:2], nsn[2:]), "BR"))
    for _ in range(4):
        nsn = synthesize(rng, rng.choice(templates("CO")))
        carrier = rng.choice(["3", "5", "7", "9", "444"])
        out.append(("carrier", "0{} {}".format(carrier, nsn), "CO"))
    return out


def main():
    if phonenumbers.__version__ != EXPECTED_VERSION and "--any-version" not in sys.argv:
        sys.exit(
            "phonenumbers {} is installed; this file is generated with {} "
            "(or pass --any-version)".format(phonenumbers.__version__, EXPECTED_VERSION)
        )
    rng = random.Random(SEED)
    raw_cases = []
    for region in REGIONS:
        cc = str(phonenumbers.country_code_for_region(region))
        raw_cases.extend(cases_for(rng, region, cc, templates(region)))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            nsn = [phonenumbers.national_significant_number(example)]
            raw_cases.extend(cases_for(rng, None, str(code), nsn))
    for region in ["US", "CA", "PR", "VI", "AG"]:
        raw_cases.extend(nanpa_local(rng, region))
    raw_cases.extend(carrier_codes(rng))
    raw_cases.extend(("unstable", raw, region) for raw, region in UNSTABLE)
    for raw in JUNK:
        for region in ["US", "GB", "FR", "DE"]:
            raw_cases.append(("junk", raw, region))

    seen = set()
    cases = []
    for form, raw, region in raw_cases:
        if (raw, region) in seen:
            continue
        seen.add((raw, region))
        e164, reason = expected(raw, region)
        cases.append({"form": form, "raw": raw, "region": region, "e164": e164, "reason": reason})

    lines = ",\n".join("    " + json.dumps(case, ensure_ascii=False) for case in cases)
    text = (
        "{{\n"
        '  "generator": "gen_phone_conformance.py",\n'
        '  "phonenumbers_version": "{}",\n'
        '  "seed": {},\n'
        '  "cases": [\n{}\n  ]\n'
        "}}\n"
    ).format(phonenumbers.__version__, SEED, lines)
    OUTPUT.write_text(text, encoding="utf-8")
    accepted = sum(1 for case in cases if case["e164"])
    print("wrote {} cases ({} accepted) to {}".format(len(cases), accepted, OUTPUT))


if __name__ == "__main__":
    main()
