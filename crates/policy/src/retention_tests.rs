use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const DAY: Micros = 86_400_000_000;

fn micros(t: OffsetDateTime) -> Micros {
    to_micros(t).unwrap()
}

/// A small policy with one rule per kind of event.
fn policy() -> Policy {
    let text = crate::REFERENCE_POLICY;
    let mut p = crate::parse("p.toml", text).unwrap();
    let extra: Policy = crate::parse(
        "x.toml",
        &text.replace(
            "[[retention]]\nid = \"enquiry-2y\"",
            "[[retention]]\nid = \"application-3m\"\ndescription = \"x\"\nduration = \"3 months\"\nfrom = \"application-decided\"\nrelationship = \"job-application\"\n\n[[retention]]\nid = \"enquiry-2y\"",
        ),
    )
    .unwrap();
    p.retention = extra.retention;
    p
}

fn retention() -> Retention {
    Retention::new(&policy())
}

fn datum<'a>(field: &'a str, purpose: &'a str, at: Micros) -> DatumFacts<'a> {
    DatumFacts {
        field,
        purpose,
        collected_at: at,
    }
}

fn field_of(category: &str) -> String {
    let p = policy();
    p.categories
        .iter()
        .find(|c| c.id.as_str() == category)
        .and_then(|c| c.fields.first())
        .map(|f| f.name.to_string())
        .unwrap()
}

fn purpose_with_rule(rule: &str) -> (String, String) {
    let p = policy();
    let purpose = p
        .purposes
        .iter()
        .find(|x| x.retention.as_ref().map(|r| r.as_str()) == Some(rule))
        .unwrap();
    let category = purpose.categories.first().unwrap().to_string();
    let category = category.split('.').next().unwrap().to_string();
    (purpose.id.to_string(), field_of(&category))
}

const T0: OffsetDateTime = datetime!(2026-01-15 10:00 UTC);

#[test]
fn collection_clock_adds_the_period_to_when_the_datum_was_collected() {
    let (purpose, field) = purpose_with_rule("feedback-1y");
    let facts = SubjectFacts::default();
    let g = retention()
        .expiry(&facts, &datum(&field, &purpose, micros(T0)))
        .unwrap();
    // Other purposes may use the same field for longer only when they
    // apply to the person; with no relationships and no consents none does.
    assert_eq!(g.rule, "feedback-1y");
    assert_eq!(
        g.expiry,
        Expiry::At(micros(datetime!(2027-01-15 10:00 UTC)))
    );
}

#[test]
fn last_activity_clock_runs_from_the_latest_activity() {
    let (purpose, field) = purpose_with_rule("marketing-inactive-2y");
    let facts = SubjectFacts {
        last_activity: micros(datetime!(2026-06-01 0:00 UTC)),
        ..Default::default()
    };
    let g = retention()
        .expiry(&facts, &datum(&field, &purpose, micros(T0)))
        .unwrap();
    assert_eq!(g.rule, "marketing-inactive-2y");
    assert_eq!(g.expiry, Expiry::At(micros(datetime!(2028-06-01 0:00 UTC))));
}

#[test]
fn relationship_end_clock_waits_while_the_relationship_runs() {
    let (purpose, field) = purpose_with_rule("account-2y");
    let running = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "account".into(),
            started_at: micros(T0),
            ended_at: None,
        }],
        ..Default::default()
    };
    let r = retention();
    let d = datum(&field, &purpose, micros(T0));
    assert_eq!(r.expiry(&running, &d).unwrap().expiry, Expiry::Open);
    let ended = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "account".into(),
            started_at: micros(T0),
            ended_at: Some(micros(datetime!(2026-03-01 0:00 UTC))),
        }],
        ..Default::default()
    };
    // Two years after the account for the service notices, but the
    // contract obligations keep it six (the limitation period), and the
    // longest ground wins.
    let g = r.expiry(&ended, &d).unwrap();
    assert_eq!(g.rule, "contract-6y");
    assert_eq!(g.expiry, Expiry::At(micros(datetime!(2032-03-01 0:00 UTC))));
}

#[test]
fn accounting_clock_runs_from_the_end_of_the_accounting_year_of_the_transaction() {
    let (purpose, field) = purpose_with_rule("accounting-6y");
    // The reference policy's accounting year ends on 31 March: an order on
    // 15 January 2026 falls in the year ending 31 March 2026.
    let facts = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "order".into(),
            started_at: micros(T0),
            ended_at: Some(micros(T0)),
        }],
        ..Default::default()
    };
    let g = retention()
        .expiry(&facts, &datum(&field, &purpose, micros(T0)))
        .unwrap();
    assert_eq!(g.rule, "accounting-6y");
    assert_eq!(g.expiry, Expiry::At(micros(datetime!(2032-04-01 0:00 UTC))));
    // An order on 1 April falls in the next year.
    assert_eq!(
        period_end(micros(datetime!(2026-04-01 9:00 UTC)), (Month::March, 31)),
        Some(micros(datetime!(2027-04-01 0:00 UTC)))
    );
    // A year ending on 29 February clamps in other years.
    assert_eq!(
        period_end(
            micros(datetime!(2027-01-01 0:00 UTC)),
            (Month::February, 29)
        ),
        Some(micros(datetime!(2027-03-01 0:00 UTC)))
    );
}

#[test]
fn consent_withdrawal_clock_starts_when_consent_is_withdrawn() {
    let (purpose, field) = purpose_with_rule("marketing-consent");
    let r = retention();
    let d = datum(&field, &purpose, micros(T0));
    let live = SubjectFacts {
        consents: vec![ConsentFact {
            purpose: purpose.clone(),
            live: true,
            at: micros(T0),
        }],
        ..Default::default()
    };
    let g = r.expiry(&live, &d).unwrap();
    assert_eq!(
        (g.rule.as_str(), g.expiry),
        ("marketing-consent", Expiry::Open)
    );
    let withdrawn = SubjectFacts {
        consents: vec![ConsentFact {
            purpose: purpose.clone(),
            live: false,
            at: micros(datetime!(2026-02-01 0:00 UTC)),
        }],
        ..Default::default()
    };
    let g = r.expiry(&withdrawn, &d).unwrap();
    assert_eq!(g.expiry, Expiry::At(micros(datetime!(2026-03-03 0:00 UTC))));
}

#[test]
fn request_closed_and_application_decided_run_from_the_relationship_end() {
    let (purpose, field) = purpose_with_rule("enquiry-2y");
    let closed = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "enquiry".into(),
            started_at: micros(T0),
            ended_at: Some(micros(datetime!(2026-02-01 0:00 UTC))),
        }],
        ..Default::default()
    };
    let g = retention()
        .expiry(&closed, &datum(&field, &purpose, micros(T0)))
        .unwrap();
    assert_eq!(g.rule, "enquiry-2y");
    assert_eq!(g.expiry, Expiry::At(micros(datetime!(2028-02-01 0:00 UTC))));

    let rule = Rule {
        id: "application-3m".into(),
        period: Period::parse("3 months").unwrap(),
        from: RetentionEvent::ApplicationDecided,
        relationship: Some("job-application".into()),
        year_end: None,
        statutory: false,
    };
    let decided = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "job-application".into(),
            started_at: micros(T0),
            ended_at: Some(micros(datetime!(2026-05-31 0:00 UTC))),
        }],
        ..Default::default()
    };
    assert_eq!(
        clock(
            &rule,
            "job-applications",
            &[],
            &decided,
            &datum("x", "y", 0)
        ),
        Expiry::At(micros(datetime!(2026-08-31 0:00 UTC)))
    );
}

#[test]
fn the_longest_live_ground_keeps_a_datum() {
    // A name collected for feedback (1 year from collection) is also used by
    // order processing for a customer with an order (6 years from the end
    // of the accounting year): the accounting rule keeps it.
    let (purpose, _) = purpose_with_rule("feedback-1y");
    let r = retention();
    let name = "full_name";
    let alone = r
        .expiry(&SubjectFacts::default(), &datum(name, &purpose, micros(T0)))
        .unwrap();
    let customer = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "order".into(),
            started_at: micros(T0),
            ended_at: Some(micros(T0)),
        }],
        ..Default::default()
    };
    let kept = r
        .expiry(&customer, &datum(name, &purpose, micros(T0)))
        .unwrap();
    assert!(kept.expiry > alone.expiry, "{kept:?} vs {alone:?}");
    assert_eq!(kept.rule, "accounting-6y");
}

#[test]
fn after_an_erasure_only_a_legal_obligation_keeps_data() {
    let (purpose, _) = purpose_with_rule("feedback-1y");
    let r = retention();
    let erased_at = micros(datetime!(2026-02-01 0:00 UTC));
    let customer = SubjectFacts {
        relationships: vec![RelationshipFact {
            kind: "order".into(),
            started_at: micros(T0),
            ended_at: Some(micros(T0)),
        }],
        erased_at: Some(erased_at),
        ..Default::default()
    };
    let name = r
        .expiry(&customer, &datum("full_name", &purpose, micros(T0)))
        .unwrap();
    assert_eq!(name.rule, "accounting-6y");
    let alone = SubjectFacts {
        erased_at: Some(erased_at),
        ..Default::default()
    };
    let gone = r
        .expiry(&alone, &datum("full_name", &purpose, micros(T0)))
        .unwrap();
    assert_eq!(gone.expiry, Expiry::At(erased_at));
}

#[test]
fn a_field_no_rule_covers_has_no_expiry() {
    assert_eq!(
        retention().expiry(
            &SubjectFacts::default(),
            &datum("no_such_field", "x", micros(T0))
        ),
        None
    );
}

#[test]
fn year_ends_parse() {
    assert_eq!(parse_year_end("03-31"), Some((Month::March, 31)));
    assert_eq!(parse_year_end("02-29"), Some((Month::February, 29)));
    assert_eq!(parse_year_end("04-31"), None);
    assert_eq!(parse_year_end("3-31"), None);
    assert_eq!(parse_year_end("13-01"), None);
}

#[test]
fn reviews_fall_due_a_review_interval_after_the_last_review() {
    let p = policy();
    let recorded = vec![(
        "feedback-1y".to_string(),
        Day::from_ymd(2027, 6, 1).unwrap(),
    )];
    let all = reviews(&p, &recorded);
    let feedback = all.iter().find(|r| r.rule == "feedback-1y").unwrap();
    assert_eq!(feedback.due, Day::from_ymd(2028, 6, 1));
    let other = all.iter().find(|r| r.rule == "account-2y").unwrap();
    assert_eq!(other.due, Day::from_ymd(2027, 12, 1));
}

#[test]
fn a_shorter_retention_changes_the_fingerprint() {
    let p = policy();
    let mut shorter = p.clone();
    for r in &mut shorter.retention {
        if r.id.as_str() == "feedback-1y" {
            r.duration = crate::located::At::new("6 months".into());
        }
    }
    assert_ne!(fingerprint(&p), fingerprint(&shorter));
    assert_eq!(fingerprint(&p), fingerprint(&p.clone()));
}

fn any_event() -> impl Strategy<Value = RetentionEvent> {
    prop::sample::select(RetentionEvent::ALL.to_vec())
}

fn any_facts() -> impl Strategy<Value = SubjectFacts> {
    let rel = (
        prop::sample::select(vec!["account", "order", "contract", "enquiry"]),
        0i64..4000,
        prop::option::of(0i64..4000),
    )
        .prop_map(|(kind, s, e)| RelationshipFact {
            kind: kind.into(),
            started_at: s * DAY,
            ended_at: e.map(|e| (s + e) * DAY),
        });
    (prop::collection::vec(rel, 0..4), 0i64..8000).prop_map(|(relationships, act)| SubjectFacts {
        relationships,
        consents: Vec::new(),
        last_activity: act * DAY,
        erased_at: None,
    })
}

proptest! {
    /// A clock never ends before the event it runs from, so data is never
    /// erased before its rule allows.
    #[test]
    fn expiry_is_never_before_collection(
        event in any_event(),
        facts in any_facts(),
        collected in 0i64..8000,
        amount in 1u32..30,
    ) {
        let rule = Rule {
            id: "r".into(),
            period: Period { amount, unit: crate::period::Unit::Months },
            from: event,
            relationship: None,
            year_end: Some((Month::March, 31)),
            statutory: false,
        };
        let d = datum("f", "p", collected * DAY);
        let kinds = vec!["order".to_string()];
        if let Expiry::At(at) = clock(&rule, "p", &kinds, &facts, &d) {
            prop_assert!(at > d.collected_at.min(facts.last_activity).min(
                facts.relationships.iter().map(|r| r.started_at).min().unwrap_or(i64::MAX)));
        }
    }

    /// Adding a relationship or a consent (another ground) never brings
    /// any datum's expiry forward.
    #[test]
    fn another_ground_never_shortens_retention(
        facts in any_facts(),
        collected in 0i64..8000,
        kind in prop::sample::select(vec!["account", "order", "contract", "enquiry"]),
        field in prop::sample::select(vec!["full_name", "email"]),
    ) {
        let r = retention();
        let (purpose, _) = purpose_with_rule("feedback-1y");
        let d = datum(field, &purpose, collected * DAY);
        let before = r.expiry(&facts, &d).map(|g| g.expiry);
        let mut more = facts.clone();
        more.relationships.push(RelationshipFact {
            kind: kind.into(),
            started_at: collected * DAY,
            ended_at: None,
        });
        let after = r.expiry(&more, &d).map(|g| g.expiry);
        prop_assert!(after >= before, "{after:?} < {before:?}");
    }

    /// Due means the expiry has been reached at the injected time, and a
    /// datum due once stays due as time passes.
    #[test]
    fn due_is_monotone_in_time(at in 0i64..100_000, now in 0i64..100_000, later in 0i64..1000) {
        let e = Expiry::At(at);
        prop_assert_eq!(e.is_due(now), at <= now);
        if e.is_due(now) {
            prop_assert!(e.is_due(now + later));
        }
        prop_assert!(!Expiry::Open.is_due(now));
    }
}
