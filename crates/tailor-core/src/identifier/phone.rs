//! Phone numbers: parsed with libphonenumber metadata (the `phonenumber` crate) and rendered in
//! E.164, with or without the leading `+`.
//!
//! A number is accepted only when libphonenumber considers its length possible for its country
//! and it can be dialled from anywhere (a local-only number has no E.164 form). Validity
//! against the full numbering plan is not checked: it costs about eight times a parse and
//! rejects numbers that were allocated after the metadata was published.
//!
//! The reading follows libphonenumber's `parse` step by step; `tests/it/phone_conformance.rs`
//! holds it to Python's `phonenumbers` on a few thousand synthetic numbers. The `phonenumber`
//! crate finds the number in the text (punctuation, extensions, RFC 3966, `+` and international
//! dialling prefixes, the country calling code), but it is given a copy of the metadata without
//! national prefixes: its own national-prefix handling differs from libphonenumber's (it strips
//! with the default region's rules even for another country's number, strips the prefix twice,
//! so that `+7 812...` loses its `8`, and misjudges numbers that start with the default
//! region's country code). The national prefix is stripped here instead, with libphonenumber's
//! rules. Two departures from libphonenumber are deliberate, so that every E.164 form this
//! module produces reads back as itself: a number that libphonenumber's own E.164 form would
//! read differently (a national prefix written twice) is read as that E.164 form is, and a
//! national number of zeros only is not a number. Nothing here may ever log or print a number.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use phonenumber::country::{Id, Source};
use phonenumber::metadata::{DATABASE, Database, Descriptor, loader};

use crate::identifier::PhoneFormat;
use crate::identifier::digest::Sha256Digest;
use crate::reject::RejectReason;

/// A region (CLDR two-letter code, such as `US` or `FR`) used to read numbers written without
/// an international prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region(Id);

impl Region {
    /// The United States, the default for lists without `+` prefixes.
    pub const US: Region = Region(Id::US);

    /// Parses a two-letter region code, in any case. `UK` is read as `GB`.
    pub fn parse(code: &str) -> Option<Region> {
        let upper = code.trim().to_ascii_uppercase();
        let upper = if upper == "UK" {
            "GB".to_owned()
        } else {
            upper
        };
        Id::from_str(&upper).ok().map(Region)
    }

    /// The two-letter code.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::US
    }
}

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::parse(s).ok_or(UnknownRegion)
    }
}

/// A region code that is not a CLDR two-letter region libphonenumber knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownRegion;

impl fmt::Display for UnknownRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a two-letter region code known to libphonenumber (for example US, GB, FR)")
    }
}

impl std::error::Error for UnknownRegion {}

/// libphonenumber's bounds on the length of a national significant number.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// The longest E.164 rendering: `+`, up to 3 digits of country code, up to 17 digits of
/// national significant number (libphonenumber's limit).
const MAX_RENDERED: usize = 1 + 3 + MAX_NSN;

/// A phone number in E.164 form: a country calling code and a national significant number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164Phone {
    /// `+` followed by the digits.
    rendered: [u8; MAX_RENDERED],
    len: u8,
}

impl E164Phone {
    /// Parses a number as written by a person, reading numbers without `+` (or an
    /// international dialling prefix) as numbers of `default_region`.
    pub fn parse(raw: &str, default_region: Region) -> Result<Self, RejectReason> {
        let plan = plan();
        let default = plan
            .region(default_region)
            .ok_or(RejectReason::PhoneInvalidCountryCode)?;
        let text = for_reader(raw.trim_ascii());
        let number = read(plan, default_region, &text)?;
        // The crate reports a bare trailing `x`, `ext` or `#` as an empty extension; without
        // digits there is no extension, as libphonenumber reads it.
        let bare_mark = match number.extension() {
            Some(extension) if !extension.is_empty() => {
                return Err(RejectReason::PhoneHasExtension);
            }
            extension => extension.is_some(),
        };
        let number = match with_letters_read(&text, bare_mark) {
            Some(text) => read(plan, default_region, &text)?,
            None => number,
        };
        let code = number.code().value();
        let written = digits(number.national());
        // The digits after the country code, and the territory whose national prefix they may
        // carry: the default region's for a national number, otherwise the main region of the
        // code (libphonenumber reads `+39 02...` with Italy's rules whatever the default).
        let (territory, national) = match number.code().source() {
            Source::Plus | Source::Idd => (plan.main(code)?, written),
            Source::Number | Source::Default => {
                // The reader only takes the default region's code off numbers too long to be
                // national ones; libphonenumber's rule is applied to the whole number here.
                let whole = if number.code().source() == Source::Number {
                    format!("{code}{written}")
                } else {
                    written
                };
                match default.country_code_in(&whole) {
                    Some(rest) => (plan.main(default.code)?, rest),
                    None => (default, whole),
                }
            }
        };
        let nsn = territory.without_national_prefix(&national);
        if nsn.len() < MIN_NSN {
            return Err(RejectReason::PhoneTooShort);
        }
        if nsn.len() > MAX_NSN {
            return Err(RejectReason::PhoneTooLong);
        }
        // libphonenumber judges the length with the main region of the code, whichever region
        // the number was read in, and reads the E.164 form with that region's rules too.
        let main = plan.main(territory.code)?;
        main.lengths.check(nsn.len())?;
        let nsn = main.settled(nsn.into_owned());
        // The crate cannot read a national number of zeros only (it parses what follows the
        // leading zeros as an integer), so such a number's E.164 form could not be read back.
        if nsn.bytes().all(|digit| digit == b'0') {
            return Err(RejectReason::PhoneNotANumber);
        }
        Self::render(territory.code, nsn.as_bytes())
    }

    fn render(code: u16, nsn: &[u8]) -> Result<Self, RejectReason> {
        let mut rendered = [0u8; MAX_RENDERED];
        rendered[0] = b'+';
        let code = decimal(u64::from(code));
        let code = code.as_slice();
        let end = 1 + code.len() + nsn.len();
        let slot = rendered.get_mut(1..end).ok_or(RejectReason::PhoneTooLong)?;
        let (code_slot, nsn_slot) = slot.split_at_mut(code.len());
        code_slot.copy_from_slice(code);
        nsn_slot.copy_from_slice(nsn);
        // `end` is at most `MAX_RENDERED`, which fits in a byte.
        let len = u8::try_from(end).map_err(|_| RejectReason::PhoneTooLong)?;
        Ok(Self { rendered, len })
    }

    /// `+18005550100`.
    pub fn e164(&self) -> &str {
        // Only ASCII digits and `+` are ever written into `rendered`.
        std::str::from_utf8(&self.rendered[..usize::from(self.len)]).unwrap_or_default()
    }

    /// `18005550100`: the E.164 digits without the `+`.
    pub fn digits(&self) -> &str {
        &self.e164()[1..]
    }

    /// The string that is hashed under `format`.
    pub fn formatted(&self, format: PhoneFormat) -> &str {
        match format {
            PhoneFormat::E164 => self.e164(),
            PhoneFormat::Digits => self.digits(),
        }
    }

    /// SHA-256 of the number in `format`.
    pub fn sha256(&self, format: PhoneFormat) -> Sha256Digest {
        Sha256Digest::of(self.formatted(format).as_bytes())
    }
}

impl fmt::Debug for E164Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164Phone(<redacted>)")
    }
}

/// The text handed to the crate's reader.
///
/// The crate tries RFC 3966 syntax first and its RFC 3966 reader takes a `+` followed by
/// anything but `-.()` as the country code (`+1/787-...` gets country code `1/787`).
/// libphonenumber reads free text unless the number is a `tel:` URI or carries a
/// `phone-context`; a leading space, which RFC 3966 forbids and the free-text reader skips,
/// sends everything else to the free-text reader. The crate's reader also knows only ASCII
/// digits, so the digits of other scripts are replaced by the ASCII digits of the same value.
fn for_reader(raw: &str) -> String {
    let tel_uri = raw
        .get(..4)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("tel:"));
    let mut text = String::with_capacity(raw.len() + 1);
    if !tel_uri && !raw.contains(";phone-context=") {
        text.push(' ');
    }
    text.extend(raw.chars().map(ascii_digit));
    text
}

/// The crate's reading of `text` (see `for_reader`) with `default_region`.
fn read(
    plan: &Plan,
    default_region: Region,
    text: &str,
) -> Result<phonenumber::PhoneNumber, RejectReason> {
    let region = Some(default_region.0);
    // After a `+`, libphonenumber first looks for a country code, and only if there is none
    // for the default region's international prefix (`+00 1...`); the crate looks for the
    // prefix first, so that `+995...` read in Finland (prefix `00|99...`) loses `99`.
    if starts_with_plus(text) {
        match phonenumber::parse_with(&plan.international, region, text) {
            Err(phonenumber::ParseError::InvalidCountryCode) => {
                phonenumber::parse_with(&plan.reading, region, text)
            }
            read => read,
        }
    } else {
        phonenumber::parse_with(&plan.reading, region, text)
    }
    .map_err(parse_error)
}

/// `text` with the letters of its number read as libphonenumber reads them, where the crate
/// reads them differently.
///
/// libphonenumber reads letters as keypad digits only in vanity numbers, with three letters or
/// more (`1-800-FLOWERS`), and otherwise drops them (`800-555-010O` has nine digits); the
/// crate always reads them as digits. A bare extension mark (`x` with no digits after it) is
/// part of the number for libphonenumber, so a vanity number may end in `X`; the crate drops
/// it. Letters before the number (`Tel:`) do not count.
fn with_letters_read(text: &str, bare_mark: bool) -> Option<String> {
    let (before, number) = text.split_at(number_start(text)?);
    let letters = number.bytes().filter(u8::is_ascii_alphabetic).count();
    let vanity = match letters {
        0 => return None,
        1 | 2 => false,
        _ if bare_mark => true,
        _ => return None,
    };
    let mut text = before.to_owned();
    for c in number.chars() {
        match keypad(c) {
            Some(digit) if vanity => text.push(digit),
            Some(_) => {}
            None => text.push(c),
        }
    }
    Some(text)
}

/// The digit of an ASCII letter on a phone keypad.
fn keypad(c: char) -> Option<char> {
    let digit = match c.to_ascii_uppercase() {
        'A'..='C' => '2',
        'D'..='F' => '3',
        'G'..='I' => '4',
        'J'..='L' => '5',
        'M'..='O' => '6',
        'P'..='S' => '7',
        'T'..='V' => '8',
        'W'..='Z' => '9',
        _ => return None,
    };
    Some(digit)
}

/// Where the number in `text` starts: libphonenumber skips anything before the first plus sign
/// or digit.
fn number_start(text: &str) -> Option<usize> {
    text.find(|c: char| c == '+' || c == '\u{FF0B}' || c.is_ascii_digit())
}

/// Whether the number in `text` starts with `+`.
fn starts_with_plus(text: &str) -> bool {
    number_start(text).is_some_and(|start| !text.as_bytes()[start].is_ascii_digit())
}

/// The first digit (zero) of the decimal digit blocks of the scripts people write phone
/// numbers in: Arabic-Indic, Eastern Arabic-Indic (Persian, Urdu), N'Ko, Devanagari, Bengali,
/// Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada, Malayalam, Thai, Lao, Tibetan, Myanmar,
/// Khmer, Mongolian and full-width (East Asian input methods).
const DIGIT_ZEROS: [u32; 19] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810, 0xFF10,
];

/// `c` as an ASCII digit if it is a decimal digit of one of `DIGIT_ZEROS`' scripts.
fn ascii_digit(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let code = u32::from(c);
    DIGIT_ZEROS
        .iter()
        .find_map(|&zero| code.checked_sub(zero).filter(|&offset| offset < 10))
        .and_then(|offset| char::from_digit(offset, 10))
        .unwrap_or(c)
}

/// The digits of a national number as the crate holds it: leading zeros, then the value.
fn digits(national: &phonenumber::NationalNumber) -> String {
    let mut digits = "0".repeat(usize::from(national.zeros()));
    let value = decimal(national.value());
    digits.extend(value.as_slice().iter().map(|&d| char::from(d)));
    digits
}

fn parse_error(error: phonenumber::ParseError) -> RejectReason {
    use phonenumber::ParseError as E;
    match error {
        E::InvalidCountryCode => RejectReason::PhoneInvalidCountryCode,
        E::TooShortAfterIdd | E::TooShortNsn => RejectReason::PhoneTooShort,
        E::TooLong => RejectReason::PhoneTooLong,
        _ => RejectReason::PhoneNotANumber,
    }
}

/// Possible lengths of national significant numbers in one territory.
///
/// libphonenumber's metadata build gives the general descriptor of a region the union of the
/// lengths of its number types; the `phonenumber` crate ships the per-type lengths only, so the
/// union is taken here. A length that some type can dial from anywhere is possible even if
/// another type lists it as local.
#[derive(Debug)]
struct Lengths {
    possible: Vec<u16>,
    local_only: Vec<u16>,
}

impl Lengths {
    fn of(meta: &phonenumber::Metadata) -> Self {
        let d = meta.descriptors();
        let types = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        let mut possible: Vec<u16> = d.general().possible_length().to_vec();
        let mut local_only: Vec<u16> = d.general().possible_local_length().to_vec();
        for desc in types.into_iter().flatten() {
            possible.extend_from_slice(desc.possible_length());
            local_only.extend_from_slice(desc.possible_local_length());
        }
        possible.sort_unstable();
        possible.dedup();
        local_only.sort_unstable();
        local_only.dedup();
        local_only.retain(|len| !possible.contains(len));
        Self {
            possible,
            local_only,
        }
    }

    /// libphonenumber's `testNumberLength`, as a rejection.
    fn check(&self, len: usize) -> Result<(), RejectReason> {
        let len = u16::try_from(len).map_err(|_| RejectReason::PhoneTooLong)?;
        if self.local_only.contains(&len) {
            return Err(RejectReason::PhoneLocalOnly);
        }
        match (self.possible.first(), self.possible.last()) {
            (Some(&min), _) if len < min => Err(RejectReason::PhoneTooShort),
            (_, Some(&max)) if len > max => Err(RejectReason::PhoneTooLong),
            _ if self.possible.contains(&len) => Ok(()),
            _ => Err(RejectReason::PhoneInvalidLength),
        }
    }
}

/// What the metadata says about one territory: a region, or a non-geographic country calling
/// code such as 800.
#[derive(Debug)]
struct Territory {
    code: u16,
    meta: &'static phonenumber::Metadata,
    /// The general pattern of the territory, anchored at both ends: libphonenumber matches
    /// whole numbers, the crate's patterns match prefixes.
    general: &'static Descriptor,
    lengths: Lengths,
}

impl Territory {
    /// Whether `digits` is entirely a number of this territory's general pattern.
    fn matches(&self, digits: &str) -> bool {
        self.general.national_number().is_match(digits)
    }

    /// libphonenumber's `maybeStripNationalPrefixAndCarrierCode`: `digits` without the
    /// national prefix (or with the transformation some regions apply instead), unless the
    /// number fits the general pattern only with the prefix.
    fn strip_national_prefix<'a>(&self, digits: &'a str) -> Cow<'a, str> {
        let stripped = match self.meta.national_prefix_for_parsing() {
            Some(pattern) => {
                let Some(captures) = pattern.captures(digits) else {
                    return Cow::Borrowed(digits);
                };
                let Some(prefix) = captures.get(0).filter(|m| m.start() == 0) else {
                    return Cow::Borrowed(digits);
                };
                let groups = captures.len() - 1;
                let transform = self
                    .meta
                    .national_prefix_transform_rule()
                    .filter(|rule| !rule.is_empty());
                match transform {
                    Some(rule) if groups > 0 && captures.get(groups).is_some() => {
                        pattern.replace(digits, rule)
                    }
                    _ => Cow::Borrowed(&digits[prefix.end()..]),
                }
            }
            // Without a parsing pattern, libphonenumber parses with the national prefix itself.
            None => match self.meta.national_prefix() {
                Some(prefix) if !prefix.is_empty() && digits.starts_with(prefix) => {
                    Cow::Borrowed(&digits[prefix.len()..])
                }
                _ => return Cow::Borrowed(digits),
            },
        };
        if self.matches(digits) && !self.matches(&stripped) {
            Cow::Borrowed(digits)
        } else {
            stripped
        }
    }

    /// The national significant number in `national`: without its national prefix, unless
    /// what is left would be too short or of a length this territory does not use (as
    /// libphonenumber's `parse` decides).
    fn without_national_prefix<'a>(&self, national: &'a str) -> Cow<'a, str> {
        let stripped = self.strip_national_prefix(national);
        match self.lengths.check(stripped.len()) {
            Err(
                RejectReason::PhoneTooShort
                | RejectReason::PhoneLocalOnly
                | RejectReason::PhoneInvalidLength,
            ) => Cow::Borrowed(national),
            _ => stripped,
        }
    }

    /// `nsn` stripped of national prefixes until nothing more comes off.
    ///
    /// libphonenumber strips once, also from the digits after a country code, so the E.164
    /// form of a number that still starts with a national prefix (`+49 0 0...`, or an invalid
    /// number such as `+375 8 847...`) reads as another number. Reading such a number as
    /// libphonenumber reads its E.164 form makes every E.164 form read back as itself. Only
    /// numbers that fit no number type change here: a valid number does not start with a
    /// national prefix, or no longer fits the plan without it.
    fn settled(&self, mut nsn: String) -> String {
        // A strip takes off at least a digit and the metadata's transformations apply once;
        // the bound only guards against metadata that would not.
        for _ in 0..MAX_NSN {
            let next = self.without_national_prefix(&nsn);
            if *next == *nsn {
                break;
            }
            nsn = next.into_owned();
        }
        nsn
    }

    /// libphonenumber's reading of a number written without `+` that starts with this
    /// region's country code: the rest of the number (without national prefix) if the number
    /// only makes sense with the code taken off, or is too long to be a national number.
    fn country_code_in(&self, whole: &str) -> Option<String> {
        let code = decimal(u64::from(self.code));
        let rest = whole.as_bytes().strip_prefix(code.as_slice())?;
        // `whole` is ASCII digits, so every byte offset is a character boundary.
        let rest = whole.get(whole.len() - rest.len()..)?;
        let rest = self.strip_national_prefix(rest);
        let only_without_code = !self.matches(whole) && self.matches(&rest);
        let too_long = self.lengths.check(whole.len()) == Err(RejectReason::PhoneTooLong);
        (only_without_code || too_long).then(|| rest.into_owned())
    }
}

/// The metadata as this module reads it, built once per process.
#[derive(Debug)]
struct Plan {
    /// The crate's metadata without national prefixes, for the crate's reader.
    reading: Database,
    /// The same without international prefixes, for numbers written with `+`.
    international: Database,
    territories: Vec<Territory>,
    by_region: HashMap<Id, usize>,
    /// The main territory of each country calling code.
    by_code: HashMap<u16, usize>,
}

impl Plan {
    fn region(&self, region: Region) -> Option<&Territory> {
        self.by_region
            .get(&region.0)
            .map(|&index| &self.territories[index])
    }

    fn main(&self, code: u16) -> Result<&Territory, RejectReason> {
        self.by_code
            .get(&code)
            .map(|&index| &self.territories[index])
            .ok_or(RejectReason::PhoneInvalidCountryCode)
    }
}

/// Every territory of the crate's metadata, the main region of each code first. (Iterating
/// the database by region would see only one of the non-geographic codes, which all share the
/// region `001`.)
fn all_territories() -> impl Iterator<Item = &'static phonenumber::Metadata> {
    (1..=999u16)
        .filter_map(|code| DATABASE.by_code(&code))
        .flatten()
}

/// A key naming one territory uniquely (`001` is shared by the non-geographic codes).
fn territory_key(meta: &phonenumber::Metadata) -> String {
    format!("{}/{}", meta.country_code(), meta.id())
}

/// The general patterns of every territory, anchored; the crate compiles patterns only as
/// part of a database.
fn patterns() -> &'static Database {
    static PATTERNS: OnceLock<Database> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let territories = all_territories()
            .map(|meta| loader::Metadata {
                id: Some(territory_key(meta)),
                country_code: Some(meta.country_code()),
                general: Some(loader::Descriptor {
                    national_number: Some(format!(
                        "^(?:{})$",
                        meta.descriptors().general().national_number().as_str()
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        // The input is the crate's own compiled-in metadata, so this fails only on a bug.
        Database::from(territories).expect("the anchored general patterns compile")
    })
}

/// The crate's metadata for its reader: the same regions, codes and (`with_idd`) international
/// prefixes, no national prefixes, and a general pattern that takes every number of up to 17
/// digits as national (so that the reader never takes a country code off a national number:
/// that rule is applied in `Territory::country_code_in`).
fn reading(with_idd: bool) -> Database {
    let territories = all_territories()
        .map(|meta| loader::Metadata {
            id: Some(meta.id().to_owned()),
            country_code: Some(meta.country_code()),
            international_prefix: meta
                .international_prefix()
                .filter(|_| with_idd)
                .map(|prefix| prefix.as_str().to_owned()),
            main_country_for_code: meta.is_main_country_for_code(),
            general: Some(loader::Descriptor {
                national_number: Some(r"\d+".to_owned()),
                possible_length: (1..=17).collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    // The input is the crate's own compiled-in metadata, so this fails only on a bug.
    Database::from(territories).expect("the reading metadata compiles")
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let patterns = patterns();
        let mut plan = Plan {
            reading: reading(true),
            international: reading(false),
            territories: Vec::new(),
            by_region: HashMap::new(),
            by_code: HashMap::new(),
        };
        for meta in all_territories() {
            let code = meta.country_code();
            let Some(general) = patterns
                .by_id(territory_key(meta).as_str())
                .map(|anchored| anchored.descriptors().general())
            else {
                continue;
            };
            let index = plan.territories.len();
            plan.territories.push(Territory {
                code,
                meta,
                general,
                lengths: Lengths::of(meta),
            });
            // `all_territories` lists the main region of a code first.
            plan.by_code.entry(code).or_insert(index);
            if let Ok(id) = Id::from_str(meta.id()) {
                plan.by_region.insert(id, index);
            }
        }
        plan
    })
}

/// The decimal digits of `value`, in a small stack buffer.
struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn decimal(mut value: u64) -> Decimal {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        // `value % 10` is below 10, so the cast cannot truncate.
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    Decimal { buf, start }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(raw: &str, region: &str) -> Result<String, RejectReason> {
        let region = Region::parse(region).unwrap();
        E164Phone::parse(raw, region).map(|p| p.e164().to_owned())
    }

    #[test]
    fn formats_of_one_number() {
        for raw in [
            "+1-800-555-0100",
            "+1 (800) 555-0100",
            "(800) 555-0100",
            "800.555.0100",
            "1 800 555 0100",
            "18005550100",
            "  800-555-0100  ",
            "tel:+1-800-555-0100",
            "011 1 800 555 0100",
        ] {
            assert_eq!(e164(raw, "US").unwrap(), "+18005550100", "{raw}");
        }
        let phone = E164Phone::parse("+1-800-555-0100", Region::US).unwrap();
        assert_eq!(phone.digits(), "18005550100");
        assert_eq!(phone.formatted(PhoneFormat::E164), "+18005550100");
        assert_eq!(phone.formatted(PhoneFormat::Digits), "18005550100");
    }

    #[test]
    fn international_numbers_in_several_regions() {
        let cases = [
            ("020 7946 0958", "GB", "+442079460958"),
            ("07700 900123", "GB", "+447700900123"),
            ("+44 7700 900123", "US", "+447700900123"),
            ("01 42 68 53 00", "FR", "+33142685300"),
            ("06 12 34 56 78", "FR", "+33612345678"),
            ("030 1234567", "DE", "+49301234567"),
            ("02 1234 5678", "IT", "+390212345678"),
            ("+39 02 1234 5678", "US", "+390212345678"),
            ("03-1234-5678", "JP", "+81312345678"),
            ("(11) 91234-5678", "BR", "+5511912345678"),
            ("98765 43210", "IN", "+919876543210"),
            ("0412 345 678", "AU", "+61412345678"),
            ("(416) 555-0199", "CA", "+14165550199"),
            ("00 33 1 42 68 53 00", "DE", "+33142685300"),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(e164(raw, region).unwrap(), expected, "{raw} in {region}");
        }
    }

    /// Readings where the `phonenumber` crate alone differs from libphonenumber (the expected
    /// values are Python `phonenumbers`' own).
    #[test]
    fn reads_like_libphonenumber() {
        let cases = [
            // National prefixes: Russia's `8` is stripped once, and only when what is left
            // still fits the plan; Argentina and Brazil rewrite or drop carrier codes.
            ("+7 812 123-45-67", "RU", "+78121234567"),
            ("8 (800) 555-35-35", "RU", "+78005553535"),
            ("011 15-2345-6789", "AR", "+5491123456789"),
            ("0 21 11 91234-5678", "BR", "+5511912345678"),
            ("0549 123456", "SM", "+3780549123456"),
            // Another country's number is read with that country's rules.
            ("+39 02 1234 5678", "FR", "+390212345678"),
            ("011 44 20 7946 0958", "US", "+442079460958"),
            ("+00 1 800 555 0100", "DE", "+18005550100"),
            ("+1 416 555 0199", "CA", "+14165550199"),
            ("774-1234", "VI", "+13407741234"),
            // After `+`, a country code before the default region's international prefix.
            ("+995 32 286 27 18", "AX", "+995322862718"),
            // Non-geographic country codes.
            ("+800 1234 5678", "US", "+80012345678"),
            // Numbers that start with the default region's code.
            ("4916400398", "DE", "+494916400398"),
            ("49 30 1234567", "DE", "+49301234567"),
            // Free text that the crate's RFC 3966 reader would take for a URI.
            ("+1/787-262-5654", "GB", "+17872625654"),
            // Digits of other scripts, a bare extension mark, letters.
            ("٠٦ ١٢ ٣٤ ٥٦ ٧٨", "FR", "+33612345678"),
            ("＋４４ ７７００ ９００１２３", "JP", "+447700900123"),
            ("800-555-0100 x", "US", "+18005550100"),
            ("1-800-FLOWERS", "US", "+18003569377"),
            ("+1 800 FLOWERX", "US", "+18003569379"),
            ("087 18O 2389", "ZA", "+2787182389"),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(
                e164(raw, region).as_deref(),
                Ok(expected),
                "{raw} in {region}"
            );
        }
        assert_eq!(
            e164("0049 30 1234567", "US"),
            Err(RejectReason::PhoneTooLong)
        );
        assert_eq!(e164("123456", "SM"), Err(RejectReason::PhoneLocalOnly));
        assert_eq!(e164("800-555-010O", "US"), Err(RejectReason::PhoneTooShort));
        assert_eq!(
            e164("+1 800 356 937X", "US"),
            Err(RejectReason::PhoneTooShort)
        );
    }

    #[test]
    fn e164_forms_read_back_as_themselves() {
        // libphonenumber reads these as +490301234567, +440551276878 and +4900001, and reads
        // those E.164 forms as the numbers below.
        let cases = [
            ("+49 0 030 1234567", "US", "+49301234567"),
            ("0551 276878", "IM", "+44551276878"),
            ("+49 000001", "US", "+490001"),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(
                e164(raw, region).as_deref(),
                Ok(expected),
                "{raw} in {region}"
            );
            for again in ["US", "FR", "DE", "GB"] {
                assert_eq!(e164(expected, again).as_deref(), Ok(expected), "{expected}");
            }
        }
        assert_eq!(e164("+49 0000", "US"), Err(RejectReason::PhoneNotANumber));
    }

    #[test]
    fn every_country_code_has_a_main_territory() {
        let plan = plan();
        for code in [1, 7, 44, 262, 800, 808, 870, 878, 881, 882, 883, 888, 979] {
            assert!(plan.main(code).is_ok(), "{code}");
        }
        assert!(plan.region(Region::US).is_some());
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", RejectReason::PhoneNotANumber),
            ("hello", RejectReason::PhoneNotANumber),
            ("12", RejectReason::PhoneTooShort),
            ("555-0100", RejectReason::PhoneLocalOnly),
            ("+1 800 555 01000", RejectReason::PhoneTooLong),
            ("+1 800 555 01", RejectReason::PhoneTooShort),
            ("+999 1234 5678", RejectReason::PhoneInvalidCountryCode),
            ("+1-800-555-0100 ext. 12", RejectReason::PhoneHasExtension),
            ("800-555-0100 x12", RejectReason::PhoneHasExtension),
        ];
        for (raw, reason) in cases {
            assert_eq!(e164(raw, "US").unwrap_err(), reason, "{raw}");
        }
    }

    #[test]
    fn regions() {
        assert_eq!(Region::parse("us"), Some(Region::US));
        assert_eq!(Region::parse("UK"), Region::parse("GB"));
        assert_eq!(Region::parse("gb").unwrap().code(), "GB");
        assert_eq!(Region::parse("XX"), None);
        assert_eq!(Region::parse(""), None);
    }

    #[test]
    fn debug_never_shows_the_number() {
        let phone = E164Phone::parse("+1-800-555-0100", Region::US).unwrap();
        assert!(!format!("{phone:?}").contains("555"));
    }
}
