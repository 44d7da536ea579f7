//! Accounts as the core sees them: a dense number and a region.

use std::fmt;

use crate::identifier::Region;

/// The store's dense number for an account; the index holds these, not the platform's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountNo(pub u32);

/// An account's region: an ISO 3166-1 country, optionally with a subdivision (`US-CA`, `FR`,
/// `GB`). It selects the consent regime, and reads the account's phone numbers written
/// without `+`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountRegion {
    /// Uppercase, `CC` or `CC-SUB`.
    code: String,
}

impl AccountRegion {
    /// `CC` or `CC-SUB` (1 to 3 letters or digits), in any case; the country must be one
    /// libphonenumber knows.
    pub fn parse(text: &str) -> Option<Self> {
        let code = text.trim().to_ascii_uppercase();
        let (country, subdivision) = match code.split_once('-') {
            Some((c, s)) => (c, Some(s)),
            None => (code.as_str(), None),
        };
        let country_ok = country.len() == 2
            && country.bytes().all(|b| b.is_ascii_uppercase())
            && Region::parse(country).is_some();
        let subdivision_ok = subdivision.is_none_or(|s| {
            (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        (country_ok && subdivision_ok).then_some(Self { code })
    }

    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// The country part (`US` of `US-CA`).
    pub fn country(&self) -> &str {
        self.code.split_once('-').map_or(&self.code, |(c, _)| c)
    }

    /// The region for reading national phone numbers.
    pub fn phone_region(&self) -> Region {
        Region::parse(self.country()).unwrap_or_default()
    }
}

impl fmt::Display for AccountRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let ca = AccountRegion::parse("us-ca").unwrap();
        assert_eq!(ca.as_str(), "US-CA");
        assert_eq!(ca.country(), "US");
        assert_eq!(AccountRegion::parse("FR").unwrap().country(), "FR");
        for bad in ["", "U", "USA", "XX", "US-", "US-CALI", "US_CA", "1A"] {
            assert_eq!(AccountRegion::parse(bad), None, "{bad}");
        }
    }
}
