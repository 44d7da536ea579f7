//! Purposes of data use, as keys of the fideslang data-use taxonomy.
//!
//! Only keys of the taxonomy are accepted, so that a typo in a policy file or a consent event
//! is refused rather than silently creating a purpose nobody checks.

use std::fmt;

/// The purpose audience matching serves.
pub const MARKETING_TARGETED: &str = "marketing.advertising.third_party.targeted";

/// The data-use keys of the fideslang taxonomy (fideslang 3.x default taxonomy).
const KNOWN: &[&str] = &[
    "analytics",
    "analytics.reporting",
    "analytics.reporting.ad_performance",
    "analytics.reporting.campaign_insights",
    "analytics.reporting.content_performance",
    "analytics.reporting.system",
    "analytics.reporting.system.performance",
    "collect",
    "collect.training",
    "collect.training.ai_system",
    "employment",
    "employment.recruitment",
    "essential",
    "essential.fraud_detection",
    "essential.service",
    "essential.service.authentication",
    "essential.service.notifications",
    "essential.service.notifications.email",
    "essential.service.notifications.sms",
    "essential.service.operations",
    "essential.service.operations.improve",
    "essential.service.operations.support",
    "essential.service.payment_processing",
    "essential.service.security",
    "essential.service.upgrades",
    "finance",
    "functional",
    "functional.service",
    "functional.service.improve",
    "functional.storage",
    "marketing",
    "marketing.advertising",
    "marketing.advertising.first_party",
    "marketing.advertising.first_party.contextual",
    "marketing.advertising.first_party.targeted",
    "marketing.advertising.frequency_capping",
    "marketing.advertising.negative_targeting",
    "marketing.advertising.profiling",
    "marketing.advertising.serving",
    "marketing.advertising.third_party",
    "marketing.advertising.third_party.contextual",
    "marketing.advertising.third_party.targeted",
    "marketing.communications",
    "marketing.communications.email",
    "marketing.communications.sms",
    "operations",
    "personalize",
    "personalize.content",
    "personalize.content.behavioral",
    "personalize.content.contextual",
    "personalize.content.limited",
    "personalize.content.profiled",
    "personalize.system",
    "sales",
    "third_party_sharing",
    "third_party_sharing.fraud_prevention_system",
    "third_party_sharing.legal_obligation",
    "third_party_sharing.payment_processing",
    "third_party_sharing.personalized_advertising",
    "train_ai_system",
];

/// A fideslang data-use key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purpose(&'static str);

impl Purpose {
    /// Audience matching: `marketing.advertising.third_party.targeted`.
    pub const MARKETING_TARGETED: Purpose = Purpose(MARKETING_TARGETED);

    /// A key of the taxonomy.
    pub fn parse(key: &str) -> Option<Purpose> {
        KNOWN
            .iter()
            .find(|&&known| known == key)
            .map(|&k| Purpose(k))
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// Whether this is a `marketing` purpose: security and address-book contact points can
    /// never serve it.
    pub fn is_marketing(self) -> bool {
        self.0 == "marketing" || self.0.starts_with("marketing.")
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_only() {
        assert_eq!(
            Purpose::parse(MARKETING_TARGETED),
            Some(Purpose::MARKETING_TARGETED)
        );
        assert!(Purpose::MARKETING_TARGETED.is_marketing());
        let security = Purpose::parse("essential.service.security").unwrap();
        assert!(!security.is_marketing());
        assert_eq!(
            Purpose::parse("marketing.advertising.third_party.targetted"),
            None
        );
        assert_eq!(Purpose::parse(""), None);
        assert!(!Purpose::parse("marketing_x").is_some_and(Purpose::is_marketing));
    }
}
