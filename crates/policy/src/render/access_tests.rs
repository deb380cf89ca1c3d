//! The access statement for a person of the reference policy, checked item
//! by item against Art. 15(1)(a)-(h) and 15(2).

use super::*;
use crate::render::Format;

fn reference() -> Policy {
    crate::reference().unwrap().document
}

/// Someone with an account who gets emails and visits the website.
fn account_holder() -> Held {
    Held {
        categories: vec![
            "name".into(),
            "email".into(),
            "account".into(),
            "ip-address".into(),
        ],
        purposes: vec![
            "account-management".into(),
            "service-notices".into(),
            "analytics-research".into(),
            "requested-communications".into(),
        ],
        sources: vec!["website".into(), "call-centre".into(), "website".into()],
    }
}

fn markdown(policy: &Policy, held: &Held) -> String {
    access_statement(policy, held).write(Format::Markdown)
}

/// The text of the section headed `heading`, up to the next `## `.
fn section(text: &str, heading: &str) -> String {
    let start = text
        .find(&format!("## {heading}"))
        .unwrap_or_else(|| panic!("no section `{heading}` in:\n{text}"));
    let rest = &text[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn assert_has(text: &str, items: &[&str]) {
    for item in items {
        assert!(text.contains(item), "missing `{item}` in:\n{text}");
    }
}

fn assert_lacks(text: &str, items: &[&str]) {
    for item in items {
        assert!(!text.contains(item), "unexpected `{item}` in:\n{text}");
    }
}

#[test]
fn a_purposes_and_their_legal_bases() {
    let s = section(&markdown(&reference(), &account_holder()), "Why we hold");
    assert_has(
        &s,
        &[
            "Managing and operating your account with us.",
            "Notifying you of any changes to our services.",
            "Troubleshooting, data analysis",
            "Sending you communications which you have requested",
            "Performance of a contract with you",
            "Our legitimate interests: Operating and improving our services",
            "Your consent. You can withdraw your consent at any time",
        ],
    );
    // Only the held data a purpose uses: account management also uses the
    // postal address and phone, which are not held.
    assert!(s.contains("your name, your email address and your account details"));
    assert_lacks(
        &s,
        &[
            "Processing any orders",
            "job application",
            "Marketing by post",
            "postal address",
            "telephone number",
        ],
    );
}

#[test]
fn b_the_categories_held_and_no_others() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "The information we hold",
    );
    assert_has(
        &s,
        &[
            "Your name",
            "Your email address",
            "Your account details",
            "username and account created at",
            "Your IP address",
        ],
    );
    assert_lacks(
        &s,
        &[
            "Your postal address",
            "Your orders",
            "Your job application",
            "Your telephone number",
            "Information about your visit",
        ],
    );
}

#[test]
fn c_and_15_2_recipients_named_with_transfer_safeguards() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "Who receives your information",
    );
    assert_has(
        &s,
        &[
            // Analytics for the IP address, in the US under the IDTA.
            "Our web analytics provider (analytics or search engine provider)",
            "your IP address",
            "troubleshooting, analysis and research",
            "| The United States, protected by the UK International Data Transfer Agreement |",
            "| Ireland, which has an adequacy decision |",
            // Email marketing goes through the mailing house, in the UK.
            "Our mailing service provider",
            "| The United Kingdom |",
            // Hosting, including overflow servers in the US.
            "Our hosting provider (hosting or backup provider)",
            "You can ask us for a copy of the safeguards that apply.",
        ],
    );
    // Search engines receive only visit data, which is not held; public
    // authorities and a buyer only for purposes not held.
    assert_lacks(
        &s,
        &[
            "Search engine providers",
            "Public authorities",
            "A buyer of our business",
        ],
    );
}

#[test]
fn d_retention_per_purpose() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "How long we keep",
    );
    assert_has(
        &s,
        &[
            "Managing your account | Two years after your account closes: 2 years from the end of an account with us",
            "Thirteen months after the visit",
            "Until you withdraw consent",
        ],
    );
    assert_lacks(
        &s,
        &[
            "Accounting records",
            "Six months after the recruitment decision",
        ],
    );
}

#[test]
fn e_the_rights() {
    let s = section(&markdown(&reference(), &account_holder()), "Your rights");
    assert_has(
        &s,
        &[
            "(right to rectification)",
            "(right to erasure)",
            "(right to restriction)",
            "(right to object)",
            "(here: troubleshooting, analysis and research)",
            "(right to object to direct marketing)",
            "withdraw your consent",
            "write to our Data Protection Officer",
        ],
    );
}

#[test]
fn f_complaints_to_the_controller_then_the_regulator() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "Your right to complain",
    );
    assert_has(
        &s,
        &[
            "please complain to us first: write to our Data Protection Officer",
            "Information Commissioner's Office (ICO)",
            "https://ico.org.uk",
            "Wycliffe House, Water Lane, Wilmslow, Cheshire SK9 5AF",
        ],
    );
}

#[test]
fn g_the_source_where_not_from_the_person() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "Where your information came from",
    );
    assert_has(
        &s,
        &[
            "Your IP address: your browser or app when you use our services (observed by us)",
            "through: website and call-centre.",
        ],
    );
    assert_lacks(&s, &["Your email address:", "Your account details:"]);
    // Someone whose data all came from them.
    let given = Held {
        categories: vec!["email".into()],
        purposes: vec!["requested-communications".into()],
        sources: Vec::new(),
    };
    let s = section(
        &markdown(&reference(), &given),
        "Where your information came from",
    );
    assert_has(&s, &["You gave us the information we hold about you."]);
    assert_lacks(&s, &["except", "reached us through"]);
}

#[test]
fn h_automated_decisions_declared_or_none() {
    let s = section(
        &markdown(&reference(), &account_holder()),
        "Automated decisions",
    );
    assert_has(
        &s,
        &["We do not make decisions about you based solely on automated processing"],
    );
    let source = crate::REFERENCE_POLICY.replace(
        "\n[automated_decisions]\n",
        "\n[automated_decisions]\n[[automated_decisions.decision]]\nname = \"Fraud score\"\nlogic = \"A score from the IP address and activity.\"\nconsequences = \"A high score suspends the account until we check it.\"\npurpose = \"security\"\n",
    );
    let policy = crate::load("test.toml", &source).unwrap().document;
    let mut held = account_holder();
    // The decision serves a purpose not held: still none for this person.
    let s = section(&markdown(&policy, &held), "Automated decisions");
    assert_has(&s, &["We do not make decisions"]);
    held.purposes.push("security".into());
    let s = section(&markdown(&policy, &held), "Automated decisions");
    assert_has(
        &s,
        &[
            "Fraud score",
            "A score from the IP address and activity.",
            "A high score suspends the account",
            "Keeping our services safe and secure",
            "review",
        ],
    );
}

#[test]
fn every_article_15_item_has_its_section_in_article_order() {
    let text = markdown(&reference(), &account_holder());
    let headings = [
        "## Why we hold your information, and our legal basis",
        "## The information we hold about you",
        "## Who receives your information",
        "## How long we keep your information",
        "## Your rights",
        "## Your right to complain",
        "## Where your information came from",
        "## Automated decisions and profiling",
    ];
    let positions: Vec<usize> = headings
        .iter()
        .map(|h| text.find(h).unwrap_or_else(|| panic!("no `{h}`")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn nothing_held_lists_nothing() {
    let text = markdown(&reference(), &Held::default());
    assert_has(
        &text,
        &[
            "We do not use any of your information for any purpose.",
            "We hold no personal information about you.",
            "We do not disclose your information to anyone.",
            "(right to erasure)",
            "Information Commissioner's Office",
        ],
    );
    assert_lacks(&text, &["| ", "hosting provider"]);
}

#[test]
fn ids_the_policy_does_not_declare_are_listed_not_hidden() {
    let held = Held {
        categories: vec!["email".into(), "shoe-size".into(), "shoe-size".into()],
        purposes: vec!["fitting".into()],
        sources: Vec::new(),
    };
    let text = markdown(&reference(), &held);
    assert_eq!(text.matches("| shoe-size |").count(), 1, "{text}");
    assert_has(
        &text,
        &["| fitting |", "Not described in our current privacy notice"],
    );
}

#[test]
fn the_html_escapes_everything() {
    let mut policy = reference();
    if let Some(c) = policy
        .categories
        .iter_mut()
        .find(|c| c.id.as_str() == "email")
    {
        c.name = "Your <script>alert(1)</script> address".into();
    }
    policy.rights.contact = "write to \"DPO\" & co <dpo@example.com>".into();
    let held = Held {
        categories: vec!["email".into(), "<img src=x>".into()],
        purposes: vec!["account-management".into()],
        sources: vec!["<b>web</b>".into()],
    };
    let html = access_statement(&policy, &held).write(Format::Html);
    assert_lacks(&html, &["<script>", "<img", "<b>", "<dpo@"]);
    assert_has(
        &html,
        &[
            "Your &lt;script&gt;alert(1)&lt;/script&gt; address",
            "&lt;img src=x&gt;",
            "&lt;b&gt;web&lt;/b&gt;",
            "write to &quot;DPO&quot; &amp; co &lt;dpo@example.com&gt;",
        ],
    );
}
