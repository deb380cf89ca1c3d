//! The closed vocabularies of the policy language, each term with its words
//! for the notice and, where one exists, its W3C Data Privacy Vocabulary IRI.

use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal, $label:literal, $dpv:expr;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word used in the policy file.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The words used in a notice.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }

            /// The DPV IRI (compact, `dpv:` prefix) where the vocabulary has one.
            pub fn dpv(self) -> Option<&'static str> {
                match self { $($name::$variant => $dpv,)+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The data-protection law the controller answers to.
    Regime {
        UkGdpr = "uk-gdpr", "the UK GDPR and the Data Protection Act 2018", Some("dpv:legal-uk:DPA");
        EuGdpr = "eu-gdpr", "the EU General Data Protection Regulation", Some("eu-gdpr:GDPR");
    }
}

vocabulary! {
    Sensitivity {
        Ordinary = "ordinary", "ordinary personal data", Some("dpv:PersonalData");
        Special = "special", "special category data", Some("dpv:SpecialCategoryPersonalData");
    }
}

// Written out because the vocabulary macro derives the enum.
#[allow(clippy::derivable_impls)]
impl Default for Sensitivity {
    fn default() -> Self {
        Sensitivity::Ordinary
    }
}

vocabulary! {
    /// Art. 13(2)(e): whether a person must provide a category of data.
    Requirement {
        Statutory = "statutory", "required by law", None;
        Contractual = "contractual", "required by our contract with you", None;
        ContractEntry = "contract-entry", "needed to enter into a contract with you", None;
        Voluntary = "voluntary", "up to you", None;
    }
}

vocabulary! {
    /// The conditions of UK GDPR Art. 9(2) and DPA 2018 Sch. 1 (Parts 1 and 2)
    /// that lift the ban on special-category data. A closed list: the
    /// notice publishes the words, the record of processing the reference.
    Art9Condition {
        ExplicitConsent = "explicit-consent", "your explicit consent (Art. 9(2)(a))", None;
        EmploymentLaw = "employment-law", "our obligations and rights in employment, social security and social protection law (Art. 9(2)(b); DPA 2018 Sch. 1 para. 1)", None;
        VitalInterests = "vital-interests", "protecting your vital interests or someone else's where consent cannot be given (Art. 9(2)(c))", None;
        NotForProfitBody = "not-for-profit-body", "the legitimate activities of a not-for-profit body with a political, philosophical, religious or trade union aim (Art. 9(2)(d))", None;
        MadePublic = "made-public", "information you have manifestly made public (Art. 9(2)(e))", None;
        LegalClaims = "legal-claims", "establishing, exercising or defending legal claims (Art. 9(2)(f))", None;
        StatutoryPurposes = "statutory-purposes", "substantial public interest: statutory and government purposes (Art. 9(2)(g); DPA 2018 Sch. 1 para. 6)", None;
        EqualityOfOpportunity = "equality-of-opportunity", "substantial public interest: equality of opportunity or treatment (Art. 9(2)(g); DPA 2018 Sch. 1 para. 8)", None;
        PreventingCrime = "preventing-crime", "substantial public interest: preventing or detecting unlawful acts (Art. 9(2)(g); DPA 2018 Sch. 1 para. 10)", None;
        PreventingFraud = "preventing-fraud", "substantial public interest: preventing fraud (Art. 9(2)(g); DPA 2018 Sch. 1 para. 14)", None;
        SafeguardingIndividuals = "safeguarding", "substantial public interest: safeguarding children and individuals at risk (Art. 9(2)(g); DPA 2018 Sch. 1 para. 18)", None;
        Insurance = "insurance", "substantial public interest: insurance (Art. 9(2)(g); DPA 2018 Sch. 1 para. 20)", None;
        OccupationalPensions = "occupational-pensions", "substantial public interest: occupational pensions (Art. 9(2)(g); DPA 2018 Sch. 1 para. 21)", None;
        HealthOrSocialCare = "health-or-social-care", "health or social care (Art. 9(2)(h); DPA 2018 Sch. 1 para. 2)", None;
        PublicHealth = "public-health", "public health (Art. 9(2)(i); DPA 2018 Sch. 1 para. 3)", None;
        Research = "research", "archiving, research and statistics (Art. 9(2)(j); DPA 2018 Sch. 1 para. 4)", None;
    }
}

impl Art9Condition {
    /// Whether the DPA 2018 Sch. 1 condition also needs an appropriate
    /// policy document (Sch. 1 paras. 1, 5 and Part 2).
    pub fn needs_appropriate_policy_document(self) -> bool {
        !matches!(
            self,
            Art9Condition::ExplicitConsent
                | Art9Condition::VitalInterests
                | Art9Condition::NotForProfitBody
                | Art9Condition::MadePublic
                | Art9Condition::LegalClaims
                | Art9Condition::HealthOrSocialCare
                | Art9Condition::PublicHealth
                | Art9Condition::Research
        )
    }
}

vocabulary! {
    /// DPA 2018 Sch. 2 exemptions: they permit a disclosure the listed
    /// provisions would otherwise stop; they oblige nothing.
    Exemption {
        CrimeAndTaxation = "dpa-sch2-para2", "the prevention or detection of crime, the apprehension or prosecution of offenders, or the assessment or collection of tax (Data Protection Act 2018, Sch. 2 para. 2)", None;
        LegalProceedings = "dpa-sch2-para5", "legal proceedings, legal advice, or establishing, exercising or defending legal rights (Data Protection Act 2018, Sch. 2 para. 5)", None;
    }
}

vocabulary! {
    /// How data reaches the controller (Art. 14 and Art. 20 turn on this).
    DataSource {
        Provided = "provided", "you give it to us", Some("dpv:DataSubjectProvided");
        Observed = "observed", "we observe it when you use our services", Some("dpv:ObservedPersonalData");
        Inferred = "inferred", "we infer it from other data", Some("dpv:InferredPersonalData");
    }
}

vocabulary! {
    /// The type of one field's value; collection validates values against it.
    FieldType {
        Text = "text", "text", None;
        Email = "email", "email address", Some("pd:EmailAddress");
        Phone = "phone", "telephone number (E.164)", Some("pd:TelephoneNumber");
        PostalAddress = "postal-address", "postal address", Some("pd:PhysicalAddress");
        IpAddress = "ip-address", "IP address", Some("pd:IPAddress");
        Url = "url", "web address", Some("pd:BrowsingReferral");
        Date = "date", "date", None;
        Datetime = "datetime", "date and time", None;
        Integer = "integer", "whole number", None;
        Decimal = "decimal", "decimal number", None;
        Boolean = "boolean", "yes or no", None;
        Country = "country", "country code", Some("pd:Country");
    }
}

vocabulary! {
    /// Art. 6(1) legal bases.
    LegalBasis {
        Consent = "consent", "your consent", Some("dpv:Consent");
        Contract = "contract", "performance of a contract with you, or steps you asked for before one", Some("dpv:Contract");
        LegitimateInterest = "legitimate-interest", "our legitimate interests", Some("dpv:LegitimateInterest");
        LegalObligation = "legal-obligation", "a legal obligation we must comply with", Some("dpv:LegalObligation");
        VitalInterest = "vital-interest", "protecting someone's vital interests", Some("dpv:VitalInterest");
        PublicTask = "public-task", "a task in the public interest", Some("dpv:PublicInterest");
    }
}

vocabulary! {
    RecipientKind {
        Processor = "processor", "service provider working on our behalf", Some("dpv:DataProcessor");
        ThirdParty = "third-party", "independent third party", Some("dpv:ThirdParty");
        Analytics = "analytics", "analytics or search engine provider", Some("dpv:DataProcessor");
        Authority = "authority", "public authority", Some("dpv:Authority");
        Acquirer = "acquirer", "buyer of all or part of our business", Some("dpv:ThirdParty");
    }
}

vocabulary! {
    /// Chapter V safeguards for a transfer to a country without adequacy.
    Safeguard {
        Adequacy = "adequacy", "an adequacy decision", Some("dpv:AdequacyDecision");
        EuScc = "eu-scc", "the EU standard contractual clauses (2021/914)", Some("dpv:StandardContractualClauses");
        UkIdta = "uk-idta", "the UK International Data Transfer Agreement", Some("dpv:StandardContractualClauses");
        UkAddendum = "uk-addendum", "the UK Addendum to the EU standard contractual clauses", Some("dpv:StandardContractualClauses");
        Bcr = "bcr", "binding corporate rules", Some("dpv:BindingCorporateRules");
        Art49 = "art49-derogation", "an Art. 49 derogation for a specific situation", Some("dpv:DataTransferLegalBasis");
    }
}

impl Safeguard {
    /// Whether the safeguard exists under `regime` (UK GDPR Art. 46, 47, 49;
    /// EU GDPR the same articles): the IDTA and the UK Addendum are UK
    /// instruments, the 2021 SCCs alone an EU one. Binding corporate rules
    /// count only when approved under the regime, which the policy asserts.
    pub fn valid_under(self, regime: Regime) -> bool {
        match self {
            Safeguard::Adequacy | Safeguard::Bcr | Safeguard::Art49 => true,
            Safeguard::UkIdta | Safeguard::UkAddendum => regime == Regime::UkGdpr,
            Safeguard::EuScc => regime == Regime::EuGdpr,
        }
    }

    /// What to write instead of a safeguard of the other regime.
    pub fn instead_under(self, regime: Regime) -> &'static str {
        match regime {
            Regime::UkGdpr => {
                "under UK GDPR use `safeguard = \"uk-addendum\"` (the EU SCCs with the UK Addendum) or \"uk-idta\" (the International Data Transfer Agreement), or \"bcr\" approved by the ICO"
            }
            Regime::EuGdpr => {
                "under EU GDPR use `safeguard = \"eu-scc\"` (the 2021 standard contractual clauses, Decision 2021/914), or \"bcr\" approved under the EU GDPR"
            }
        }
    }
}

vocabulary! {
    /// The form in which a recipient may receive data.
    DisclosureForm {
        Identified = "identified", "in a form that identifies you", Some("dpv:IdentifyingPersonalData");
        Pseudonymised = "pseudonymised", "in a form that does not directly identify you", Some("dpv:PseudonymisedData");
        Aggregated = "aggregated", "only as aggregated statistics", Some("dpv:AggregatedData");
    }
}

vocabulary! {
    /// The event a retention period runs from.
    RetentionEvent {
        Collection = "collection", "from when we collect it", None;
        LastActivity = "last-activity", "from your last activity", None;
        RelationshipEnd = "relationship-end", "from the end of the relationship", None;
        ConsentWithdrawal = "consent-withdrawal", "from when you withdraw consent", None;
        RequestClosed = "request-closed", "from when your request is closed", None;
        ApplicationDecided = "application-decided", "from when your application is decided", None;
        AccountingPeriodEnd = "accounting-period-end", "from the end of the accounting period in which the transaction falls", None;
    }
}

vocabulary! {
    ChannelMode {
        OptIn = "opt-in", "only with your prior consent", Some("dpv:OptInConsent");
        OptOut = "opt-out", "unless you tell us not to", Some("dpv:OptOut");
    }
}

vocabulary! {
    CookieCategory {
        StrictlyNecessary = "strictly-necessary", "Strictly necessary", Some("dpv:ServiceProvision");
        Functional = "functional", "Functional", Some("dpv:ServicePersonalisation");
        Analytics = "analytics", "Analytics", Some("dpv:ServiceOptimisation");
        Marketing = "marketing", "Marketing", Some("dpv:Advertising");
    }
}

vocabulary! {
    /// Art. 18(2): grounds on which restricted data may still be processed.
    RestrictionGround {
        LegalClaims = "legal-claims", "the establishment, exercise or defence of legal claims", None;
        OtherPersonsRights = "other-persons-rights", "protecting the rights of another person", None;
        PublicInterest = "public-interest", "an important public interest", None;
    }
}

vocabulary! {
    /// The marketing channels the language knows.
    Channel {
        Email = "email", "email", Some("dpv:EmailCommunication");
        Phone = "phone", "telephone", Some("dpv:PhoneCommunication");
        Sms = "sms", "text message", Some("dpv:SMSCommunication");
        Post = "post", "post", Some("dpv:PostalCommunication");
        AutomatedCall = "automated-call", "automated call", Some("dpv:PhoneCommunication");
    }
}

impl Channel {
    /// How many channels there are: the length of per-channel tables.
    pub const COUNT: usize = 5;
    pub const EACH: [Channel; Channel::COUNT] = [
        Channel::Email,
        Channel::Phone,
        Channel::Sms,
        Channel::Post,
        Channel::AutomatedCall,
    ];

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.iter().copied().find(|c| c.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// PECR regs. 22 and 19: electronic mail (email, SMS) and automated
    /// calls need prior consent. Live calls (`phone`, reg. 21) and post do
    /// not: they are allowed unless the person objected (or, for calls, the
    /// number is on the Telephone Preference Service lists), unless the
    /// policy itself promises to ask first.
    pub fn needs_opt_in_under_pecr(self) -> bool {
        matches!(self, Channel::Email | Channel::Sms | Channel::AutomatedCall)
    }

    /// PECR reg. 22(3): the soft opt-in exists for electronic mail only,
    /// never for automated calls.
    pub fn soft_opt_in_applies(self) -> bool {
        matches!(self, Channel::Email | Channel::Sms)
    }
}
