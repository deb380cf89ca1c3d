//! The rendered reference notice, checked section by section against the
//! commitments of the reference text (../shared/reference/seed-privacy-policy.txt).

use super::{Capabilities, Format, cookies, notice, ropa};

fn reference_notice() -> String {
    let policy = crate::reference().unwrap();
    notice::notice(&policy.document).write(Format::Markdown)
}

/// The text of the section headed `heading`, up to the next `## `.
fn section(text: &str, heading: &str) -> String {
    let start = text
        .find(&format!("## {heading}"))
        .unwrap_or_else(|| panic!("no section `{heading}`"));
    let rest = &text[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn assert_has(section_text: &str, commitments: &[&str]) {
    for c in commitments {
        assert!(
            section_text.contains(c),
            "missing `{c}` in:\n{section_text}"
        );
    }
}

#[test]
fn section_1_who_we_are() {
    let s = section(&reference_notice(), "Who we are");
    assert_has(
        &s,
        &[
            "i-Image IT Limited",
            "registered in England and Wales",
            "company number 09028104",
            "Chart House, 2 Effingham Road, Reigate, Surrey RH2 7JN",
            "Information Commissioner's Office (ICO)",
            "ZA292671",
            "Data Protection Officer is Andrew Cakebread",
            "Unit 2 Basepoint Business Centre, Metcalf Way, Crawley, West Sussex RH11 7XX",
            "+44 (0) 333 305 2252",
            "websites",
            "apps",
            "call-centres",
        ],
    );
}

#[test]
fn sections_2_and_11_what_the_notice_does_not_cover() {
    let s = section(&reference_notice(), "Who we are");
    // Section 2: the EULA is out of scope; section 11: other websites.
    assert_has(
        &s,
        &["End User Licence Agreement (EULA)", "applies only to ours"],
    );
}

#[test]
fn section_4_what_we_collect() {
    let s = section(
        &reference_notice(),
        "What we collect and where it comes from",
    );
    assert_has(
        &s,
        &[
            "Your name",
            "Your postal address",
            "Your email address",
            "Your IP address",
            "how you got to our websites",
            "How you use our services",
            "newsletter",
            "call-centres",
        ],
    );
}

#[test]
fn sections_5_and_6_purposes_and_legal_bases() {
    let s = section(
        &reference_notice(),
        "How we use your information and our legal basis",
    );
    assert_has(
        &s,
        &[
            "Providing you with information, products or services you have requested from us.",
            "Completing any transaction that you do with us.",
            "interactive features",
            "Processing any orders that you have submitted.",
            "Carrying out our obligations arising from any contracts entered into by you and us.",
            "Seeking your views or comments on the services we provide.",
            "Notifying you of any changes to our services.",
            "Sending you communications which you have requested and that may be of interest to you",
            "Processing a request or job application.",
            "presented in the most effective manner for you and your device",
            "Troubleshooting, data analysis, testing, research, statistical and survey purposes",
            "keeping our services safe and secure",
            "Managing and operating your account with us.",
            "Contract:",
            "Consent:",
            "withdraw consent at any time",
            "Legitimate interests:",
            "Legal obligation:",
        ],
    );
}

#[test]
fn section_7_who_receives_it() {
    let s = section(&reference_notice(), "Who receives your information");
    assert_has(
        &s,
        &[
            "We will not sell or rent your information to third parties.",
            "We will not share your information with third parties for their own marketing.",
            "mailing",
            "not to use it for their own direct marketing",
            "only the information needed",
            "analytics",
            "Search engine providers",
            "does not directly identify you",
            "sale or reorganisation",
            "Only where the law requires us to disclose data",
        ],
    );
}

#[test]
fn section_8_marketing_and_rights() {
    let text = reference_notice();
    let m = section(&text, "Marketing and your choices");
    assert_has(
        &m,
        &[
            "We will not contact you for marketing purposes by email, telephone, text message or automated call unless you have given your prior consent.",
            "We will not contact you for marketing purposes by post if you have told us that you do not wish to be contacted.",
            "change your marketing preferences at any time",
            "tick or untick the boxes",
        ],
    );
    let r = section(&text, "Your rights");
    assert_has(
        &r,
        &[
            "right of access",
            "right to rectification",
            "right to erasure",
            "right to restriction",
            "right to object",
            "machine-readable",
            "right to data portability",
            "withdraw your consent",
            "legal reasons why we cannot fulfil all of a request",
            "within one month",
        ],
    );
}

#[test]
fn section_3_complaint_to_the_regulator() {
    let s = section(&reference_notice(), "Your right to complain");
    assert_has(
        &s,
        &[
            "complaint at any time",
            "Information Commissioner's Office (ICO)",
            "https://ico.org.uk",
        ],
    );
}

#[test]
fn section_9_transfers_and_security() {
    let text = reference_notice();
    let t = section(&text, "Transfers outside the UK");
    assert_has(
        &t,
        &[
            "only where the destination has an adequacy decision or the transfer is protected by an approved safeguard",
            "Servers that may from time to time be located outside the UK and EEA",
            "the United States, protected by the UK International Data Transfer Agreement",
        ],
    );
    let s = section(&text, "How we keep your information secure");
    assert_has(
        &s,
        &["encrypted", "password", "do not share it with anyone"],
    );
}

#[test]
fn section_5_retention() {
    let s = section(&reference_notice(), "How long we keep your information");
    assert_has(
        &s,
        &[
            "only as long as necessary",
            "contract you hold with us",
            "review these periods regularly",
            "6 years",
        ],
    );
}

#[test]
fn section_10_cookies() {
    let s = section(&reference_notice(), "Cookies");
    assert_has(
        &s,
        &[
            "remember your login details",
            "switch cookies off",
            "browser",
            "cookie policy",
        ],
    );
}

#[test]
fn section_1_changes_are_posted() {
    let s = section(&reference_notice(), "Changes to this notice");
    assert_has(
        &s,
        &[
            "We may change this notice",
            "https://www.iimageit.com/privacy-policy",
            "2018-05-01",
            "2.0",
        ],
    );
}

#[test]
fn html_notice_is_self_contained() {
    let policy = crate::reference().unwrap();
    let html = notice::notice(&policy.document).write(Format::Html);
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(html.contains("<h2 id=\"who-we-are\">Who we are</h2>"));
    assert!(html.contains("Information Commissioner&#39;s Office"));
}

#[test]
fn cookie_policy_lists_every_cookie_with_its_lifetime() {
    let policy = crate::reference().unwrap();
    let md = cookies::cookie_policy(&policy.document).write(Format::Markdown);
    for (name, lifetime) in [
        ("session_id", "until you close your browser"),
        ("cookie_choices", "6 months"),
        ("remember_login", "30 days"),
        ("_analytics_id", "13 months"),
    ] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap();
        assert!(row.contains(lifetime), "{row}");
    }
    assert!(md.contains("### Analytics cookies"));
    assert!(md.contains("Global Privacy Control"));
}

#[test]
fn record_of_processing_has_the_art_30_fields() {
    let policy = crate::reference().unwrap();
    let record = ropa::record(&policy.document);
    assert_eq!(record.activities.len(), policy.document.purposes.len());
    assert_eq!(record.controller.dpo, "Andrew Cakebread");
    let analytics = record
        .activities
        .iter()
        .find(|a| a.purpose_id == "analytics-research")
        .unwrap();
    assert_eq!(analytics.legal_basis, "legitimate-interest");
    assert!(
        analytics
            .third_country_transfers
            .iter()
            .any(|t| t.contains("United States"))
    );
    assert!(!analytics.erasure_time_limit.is_empty());
    assert!(!record.security_measures.is_empty());
    let csv = ropa::csv(&policy.document);
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + record.activities.len());
    assert!(lines[0].starts_with("controller,controller_contact,dpo"));
    let json: serde_json::Value = serde_json::from_str(&ropa::json(&policy.document)).unwrap();
    assert_eq!(
        json["activities"].as_array().unwrap().len(),
        record.activities.len()
    );
}

fn notice_with(capabilities: Capabilities) -> String {
    let policy = crate::reference().unwrap();
    notice::notice_with(&policy.document, &capabilities).write(Format::Markdown)
}

const AUTOMATIC_ERASURE: &str = "erased automatically";
const CHANGE_NOTICES: &str = "we tell you directly about changes";
const AUDIT_LOG: &str = "tamper-evident";

#[test]
fn the_default_notice_claims_no_capability() {
    let text = reference_notice();
    for claim in [AUTOMATIC_ERASURE, CHANGE_NOTICES, AUDIT_LOG] {
        assert!(!text.contains(claim), "`{claim}` claimed by default");
    }
    assert_eq!(text, notice_with(Capabilities::default()));
}

#[test]
fn each_capability_is_claimed_only_when_it_runs() {
    let cases = [
        (
            Capabilities {
                retention_sweep: true,
                ..Capabilities::default()
            },
            AUTOMATIC_ERASURE,
            "How long we keep your information",
        ),
        (
            Capabilities {
                change_notices: true,
                ..Capabilities::default()
            },
            CHANGE_NOTICES,
            "Changes to this notice",
        ),
        (
            Capabilities {
                tamper_evident_audit: true,
                ..Capabilities::default()
            },
            AUDIT_LOG,
            "How we keep your information secure",
        ),
    ];
    for (capabilities, claim, heading) in cases {
        let text = notice_with(capabilities);
        assert!(section(&text, heading).contains(claim), "{claim}");
        for (_, other, _) in &cases {
            if *other != claim {
                assert!(
                    !text.contains(other),
                    "`{other}` claimed with only `{claim}`"
                );
            }
        }
    }
}

#[test]
fn the_product_name_is_not_in_the_notice() {
    let all = Capabilities {
        retention_sweep: true,
        change_notices: true,
        tamper_evident_audit: true,
    };
    for text in [reference_notice(), notice_with(all)] {
        assert!(!text.to_lowercase().contains("custodian"), "{text}");
    }
}

#[test]
fn art_13_2_e_says_per_category_whether_it_must_be_given() {
    let s = section(
        &reference_notice(),
        "What we collect and where it comes from",
    );
    assert_has(
        &s,
        &[
            "Must you give it?",
            "Yes: it is needed to enter into a contract with you. If you do not give it, we cannot answer your enquiry.",
            "Yes: it is required by our contract with you. If you do not give it, we cannot process your order.",
            "No, it is up to you.",
            "Not applicable: we do not ask you for it",
        ],
    );
}

#[test]
fn art_13_2_f_states_that_there_are_no_automated_decisions() {
    let s = section(&reference_notice(), "Automated decisions and profiling");
    assert_has(
        &s,
        &["We do not make decisions about you based solely on automated processing"],
    );
    let policy = crate::REFERENCE_POLICY.replacen(
        "[automated_decisions]",
        "[automated_decisions]\n[[automated_decisions.decision]]\nname = \"Fraud score\"\nlogic = \"Orders are scored on their address and payment history.\"\nconsequences = \"A high score holds the order for review.\"\npurpose = \"security\"",
        1,
    );
    let loaded = crate::load("p.toml", &policy).unwrap();
    let text = notice::notice(&loaded.document).write(Format::Markdown);
    let s = section(&text, "Automated decisions and profiling");
    assert_has(
        &s,
        &[
            "Fraud score",
            "Keeping our services safe and secure",
            "holds the order for review",
        ],
    );
    assert!(!s.contains("We do not make decisions"));
    let undeclared = crate::REFERENCE_POLICY.replacen("[automated_decisions]", "", 1);
    let errors = crate::load("p.toml", &undeclared).unwrap_err();
    assert!(errors.messages()[0].contains("does not declare its automated decision-making"));
}

#[test]
fn the_right_to_object_stands_apart_from_the_other_rights() {
    let text = reference_notice();
    let s = section(&text, "Your right to object");
    assert_has(
        &s,
        &[
            "right to object at any time to our use of your information for direct marketing",
            "we stop using it for direct marketing",
            "compelling legitimate grounds",
            "customising your experience",
        ],
    );
    assert!(text.find("## Your right to object") < text.find("## Your rights\n"));
}

#[test]
fn enforcing_terms_is_a_legitimate_interest_and_schedule_2_permits() {
    let s = section(
        &reference_notice(),
        "How we use your information and our legal basis",
    );
    let row = s
        .lines()
        .find(|l| l.contains("Enforcing or applying our terms of use"))
        .unwrap();
    assert!(row.contains("Our legitimate interests"), "{row}");
    assert!(row.contains("permits (but does not require)"), "{row}");
    assert!(
        row.contains("Sch. 2 para. 2") && row.contains("Sch. 2 para. 5"),
        "{row}"
    );
    let duty = s
        .lines()
        .find(|l| l.contains("under a legal duty"))
        .unwrap();
    assert!(!duty.contains("Sch. 2"), "{duty}");
}

#[test]
fn complaints_go_to_us_first_and_then_the_ico() {
    let s = section(&reference_notice(), "Your right to complain");
    let us = s.find("please complain to us first").unwrap();
    let ico = s.find("Information Commissioner's Office").unwrap();
    assert!(us < ico);
}

#[test]
fn the_dpo_group_and_storage_providers_are_named() {
    let text = reference_notice();
    assert_has(
        &section(&text, "Who we are"),
        &[
            "dpo@iimageit.com",
            "its subsidiaries (together, the i-Image Group)",
        ],
    );
    assert_has(
        &section(&text, "Who receives your information"),
        &[
            "Our backup provider (hosting or backup provider)",
            "Our hosting provider",
        ],
    );
}

#[test]
fn a_special_category_condition_comes_from_the_closed_list_and_is_published() {
    let with = crate::REFERENCE_POLICY.replacen(
        "id = \"feedback\"\nname = \"Your views and comments\"",
        "id = \"feedback\"\nname = \"Your views and comments\"\nsensitivity = \"special\"\nart9_condition = \"explicit-consent\"",
        1,
    );
    let loaded = crate::load("p.toml", &with).unwrap();
    let text = notice::notice(&loaded.document).write(Format::Markdown);
    assert!(text.contains("| Interactive features | Your views and comments | Your explicit consent (Art. 9(2)(a)) |"), "{text}");
    let record = ropa::record(&loaded.document);
    let a = record
        .activities
        .iter()
        .find(|a| a.purpose_id == "seek-feedback")
        .unwrap();
    assert_eq!(
        a.special_category_conditions,
        ["Your views and comments: your explicit consent (Art. 9(2)(a)) (explicit-consent)"]
    );
    let free_text = with.replacen(
        "art9_condition = \"explicit-consent\"",
        "art9_condition = \"because we need it\"",
        1,
    );
    let errors = crate::load("p.toml", &free_text).unwrap_err();
    assert!(
        errors.lines()[0].contains("unknown variant `because we need it`"),
        "{}",
        errors
    );
}

#[test]
fn us_adequacy_covers_certified_organisations_only() {
    let policy = crate::REFERENCE_POLICY.replacen(
        "country = \"US\"\nsafeguard = \"uk-idta\"\nagreement = \"DPA-2018-ANALYTICS-01\"",
        "country = \"US\"\ndpf_certified = true\ndpf_checked = 2026-11-20\nagreement = \"DPA-2018-ANALYTICS-01\"",
        1,
    );
    let loaded = crate::load("p.toml", &policy).unwrap();
    let text = notice::notice(&loaded.document).write(Format::Markdown);
    assert!(text.contains("covers only organisations certified under the UK Extension to the EU-US Data Privacy Framework; the recipient is certified (checked on 2026-11-20)"), "{text}");
    let record = ropa::record(&loaded.document);
    let a = record
        .activities
        .iter()
        .find(|a| a.purpose_id == "analytics-research")
        .unwrap();
    assert!(
        a.third_country_transfers
            .iter()
            .any(|t| t.contains("certified (checked on 2026-11-20)"))
    );
}

#[test]
fn the_record_lists_storage_transfers_dpo_contact_and_the_lia() {
    let policy = crate::reference().unwrap();
    let record = ropa::record(&policy.document);
    assert_eq!(
        record.controller.dpo_email.as_deref(),
        Some("dpo@iimageit.com")
    );
    assert!(
        record
            .controller
            .dpo_contact
            .as_deref()
            .unwrap()
            .contains("Crawley")
    );
    for a in &record.activities {
        assert!(
            a.third_country_transfers
                .iter()
                .any(|t| t.starts_with("Servers that may from time to time be located outside the UK and EEA (Our hosting provider): the United States, protected by the UK International Data Transfer Agreement")),
            "{}: {:?}",
            a.purpose_id,
            a.third_country_transfers
        );
        assert_eq!(a.storage.len(), 3, "{}", a.purpose_id);
        assert!(
            a.recipient_categories
                .iter()
                .any(|r| r == "Our backup provider (hosting or backup provider)")
        );
    }
    let security = record
        .activities
        .iter()
        .find(|a| a.purpose_id == "security")
        .unwrap();
    assert_eq!(security.lia_reference.as_deref(), Some("LIA-2026-04"));
    assert!(
        security
            .legitimate_interest
            .as_deref()
            .unwrap()
            .contains("fraud")
    );
    let csv = ropa::csv(&policy.document);
    assert!(csv.lines().next().unwrap().contains("dpo_contact,"));
    assert!(csv.contains("dpo@iimageit.com"));
    assert!(csv.contains("LIA-2026-04"));
}
