//! Each semantic error has its own test: a one-place edit to the reference
//! policy, and the error that must name it, at the right line.

use crate::{REFERENCE_POLICY, load};

/// Loads the reference policy after replacing `from` (which must occur) with `to`.
fn errors_after(from: &str, to: &str) -> Vec<String> {
    assert!(
        REFERENCE_POLICY.contains(from),
        "the reference policy has no `{from}`"
    );
    let edited = REFERENCE_POLICY.replacen(from, to, 1);
    match load("p.toml", &edited) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

/// The one-based line of the first occurrence of `needle` after an edit.
fn line_of(from: &str, to: &str, needle: &str) -> usize {
    let edited = REFERENCE_POLICY.replacen(from, to, 1);
    let offset = edited.find(needle).unwrap();
    edited[..offset].matches('\n').count() + 1
}

fn expect_one(from: &str, to: &str, message: &str, at: &str) {
    let errors = errors_after(from, to);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert!(
        errors[0].contains(message),
        "`{}` does not contain `{message}`",
        errors[0]
    );
    let line = line_of(from, to, at);
    assert!(
        errors[0].starts_with(&format!("p.toml:{line}:")),
        "`{}` is not at line {line}",
        errors[0]
    );
    assert!(errors[0].contains("; "), "no hint in `{}`", errors[0]);
}

#[test]
fn reference_policy_is_valid() {
    let loaded = crate::reference().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.document.purposes.len(), 21);
}

#[test]
fn syntax_error_has_line_and_column() {
    let errors = errors_after("regime = \"uk-gdpr\"", "regime = uk-gdpr");
    assert_eq!(errors.len(), 1);
    let line = line_of(
        "regime = \"uk-gdpr\"",
        "regime = uk-gdpr",
        "regime = uk-gdpr",
    );
    assert!(
        errors[0].starts_with(&format!("p.toml:{line}:")),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_key_is_refused_with_the_expected_keys() {
    let errors = errors_after("trading_name = \"i-Image\"", "trading_nmae = \"i-Image\"");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("unknown field `trading_nmae`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("trading_name"), "{}", errors[0]);
}

#[test]
fn unknown_legal_basis_is_refused() {
    let errors = errors_after("basis = \"contract\"", "basis = \"contractual\"");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("contractual"), "{}", errors[0]);
}

#[test]
fn unknown_category_referenced() {
    expect_one(
        "categories = [\"name\", \"email\", \"postal-address\", \"orders\"]",
        "categories = [\"name\", \"email\", \"postal-address\", \"order\"]",
        "purpose `complete-transactions` refers to unknown data category `order`",
        "\"order\"]",
    );
}

#[test]
fn unknown_field_of_a_category_referenced() {
    expect_one(
        "categories = [\"visit.user_agent\", \"visit.landing_page\"]",
        "categories = [\"visit.user_agent\", \"visit.exit_page\"]",
        "unknown field `exit_page` of category `visit`",
        "\"visit.exit_page\"",
    );
}

#[test]
fn unknown_purpose_referenced() {
    expect_one(
        "purpose = \"cookie-analytics\"",
        "purpose = \"cookie-analytic\"",
        "cookie `_analytics_id` refers to unknown purpose `cookie-analytic`",
        "\"cookie-analytic\"",
    );
}

#[test]
fn unknown_recipient_referenced() {
    expect_one(
        "recipients = [\"business-acquirer\"]",
        "recipients = [\"buyer\"]",
        "purpose `business-transfer` refers to unknown recipient `buyer`",
        "[\"buyer\"]",
    );
}

#[test]
fn unknown_channel_referenced() {
    expect_one(
        "channels = [\"post\"]",
        "channels = [\"pigeon\"]",
        "purpose `postal-marketing` refers to unknown marketing channel `pigeon`",
        "\"pigeon\"",
    );
}

#[test]
fn unknown_channel_declared() {
    let errors = errors_after("channel = \"sms\"", "channel = \"fax\"");
    let line = line_of("channel = \"sms\"", "channel = \"fax\"", "\"fax\"");
    assert!(errors.contains(&format!(
        "p.toml:{line}:11: unknown marketing channel `fax`; expected one of: email, phone, sms, post, automated-call"
    )), "{errors:#?}");
    // The purpose that used `sms` now refers to an undeclared channel.
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unknown marketing channel `sms`")),
        "{errors:#?}"
    );
}

#[test]
fn duplicate_ids() {
    expect_one(
        "id = \"service-notices\"",
        "id = \"seek-feedback\"",
        "duplicate purpose id `seek-feedback`",
        "id = \"seek-feedback\"\nname = \"Notices",
    );
    let errors = errors_after(
        "{ name = \"comments\", type = \"text\", description = \"your comments and survey answers\" }",
        "{ name = \"enquiry\", type = \"text\" }",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("duplicate field id `enquiry`")),
        "{errors:#?}"
    );
}

#[test]
fn consent_marketing_purpose_without_channel() {
    expect_one(
        "channels = [\"email\", \"phone\", \"sms\", \"automated-call\"]\n",
        "",
        "consent purpose `requested-communications` is for marketing but names no channel",
        "id = \"requested-communications\"",
    );
}

#[test]
fn legitimate_interest_without_interest() {
    expect_one(
        "interest = \"Showing our websites properly on the devices our visitors use.\"\n",
        "",
        "purpose `content-presentation` relies on legitimate interests without stating the interest",
        "basis = \"legitimate-interest\"\nlia = \"LIA-2026-02\"",
    );
}

#[test]
fn legal_obligation_without_the_law() {
    expect_one(
        "obligation = \"Companies Act 2006, s.386 and s.388; Finance Act 1998 Sch. 18 para. 21\"\n",
        "",
        "purpose `statutory-accounting` relies on a legal obligation without naming it",
        "basis = \"legal-obligation\"\ncategories = [\"name\", \"postal-address\", \"orders\"]",
    );
}

#[test]
fn special_category_without_art9_condition() {
    expect_one(
        "name = \"Your job application\"\n",
        "name = \"Your job application\"\nsensitivity = \"special\"\n",
        "special-category data `job-application` has no Art. 9 condition",
        "id = \"job-application\"\nname",
    );
    let errors = errors_after(
        "name = \"Your job application\"\n",
        "name = \"Your job application\"\nsensitivity = \"special\"\nart9_condition = \"employment-law\"\n",
    );
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn processor_without_agreement() {
    expect_one(
        "agreement = \"DPA-2018-MAIL-01\"\n",
        "",
        "recipient `mailing-house` processes data for us but has no agreement reference",
        "kind = \"processor\"",
    );
}

#[test]
fn analytics_provider_receiving_identified_data() {
    expect_one(
        "categories = [\"ip-address\", \"visit\", \"usage\"]\nform = \"pseudonymised\"",
        "categories = [\"ip-address\", \"visit\", \"usage\"]\nform = \"identified\"",
        "analytics provider `web-analytics` would receive identified data",
        "form = \"identified\"\nown_marketing = false\n\n[[recipients]]\nid = \"search-engine\"",
    );
}

#[test]
fn recipient_using_data_for_its_own_marketing() {
    expect_one(
        "form = \"identified\"\nown_marketing = false",
        "form = \"identified\"\nown_marketing = true",
        "recipient `mailing-house` may use data for its own marketing, which the policy forbids",
        "own_marketing = true",
    );
}

#[test]
fn transfer_without_adequacy_or_safeguard() {
    expect_one(
        "country = \"US\"\nsafeguard = \"uk-idta\"\nagreement",
        "country = \"US\"\nagreement",
        "recipient `web-analytics` is in US, adequate under uk-gdpr only for certified organisations",
        "country = \"US\"\nagreement",
    );
    let hosting = "country = \"US\"\nprovider = \"Our hosting provider\"\nsafeguard = \"uk-idta\"";
    expect_one(
        hosting,
        "country = \"IN\"\nprovider = \"P\"",
        "storage location `overflow-hosting` transfers data to IN, which has no adequacy under uk-gdpr on 2026-12-01, and no safeguard",
        "country = \"IN\"",
    );
    // An adequate country needs no safeguard; a DPF-certified US recipient
    // is adequate once the date of the check is recorded.
    assert!(errors_after(hosting, "country = \"NZ\"\nprovider = \"P\"").is_empty());
    assert!(
        errors_after(
            hosting,
            "country = \"US\"\nprovider = \"P\"\ndpf_certified = true\ndpf_checked = 2026-11-20"
        )
        .is_empty()
    );
    assert_eq!(
        errors_after(hosting, "country = \"US\"\nprovider = \"P\"").len(),
        1
    );
}

const WEB_ANALYTICS: &str = "country = \"US\"\nsafeguard = \"uk-idta\"\nagreement";
const HOSTING: &str =
    "country = \"US\"\nprovider = \"Our hosting provider\"\nsafeguard = \"uk-idta\"";

#[test]
fn a_safeguard_of_the_other_regime_is_refused_with_the_right_one() {
    expect_one(
        WEB_ANALYTICS,
        "country = \"US\"\nsafeguard = \"eu-scc\"\nagreement",
        "recipient `web-analytics` relies on the EU standard contractual clauses (2021/914) (`eu-scc`), which is not a transfer safeguard under uk-gdpr",
        "\"eu-scc\"",
    );
    let errors = errors_after(
        WEB_ANALYTICS,
        "country = \"US\"\nsafeguard = \"eu-scc\"\nagreement",
    );
    assert!(errors[0].contains("uk-addendum") && errors[0].contains("uk-idta"));
    // Under EU GDPR the UK instruments are refused, and the hint is the SCCs.
    let under_eu =
        crate::REFERENCE_POLICY.replacen("regime = \"uk-gdpr\"", "regime = \"eu-gdpr\"", 1);
    let errors = crate::load("p.toml", &under_eu).unwrap_err().lines();
    // uk-idta (web analytics, hosting) and uk-addendum (search engine).
    let refused: Vec<&String> = errors
        .iter()
        .filter(|e| e.contains("which is not a transfer safeguard under eu-gdpr"))
        .collect();
    assert_eq!(refused.len(), 3, "{errors:#?}");
    for e in refused {
        assert!(e.contains("`safeguard = \"eu-scc\"`"), "{e}");
        assert!(!e.contains("uk-idta\" ("), "{e}");
    }
    let with_scc = under_eu
        .replace("safeguard = \"uk-idta\"", "safeguard = \"eu-scc\"")
        .replace("safeguard = \"uk-addendum\"", "safeguard = \"eu-scc\"");
    let errors = crate::load("p.toml", &with_scc)
        .err()
        .map(|e| e.lines())
        .unwrap_or_default();
    assert!(
        errors.iter().all(|e| !e.contains("safeguard under")),
        "{errors:#?}"
    );
}

#[test]
fn an_art_49_derogation_is_never_for_a_processor_or_storage() {
    expect_one(
        WEB_ANALYTICS,
        "country = \"US\"\nsafeguard = \"art49-derogation\"\nagreement",
        "recipient `web-analytics` relies on an Art. 49 derogation, but a processor is a standing arrangement",
        "\"art49-derogation\"",
    );
    expect_one(
        HOSTING,
        "country = \"US\"\nprovider = \"Our hosting provider\"\nsafeguard = \"art49-derogation\"",
        "storage location `overflow-hosting` relies on an Art. 49 derogation, but storage is a standing arrangement",
        "\"art49-derogation\"",
    );
}

#[test]
fn an_art_49_derogation_needs_occasional_purposes() {
    let acquirer = "description = \"Only in a sale or reorganisation of some or all of our business and assets.\"\ncountry = \"GB\"";
    let abroad = "description = \"Only in a sale or reorganisation of some or all of our business and assets.\"\ncountry = \"IN\"\nsafeguard = \"art49-derogation\"";
    expect_one(
        acquirer,
        abroad,
        "recipient `business-acquirer` relies on an Art. 49 derogation for purposes that are not marked occasional (business-transfer)",
        "\"art49-derogation\"",
    );
    let occasional = crate::REFERENCE_POLICY
        .replacen(acquirer, abroad, 1)
        .replacen(
            "recipients = [\"business-acquirer\"]",
            "recipients = [\"business-acquirer\"]\noccasional = true",
            1,
        );
    assert!(crate::load("p.toml", &occasional).is_ok());
}

#[test]
fn dpf_certification_carries_the_date_it_was_checked() {
    expect_one(
        HOSTING,
        "country = \"US\"\nprovider = \"P\"\ndpf_certified = true",
        "storage location `overflow-hosting` relies on its certification under the UK Extension to the EU-US Data Privacy Framework without the date it was checked",
        "country = \"US\"\nprovider = \"P\"\ndpf_certified",
    );
}

#[test]
fn sector_limited_adequacy_is_checked_against_the_declared_sector() {
    expect_one(
        HOSTING,
        "country = \"CA\"\nprovider = \"P\"",
        "storage location `overflow-hosting` is in CA, adequate under uk-gdpr only for commercial organisations subject to PIPEDA, and declares no sector",
        "country = \"CA\"",
    );
    expect_one(
        HOSTING,
        "country = \"JP\"\nprovider = \"P\"\nsector = \"public-sector\"",
        "is in JP, adequate under uk-gdpr only for business operators subject to the APPI (private sector), and declares sector `public-sector`",
        "sector = \"public-sector\"",
    );
    assert!(
        errors_after(
            HOSTING,
            "country = \"CA\"\nprovider = \"P\"\nsector = \"pipeda-commercial\""
        )
        .is_empty()
    );
    assert!(
        errors_after(
            HOSTING,
            "country = \"KR\"\nprovider = \"P\"\nsector = \"pipa\""
        )
        .is_empty()
    );
}

#[test]
fn purpose_without_retention() {
    expect_one(
        "retention = \"job-application-6m\"\n",
        "",
        "purpose `job-applications` has no retention rule",
        "id = \"job-applications\"",
    );
}

#[test]
fn category_without_retention() {
    let from = "[[categories]]\nid = \"feedback\"";
    let errors = errors_after(
        from,
        "[[categories]]\nid = \"unused\"\nname = \"Unused\"\nsource = \"provided\"\nrequirement = \"voluntary\"\nfields = [{ name = \"x\", type = \"text\" }]\n\n[[categories]]\nid = \"feedback\"",
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("category `unused` has no retention rule"),
        "{}",
        errors[0]
    );
}

#[test]
fn opt_in_channel_marked_opt_out_for_a_consent_purpose() {
    expect_one(
        "channel = \"phone\"\nmode = \"opt-in\"",
        "channel = \"phone\"\nmode = \"opt-out\"",
        "consent purpose `requested-communications` uses channel `phone`, which the policy marks opt-out",
        "\"phone\", \"sms\", \"automated-call\"]",
    );
    // Email marked opt-out breaks PECR as well as the consent purpose.
    let errors = errors_after(
        "channel = \"email\"\nmode = \"opt-in\"",
        "channel = \"email\"\nmode = \"opt-out\"",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("PECR requires prior consent"))
    );
}

#[test]
fn cookie_outside_strictly_necessary_without_consent_purpose() {
    expect_one(
        "purpose = \"cookie-analytics\"\n",
        "",
        "cookie `_analytics_id` is analytics (not strictly necessary) but has no consent purpose",
        "category = \"analytics\"",
    );
    // A purpose that is not consent-based does not cover a cookie either.
    let errors = errors_after(
        "purpose = \"cookie-analytics\"",
        "purpose = \"analytics-research\"",
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn empty_controller_identity() {
    expect_one(
        "legal_name = \"i-Image IT Limited\"",
        "legal_name = \"\"",
        "the controller's legal name is empty",
        "legal_name",
    );
    let errors = errors_after("registration = \"ZA292671\"", "registration = \" \"");
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn unreadable_retention_duration() {
    expect_one(
        "duration = \"13 months\"",
        "duration = \"thirteen months\"",
        "unreadable duration `thirteen months`",
        "\"thirteen months\"",
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let edited = REFERENCE_POLICY
        .replacen("agreement = \"DPA-2018-MAIL-01\"\n", "", 1)
        .replacen(
            "legal_name = \"i-Image IT Limited\"",
            "legal_name = \"\"",
            1,
        )
        .replacen("retention = \"job-application-6m\"\n", "", 1);
    let errors = load("p.toml", &edited).unwrap_err();
    assert_eq!(errors.diagnostics.len(), 3, "{errors}");
    // Reported in file order.
    let starts: Vec<usize> = errors.diagnostics.iter().map(|d| d.span.start).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn company_number_has_eight_characters() {
    expect_one(
        "company_number = \"09028104\"",
        "company_number = \"9028104\"",
        "company number `9028104` is not a Companies House number",
        "company_number = \"9028104\"",
    );
    let errors = errors_after(
        "company_number = \"09028104\"",
        "company_number = \"9028104\"",
    );
    assert!(errors[0].contains("write \"09028104\""), "{}", errors[0]);
    assert!(
        errors_after(
            "company_number = \"09028104\"",
            "company_number = \"SC123456\""
        )
        .is_empty()
    );
}

#[test]
fn the_dpo_needs_an_email_address() {
    expect_one(
        "email = \"dpo@iimageit.com\" # example\n",
        "",
        "the data protection officer has no email address",
        "name = \"Andrew Cakebread\"",
    );
    expect_one(
        "email = \"dpo@iimageit.com\"",
        "email = \"Andrew\"",
        "the data protection officer's email `Andrew` is not an email address",
        "email = \"Andrew\"",
    );
}

#[test]
fn provided_data_says_whether_it_must_be_given() {
    expect_one(
        "requirement = \"contractual\"\nif_not_provided = \"we cannot process your order\" # example\n",
        "",
        "category `orders` does not say whether the person must provide it",
        "id = \"orders\"",
    );
    expect_one(
        "requirement = \"contractual\"\nif_not_provided = \"we cannot process your order\" # example\n",
        "requirement = \"contractual\"\n",
        "category `orders` is required by our contract with you but does not say what happens if it is not provided",
        "requirement = \"contractual\"",
    );
}

#[test]
fn a_legitimate_interest_references_its_assessment() {
    expect_one(
        "lia = \"LIA-2026-04\" # example\n",
        "",
        "purpose `security` relies on legitimate interests without a reference to its assessment",
        "basis = \"legitimate-interest\"\ninterest = \"Protecting our business",
    );
}

#[test]
fn schedule_2_is_not_a_legal_obligation() {
    expect_one(
        "obligation = \"Court orders and statutory requirements to disclose information to public authorities.\"",
        "obligation = \"Disclosure requests under the Data Protection Act 2018 Sch. 2 para. 2 and 5.\"",
        "purpose `legal-disclosure` names a DPA 2018 Sch. 2 exemption as a legal obligation",
        "obligation = \"Disclosure requests",
    );
}

#[test]
fn a_pre_contract_relationship_grounds_only_a_contract_purpose() {
    expect_one(
        "retention = \"feedback-1y\"\n\n[[purposes]]\nid = \"process-orders\"",
        "relationships = [\"enquiry\"]\nretention = \"feedback-1y\"\n\n[[purposes]]\nid = \"process-orders\"",
        "purpose `interactive-features` names pre-contract relationship `enquiry` but does not rest on a contract",
        "relationships = [\"enquiry\"]\nretention = \"feedback-1y\"",
    );
}

#[test]
fn a_storage_location_names_its_provider() {
    expect_one(
        "provider = \"Our backup provider\" # example\n",
        "",
        "storage location `backup` names no provider",
        "id = \"backup\"",
    );
}

#[test]
fn cookie_feeding_an_unknown_category() {
    expect_one(
        "feeds = [\"ip-address\", \"visit\"]",
        "feeds = [\"ip-adress\", \"visit\"]",
        "cookie `_analytics_id` refers to unknown data category `ip-adress`",
        "\"ip-adress\"",
    );
}

#[test]
fn cookie_feeding_data_its_purpose_does_not_read() {
    expect_one(
        "feeds = [\"ip-address\", \"visit\"]",
        "feeds = [\"ip-address\", \"usage\"]",
        "cookie `_analytics_id` feeds `usage`, which its purpose `cookie-analytics` does not read",
        "feeds = [\"ip-address\", \"usage\"]",
    );
}

#[test]
fn channels_on_a_purpose_not_marked_marketing() {
    expect_one(
        "marketing = true\nchannels = [\"post\"]",
        "channels = [\"post\"]",
        "purpose `postal-marketing` names marketing channels but is not marked marketing",
        "\"post\"]\nlia",
    );
}

/// The reference policy after several one-place edits.
fn errors_after_all(edits: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut edited = REFERENCE_POLICY.to_string();
    for (from, to) in edits {
        assert!(edited.contains(from), "no `{from}`");
        edited = edited.replacen(from, to, 1);
    }
    let errors = match load("p.toml", &edited) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    };
    (edited, errors)
}

const SIMILAR: &str = "marketing = true\nchannels = [\"post\"]";

#[test]
fn similar_products_needs_the_soft_opt_in_turned_on() {
    expect_one(
        SIMILAR,
        "marketing = true\nsimilar_products = true\nchannels = [\"post\"]",
        "purpose `postal-marketing` is marked similar_products, but the soft opt-in is off",
        "similar_products = true",
    );
}

#[test]
fn similar_products_needs_a_sale_relationship_and_legitimate_interests() {
    let (edited, errors) = errors_after_all(&[
        ("soft_opt_in = false", "soft_opt_in = true"),
        (
            SIMILAR,
            "marketing = true\nsimilar_products = true\nchannels = [\"post\"]",
        ),
    ]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("no relationship kind is marked `sale = true`"),
        "{errors:#?}"
    );
    let line = edited[..edited.find("similar_products = true").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert!(
        errors[0].starts_with(&format!("p.toml:{line}:")),
        "{errors:#?}"
    );
    let (_, errors) = errors_after_all(&[
        ("soft_opt_in = false", "soft_opt_in = true"),
        (
            "[[relationships]]\nid = \"order\"",
            "[[relationships]]\nid = \"order\"\nsale = true",
        ),
        (
            "basis = \"consent\"\nmarketing = true",
            "basis = \"consent\"\nmarketing = true\nsimilar_products = true",
        ),
    ]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("rests on consent"), "{errors:#?}");
    let (_, errors) = errors_after_all(&[
        ("soft_opt_in = false", "soft_opt_in = true"),
        (
            "[[relationships]]\nid = \"order\"",
            "[[relationships]]\nid = \"order\"\nsale = true",
        ),
        (
            SIMILAR,
            "marketing = true\nsimilar_products = true\nchannels = [\"post\"]",
        ),
    ]);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn the_banner_needs_a_declared_place_for_the_choice() {
    expect_one(
        "duration = \"6 months\"\nlocal_storage = true",
        "duration = \"6 months\"",
        "declares no place for the visitor's choice",
        "name = \"remember_login\"",
    );
    expect_one(
        "duration = \"6 months\"\nlocal_storage = true",
        "duration = \"session\"\nlocal_storage = true",
        "keeps the visitor's choice for the session only",
        "duration = \"session\"\nlocal_storage",
    );
}
