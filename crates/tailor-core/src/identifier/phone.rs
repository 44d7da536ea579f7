//! Phone numbers: parsed with libphonenumber metadata (the `phonenumber` crate) and rendered in
//! E.164, with or without the leading `+`.
//!
//! A number is accepted only when libphonenumber considers its length possible for its country
//! and it can be dialled from anywhere (a local-only number has no E.164 form). Validity
//! against the full numbering plan is not checked: it costs about eight times a parse and
//! rejects numbers that were allocated after the metadata was published.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

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

/// The longest E.164 rendering: `+`, up to 3 digits of country code, up to 17 digits of
/// national significant number (libphonenumber's limit).
const MAX_RENDERED: usize = 1 + 3 + 17;

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
        let raw = raw.trim_ascii();
        let mut number = phonenumber::parse(Some(default_region.0), raw).map_err(parse_error)?;
        // The `phonenumber` crate strips national prefixes with the metadata of the default
        // region even when the number names another country (`+39 02...` read with region FR
        // loses the Italian leading zero). libphonenumber uses the metadata of the number's
        // own country; reading the number again with that country as the default does the
        // same.
        if let Some(own) = main_region(number.code().value())
            && own != default_region.0
        {
            number = phonenumber::parse(Some(own), raw).map_err(parse_error)?;
        }
        if number.extension().is_some() {
            return Err(RejectReason::PhoneHasExtension);
        }
        let code = number.code().value();
        let national = number.national();
        let nsn_len = u32::from(national.zeros()) + decimal_len(national.value());
        check_length(code, nsn_len)?;
        Self::render(code, national.zeros(), national.value())
    }

    fn render(code: u16, zeros: u8, value: u64) -> Result<Self, RejectReason> {
        let mut rendered = [0u8; MAX_RENDERED];
        rendered[0] = b'+';
        let mut len = 1;
        let mut push = |digits: &[u8]| -> Result<(), RejectReason> {
            let end = len + digits.len();
            let slot = rendered
                .get_mut(len..end)
                .ok_or(RejectReason::PhoneTooLong)?;
            slot.copy_from_slice(digits);
            len = end;
            Ok(())
        };
        push(decimal(u64::from(code)).as_slice())?;
        for _ in 0..zeros {
            push(b"0")?;
        }
        push(decimal(value).as_slice())?;
        // `len` is at most `MAX_RENDERED`, which fits in a byte.
        let len = u8::try_from(len).map_err(|_| RejectReason::PhoneTooLong)?;
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

/// The main region of a country calling code (`US` for `1`, `GB` for `44`), if it has one.
fn main_region(code: u16) -> Option<Id> {
    codes().get(&code).and_then(|info| info.main_region)
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

/// Possible lengths of national significant numbers for one country calling code.
///
/// libphonenumber's metadata build gives the general descriptor of a region the union of the
/// lengths of its number types; the `phonenumber` crate ships the per-type lengths only, so the
/// union is taken here, for the main region of the code, as `isPossibleNumber` does. A length
/// that some type can dial from anywhere is possible even if another type lists it as local.
#[derive(Debug)]
struct Lengths {
    possible: Vec<u16>,
    local_only: Vec<u16>,
}

/// What the metadata says about one country calling code, looked up once per process because
/// the `phonenumber` database allocates on every lookup by code.
#[derive(Debug)]
struct CodeInfo {
    main_region: Option<Id>,
    lengths: Lengths,
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
}

fn codes() -> &'static HashMap<u16, CodeInfo> {
    static CODES: OnceLock<HashMap<u16, CodeInfo>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut map = HashMap::new();
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            if map.contains_key(&code) {
                continue;
            }
            // The database lists the main region of a shared code first.
            if let Some(main) = DATABASE.by_code(&code).and_then(|all| all.first().copied()) {
                let info = CodeInfo {
                    main_region: Id::from_str(main.id()).ok(),
                    lengths: Lengths::of(main),
                };
                map.insert(code, info);
            }
        }
        map
    })
}

fn check_length(code: u16, nsn_len: u32) -> Result<(), RejectReason> {
    let lengths = &codes()
        .get(&code)
        .ok_or(RejectReason::PhoneInvalidCountryCode)?
        .lengths;
    let len = u16::try_from(nsn_len).map_err(|_| RejectReason::PhoneTooLong)?;
    if lengths.local_only.contains(&len) {
        return Err(RejectReason::PhoneLocalOnly);
    }
    match (lengths.possible.first(), lengths.possible.last()) {
        (Some(&min), _) if len < min => Err(RejectReason::PhoneTooShort),
        (_, Some(&max)) if len > max => Err(RejectReason::PhoneTooLong),
        _ if lengths.possible.contains(&len) => Ok(()),
        _ => Err(RejectReason::PhoneInvalidLength),
    }
}

fn decimal_len(mut value: u64) -> u32 {
    let mut len = 1;
    while value >= 10 {
        value /= 10;
        len += 1;
    }
    len
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
