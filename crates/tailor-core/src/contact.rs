//! Contact points: what kind of identifier, and the context it was collected in.
//!
//! The context is the heart of Tailor's promise. A value given to secure an account (`mfa`,
//! `recovery`, `reauth`, `login_alert`) or learned from someone else's address book is never
//! usable for marketing. [`MarketingContext`] is the only context type the matcher accepts,
//! and it has no variant for those contexts: there is nothing to convert them into.

use std::fmt;

/// The kind of a contact point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactKind {
    Email,
    Phone,
}

impl ContactKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }
}

/// The context a contact point was collected in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    /// Entered by the person as a contact detail, with notice.
    Profile,
    /// Verified at sign-up.
    Signup,
    /// Given for two-factor authentication.
    Mfa,
    /// Given for account recovery.
    Recovery,
    /// Given for re-authentication.
    Reauth,
    /// Given to receive login alerts.
    LoginAlert,
    /// Learned from another user's uploaded contacts: never the person's own choice.
    AddressBook,
}

impl Context {
    pub const ALL: [Context; 7] = [
        Self::Profile,
        Self::Signup,
        Self::Mfa,
        Self::Recovery,
        Self::Reauth,
        Self::LoginAlert,
        Self::AddressBook,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Signup => "signup",
            Self::Mfa => "mfa",
            Self::Recovery => "recovery",
            Self::Reauth => "reauth",
            Self::LoginAlert => "login_alert",
            Self::AddressBook => "address_book",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// A context in which the value was given to secure the account.
    pub const fn is_security(self) -> bool {
        matches!(
            self,
            Self::Mfa | Self::Recovery | Self::Reauth | Self::LoginAlert
        )
    }

    /// Whether a contact point of this context can ever be used for a `marketing.*` purpose,
    /// whatever a policy says.
    pub const fn can_ever_market(self) -> bool {
        matches!(self, Self::Profile | Self::Signup)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contexts a contact point may have when it is used for marketing.
///
/// There is deliberately no variant for a security or address-book context and no conversion
/// that could produce one: `TryFrom<Context>` refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MarketingContext {
    Profile,
    Signup,
}

impl MarketingContext {
    pub const fn context(self) -> Context {
        match self {
            Self::Profile => Context::Profile,
            Self::Signup => Context::Signup,
        }
    }
}

/// A security or address-book context offered where a marketing context is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotMarketable(pub Context);

impl TryFrom<Context> for MarketingContext {
    type Error = NotMarketable;

    fn try_from(context: Context) -> Result<Self, Self::Error> {
        match context {
            Context::Profile => Ok(Self::Profile),
            Context::Signup => Ok(Self::Signup),
            other => Err(NotMarketable(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for context in Context::ALL {
            assert_eq!(Context::parse(context.as_str()), Some(context));
        }
        assert_eq!(Context::parse("Profile"), None);
        assert_eq!(ContactKind::parse("email"), Some(ContactKind::Email));
        assert_eq!(ContactKind::parse("fax"), None);
    }

    #[test]
    fn only_profile_and_signup_are_marketable() {
        for context in Context::ALL {
            let marketing = MarketingContext::try_from(context);
            assert_eq!(marketing.is_ok(), context.can_ever_market(), "{context}");
            if let Ok(marketing) = marketing {
                assert_eq!(marketing.context(), context);
            }
            assert!(!(context.is_security() && context.can_ever_market()));
        }
    }
}
